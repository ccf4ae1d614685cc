-- Gradcheck (float64 finite differences) of every nn layer and loss on tiny sizes: the
-- gradients with respect to the input and to every parameter.
local flare = require 'flare'
local nn = require 'flare.nn'

local gradcheck = flare.autograd.gradcheck
local F = nn.functional
local D = { dtype = 'float64' }

local function randn(...) return flare.randn({ ... }, D) end

-- values kept away from 0, where relu-like functions have a kink
local function away(...)
  local r = flare.rand({ ... }, D) * 1.5 + 0.2
  local s = flare.randint(0, 2, { ... }):double() * 2 - 1
  return r * s
end

-- Checks module m (float64) on inputs: the first `ngrad` inputs (default 1) and all the
-- parameters are differentiated. out(m, inputs...) picks one tensor from the results.
local function check(m, inputs, opts)
  opts = opts or {}
  local list = {}
  local ngrad = opts.ngrad or 1
  for i, x in ipairs(inputs) do
    if i <= ngrad and flare.is_tensor(x) then x = x:detach():requires_grad() end
    list[i] = x
  end
  local nin = #list
  for _, p in ipairs(m:parameters()) do list[#list + 1] = p end
  local function f(...)
    local args = { ... }
    local res = table.pack((opts.call or function(mod, ...) return mod(...) end)(m, table.unpack(args, 1, nin)))
    local flat = {}
    local function add(v)
      if flare.is_tensor(v) then flat[#flat + 1] = v:reshape(-1)
      elseif type(v) == 'table' then for _, x in ipairs(v) do add(x) end end
    end
    for i = 1, res.n do add(res[i]) end
    return #flat == 1 and flat[1] or flare.cat(flat, 1)
  end
  gradcheck(f, list, { atol = opts.atol, rtol = opts.rtol })
end

local function float64(m) return m:double() end

local seeded = function(seed, fn)
  return function(...) flare.manual_seed(seed) return fn(...) end
end

describe('gradcheck of the nn layers', function()
  before_each(function() flare.manual_seed(11) end)

  it('Linear, Bilinear, Flatten, Unflatten, Identity', function()
    check(float64(nn.Linear(3, 2)), { randn(4, 3) })
    check(float64(nn.Linear(3, 2, { bias = false })), { randn(2, 2, 3) })
    check(float64(nn.Bilinear(2, 3, 2)), { randn(3, 2), randn(3, 3) }, { ngrad = 2 })
    check(nn.Flatten(), { randn(2, 2, 3) })
    check(nn.Unflatten(2, { 2, 2 }), { randn(3, 4) })
    check(nn.Identity(), { randn(3) })
  end)

  it('activations', function()
    for _, m in ipairs({ nn.ReLU(), nn.LeakyReLU(0.1), nn.ELU(1.3), nn.GELU(), nn.GELU('tanh'), nn.SiLU(), nn.Tanh(),
                         nn.Sigmoid(), nn.Softplus(2, 1.5), nn.Softmax(2), nn.LogSoftmax(1) }) do
      check(m, { away(3, 4) })
    end
  end)

  it('Dropout and Dropout2d (with a fixed mask)', function()
    local d = nn.Dropout(0.4)
    check(d, { randn(4, 5) }, { call = seeded(3, function(m, x) return m(x) end) })
    local d2 = nn.Dropout2d(0.5)
    check(d2, { randn(2, 3, 2, 2) }, { call = seeded(3, function(m, x) return m(x) end) })
  end)

  it('Embedding (the weight; its padding row gets no gradient by design, see nn_layers_spec)', function()
    local m = float64(nn.Embedding(5, 3))
    check(m, { flare.tensor({ { 1, 2, 5 }, { 2, 4, 1 } }, { dtype = 'int64' }) }, { ngrad = 0 })
  end)

  it('LayerNorm, GroupNorm', function()
    check(float64(nn.LayerNorm(3)), { randn(2, 3) })
    check(float64(nn.LayerNorm({ 2, 3 })), { randn(2, 2, 3) })
    check(float64(nn.LayerNorm(3, { elementwise_affine = false })), { randn(2, 3) })
    check(float64(nn.GroupNorm(2, 4)), { randn(2, 4, 3) })
  end)

  it('BatchNorm1d and BatchNorm2d, training and eval', function()
    check(float64(nn.BatchNorm1d(3)), { randn(4, 3) })
    check(float64(nn.BatchNorm1d(2)), { randn(3, 2, 2) })
    check(float64(nn.BatchNorm2d(2)), { randn(2, 2, 2, 2) })
    local bn = float64(nn.BatchNorm2d(2))
    bn(randn(3, 2, 2, 2))
    bn:eval()
    check(bn, { randn(2, 2, 2, 2) })
  end)

  it('convolution and pooling modules', function()
    if not rawget(flare, 'conv2d') then
      pending('flare.conv2d is not in this build yet')
      return
    end
    check(float64(nn.Conv1d(2, 2, 2, { stride = 2, padding = 1 })), { randn(1, 2, 5) })
    check(float64(nn.Conv2d(2, 4, 2, { groups = 2, padding = 'same' })), { randn(1, 2, 3, 3) })
    check(float64(nn.ConvTranspose2d(2, 2, 2, { stride = 2, output_padding = 1 })), { randn(1, 2, 2, 2) })
    check(nn.MaxPool1d(2), { randn(1, 2, 6) })
    check(nn.MaxPool2d(2, { stride = 1 }), { randn(1, 1, 3, 3) })
    check(nn.AvgPool2d(2, { padding = 1 }), { randn(1, 2, 3, 3) })
    check(nn.AdaptiveAvgPool2d({ 2, 1 }), { randn(1, 2, 3, 3) })
  end)

  it('RNN, LSTM, GRU (multi-layer, bidirectional, with initial states)', function()
    check(float64(nn.RNN(2, 2, { num_layers = 2 })), { randn(3, 1, 2) })
    check(float64(nn.RNN(2, 2, { nonlinearity = 'relu', bidirectional = true })), { away(2, 2, 2), randn(2, 2, 2) },
      { ngrad = 2 })
    check(float64(nn.LSTM(2, 2, { num_layers = 2, bidirectional = true, batch_first = true })), { randn(1, 3, 2) })
    local lstm = float64(nn.LSTM(2, 2))
    local h0, c0 = randn(1, 1, 2):requires_grad(), randn(1, 1, 2):requires_grad()
    check(lstm, { randn(2, 1, 2), h0, c0 }, { ngrad = 3, call = function(m, x, h, c) return m(x, { h, c }) end })
    check(float64(nn.GRU(2, 2, { num_layers = 2, bidirectional = true })), { randn(2, 1, 2), randn(4, 1, 2) },
      { ngrad = 2 })
  end)

  it('RNNCell, LSTMCell, GRUCell', function()
    check(float64(nn.RNNCell(2, 3)), { randn(2, 2), randn(2, 3) }, { ngrad = 2 })
    check(float64(nn.LSTMCell(2, 2)), { randn(2, 2), randn(2, 2), randn(2, 2) },
      { ngrad = 3, call = function(m, x, h, c) return m(x, { h, c }) end })
    check(float64(nn.GRUCell(2, 2)), { randn(2), randn(2) }, { ngrad = 2 })
  end)

  it('MultiheadAttention (with masks) and TransformerEncoderLayer', function()
    local mha = float64(nn.MultiheadAttention(4, 2))
    local mask = flare.tensor({ { false, true, false }, { false, false, false } })
    local kpm = flare.tensor({ { false, false, true } })
    check(mha, { randn(2, 1, 4), randn(3, 1, 4), randn(3, 1, 4) }, { ngrad = 3,
      call = function(m, q, k, v) return m(q, k, v, { attn_mask = mask, key_padding_mask = kpm }) end })
    local enc = float64(nn.TransformerEncoderLayer(4, 2, { dim_feedforward = 4, dropout = 0 }))
    check(enc, { randn(3, 1, 4) })
    local pre = float64(nn.TransformerEncoderLayer(4, 2, { dim_feedforward = 4, dropout = 0, norm_first = true,
                                                            activation = 'gelu' }))
    check(pre, { randn(3, 1, 4) }, { call = function(m, x) return m(x, { is_causal = true }) end })
  end)
end)

describe('gradcheck of the losses', function()
  before_each(function() flare.manual_seed(12) end)

  local function loss(fn, inputs, ngrad, opts)
    for _, r in ipairs({ 'mean', 'sum', 'none' }) do
      local o = { reduction = r }
      for k, v in pairs(opts or {}) do o[k] = v end
      local list = {}
      for i, x in ipairs(inputs) do list[i] = i <= ngrad and x:detach():requires_grad() or x end
      gradcheck(function(...)
        local args = { ... }
        args[#inputs + 1] = o
        return fn(table.unpack(args, 1, #inputs + 1))
      end, list)
    end
  end

  it('regression losses', function()
    local x, y = randn(3, 2), randn(3, 2)
    loss(F.mse_loss, { x, y }, 2)
    loss(F.l1_loss, { x, y }, 2)
    loss(F.smooth_l1_loss, { x, y }, 2, { beta = 0.5 })
    loss(F.huber_loss, { x, y }, 2, { delta = 0.8 })
  end)

  it('classification losses', function()
    local t = flare.tensor({ 1, 3, 2 }, { dtype = 'int64' })
    local w = flare.tensor({ 0.5, 1, 2 }, D)
    loss(F.cross_entropy, { randn(3, 3), t }, 1, { weight = w, label_smoothing = 0.1 })
    loss(F.cross_entropy, { randn(3, 3), flare.softmax(randn(3, 3), 2) }, 2)
    loss(F.nll_loss, { randn(3, 3), t }, 1, { weight = w })
    loss(F.nll_loss, { randn(2, 3, 2), flare.tensor({ { 1, 3 }, { 2, 2 } }, { dtype = 'int64' }) }, 1)
    local p = flare.sigmoid(randn(3, 2))
    local target = flare.rand({ 3, 2 }, D)
    loss(F.binary_cross_entropy, { p, target }, 2)
    loss(F.binary_cross_entropy_with_logits, { randn(3, 2), target }, 2, { pos_weight = flare.tensor({ 2, 0.5 }, D) })
    loss(F.kl_div, { flare.log_softmax(randn(2, 3), 2), flare.softmax(randn(2, 3), 2) }, 2)
    loss(F.kl_div, { flare.log_softmax(randn(2, 3), 2), flare.log_softmax(randn(2, 3), 2) }, 2, { log_target = true })
  end)

  it('embedding and ranking losses', function()
    local y = flare.tensor({ 1, -1, -1 }, D)
    loss(F.cosine_embedding_loss, { randn(3, 4), randn(3, 4), y }, 2, { margin = -0.5 })
    loss(F.margin_ranking_loss, { randn(4), randn(4), flare.tensor({ 1, -1, 1, -1 }, D) }, 2, { margin = 0.1 })
  end)
end)
