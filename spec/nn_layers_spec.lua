-- Every nn layer against PyTorch (spec/fixtures/gen_nn.py): the fixture's weights are
-- loaded through load_state_dict, and the outputs, input gradients and parameter
-- gradients of sum(output * upstream) must match.
local flare = require 'flare'
local nn = require 'flare.nn'
local fixture = require 'support.fixture'

local fx = fixture.load('nn')

-- The deterministic values gen_nn.py's pattern() makes, for the tensors it does not store.
local function pattern(shape, name, scale)
  local s = 0
  for i = 1, #name do s = s + name:byte(i) end
  s = s % 97
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local vals = {}
  for i = 0, n - 1 do vals[i + 1] = (scale or 1) * math.sin((i + 1) * (0.731 + 0.013 * s) + s) end
  local t = flare.tensor(vals, { dtype = 'float64' })
  if #shape ~= 1 then t = t:reshape(shape) end
  return t:float()
end

-- The flare module for each case, and how to call it when it is not m(inputs...).
local F = {}
local cases = {
  linear = function() return nn.Linear(5, 3) end,
  linear_3d = function() return nn.Linear(5, 3) end,
  linear_nobias = function() return nn.Linear(5, 3, { bias = false }) end,
  bilinear = function() return nn.Bilinear(3, 4, 2) end,
  relu = function() return nn.ReLU() end,
  leaky_relu = function() return nn.LeakyReLU(0.2) end,
  elu = function() return nn.ELU(1.5) end,
  gelu = function() return nn.GELU() end,
  gelu_tanh = function() return nn.GELU('tanh') end,
  silu = function() return nn.SiLU() end,
  tanh = function() return nn.Tanh() end,
  sigmoid = function() return nn.Sigmoid() end,
  softplus = function() return nn.Softplus(2, 3) end,
  softmax = function() return nn.Softmax(2) end,
  log_softmax = function() return nn.LogSoftmax(1) end,
  embedding = function() return nn.Embedding(10, 4, { padding_idx = 3 }) end,
  layer_norm = function() return nn.LayerNorm(4) end,
  layer_norm_2d = function() return nn.LayerNorm({ 3, 4 }) end,
  group_norm = function() return nn.GroupNorm(2, 4) end,
  batch_norm1d_train = function() return nn.BatchNorm1d(3, { momentum = 0.2 }) end,
  batch_norm1d_3d_train = function() return nn.BatchNorm1d(3) end,
  batch_norm1d_eval = function() return nn.BatchNorm1d(3) end,
  batch_norm2d_train = function() return nn.BatchNorm2d(2) end,
  batch_norm2d_eval = function() return nn.BatchNorm2d(2) end,
  conv1d = function() return nn.Conv1d(2, 4, 3, { stride = 2, padding = 1 }) end,
  conv2d = function() return nn.Conv2d(2, 4, 3, { stride = { 2, 1 }, padding = 1, dilation = { 1, 2 }, groups = 2 }) end,
  conv2d_same = function() return nn.Conv2d(2, 3, { 3, 2 }, { padding = 'same', bias = false }) end,
  conv_transpose2d = function()
    return nn.ConvTranspose2d(4, 2, 3, { stride = 2, padding = 1, output_padding = 1, groups = 2 })
  end,
  rnn = function() return nn.RNN(2, 3, { num_layers = 2 }) end,
  rnn_relu_h0 = function() return nn.RNN(2, 3, { nonlinearity = 'relu', bidirectional = true }) end,
  lstm = function() return nn.LSTM(2, 3) end,
  lstm_deep = function() return nn.LSTM(2, 3, { num_layers = 2, bidirectional = true, batch_first = true }) end,
  lstm_nobias_unbatched = function() return nn.LSTM(2, 3, { bias = false }) end,
  gru = function() return nn.GRU(2, 3, { num_layers = 2, bidirectional = true }) end,
  gru_batch_first = function() return nn.GRU(2, 3, { batch_first = true }) end,
  rnn_cell = function() return nn.RNNCell(3, 4) end,
  lstm_cell = function() return nn.LSTMCell(2, 3) end,
  gru_cell = function() return nn.GRUCell(2, 3) end,
  gru_cell_unbatched = function() return nn.GRUCell(2, 3) end,
  mha = function() return nn.MultiheadAttention(4, 2) end,
  mha_batch_first = function() return nn.MultiheadAttention(4, 2, { batch_first = true }) end,
  mha_kdim = function() return nn.MultiheadAttention(4, 2, { kdim = 3, vdim = 5, bias = false }) end,
  encoder_post = function() return nn.TransformerEncoderLayer(4, 2, { dim_feedforward = 6, dropout = 0 }) end,
  encoder_pre = function()
    return nn.TransformerEncoderLayer(4, 2, { dim_feedforward = 6, dropout = 0, norm_first = true,
                                              activation = 'gelu', batch_first = true })
  end,
}
F.mha = function(m, ins, c)
  return m(ins[1], ins[2], ins[3], { attn_mask = fixture.tensor(c.attn_mask), key_padding_mask = fixture.tensor(c.key_padding_mask) })
end
F.mha_batch_first = function(m, ins, c)
  return m(ins[1], ins[2], ins[3], { attn_mask = fixture.tensor(c.attn_mask), average_attn_weights = false })
end
F.encoder_post = function(m, ins, c)
  return m(ins[1], { src_mask = fixture.tensor(c.src_mask), src_key_padding_mask = fixture.tensor(c.key_padding_mask) })
end
F.encoder_pre = function(m, ins, c)
  return m(ins[1], { src_key_padding_mask = fixture.tensor(c.key_padding_mask) })
end

local tol = { rtol = 1e-5, atol = 1e-6 }

-- All the tensors of a call's results, in order (a table {h, c} is flattened as PyTorch's tuple).
local function flatten(list, out)
  out = out or {}
  for _, v in ipairs(list) do
    if flare.is_tensor(v) then out[#out + 1] = v
    elseif type(v) == 'table' then flatten(v, out) end
  end
  return out
end

local function run_case(name)
  local c = fx.layers[name]
  local m = cases[name]()
  m:train(c.train)
  -- the weights, through load_state_dict (strict: PyTorch's names and shapes)
  local sd = {}
  for k, p in pairs(m:named_parameters()) do sd[k] = pattern(p:size(), k, c.scale) end
  for k, b in pairs(c.buffers) do sd[k] = fixture.tensor(b) end
  m:load_state_dict(sd)
  local want_names, got_names = {}, {}
  for k in pairs(c.param_grads) do want_names[#want_names + 1] = k end
  for k in pairs(m:named_parameters()) do got_names[#got_names + 1] = k end
  table.sort(want_names)
  table.sort(got_names)
  assert.are.same(want_names, got_names)
  -- inputs
  local ins, leaves = {}, {}
  for i, shape in ipairs(c.input_shapes) do
    if shape == false then
      ins[i] = fixture.tensor(c.stored_inputs[i])
    elseif type(shape[1]) == 'table' then
      ins[i] = {}
      for j, s in ipairs(shape) do ins[i][j] = pattern(s, 'input' .. i .. '_' .. j, c.in_scale) end
    else
      ins[i] = pattern(shape, 'input' .. i, c.in_scale):requires_grad()
      leaves[i] = ins[i]
    end
  end
  local outs = flatten(table.pack((F[name] or function(mod, x) return mod(table.unpack(x)) end)(m, ins, c)))
  assert.equal(#c.outputs, #outs, 'number of outputs')
  local total
  for i, o in ipairs(outs) do
    fixture.assert_close(o, c.outputs[i], tol)
    local term = (o * pattern(o:size(), 'grad_output' .. i)):sum()
    total = total and total + term or term
  end
  total:backward()
  for i, g in ipairs(c.input_grads) do
    if g then
      assert.is_not_nil(leaves[i].grad, 'gradient of input ' .. i)
      fixture.assert_close(leaves[i].grad, g, tol)
    end
  end
  local params = m:named_parameters()
  for k, g in pairs(c.param_grads) do
    assert.is_not_nil(params[k].grad, 'gradient of ' .. k)
    local ok, err = pcall(fixture.assert_close, params[k].grad, g, tol)
    if not ok then error(k .. ': ' .. tostring(err), 0) end
  end
  if c.running_mean then
    fixture.assert_close(m.running_mean, c.running_mean, tol)
    fixture.assert_close(m.running_var, c.running_var, tol)
  end
end

local order = {}
for name in pairs(fx.layers) do order[#order + 1] = name end
table.sort(order)

local needs_kernel = { conv1d = 'conv1d', conv2d = 'conv2d', conv2d_same = 'conv2d', conv_transpose2d = 'conv_transpose2d' }

describe('nn layers match PyTorch', function()
  for _, name in ipairs(order) do
    local k = needs_kernel[name]
    if k and not rawget(flare, k) then
      pending(name .. ': flare.' .. k .. ' is not in this build yet')
    else
      it(name, function()
        assert.is_function(cases[name], 'no flare constructor for fixture case ' .. name)
        run_case(name)
      end)
    end
  end
end)
