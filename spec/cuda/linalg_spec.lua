-- Matrix products on the GPU (cuBLAS) against the CPU: matmul, mm, bmm, mv, dot, outer and
-- addmm, forward and backward, float32 and float64, transposed and strided operands, batch
-- broadcasting, integer products, empty inner dims, TF32 and bf16 autocast, and the errors
-- of mixing devices.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('linalg_spec.lua', pending) then return end

-- flare.cuda.set_allow_tf32 is flare._cuda_set_allow_tf32 (bindings/linalg.c) until
-- flare.cuda carries it
local set_allow_tf32 = flare.cuda.set_allow_tf32 or flare._cuda_set_allow_tf32

local function sample(dtype, ...)
  return flare.randn(...):to(dtype)
end

-- f on CPU leaves and on device leaves made from the same values: outputs, then (after a
-- backward of the same gradient on both) every input's gradient, must agree.
local function check(f, inputs, rtol, atol)
  local host, dev = {}, {}
  for i, x in ipairs(inputs) do
    host[i] = x:detach():requires_grad()
    dev[i] = x:detach():cuda():requires_grad()
  end
  local want, got = f(table.unpack(host)), f(table.unpack(dev))
  cuda.assert_close(got, want, rtol, atol)
  local g = flare.randn(table.unpack(want:size())):to(want:dtype())
  if want:dim() == 0 then g = flare.tensor(1.5):to(want:dtype()) end
  want:backward(g)
  got:backward(g:cuda())
  for i = 1, #inputs do
    cuda.assert_close(dev[i].grad, host[i].grad, rtol, atol)
  end
end

local tol = { float32 = { 1e-4, 1e-4 }, float64 = { 1e-10, 1e-10 } }

describe('cuda linalg', function()
  before_each(function() flare.manual_seed(11) end)

  it('multiplies matrices of odd sizes as the CPU does, with gradients', function()
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local rt, at = tol[dt][1], tol[dt][2]
      for _, s in ipairs({ { 1, 1, 1 }, { 7, 5, 3 }, { 33, 17, 9 }, { 1, 40, 6 }, { 6, 40, 1 }, { 3, 300, 5 } }) do
        check(function(a, b) return a:matmul(b) end, { sample(dt, s[1], s[2]), sample(dt, s[2], s[3]) }, rt, at)
      end
      check(function(a, b) return a:mm(b) end, { sample(dt, 9, 4), sample(dt, 4, 7) }, rt, at)
    end
  end)

  it('passes transposed and strided operands without changing the result', function()
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local rt, at = tol[dt][1], tol[dt][2]
      local a, b = sample(dt, 6, 9), sample(dt, 7, 6)
      check(function(x, y) return x:t():matmul(y:t()) end, { a, b }, rt, at)
      check(function(x, y) return x:matmul(y:t():t()) end, { sample(dt, 5, 6), sample(dt, 6, 4) }, rt, at)
      -- every other column: no BLAS layout, copied first
      check(function(x, y) return x:view(5, 6, 2):select(3, 1):matmul(y) end, { sample(dt, 5, 12), sample(dt, 6, 3) }, rt, at)
      -- a column block of a wider matrix: leading dimension larger than the width
      check(function(x, y) return x:narrow(2, 2, 4):matmul(y:narrow(1, 3, 4)) end,
            { sample(dt, 5, 9), sample(dt, 8, 3) }, rt, at)
    end
  end)

  it('computes batched products with broadcast batch dims', function()
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local rt, at = tol[dt][1], tol[dt][2]
      local mm = function(x, y) return x:matmul(y) end
      check(function(x, y) return x:bmm(y) end, { sample(dt, 4, 3, 5), sample(dt, 4, 5, 2) }, rt, at)
      check(mm, { sample(dt, 2, 3, 4, 5), sample(dt, 5, 6) }, rt, at)       -- folded into one product
      check(mm, { sample(dt, 4, 5), sample(dt, 2, 3, 5, 6) }, rt, at)       -- A shared by the batch
      check(mm, { sample(dt, 2, 1, 4, 5), sample(dt, 3, 5, 6) }, rt, at)    -- both broadcast
      -- batch dims that no single stride describes: looped around strided batches
      check(function(x, y) return x:transpose(1, 2):matmul(y) end,
            { sample(dt, 3, 2, 4, 5), sample(dt, 2, 3, 5, 2) }, rt, at)
      check(function(x, y) return x:matmul(y:transpose(2, 3)) end,
            { sample(dt, 3, 4, 5), sample(dt, 3, 6, 5) }, rt, at)
    end
  end)

  it('handles vectors: mv, dot, vector-matrix and batched vector products', function()
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local rt, at = tol[dt][1], tol[dt][2]
      check(function(x, y) return x:mv(y) end, { sample(dt, 7, 33), sample(dt, 33) }, rt, at)
      check(function(x, y) return x:dot(y) end, { sample(dt, 1000), sample(dt, 1000) }, rt, at)
      check(function(x, y) return x:matmul(y) end, { sample(dt, 5), sample(dt, 5, 3) }, rt, at)
      check(function(x, y) return x:matmul(y) end, { sample(dt, 2, 3, 5), sample(dt, 5) }, rt, at)
      check(function(x, y) return x:matmul(y) end, { sample(dt, 5), sample(dt, 2, 5, 3) }, rt, at)
      check(function(x, y) return x:view(4, 3):select(2, 2):dot(y) end, { sample(dt, 12), sample(dt, 4) }, rt, at)
      check(function(x, y) return x:outer(y) end, { sample(dt, 7), sample(dt, 9) }, rt, at)
    end
  end)

  it('computes addmm with alpha, beta and a broadcast addend', function()
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local rt, at = tol[dt][1], tol[dt][2]
      local a, b = sample(dt, 5, 7), sample(dt, 7, 4)
      check(function(m, x, y) return flare.addmm(m, x, y) end, { sample(dt, 5, 4), a, b }, rt, at)
      check(function(m, x, y) return flare.addmm(m, x, y, { beta = 0.5, alpha = -2 }) end,
            { sample(dt, 4), a, b }, rt, at)
      check(function(m, x, y) return flare.addmm(m, x:t():t(), y:t():contiguous():t(), { beta = 0 }) end,
            { sample(dt, 1, 4), a, b }, rt, at)
    end
  end)

  it('multiplies integer matrices (through the host) and empty inner dims', function()
    for _, dt in ipairs({ 'int64', 'int32' }) do
      local a = (flare.randn(4, 6) * 5):to(dt)
      local b = (flare.randn(6, 3) * 5):to(dt)
      cuda.assert_close(a:cuda():matmul(b:cuda()), a:matmul(b))
      cuda.assert_close(a:cuda():t():matmul(a:cuda()), a:t():matmul(a))
    end
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local a, b = flare.zeros(3, 0):to(dt), flare.zeros(0, 4):to(dt)
      cuda.assert_close(a:cuda():matmul(b:cuda()), a:matmul(b))
      local m = flare.randn(3, 4):to(dt)
      cuda.assert_close(flare.addmm(m:cuda(), a:cuda(), b:cuda(), { beta = 2 }), flare.addmm(m, a, b, { beta = 2 }))
      cuda.assert_close(flare.zeros(2, 0, 5):to(dt):cuda():bmm(flare.zeros(2, 5, 3):to(dt):cuda()),
                        flare.zeros(2, 0, 3):to(dt))
    end
  end)

  it('uses TF32 only when allowed', function()
    local a, b = flare.randn(40, 64), flare.randn(64, 30)
    local exact = a:cuda():matmul(b:cuda())
    cuda.assert_close(exact, a:matmul(b), 1e-4, 1e-4)
    local prev = set_allow_tf32(true)
    assert.is_false(prev)
    local ok, fast = pcall(function() return a:cuda():matmul(b:cuda()) end)
    local d = (a:double():cuda():matmul(b:double():cuda())):cpu()   -- float64 ignores TF32
    set_allow_tf32(false)
    assert(ok, fast)
    cuda.assert_close(fast, a:matmul(b), 2e-2, 2e-2)
    assert.is_true((d - a:double():matmul(b:double())):abs():max():item() < 1e-10)
    if flare.cuda.is_emulated() then
      -- the emulator rounds TF32 inputs as the tensor cores do: visibly not the exact product
      assert.is_false(cuda.equal(fast:cpu(), exact:cpu()))
    end
  end)

  it('computes float32 products in bfloat16 under autocast, gradients included', function()
    local a, b = flare.randn(9, 40), flare.randn(40, 300)
    local function loose(got, want) cuda.assert_close(got, want, 3e-2, 0.15) end
    assert.is_nil(flare._set_autocast('bfloat16'))
    local ok, err = pcall(function()
      local ga, gb = a:cuda():requires_grad(), b:cuda():requires_grad()
      local y = ga:matmul(gb)
      assert.are.equal('float32', y:dtype())
      loose(y, a:matmul(b))
      -- batched, transposed and addmm under autocast
      local x = flare.randn(3, 5, 40)
      loose(x:cuda():matmul(b:cuda()), x:matmul(b))
      loose(a:t():contiguous():cuda():t():matmul(b:cuda()), a:matmul(b))
      loose(flare.addmm(flare.ones(300):cuda(), a:cuda(), b:cuda()), flare.addmm(flare.ones(300), a, b))
      -- CPU tensors and float64 are not affected
      local c = a:matmul(b)
      assert.is_true(cuda.equal(c, a:matmul(b)))
      cuda.assert_close(a:double():cuda():matmul(b:double():cuda()), a:double():matmul(b:double()), 1e-10, 1e-10)
      -- the backward of an autocast product
      local g = flare.randn(9, 300)
      y:backward(g:cuda())
      loose(ga.grad, g:matmul(b:t()))
      loose(gb.grad, a:t():matmul(g))
    end)
    assert.are.equal('bfloat16', flare._set_autocast(nil))
    assert(ok, err)
    local exact = a:cuda():matmul(b:cuda())
    cuda.assert_close(exact, a:matmul(b), 1e-4, 1e-4)
  end)

  it('rejects unknown autocast types', function()
    local ok, err = pcall(flare._set_autocast, 'float16')
    assert.is_false(ok)
    assert.matches("expected 'bfloat16' or nil", err)
    assert.is_nil(flare._set_autocast(nil))
  end)

  it('refuses to mix devices or bad shapes', function()
    local a, b = flare.randn(3, 4), flare.randn(4, 2):cuda()
    for _, f in ipairs({ function() return a:matmul(b) end, function() return b:t():mm(a:t()) end,
                         function() return flare.addmm(flare.zeros(3, 2), a:cuda(), b) end,
                         function() return flare.randn(4):cuda():dot(flare.randn(4)) end }) do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches('same device', err)
      assert.matches('cpu', err)
      assert.matches('cuda', err)
    end
    local ok, err = pcall(function() return a:cuda():matmul(a:cuda()) end)
    assert.is_false(ok)
    assert.matches('cannot be multiplied', err)
    ok, err = pcall(function() return a:cuda():matmul(a:double():cuda():t()) end)
    assert.is_false(ok)
    assert.matches('same dtype', err)
  end)
end)
