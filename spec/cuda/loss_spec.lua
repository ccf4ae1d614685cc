-- Softmax, log_softmax and the fused losses on the GPU against the CPU, forward and backward:
-- every dim, rows of 1, 7, 33 and thousands of classes (the warp, block and thread kernels),
-- non-contiguous inputs, float32 and float64, the cross-entropy's options (class weights,
-- ignore_index, label smoothing, reductions, extra dims), nll_loss, bce with logits and mse,
-- and the errors (targets out of range, mixed devices, bad shapes).
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('loss_spec.lua', pending) then return end

local function tol(dtype)
  if dtype == 'float64' then return 1e-10, 1e-12 end
  return 2e-5, 2e-6
end

-- f(inputs...) on both devices: the results, and the gradients of every input that is a
-- float tensor, agree. args: CPU tensors (or other values), moved to the device by this.
local function agree(f, ...)
  local args, dargs, leaves = { ... }, {}, {}
  for k, a in ipairs(args) do
    if flare.is_tensor(a) and a:dtype():match('float') and a:numel() > 0 then
      args[k] = a:detach():requires_grad()
      dargs[k] = a:detach():cuda():requires_grad()
      leaves[#leaves + 1] = k
    elseif flare.is_tensor(a) then
      dargs[k] = a:cuda()
    else
      dargs[k] = a
    end
  end
  local want, got = f(table.unpack(args)), f(table.unpack(dargs))
  local rtol, atol = tol(want:dtype())
  cuda.assert_close(got, want, rtol, atol)
  flare.manual_seed(11)
  local w = flare.randn(want:size()):to(want:dtype())
  want:backward(w)
  got:backward(w:cuda())
  for _, k in ipairs(leaves) do
    if args[k].grad then cuda.assert_close(dargs[k].grad, args[k].grad, rtol, atol) end
  end
end

describe('cuda softmax', function()
  it('agrees with the CPU along every dim, forward and backward', function()
    flare.manual_seed(1)
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local x = (flare.randn(3, 7, 33) * 4):to(dt)
      for d = 1, 3 do
        agree(function(t) return t:softmax(d) end, x)
        agree(function(t) return t:log_softmax(d) end, x)
      end
      -- non-contiguous, a row of one entry, a 0-dim tensor
      agree(function(t) return t:transpose(1, 3):softmax(2) end, x)
      agree(function(t) return t:narrow(3, 2, 9):log_softmax(3) end, x)
      agree(function(t) return t:softmax(1) end, flare.randn(1, 5):to(dt))
      agree(function(t) return t:log_softmax(2) end, flare.randn(4, 1):to(dt))
      agree(function(t) return t:softmax(1) end, flare.tensor(2.5):to(dt))
    end
  end)

  it('handles long rows (a block per row) and short ones (a thread per row)', function()
    flare.manual_seed(2)
    local long = flare.randn(3, 3000) * 5
    agree(function(t) return t:softmax(2) end, long)
    agree(function(t) return t:log_softmax(2) end, long:double())
    local short = flare.randn(300, 3)
    agree(function(t) return t:softmax(2) end, short)
    agree(function(t) return t:log_softmax(1) end, short)
  end)

  it('keeps large logits finite and -inf rows as the CPU does', function()
    local x = flare.tensor { { 1e4, 1e4 - 1, -1e4 }, { -math.huge, -math.huge, -math.huge }, { 0, -math.huge, 1 } }
    local gx = x:cuda()
    cuda.assert_close(gx:softmax(2), x:softmax(2))
    cuda.assert_close(gx:log_softmax(2), x:log_softmax(2))
  end)
end)

describe('cuda cross_entropy and nll_loss', function()
  local function targets(n, c, ...)
    return flare.randint(1, c + 1, { n, ... })
  end

  it('agree with the CPU for every reduction, dtype and class count', function()
    flare.manual_seed(3)
    for _, dt in ipairs({ 'float32', 'float64' }) do
      for _, c in ipairs({ 1, 7, 33, 1500 }) do
        local x = (flare.randn(9, c) * 3):to(dt)
        local t = targets(9, c)
        for _, red in ipairs({ 'mean', 'sum', 'none' }) do
          agree(function(a, b) return flare.cross_entropy(a, b, { reduction = red }) end, x, t)
          agree(function(a, b) return flare.nll_loss(a:log_softmax(2), b, { reduction = red }) end, x, t)
        end
      end
    end
  end)

  it('take class weights, ignore_index and label smoothing', function()
    flare.manual_seed(4)
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local x = (flare.randn(40, 7) * 2):to(dt)
      local t = targets(40, 7)
      t[3] = -100
      t[17] = -100
      local w = flare.rand(7):to(dt) + 0.5
      local opts = {
        { weight = w }, { ignore_index = 2 }, { label_smoothing = 0.2 },
        { weight = w, label_smoothing = 0.1, reduction = 'sum' }, { weight = w, reduction = 'none' },
      }
      for _, o in ipairs(opts) do
        -- -100 is the default ignore_index only
        local tt = o.ignore_index and t:clamp(1, 7) or t
        agree(function(a, b)
          local oo = {}
          for k, v in pairs(o) do oo[k] = v end
          if oo.weight and a:is_cuda() then oo.weight = oo.weight:cuda() end
          return flare.cross_entropy(a, b, oo)
        end, x, tt)
        if not o.label_smoothing then
          agree(function(a, b)
            local oo = {}
            for k, v in pairs(o) do oo[k] = v end
            if oo.weight and a:is_cuda() then oo.weight = oo.weight:cuda() end
            return flare.nll_loss(a, b, oo)
          end, x, tt)
        end
      end
    end
  end)

  it('handle extra dims (N, C, d...), one sample (C), long rows and strided logits', function()
    flare.manual_seed(5)
    local x = flare.randn(4, 5, 3, 6)
    local t = targets(4, 5, 3, 6)
    agree(function(a, b) return flare.cross_entropy(a, b) end, x, t)
    agree(function(a, b) return flare.cross_entropy(a, b, { label_smoothing = 0.3, reduction = 'none' }) end, x, t)
    agree(function(a, b) return flare.nll_loss(a, b, { reduction = 'sum' }) end, x, t)
    agree(function(a, b) return flare.cross_entropy(a, b) end, flare.randn(6), flare.tensor(4))
    agree(function(a, b) return flare.cross_entropy(a:t(), b) end, flare.randn(33, 8):double(), targets(8, 33))
    agree(function(a, b) return flare.cross_entropy(a, b, { label_smoothing = 0.1 }) end,
          flare.randn(2, 3000), targets(2, 3000))
    local i32 = targets(9, 7):to('int32')
    agree(function(a, b) return flare.cross_entropy(a, b) end, flare.randn(9, 7), i32)
  end)

  it('reports targets out of range, mixed devices and bad shapes', function()
    local x = flare.randn(4, 5):cuda()
    local ok, err = pcall(flare.cross_entropy, x, flare.tensor({ 1, 6, 2, 0 }):cuda())
    assert.is_false(ok)
    assert.truthy(tostring(err):find('target 6 at position 2 is out of range for 5 classes', 1, true))
    ok, err = pcall(flare.nll_loss, x, flare.tensor({ 1, 2, 0, 3 }):cuda())
    assert.is_false(ok)
    assert.truthy(tostring(err):find('target 0 at position 3', 1, true))
    ok, err = pcall(flare.cross_entropy, x, flare.tensor({ 1, 2, 3, 4 }))
    assert.is_false(ok)
    assert.truthy(tostring(err):find('expected all tensors on the same device, got cuda and cpu', 1, true))
    ok, err = pcall(flare.cross_entropy, x, flare.tensor({ 1, 2, 3, 4 }):cuda(), { weight = flare.ones(5) })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('same device', 1, true))
    ok, err = pcall(flare.cross_entropy, x, flare.tensor({ 1, 2, 3 }):cuda())
    assert.is_false(ok)
    assert.truthy(tostring(err):find('does not match input', 1, true))
  end)
end)

describe('cuda elementwise losses', function()
  it('agree with the CPU for mse_loss and bce with logits, forward and backward', function()
    flare.manual_seed(6)
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local x, y = (flare.randn(33, 40) * 3):to(dt), flare.rand(33, 40):to(dt)
      for _, red in ipairs({ 'mean', 'sum', 'none' }) do
        agree(function(a, b) return flare.mse_loss(a, b, { reduction = red }) end, x, y)
        agree(function(a, b) return flare.binary_cross_entropy_with_logits(a, b, { reduction = red }) end, x, y)
      end
      agree(function(a, b) return flare.mse_loss(a:t(), b:t()) end, x, flare.randn(33, 40):to(dt))
    end
    -- mixed dtypes, weights and pos_weight broadcast
    local x, y = flare.randn(5, 7), flare.rand(5, 7):double()
    local w, pw = flare.rand(7) + 0.5, flare.rand(5, 1) * 3
    agree(function(a, b)
      local o = a:is_cuda() and { weight = w:cuda(), pos_weight = pw:cuda() } or { weight = w, pos_weight = pw }
      return flare.binary_cross_entropy_with_logits(a, b, o)
    end, x, y)
    agree(function(a, b) return flare.mse_loss(a, b, { reduction = 'sum' }) end, flare.randn(1, 1), flare.randn(1, 1))
    agree(function(a, b) return flare.mse_loss(a, b) end, flare.randn(5000), flare.randn(5000))
  end)

  it('reports mixed devices and bad shapes', function()
    local x = flare.randn(3, 4):cuda()
    local ok, err = pcall(flare.mse_loss, x, flare.randn(3, 4))
    assert.is_false(ok)
    assert.truthy(tostring(err):find('expected all tensors on the same device, got cuda and cpu', 1, true))
    ok, err = pcall(flare.binary_cross_entropy_with_logits, x, flare.rand(3, 4):cuda(), { weight = flare.ones(4) })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('same device', 1, true))
    ok, err = pcall(flare.mse_loss, x, flare.randn(4, 3):cuda())
    assert.is_false(ok)
    assert.truthy(tostring(err):find('does not match input', 1, true))
  end)
end)
