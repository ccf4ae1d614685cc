-- Convolution and pooling on the GPU against the CPU: conv1d, conv2d and conv_transpose2d
-- with stride, padding, dilation, groups and bias, forward and backward (input, weight and
-- bias gradients), batched and unbatched, several images per GEMM and one; max_pool1d/2d
-- with indices, avg_pool2d and adaptive_avg_pool2d forward and backward; bf16 autocast;
-- the errors of mixing devices.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('conv_spec.lua', pending) then return end

-- f on CPU leaves and on device leaves of the same values (nil inputs stay nil): outputs,
-- then every input's gradient after a backward of the same gradient, must agree. Extra
-- results (max pooling's indices) must agree exactly.
local function check(f, inputs, rtol, atol)
  local host, dev, n = {}, {}, 0
  for i = 1, #inputs + 1 do
    if inputs[i] ~= nil then
      host[i] = inputs[i]:detach():requires_grad()
      dev[i] = inputs[i]:detach():cuda():requires_grad()
    end
    n = math.max(n, i)
  end
  local want, want2 = f(table.unpack(host, 1, n))
  local got, got2 = f(table.unpack(dev, 1, n))
  cuda.assert_close(got, want, rtol, atol)
  if want2 then cuda.assert_close(got2, want2) end
  local g = flare.randn(table.unpack(want:size())):to(want:dtype())
  want:backward(g)
  got:backward(g:cuda())
  for i = 1, n do
    if host[i] then cuda.assert_close(dev[i].grad, host[i].grad, rtol, atol) end
  end
end

local tol = { float32 = { 1e-4, 1e-4 }, float64 = { 1e-10, 1e-10 } }
local dtypes = { 'float32', 'float64' }

local function sample(dt, ...) return flare.randn(...):to(dt) end

describe('cuda convolution', function()
  before_each(function() flare.manual_seed(5) end)

  it('computes conv2d with stride, padding, dilation and groups, with gradients', function()
    local cases = {
      { x = { 3, 4, 9, 11 }, w = { 6, 4, 3, 3 }, o = {} },
      { x = { 2, 4, 10, 9 }, w = { 6, 2, 3, 2 }, o = { stride = { 2, 1 }, padding = { 1, 2 }, groups = 2 } },
      { x = { 1, 3, 12, 12 }, w = { 5, 3, 3, 3 }, o = { dilation = 2, padding = 3, stride = 3 } },
      { x = { 2, 6, 7, 7 }, w = { 6, 1, 3, 3 }, o = { padding = 1, groups = 6 } },   -- depthwise
      { x = { 3, 8, 8 }, w = { 4, 3, 1, 1 }, o = {} },                              -- unbatched, 1x1
      { x = { 2, 3, 20, 20 }, w = { 4, 3, 5, 5 }, o = { padding = 'same' } },
      { x = { 2, 3, 9, 9 }, w = { 4, 3, 3, 3 }, o = { padding = 'valid' } },
    }
    for _, dt in ipairs(dtypes) do
      for _, c in ipairs(cases) do
        local x, w = sample(dt, table.unpack(c.x)), sample(dt, table.unpack(c.w))
        check(function(a, b, bias) return flare.conv2d(a, b, bias, c.o) end, { x, w, sample(dt, c.w[1]) },
              tol[dt][1], tol[dt][2])
        check(function(a, b) return flare.conv2d(a, b, c.o) end, { x, w }, tol[dt][1], tol[dt][2])
      end
    end
  end)

  it('computes conv2d on non-contiguous input and conv1d', function()
    for _, dt in ipairs(dtypes) do
      local rt, at = tol[dt][1], tol[dt][2]
      check(function(a, b, bias) return flare.conv2d(a:transpose(3, 4), b, bias, { padding = 1 }) end,
            { sample(dt, 2, 3, 8, 6), sample(dt, 4, 3, 3, 3), sample(dt, 4) }, rt, at)
      check(function(a, b, bias) return flare.conv1d(a, b, bias, { stride = 2, padding = 1, dilation = 2 }) end,
            { sample(dt, 3, 4, 40), sample(dt, 5, 4, 3), sample(dt, 5) }, rt, at)
      check(function(a, b) return flare.conv1d(a, b, { groups = 2 }) end,
            { sample(dt, 4, 17), sample(dt, 6, 2, 4) }, rt, at)
    end
  end)

  it('computes conv_transpose2d with stride, padding, output_padding, groups, dilation', function()
    local cases = {
      { x = { 2, 4, 5, 6 }, w = { 4, 3, 3, 3 }, o = {} },
      { x = { 3, 4, 5, 5 }, w = { 4, 2, 3, 3 }, o = { stride = 2, padding = 1, output_padding = 1, groups = 2 } },
      { x = { 1, 3, 4, 7 }, w = { 3, 5, 2, 3 }, o = { stride = { 2, 3 }, dilation = 2 } },
      { x = { 3, 6, 6 }, w = { 3, 2, 4, 4 }, o = { stride = 2, padding = 1 } },   -- unbatched
    }
    for _, dt in ipairs(dtypes) do
      for _, c in ipairs(cases) do
        local x, w = sample(dt, table.unpack(c.x)), sample(dt, table.unpack(c.w))
        local groups = c.o.groups or 1
        check(function(a, b, bias) return flare.conv_transpose2d(a, b, bias, c.o) end,
              { x, w, sample(dt, c.w[2] * groups) }, tol[dt][1], tol[dt][2])
      end
    end
  end)

  it('handles convolutions over no input channels and empty batches', function()
    for _, dt in ipairs(dtypes) do
      check(function(a, b, bias) return flare.conv2d(a, b, bias) end,
            { sample(dt, 2, 0, 5, 5), sample(dt, 3, 0, 3, 3), sample(dt, 3) }, 1e-6, 1e-6)
      check(function(a, b, bias) return flare.conv1d(a, b, bias) end,
            { sample(dt, 2, 0, 5), sample(dt, 3, 0, 3), sample(dt, 3) }, 1e-6, 1e-6)
      check(function(a, b, bias) return flare.conv2d(a, b, bias) end,
            { sample(dt, 0, 2, 5, 5), sample(dt, 3, 2, 3, 3), sample(dt, 3) }, 1e-6, 1e-6)
    end
  end)

  it('computes float32 convolutions in bfloat16 under autocast, gradients included', function()
    local x, w, b = flare.randn(2, 8, 9, 9), flare.randn(6, 8, 3, 3), flare.randn(6)
    local gx, gw = x:cuda():requires_grad(), w:cuda():requires_grad()
    flare._set_autocast('bfloat16')
    local ok, y = pcall(flare.conv2d, gx, gw, b:cuda(), { padding = 1 })
    flare._set_autocast(nil)
    assert(ok, y)
    assert.are.equal('float32', y:dtype())
    local hx, hw = x:requires_grad(), w:requires_grad()
    local want = flare.conv2d(hx, hw, b, { padding = 1 })
    cuda.assert_close(y, want, 3e-2, 0.2)
    local g = flare.randn(table.unpack(want:size()))
    y:backward(g:cuda())   -- after autocast ended: the node keeps the forward's setting
    want:backward(g)
    cuda.assert_close(gx.grad, hx.grad, 3e-2, 0.3)
    cuda.assert_close(gw.grad, hw.grad, 3e-2, 1.0)
    -- float64 is not affected
    flare._set_autocast('bfloat16')
    local ok2, yd = pcall(flare.conv2d, x:double():cuda(), w:double():cuda())
    flare._set_autocast(nil)
    assert(ok2, yd)
    cuda.assert_close(yd, flare.conv2d(x:double(), w:double()), 1e-10, 1e-10)
  end)

  it('refuses to mix devices', function()
    local x, w, b = flare.randn(1, 2, 5, 5), flare.randn(3, 2, 3, 3), flare.randn(3)
    for _, f in ipairs({ function() return flare.conv2d(x:cuda(), w) end,
                         function() return flare.conv2d(x, w:cuda()) end,
                         function() return flare.conv2d(x:cuda(), w:cuda(), b) end,
                         function() return flare.conv_transpose2d(x:cuda(), w:transpose(1, 2)) end }) do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches('same device', err)
      assert.matches('cuda', err)
    end
  end)
end)

describe('cuda pooling', function()
  before_each(function() flare.manual_seed(9) end)

  it('computes max_pool2d and max_pool1d with indices, with gradients', function()
    local cases = {
      { x = { 2, 3, 9, 11 }, k = 2, o = {} },
      { x = { 2, 3, 10, 9 }, k = 3, o = { stride = 2, padding = 1 } },
      { x = { 1, 2, 13, 12 }, k = { 3, 2 }, o = { stride = { 2, 1 }, dilation = { 2, 3 }, padding = { 1, 1 }, ceil_mode = true } },
      { x = { 3, 40, 40 }, k = 2, o = { stride = 2 } },   -- unbatched, more than a block of outputs
    }
    for _, dt in ipairs(dtypes) do
      for _, c in ipairs(cases) do
        local opts = { return_indices = true }
        for k, v in pairs(c.o) do opts[k] = v end
        check(function(a) return flare.max_pool2d(a, c.k, opts) end, { sample(dt, table.unpack(c.x)) }, 0, 0)
      end
      check(function(a) return flare.max_pool1d(a, 3, { stride = 2, padding = 1, return_indices = true }) end,
            { sample(dt, 2, 3, 31) }, 0, 0)
      check(function(a) return flare.max_pool1d(a, 2, { dilation = 2, ceil_mode = true }) end,
            { sample(dt, 4, 16) }, 0, 0)
    end
    -- NaN wins its window and ties go to the first maximum, as on the CPU
    local x = flare.tensor({ { { { 1, 1, 0 / 0, 2 }, { 1, 1, 3, 4 } } } })
    local y, i = flare.max_pool2d(x, 2, { return_indices = true })
    local gy, gi = flare.max_pool2d(x:cuda(), 2, { return_indices = true })
    cuda.assert_close(gy, y)
    cuda.assert_close(gi, i)
  end)

  it('computes avg_pool2d with padding, ceil_mode and divisors, with gradients', function()
    local cases = {
      { x = { 2, 3, 9, 11 }, k = 2, o = {} },
      { x = { 2, 3, 10, 9 }, k = 3, o = { stride = 2, padding = 1 } },
      { x = { 2, 3, 10, 9 }, k = 3, o = { stride = 2, padding = 1, count_include_pad = false, ceil_mode = true } },
      { x = { 1, 2, 7, 8 }, k = { 3, 2 }, o = { stride = { 1, 2 }, divisor_override = 5 } },
      { x = { 3, 33, 33 }, k = 4, o = { stride = 3, padding = 2, ceil_mode = true } },
    }
    for _, dt in ipairs(dtypes) do
      for _, c in ipairs(cases) do
        check(function(a) return flare.avg_pool2d(a, c.k, c.o) end, { sample(dt, table.unpack(c.x)) },
              tol[dt][1], tol[dt][2])
      end
    end
  end)

  it('computes adaptive_avg_pool2d, smaller and larger than the input, with gradients', function()
    for _, dt in ipairs(dtypes) do
      for _, c in ipairs({ { x = { 2, 3, 9, 11 }, o = { 4, 3 } }, { x = { 2, 3, 5, 4 }, o = { 7, 9 } },
                           { x = { 3, 10, 10 }, o = { 1, 1 } }, { x = { 1, 2, 33, 40 }, o = { 5, 40 } } }) do
        check(function(a) return flare.adaptive_avg_pool2d(a, c.o) end, { sample(dt, table.unpack(c.x)) },
              tol[dt][1], tol[dt][2])
      end
    end
  end)
end)
