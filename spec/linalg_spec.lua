-- Matrix products: matmul's PyTorch semantics (dot, mv, batched with broadcasting) and mm, bmm,
-- mv, dot, outer, addmm against PyTorch (spec/fixtures/linalg.lua, written by gen_linalg.py)
-- on transposed, strided, batch-permuted and expanded operands; shape and type errors.
local flare = require 'flare'
local fixture = require 'support.fixture'
-- support/fixture.lua asserts through the global `assert`, which busted does not set to
-- luassert for required modules; busted restores globals after this file.
_G.assert = assert

local fx = fixture.load('linalg')

-- An operand as the generator built it: its base tensor through the named transform.
local function operand(e)
  local x = fixture.tensor(e.base)
  if e.tr == 'T' then
    x = x:transpose(-1, -2)
  elseif e.tr == 'narrow' then
    x = x:narrow(-1, 2, x:size(-1) - 2)
  elseif e.tr == 'permute' then
    x = x:permute(2, 1, 3)
  elseif e.tr == 'expand' then
    x = x:expand(e.expand)
  elseif e.tr == 'col' then
    x = x:select(-1, 1)
  end
  if e.tr then assert.is_false(x:is_contiguous()) end
  return x
end

local function fails_with(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, 'expected an error containing "' .. pattern .. '"')
  assert(tostring(err):find(pattern, 1, true), 'error "' .. tostring(err) .. '" lacks "' .. pattern .. '"')
end

describe('matrix products against PyTorch', function()
  for n, c in ipairs(fx.cases) do
    it(string.format('#%d %s: %s', n, c.op, c.note), function()
      local a, b = operand(c.a), operand(c.b)
      local r
      if c.op == 'addmm' then
        r = flare.addmm(operand(c.m), a, b, c.opts)
      else
        r = a[c.op](a, b)
        fixture.assert_close(flare[c.op](a, b), c.out, { rtol = 1e-5, atol = 1e-5 })
      end
      fixture.assert_close(r, c.out, { rtol = 1e-5, atol = 1e-5 })
    end)
  end
end)

describe('matrix products', function()
  it('agrees with a plain loop on larger transposed and batched operands', function()
    flare.manual_seed(5)
    local a = flare.randn(3, 70, 40):double()
    local b = flare.randn(50, 40):double():t()                -- (40, 50), transposed
    local r = a:matmul(b)
    assert.are.same({ 3, 70, 50 }, { table.unpack(r:size()) })
    -- the same product through mul + sum with broadcasting (no BLAS)
    local want = (a:unsqueeze(4) * b:unsqueeze(1):unsqueeze(1)):sum(3)
    fixture.assert_close(r, want, { rtol = 1e-10, atol = 1e-10 })
    local rf = a:float():matmul(b:float())
    fixture.assert_close(rf, want:float(), { rtol = 1e-4, atol = 1e-4 })
  end)

  it('does not read M when beta is 0 (NaN stays out)', function()
    local m = flare.full({ 2, 2 }, 0 / 0)
    local r = flare.addmm(m, flare.eye(2), flare.ones(2, 2), { beta = 0 })
    assert.are.same({ { 1, 1 }, { 1, 1 } }, r:totable())
  end)

  it('keeps integer dtypes and wraps around like PyTorch', function()
    local a = flare.tensor({ { 100, 100 } }, { dtype = 'uint8' })
    local b = flare.tensor({ { 2 }, { 1 } }, { dtype = 'uint8' })
    local r = a:matmul(b)
    assert.equal('uint8', r:dtype())
    assert.equal((300 % 256), r[1][1]:item())
  end)

  it('leaves its operands untouched', function()
    local a, b = flare.ones(2, 3), flare.ones(3, 2)
    local _ = a:matmul(b)
    assert.are.same({ { 1, 1, 1 }, { 1, 1, 1 } }, a:totable())
    assert.equal(1, flare.dot(flare.ones(3):narrow(1, 1, 1), flare.ones(1)):item())
  end)
end)

describe('matrix product errors', function()
  local a23, a45 = flare.ones(2, 3), flare.ones(4, 5)
  it('names both shapes on a mismatch', function()
    fails_with('matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 != 4)', a23.matmul, a23, a45)
    fails_with('shapes [3] and [4] cannot be multiplied', flare.dot, flare.ones(3), flare.ones(4))
    fails_with('mv: shapes [2, 3] and [2] cannot be multiplied', flare.mv, a23, flare.ones(2))
    fails_with('the batch dimensions of shapes [2, 2, 3] and [3, 3, 4] cannot be broadcast',
      flare.matmul, flare.ones(2, 2, 3), flare.ones(3, 3, 4))
    fails_with('expected tensors with at least 1 dimension, got shapes [] and [2, 3]',
      flare.matmul, flare.tensor(1.0), a23)
  end)

  it('checks the ranks of mm, bmm, mv, dot and outer', function()
    fails_with('mm: expected two 2-D matrices, got shapes [2, 3] and [3]', flare.mm, a23, flare.ones(3))
    fails_with('bmm: expected two 3-D tensors with the same batch size, got shapes [2, 2, 3] and [3, 3, 4]',
      flare.bmm, flare.ones(2, 2, 3), flare.ones(3, 3, 4))
    fails_with('mv: expected a 2-D matrix and a 1-D vector, got shapes [3] and [3]', flare.mv, flare.ones(3), flare.ones(3))
    fails_with('dot: expected two 1-D vectors, got shapes [2, 3] and [3]', flare.dot, a23, flare.ones(3))
    fails_with('outer: expected two 1-D vectors', flare.outer, a23, flare.ones(3))
    fails_with('addmm: expected two 2-D matrices', flare.addmm, flare.ones(2), flare.ones(3), flare.ones(3))
    fails_with('addmm: the added tensor of shape [3] cannot be broadcast to the product\'s shape [2, 2]',
      flare.addmm, flare.ones(3), flare.ones(2, 3), flare.ones(3, 2))
  end)

  it('refuses mixed dtypes, bools and non-tensors', function()
    fails_with('matmul: expected both operands to have the same dtype, got float32 and float64',
      a23.matmul, a23, flare.ones(3, 2):double())
    fails_with('matmul: matrix products are not defined for bool tensors',
      flare.matmul, a23:bool(), flare.ones(3, 2):bool())
    fails_with('flare.Tensor expected', a23.matmul, a23, 3)
    fails_with('flare.Tensor expected', flare.mm, 'x', a23)
    fails_with('options table', flare.addmm, flare.ones(2, 2), a23, flare.ones(3, 2), 2)
    fails_with("option 'beta': expected a number, got string", flare.addmm, flare.ones(2, 2), a23, flare.ones(3, 2), { beta = 'x' })
    fails_with('alpha and beta must be integers for int64 tensors', flare.addmm,
      flare.ones(2, 2):long(), a23:long(), flare.ones(3, 2):long(), { alpha = 0.5 })
  end)
end)
