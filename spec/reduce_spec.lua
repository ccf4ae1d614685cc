-- Reductions, cumulative ops, sort and topk: values against PyTorch (spec/fixtures/reduce.lua,
-- written by gen_reduce.py) on non-contiguous inputs, dtypes, empty and NaN cases, accuracy,
-- independence from the thread count, and bad input.
local flare = require 'flare'
local fixture = require 'support.fixture'
-- support/fixture.lua asserts through the global `assert`, which busted does not set to
-- luassert for required modules; busted restores globals after this file.
_G.assert = assert

local fx = fixture.load('reduce')

local function input(name)
  return fixture.tensor(fx.inputs[name]):permute(table.unpack(fx.perm))
end

local function show(v)
  if type(v) == 'table' then
    local parts = {}
    for k, x in pairs(v) do
      parts[#parts + 1] = (type(k) == 'string' and k .. '=' or '') .. show(x)
    end
    table.sort(parts)
    return '{' .. table.concat(parts, ',') .. '}'
  end
  return tostring(v)
end

local function args_str(args)
  local parts = {}
  for i = 1, #args do parts[i] = show(args[i]) end
  return table.concat(parts, ', ')
end

local function sizes(t) return { table.unpack(t:size()) } end

-- Raises with a message containing `pattern` (plain text).
local function fails_with(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, 'expected an error containing "' .. pattern .. '"')
  assert(tostring(err):find(pattern, 1, true), 'error "' .. tostring(err) .. '" lacks "' .. pattern .. '"')
end

describe('reductions against PyTorch (non-contiguous inputs)', function()
  for n, c in ipairs(fx.cases) do
    it(string.format('#%d %s:%s(%s)', n, c.input, c.op, args_str(c.args)), function()
      local x = input(c.input)
      assert.is_false(x:is_contiguous())
      local r1, r2 = x[c.op](x, table.unpack(c.args))
      local tol = { rtol = 1e-5, atol = fx.inputs[c.input].dtype == 'float64' and 1e-12 or 1e-5 }
      fixture.assert_close(r1, c.out, tol)
      if c.out2 then
        fixture.assert_close(r2, c.out2)
      else
        assert.is_nil(r2)
      end
    end)
  end

  it('module functions take the tensor first', function()
    local x = input('f')
    fixture.assert_close(flare.sum(x, 2), x:sum(2))
    local v, i = flare.max(x, 1)
    local v2, i2 = x:max(1)
    fixture.assert_close(v, v2)
    fixture.assert_close(i, i2)
  end)
end)

describe('sort and topk ties and NaN', function()
  for n, c in ipairs(fx.ties) do
    it(string.format('#%d %s', n, c.topk and ('topk ' .. c.topk .. (c.largest and ' largest' or ' smallest'))
                                     or ('sort' .. (c.descending and ' descending' or ''))), function()
      local x = fixture.tensor(c.x)
      local v, i
      if c.topk then
        v, i = x:topk(c.topk, 1, c.largest)
      else
        v, i = x:sort(-1, c.descending)
      end
      fixture.assert_close(v, c.values)
      fixture.assert_close(i, c.indices)
    end)
  end

  it('topk with a small k (heap) agrees with a full sort on a long row', function()
    flare.manual_seed(3)
    local x = flare.randint(0, 50, { 3, 1000 })   -- many ties
    local v, i = x:topk(5, 2)
    local sv, si = x:sort(2, true)
    fixture.assert_close(v, sv:narrow(2, 1, 5))
    fixture.assert_close(i, si:narrow(2, 1, 5))
    local v2, i2 = x:topk(7, 2, false)
    local sv2, si2 = x:sort(2)
    fixture.assert_close(v2, sv2:narrow(2, 1, 7))
    fixture.assert_close(i2, si2:narrow(2, 1, 7))
  end)

  it('sorts along a leading dim of a transposed tensor', function()
    local x = flare.tensor { { 3, 1 }, { 1, 2 }, { 2, 0 } }:t()   -- 2x3, strides {1, 2}
    local v, i = x:sort(2)
    assert.are.same({ { 1, 2, 3 }, { 0, 1, 2 } }, v:totable())
    assert.are.same({ { 2, 3, 1 }, { 3, 1, 2 } }, i:totable())
    assert.equal('int64', i:dtype())
  end)
end)

describe('reduction dtypes', function()
  it('sum and prod of integers and bools give int64', function()
    assert.equal('int64', flare.tensor({ 1, 2 }, { dtype = 'int32' }):sum():dtype())
    assert.equal('int64', flare.tensor({ 1, 2 }, { dtype = 'uint8' }):prod(1):dtype())
    assert.equal(2, flare.tensor({ true, false, true }, { dtype = 'bool' }):sum():item())
    assert.equal('int64', flare.tensor({ 1, 2 }, { dtype = 'int32' }):cumsum(1):dtype())
    assert.equal('float32', flare.ones(2, 3):sum():dtype())
    assert.equal('float64', flare.ones(2, 3):sum { dtype = 'float64' }:dtype())
  end)

  it('keeps the dtype for max, min and values of sort', function()
    local x = flare.tensor({ 3, -7, 5 }, { dtype = 'int32' })
    assert.equal('int32', x:max():dtype())
    assert.equal(-7, x:min():item())
    assert.equal('int32', (x:sort()):dtype())
    assert.equal('bool', flare.tensor({ true, false }, { dtype = 'bool' }):max():dtype())
  end)

  it('all and any give bool, argmax int64, logsumexp of integers float32', function()
    assert.equal('bool', flare.ones(2):all():dtype())
    assert.equal('bool', flare.tensor({ 0, 2 }, { dtype = 'uint8' }):any(1):dtype())
    assert.equal('int64', flare.ones(2, 3):argmax(2):dtype())
    local l = flare.tensor { 1, 2, 3 }:logsumexp(1)
    assert.equal('float32', l:dtype())
    assert.is_true(math.abs(l:item() - 3.40760596) < 1e-5)
  end)

  it('refuses mean, var, std and norm of integer tensors', function()
    local x = flare.tensor { 1, 2, 3 }
    for _, op in ipairs { 'mean', 'var', 'std', 'norm' } do
      fails_with(op .. ': expected a floating-point tensor, got int64', x[op], x)
    end
  end)

  it('sums int64 exactly beyond 2^53', function()
    local big = 2 ^ 53 | 0
    local x = flare.tensor { big, 1, 1 }
    assert.equal(big + 2, x:sum():item())
    assert.equal(big + 2, x:cumsum(1)[3]:item())
  end)
end)

describe('empty and 0-dim reductions', function()
  it('follows PyTorch on empty tensors', function()
    local e = flare.zeros(0, 3)
    assert.equal(0, e:sum():item())
    assert.equal(1, e:prod():item())
    assert.is_true(e:mean():item() ~= e:mean():item())   -- nan
    assert.are.same({ 3 }, sizes(e:sum(1)))
    assert.are.same({ 0, 0, 0 }, e:sum(1):totable())
    assert.are.same({ 0 }, sizes(e:sum(2)))
    assert.are.same({ 0 }, sizes(e:amax(2)))
    local v, i = e:max(2)
    assert.are.same({ 0 }, sizes(v))
    assert.are.same({ 0 }, sizes(i))
    assert.is_true(e:all():item())
    assert.is_false(e:any():item())
    assert.equal(-math.huge, e:logsumexp(1)[1]:item())
    assert.equal(0, e:norm():item())
    assert.equal(0, e:norm(-math.huge):item())
    assert.are.same({ 1, 1 }, flare.zeros(2, 0):prod(2):totable())
    assert.are.same({ 0, 3 }, sizes(e:cumsum(1)))
    assert.are.same({ 0, 3 }, sizes((e:sort(1))))
    assert.are.same({ 2, 0 }, sizes((flare.ones(2, 3):topk(0))))
  end)

  it('refuses max, min and argmax of nothing', function()
    local e = flare.zeros(0, 3)
    fails_with('max: cannot take the max of an empty tensor', e.max, e)
    fails_with('min: cannot take the min', e.min, e)
    fails_with('cannot take the max over a dimension of size 0', e.max, e, 1)
    fails_with('cannot take the max over a dimension of size 0', e.amax, e, 1)
    fails_with('argmax: cannot take the argmax of an empty tensor', e.argmax, e)
  end)

  it('reduces a 0-dim tensor over dim 1 or -1', function()
    local s = flare.tensor(2.5)
    assert.equal(0, s:sum(1):dim())
    assert.equal(2.5, s:sum(-1, true):item())
    local v, i = s:max(1)
    assert.equal(2.5, v:item())
    assert.equal(1, i:item())
    assert.equal(1, s:argmax():item())
    assert.equal(2.5, s:cumsum(1):item())
    local sv, si = s:sort()
    assert.equal(2.5, sv:item())
    assert.equal(1, si:item())
  end)
end)

describe('NaN and infinities', function()
  local nan = 0 / 0
  it('propagates NaN through max, min, sum and var', function()
    local x = flare.tensor { 1, nan, 3, nan }
    assert.is_true(x:max():item() ~= x:max():item())
    assert.is_true(x:min():item() ~= x:min():item())
    assert.is_true(x:sum():item() ~= x:sum():item())
    assert.is_true(x:var():item() ~= x:var():item())
    local v, i = x:max(1)
    assert.is_true(v:item() ~= v:item())
    assert.equal(2, i:item())            -- the first NaN
    assert.equal(2, x:argmin():item())
    assert.is_true(x:all():item())       -- NaN is not zero
  end)

  it('takes the first of equal extremes, across the block split', function()
    local x = flare.zeros(100000)
    x[70001] = 5
    x[90001] = 5
    x[20001] = -5
    x[99001] = -5
    local v, i = x:max(1)
    assert.equal(5, v:item())
    assert.equal(70001, i:item())
    assert.equal(20001, x:argmin():item())
  end)

  it('gives logsumexp of infinities as PyTorch does', function()
    assert.equal(math.huge, flare.tensor({ math.huge, 1 }):logsumexp(1):item())
    assert.equal(-math.huge, flare.tensor({ -math.huge, -math.huge }):logsumexp(1):item())
    local big = flare.tensor({ 1000, 1000 }):logsumexp(1):item()
    assert.is_true(math.abs(big - (1000 + math.log(2))) < 1e-3)   -- no overflow
  end)
end)

describe('accuracy and threads', function()
  local function big_tensor()
    local i = flare.arange(0, fx.big_sum.n)
    return (((i * 7919):fmod(1000) + 1):float() / 64)
  end

  it('sums 10^6 float32 values as PyTorch does (within 1e-5)', function()
    local x = big_tensor()
    assert.equal('float32', x:dtype())
    local s = x:sum():item()
    assert.is_true(math.abs(s - fx.big_sum.torch) <= 1e-5 * math.abs(fx.big_sum.torch))
    -- accumulated in double: the float32 result is the exact sum, rounded once
    local exact32 = flare.tensor({ fx.big_sum.exact }, { dtype = 'float32' })[1]:item()
    assert.equal(exact32, s)
    assert.is_true(math.abs(x:mean():item() - fx.big_sum.torch_mean) <= 1e-5 * fx.big_sum.torch_mean)
    -- a leading-dim reduction (walked across rows) of the same values
    local cols = x:view(1000, 1000):sum(1):double():sum():item()
    assert.is_true(math.abs(cols - fx.big_sum.exact) <= 1e-9 * fx.big_sum.exact)
    -- long columns (cut into blocks) agree with rows of the transposed copy: exact sums
    local m = x:view(20000, 50)
    assert.is_true(m:sum(1):eq(m:t():contiguous():sum(2)):all():item())
    local v, i = m:max(1)
    local vt, it = m:t():contiguous():max(2)
    assert.is_true(v:eq(vt):all():item() and i:eq(it):all():item())
  end)

  it('gives bit-identical results for any thread count', function()
    local saved = flare.get_num_threads()
    flare.manual_seed(7)
    local x = flare.randn(600, 3000)
    local xt = x:t()
    local function run()
      local v, i = xt:max(2)
      return {
        x:sum():item(), x:var():item(), x:norm(3):item(), x:logsumexp { dim = { 1, 2 } }:item(),
        x:sum(1), x:sum(2), xt:mean(2), v, i, x:argmax():item(), x:cumsum(1)[600],
        x:prod(2), x:std(1),
      }
    end
    flare.set_num_threads(1)
    local one = run()
    for _, n in ipairs { 2, 3 } do
      flare.set_num_threads(n)
      local other = run()
      for k = 1, #one do
        if flare.is_tensor(one[k]) then
          assert.is_true((one[k]:eq(other[k])):all():item(), 'result ' .. k .. ' differs with ' .. n .. ' threads')
        else
          assert.equal(one[k], other[k], 'result ' .. k .. ' differs with ' .. n .. ' threads')
        end
      end
    end
    flare.set_num_threads(saved)
  end)

  it('reduces several non-adjacent dims of a non-contiguous tensor', function()
    flare.manual_seed(11)
    local x = flare.randn(4, 5, 6, 7):permute(2, 4, 1, 3)   -- 5x7x4x6
    local want = x:contiguous():sum(4):sum(2)               -- dims 2 and 4
    fixture.assert_close(x:sum { 2, 4 }, want, { rtol = 1e-5, atol = 1e-5 })
    fixture.assert_close(x:amax({ 4, 2 }, true):reshape(5, 4), x:amax(4):amax(2), { rtol = 0, atol = 0 })
  end)
end)

describe('bad input', function()
  local x = flare.ones(2, 3)
  it('names bad dims', function()
    fails_with('dimension out of range (expected 1 to 2, or -2 to -1; dims are 1-based), got 0', x.sum, x, 0)
    fails_with('got 3', x.mean, x, 3)
    fails_with('got -3', x.max, x, -3)
    fails_with('dim 2 appears more than once', x.sum, x, { 2, -1 })
    fails_with('got 5', x.sum, x, { dim = { 1, 5 } })
    fails_with('got 0', x.sort, x, 0)
    fails_with('got 3', x.cumsum, x, 3)
    fails_with("option 'dim'", x.topk, x, 1, { dim = 'a' })
  end)

  it('names wrong argument types', function()
    fails_with('expected a dim, a list of dims, keepdim (boolean) or an options table, got string', x.sum, x, 'a')
    fails_with("option 'keepdim': expected a boolean, got number", x.sum, x, { keepdim = 1 })
    fails_with('a dim', x.max, x, { 1, 2 })
    fails_with("expected p to be a number or 'fro', got nuc", x.norm, x, 'nuc')
    fails_with("option 'correction': expected a number, got string", x.var, x, { correction = 'x' })
    fails_with('cumsum: expected a dim', x.cumsum, x)
    fails_with('flare.Tensor expected', flare.sum, 3)
    fails_with('unknown dtype', x.sum, x, { dtype = 'float16' })
  end)

  it('checks k of topk', function()
    fails_with('k must be between 0 and 3 (the size of dim 2), got 4', x.topk, x, 4)
    fails_with('got -1', x.topk, x, -1)
    fails_with('expected an integer', x.topk, x, 1.5)
  end)
end)
