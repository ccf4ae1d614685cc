-- Convolution and pooling: outputs, returned indices and the gradients of input, weight and
-- bias against PyTorch (spec/fixtures/conv.lua, written by gen_conv.py) for stride, padding
-- (incl. 'same'/'valid'), dilation, groups, transposed convolution with output_padding and
-- pooling with ceil_mode and padding; batches split in several GEMM chunks; non-contiguous
-- inputs; empty batches; argument and shape errors.
local flare = require 'flare'
local fixture = require 'support.fixture'
-- support/fixture.lua asserts through the global `assert`; busted restores globals after
-- this file.
_G.assert = assert

local fx = fixture.load('conv')

-- The generator's input pattern (gen_conv.py: pattern), computed in double, then cast.
local function pattern(shape, k, levels, dtype)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local half, t = (levels - 1) / 2, {}
  for i = 0, n - 1 do t[i + 1] = ((i * 7919 + k * 104729) % levels) / half - 1 end
  return flare.tensor(t, { dtype = dtype }):reshape(shape)
end

local function input(c, e)
  return e and pattern(e.shape, e.k, c.levels, c.dtype):requires_grad() or nil
end

local function call(c, x, w, b)
  local o = {}
  for k, v in pairs(c.opts) do o[k] = v end
  if c.fn:find('conv') then return flare[c.fn](x, w, b, o) end
  if c.fn == 'adaptive_avg_pool2d' then return flare.adaptive_avg_pool2d(x, o.output_size) end
  local kernel = o.kernel
  o.kernel = nil
  if c.fn:find('max_pool') then o.return_indices = true end
  return flare[c.fn](x, kernel, o)
end

local function tol(c)
  if c.dtype == 'float64' then return { rtol = 1e-10, atol = 1e-12 } end
  return { rtol = 1e-5, atol = 1e-5 }
end

local function fails_with(pattern_, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, 'expected an error containing "' .. pattern_ .. '"')
  assert(tostring(err):find(pattern_, 1, true), 'error "' .. tostring(err) .. '" lacks "' .. pattern_ .. '"')
end

local function max_diff(a, b)
  return (a:double() - b:double()):abs():max():item()
end

describe('convolution and pooling against PyTorch', function()
  for _, c in ipairs(fx) do
    it(c.fn .. ': ' .. c.name, function()
      local x, w, b = input(c, c.x), input(c, c.w), input(c, c.b)
      local out, idx = call(c, x, w, b)
      fixture.assert_close(out, c.out, tol(c))
      if c.indices then fixture.assert_close(idx, c.indices) end
      out:backward(pattern(c.out.shape, 99, 211, c.dtype))
      fixture.assert_close(x.grad, c.gx, tol(c))
      if w then fixture.assert_close(w.grad, c.gw, tol(c)) end
      if b then fixture.assert_close(b.grad, c.gb, tol(c)) end
    end)
  end
end)

describe('convolution', function()
  it('gives the same result for non-contiguous inputs', function()
    local x = flare.randn(2, 3, 6, 5)
    local w = flare.randn(4, 3, 3, 2)
    local xt = x:transpose(3, 4):contiguous():transpose(3, 4)
    local wt = w:permute(2, 1, 3, 4):contiguous():permute(2, 1, 3, 4)
    assert.is_false(xt:is_contiguous())
    assert.is_false(wt:is_contiguous())
    local want = flare.conv2d(x, w, nil, { padding = 1, stride = 2 })
    assert.equal(0, max_diff(flare.conv2d(xt, wt, nil, { padding = 1, stride = 2 }), want))
    assert.equal(0, max_diff(flare.max_pool2d(xt, 2), flare.max_pool2d(x, 2)))
    assert.equal(0, max_diff(flare.avg_pool2d(xt, 3, { padding = 1 }), flare.avg_pool2d(x, 3, { padding = 1 })))
  end)

  -- 5 images whose column matrices exceed the chunk budget together: chunks of 2, 2 and 1
  it('splits a large batch into chunks with the same results as one image at a time', function()
    flare.manual_seed(3)
    for _, transposed in ipairs { false, true } do
      local f = transposed and flare.conv_transpose2d or flare.conv2d
      local x = flare.randn(5, 32, 48, 48):requires_grad()
      local w = (flare.randn(32, 32, 3, 3) * 0.05):detach():requires_grad()
      local b = flare.randn(32):requires_grad()
      local y = f(x, w, b, { padding = 1 })
      local gy = flare.randn(y:size())
      y:backward(gy)
      local gw = flare.zeros(32, 32, 3, 3)
      local gb = flare.zeros(32)
      for i = 1, 5 do
        local xi = x[i]:detach():requires_grad()
        w.grad, b.grad = nil, nil
        local yi = f(xi, w, b, { padding = 1 })
        assert.is_true(max_diff(yi, y[i]) < 1e-4)
        yi:backward(gy[i])
        assert.is_true(max_diff(xi.grad, x.grad[i]) < 1e-4)
        gw = gw + w.grad
        gb = gb + b.grad
      end
      w.grad, b.grad = nil, nil
      f(x, w, b, { padding = 1 }):backward(gy)
      assert.is_true(max_diff(w.grad, gw) < 1e-3 * gw:abs():max():item())
      assert.is_true(max_diff(b.grad, gb) < 1e-3 * gb:abs():max():item())
    end
  end)

  it('handles an empty batch', function()
    local x = flare.zeros(0, 3, 5, 5):requires_grad()
    local w = flare.randn(4, 3, 3, 3):requires_grad()
    local b = flare.randn(4):requires_grad()
    local y = flare.conv2d(x, w, b)
    assert.are.same({ 0, 4, 3, 3 }, y:size())
    y:backward(flare.ones(y:size()))
    assert.equal(0, w.grad:abs():sum():item())
    assert.equal(0, b.grad:abs():sum():item())
    assert.are.same({ 0, 3, 5, 5 }, x.grad:size())
    assert.are.same({ 0, 2, 3, 3 }, flare.max_pool2d(flare.zeros(0, 2, 6, 7), 2):size())
  end)

  it('records a node only when an input requires grad, and only the gradients asked for', function()
    local x, w = flare.randn(1, 2, 4, 4), flare.randn(3, 2, 3, 3):requires_grad()
    local y = flare.conv2d(x, w)
    assert.equal('Conv2dBackward', y.grad_fn)
    y:backward(flare.ones(y:size()))
    assert.is_nil(x.grad)
    assert.are.same({ 3, 2, 3, 3 }, w.grad:size())
    flare.no_grad(function()
      assert.is_nil(flare.conv2d(x, w).grad_fn)
      assert.is_nil(flare.max_pool2d(w, 2).grad_fn)
    end)
    assert.equal('MaxPool2dBackward', flare.max_pool2d(w, 2).grad_fn)
  end)

  it('catches an input changed in place before backward', function()
    local x, w = flare.randn(1, 2, 4, 4), flare.randn(3, 2, 3, 3):requires_grad()
    local y = flare.conv2d(x, w)
    x:add_(1)
    fails_with('modified in place', function() y:backward(flare.ones(y:size())) end)
  end)

  it('explains bad shapes', function()
    local x, w = flare.randn(1, 3, 5, 5), flare.randn(4, 2, 3, 3)
    fails_with('conv2d: expected an input with 2 channels (the weight\'s in_channels 2 * groups 1, weight [4, 2, 3, 3]), got input of shape [1, 3, 5, 5]',
      flare.conv2d, x, w)
    fails_with('expected a 3-D (unbatched) or 4-D (batched) input, got shape [3, 5]', flare.conv2d, flare.randn(3, 5), w)
    fails_with('expected a 4-D weight (out_channels, in_channels / groups, kH, kW), got shape [4, 3, 3]',
      flare.conv2d, x, flare.randn(4, 3, 3))
    fails_with('expected a bias of shape [4] (out_channels), got [3]', flare.conv2d, x, flare.randn(4, 3, 3, 3), flare.randn(3))
    fails_with('out_channels (4, dim 1 of [4, 1, 3, 3]) is not divisible by groups 3',
      flare.conv2d, x, flare.randn(4, 1, 3, 3), { groups = 3 })
    fails_with("padding 'same' needs stride 1, got stride 2x2", flare.conv2d, x, flare.randn(4, 3, 3, 3),
      { padding = 'same', stride = 2 })
    fails_with("the input's size 5x5 (padded: 5x5) is smaller than the kernel's 7x3 (dilated)",
      flare.conv2d, x, flare.randn(4, 3, 4, 3), { dilation = { 2, 1 } })
    fails_with('expected a weight of the input\'s dtype float32, got float64', flare.conv2d, x, flare.randn(4, 3, 3, 3):double())
    fails_with('expected a float32 or float64 input, got int64', flare.conv2d, x:long(), flare.randn(4, 3, 3, 3))
    fails_with('conv_transpose2d: expected an input with 2 channels (the weight\'s dim 1, of [2, 4, 3, 3]), got input of shape [1, 3, 5, 5]',
      flare.conv_transpose2d, x, flare.randn(2, 4, 3, 3))
    fails_with('output_padding must be smaller than the stride or the dilation, got output_padding 2, stride 2, dilation 1',
      flare.conv_transpose2d, x, flare.randn(3, 4, 3, 3), { stride = 2, output_padding = 2 })
    fails_with('conv1d: expected a 2-D (unbatched) or 3-D (batched) input', flare.conv1d, x, flare.randn(4, 3, 3))
    fails_with("the input's size 5 (padded: 5) is smaller than the kernel's 6 (dilated)",
      flare.conv1d, flare.randn(3, 5), flare.randn(4, 3, 6))
  end)

  it('explains bad options', function()
    local x, w = flare.randn(1, 3, 5, 5), flare.randn(4, 3, 3, 3)
    fails_with("unknown option 'strides' (expected stride, padding, dilation, groups)", flare.conv2d, x, w, { strides = 2 })
    fails_with("padding: expected an integer, a table of integers, 'same' or 'valid', got 'full'",
      flare.conv2d, x, w, nil, { padding = 'full' })
    fails_with('stride: expected an integer >= 1, got 0', flare.conv2d, x, w, { stride = 0 })
    fails_with('padding: expected an integer or a table of 2 integers, got a table of another length',
      flare.conv2d, x, w, { padding = { 1, 1, 1 } })
    fails_with('dilation: entry 2: expected an integer >= 1, got -1', flare.conv2d, x, w, { dilation = { 1, -1 } })
    fails_with('groups: expected a positive integer, got 1.5', flare.conv2d, x, w, { groups = 1.5 })
    fails_with("unknown option 'return_indices'", flare.avg_pool2d, x, 2, { return_indices = true })
    fails_with('ceil_mode: expected a boolean, got number', flare.max_pool2d, x, 2, { ceil_mode = 1 })
    fails_with('kernel_size: expected an integer or a table of 2 integers, got no value', flare.max_pool2d, x)
  end)
end)

describe('pooling', function()
  it('returns 1-based indices and routes gradients to the first maximum of ties', function()
    local x = flare.tensor({ { { 1, 3, 3, 0 }, { 2, 3, 1, 3 } } }, { dtype = 'float32' }):requires_grad()
    local y, idx = flare.max_pool2d(x, 2, { return_indices = true })
    assert.are.same({ { { 3, 3 } } }, y:totable())
    assert.are.same({ { { 2, 3 } } }, idx:totable())
    y:backward(flare.ones(y:size()))
    assert.are.same({ { { 0, 1, 1, 0 }, { 0, 0, 0, 0 } } }, x.grad:totable())
  end)

  it('propagates NaN like PyTorch', function()
    local x = flare.tensor({ { { 1, 0 / 0, 5, 2 } } })
    local y, idx = flare.max_pool1d(x, 2, { return_indices = true })
    assert.is_true(y[1][1][1]:item() ~= y[1][1][1]:item())
    assert.are.same({ { { 2, 3 } } }, idx:totable())
  end)

  it('explains bad shapes and options', function()
    local x = flare.randn(1, 2, 4, 4)
    fails_with('max_pool2d: padding must be between 0 and half the kernel size, got padding (2, 2) for kernel size (3, 3)',
      flare.max_pool2d, x, 3, { padding = 2 })
    fails_with('max_pool2d: the output size would be (0, 0) for input of shape [1, 2, 4, 4]: the kernel is too large',
      flare.max_pool2d, x, 5)
    fails_with('max_pool1d: expected a 2-D (unbatched) or 3-D (batched) input, got shape [1, 2, 4, 4]', flare.max_pool1d, x, 2)
    fails_with('avg_pool2d: expected an input with non-zero spatial size, got shape [1, 2, 0, 4]',
      flare.avg_pool2d, flare.zeros(1, 2, 0, 4), 2)
    fails_with('divisor_override: expected an integer >= 1, got 0', flare.avg_pool2d, x, 2, { divisor_override = 0 })
    fails_with('output_size: expected an integer >= 0, got -1', flare.adaptive_avg_pool2d, x, -1)
    fails_with('adaptive_avg_pool2d: expected a float32 or float64 input, got int64', flare.adaptive_avg_pool2d, x:long(), 2)
  end)
end)
