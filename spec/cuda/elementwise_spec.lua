-- Elementwise ops on the GPU against the CPU: every binary and unary op, broadcasting,
-- strided and transposed operands, every dtype conversion, clamp, where, fill, copies
-- between devices, and the errors of mixing devices.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('elementwise_spec.lua', pending) then return end

local binops = { 'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'fmod', 'atan2',
                 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'logical_and', 'logical_or', 'logical_xor' }
local unops = { 'neg', 'abs', 'exp', 'log', 'log1p', 'expm1', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh',
                'sigmoid', 'relu', 'gelu', 'silu', 'floor', 'ceil', 'round', 'sign', 'reciprocal',
                'square', 'log2', 'softplus', 'logical_not', 'isnan', 'isinf', 'isfinite', 'trunc',
                'tan', 'asin', 'acos', 'atan', 'sinh', 'cosh', 'erf' }
local dtypes = { 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }

local function sample(dtype, ...)
  flare.manual_seed(7)
  local x = flare.randn(...) * 3
  if dtype == 'bool' then return x:gt(0) end
  if dtype == 'uint8' then return x:abs():to('uint8') end
  return x:to(dtype)
end

describe('cuda elementwise', function()
  it('moves tensors to the device and back unchanged, in every dtype', function()
    for _, dt in ipairs(dtypes) do
      local x = sample(dt, 5, 7)
      local g = x:cuda()
      assert.are.equal('cuda:0', g:device())
      assert.is_true(g:is_cuda())
      assert.is_true(cuda.equal(g:cpu(), x))
      assert.is_true(cuda.equal(x:to('cuda'):to('cpu'), x))
      assert.is_true(cuda.equal(x:to{ device = 'cuda', dtype = 'float64' }:cpu(), x:double()))
    end
  end)

  it('computes every binary op as the CPU does, with broadcasting', function()
    local a, b = sample('float32', 4, 1, 5), sample('float32', 3, 1) + 0.5
    local ga, gb = a:cuda(), b:cuda()
    for _, op in ipairs(binops) do
      cuda.assert_close(flare[op](ga, gb), flare[op](a, b), 1e-5, 1e-5)
    end
    for _, dt in ipairs({ 'float64', 'int64', 'int32' }) do
      local x, y = sample(dt, 6, 4), (sample(dt, 4):abs() + 1):to(dt)
      for _, op in ipairs({ 'add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'fmod', 'eq', 'lt' }) do
        cuda.assert_close(flare[op](x:cuda(), y:cuda()), flare[op](x, y), 1e-12, 1e-12)
      end
    end
  end)

  it('computes every unary op as the CPU does, on strided input', function()
    local x = sample('float32', 6, 8):t()
    local gx = x:t():cuda():t()
    assert.is_false(gx:is_contiguous())
    for _, op in ipairs(unops) do
      cuda.assert_close(flare[op](gx), flare[op](x), 1e-5, 1e-6)
    end
    local d = sample('float64', 5, 5)
    for _, op in ipairs(unops) do
      cuda.assert_close(flare[op](d:cuda()), flare[op](d), 1e-12, 1e-12)
    end
    local i = sample('int32', 9)
    for _, op in ipairs({ 'neg', 'abs', 'sign', 'square', 'exp', 'logical_not', 'isnan' }) do
      cuda.assert_close(flare[op](i:cuda()), flare[op](i))
    end
  end)

  it('converts between every pair of dtypes with the CPU rules', function()
    for _, from in ipairs(dtypes) do
      local x = sample(from, 3, 4)
      if from == 'float32' then x = x * 1e10 end   -- saturation into the integer types
      for _, to in ipairs(dtypes) do
        cuda.assert_close(x:cuda():to(to), x:to(to))
      end
    end
  end)

  it('runs clamp, where, fill and in-place ops', function()
    local x = sample('float32', 4, 6)
    cuda.assert_close(x:cuda():clamp(-1, 0.5), x:clamp(-1, 0.5))
    local c = x:gt(0)
    cuda.assert_close(flare.where(c:cuda(), x:cuda(), (x * 2):cuda()), flare.where(c, x, x * 2))
    local f = flare.zeros(3, 4, { device = 'cuda' })
    assert.are.equal('cuda:0', f:device())
    f:fill_(2.5)
    cuda.assert_close(f, flare.full({ 3, 4 }, 2.5))
    local g = x:clone():cuda()
    g:add_(1):mul_(2):exp_()
    cuda.assert_close(g, ((x + 1) * 2):exp())
  end)

  it('copies across devices into strided destinations', function()
    local x = sample('float32', 4, 4)
    local dst = flare.zeros(4, 4, { device = 'cuda' })
    dst:t():copy_(x)
    cuda.assert_close(dst, x:t())
    local back = flare.zeros(4, 4)
    back:copy_(dst)
    assert.is_true(cuda.equal(back, x:t()))
  end)

  it('refuses to mix devices in one op, naming both', function()
    local a, b = flare.ones(3), flare.ones(3):cuda()
    local ok, err = pcall(function() return a + b end)
    assert.is_false(ok)
    assert.matches('same device', err)
    assert.matches('cpu', err)
    assert.matches('cuda', err)
  end)

  it('reports integer division by zero as on the CPU', function()
    local a = flare.tensor({ 1, 2, 3 }, { dtype = 'int64' }):cuda()
    local ok, err = pcall(flare.fmod, a, flare.zeros(3, { dtype = 'int64', device = 'cuda' }))
    assert.is_false(ok)
    assert.matches('division by zero', err)
  end)

  it('sends gradients back across devices', function()
    local x = flare.randn(3, 4, { requires_grad = true })
    local y = (x:cuda() * 3):exp():cpu():sum()
    y:backward()
    assert.are.equal('cpu', x.grad:device())
    local want = (x:detach() * 3):exp() * 3
    cuda.assert_close(x.grad:cuda(), want, 1e-5, 1e-5)
  end)
end)
