-- Indexing ops (index_select, gather, scatter, scatter_add, index_add_/fill_/copy_, masked
-- fill/select/scatter, nonzero) against PyTorch, and Lua's indexing syntax x[...] and
-- x[...] = v: integers, Torch7-style range tables, bool masks and index tensors.
local flare = require 'flare'
local fixture = require 'support.fixture'

local F = fixture.load('view')
local T = fixture.tensor

local function shape(t) return { table.unpack(t:size()) } end

local function err(fn, pattern)
  local ok, msg = pcall(fn)
  assert(not ok, 'expected an error matching "' .. pattern .. '"')
  msg = tostring(msg)
  if not msg:find(pattern, 1, true) then
    error(string.format('error "%s" does not contain "%s"', msg, pattern), 2)
  end
end

describe('gather and scatter', function()
  it('gather matches PyTorch along every dim', function()
    for d = 1, 3 do
      local c = F['gather_' .. d]
      fixture.assert_close(T(c.x):gather(c.dim, T(c.idx)), c.out)
      fixture.assert_close(flare.gather(T(c.x), c.dim, T(c.idx):int()), c.out)
    end
  end)

  it('gather works on non-contiguous inputs and indices', function()
    local c = F.gather_2
    local x = T(c.x):transpose(1, 3):contiguous():transpose(1, 3)   -- same values, other strides
    assert.is_false(x:is_contiguous())
    local idx = T(c.idx):transpose(1, 2):contiguous():transpose(1, 2)
    fixture.assert_close(x:gather(2, idx), c.out)
  end)

  it('scatter (tensor and number) and scatter_add (repeated indices accumulate)', function()
    for d = 1, 3 do
      local c = F['scatter_' .. d]
      local x = T(c.x)
      fixture.assert_close(x:scatter(c.dim, T(c.idx), T(c.src)), c.out)
      fixture.assert_close(x, c.x)                      -- out of place left x alone
      local v = F['scatter_value_' .. d]
      fixture.assert_close(flare.scatter(T(v.x), v.dim, T(v.idx), v.value), v.out)
      local a = F['scatter_add_' .. d]
      fixture.assert_close(T(a.x):scatter_add(a.dim, T(a.idx), T(a.src)), a.out, { atol = 1e-9 })
      local y = T(a.x)
      assert.equal(y, y:scatter_add_(a.dim, T(a.idx), T(a.src)))
      fixture.assert_close(y, a.out, { atol = 1e-9 })
      local z = T(c.x)
      z:scatter_(c.dim, T(c.idx), T(c.src))
      fixture.assert_close(z, c.out)
    end
    local i = F.scatter_add_int
    fixture.assert_close(T(i.x):scatter_add(i.dim, T(i.idx), T(i.src)), i.out)
  end)

  it('scatter_ writes through a view into its base', function()
    local base = flare.zeros(3, 4)
    local v = base:t()                                   -- 4x3, non-contiguous
    v:scatter_(1, flare.tensor { { 2, 4, 1 } }, 5)
    assert.are.same({ { 0, 5, 0, 0 }, { 0, 0, 0, 5 }, { 5, 0, 0, 0 } }, base:totable())
  end)

  it('rejects bad indices, shapes, dtypes and arguments', function()
    local x = flare.zeros(3, 4)
    err(function() x:gather(2, flare.tensor { { 1, 5 } }) end,
        'gather: index 5 is out of range for dimension 2 of size 4')
    err(function() x:gather(2, flare.tensor { { 0 } }) end, 'index 0 is out of range')
    err(function() x:gather(2, flare.tensor { { -1 } }) end, 'index -1 is out of range')
    err(function() x:gather(2, flare.tensor { { 1.0 } }) end, 'index must be an int64 or int32 tensor, got float32')
    err(function() x:gather(2, flare.tensor { 1 }) end,
        'index of shape [1] must have as many dimensions as the tensor of shape [3, 4]')
    err(function() x:gather(2, flare.ones(4, 1):long()) end,
        'index of shape [4, 1] is larger than the tensor of shape [3, 4] at dimension 1')
    err(function() x:gather(3, flare.ones(1, 1):long()) end, 'dimension out of range')
    err(function() x:gather(2, { 1 }) end, 'flare.Tensor expected, got table')
    err(function() x:scatter(1, flare.ones(1, 5):long(), 1) end, 'is larger than the tensor')
    err(function() x:scatter(1, flare.ones(2, 2):long(), flare.ones(1, 2)) end,
        'index of shape [2, 2] is larger than the source of shape [1, 2] at dimension 1')
    err(function() x:scatter(1, flare.ones(1, 1):long(), 'a') end, 'flare.Tensor or number expected')
    err(function() x:long():scatter_add(1, flare.ones(1, 1):long(), flare.ones(1, 1)) end,
        'source of type float32 cannot be written into a tensor of type int64')
    -- a failed in-place scatter leaves the tensor untouched
    local y = flare.zeros(2, 2)
    err(function() y:scatter_(1, flare.tensor { { 1, 3 } }, 7) end, 'index 3 is out of range')
    assert.are.same({ { 0, 0 }, { 0, 0 } }, y:totable())
  end)
end)

describe('index_select and index_add_/fill_/copy_', function()
  it('index_select matches PyTorch along every dim (int64 and int32 indices)', function()
    for d = 1, 3 do
      local c = F['index_select_' .. d]
      fixture.assert_close(T(c.x):index_select(c.dim, T(c.idx)), c.out)
      fixture.assert_close(flare.index_select(T(c.x), c.dim, T(c.idx):int()), c.out)
      fixture.assert_close(T(c.x):permute(2, 3, 1):index_select(({ 3, 1, 2 })[d], T(c.idx)),
                           T(c.out):permute(2, 3, 1))
    end
  end)

  it('index_select handles empty indices and zero-size tensors', function()
    local x = flare.arange(0, 6):view(2, 3)
    assert.are.same({ 2, 0 }, shape(x:index_select(2, flare.zeros(0):long())))
    assert.are.same({ 0, 2 }, shape(flare.zeros(0, 3):index_select(2, flare.tensor { 3, 1 })))
    assert.are.same({ 1, 3 }, shape(x:index_select(1, flare.tensor { 2 }:view())))
  end)

  it('index_select errors', function()
    local x = flare.zeros(2, 3)
    err(function() x:index_select(2, flare.tensor { 1, 4 }) end, 'index 4 is out of range for dimension 2 of size 3')
    err(function() x:index_select(1, flare.tensor { { 1 } }) end, 'index must be 1-d (or 0-dim), got shape [1, 1]')
    err(function() x:index_select(1, flare.tensor { true }) end, 'got bool')
  end)

  it('index_add_, index_fill_, index_copy_ match PyTorch', function()
    local a = F.index_add
    local x = T(a.x)
    x:index_add_(a.dim, T(a.idx), T(a.src))
    fixture.assert_close(x, a.out, { atol = 1e-9 })
    fixture.assert_close(T(a.x):index_add(a.dim, T(a.idx), T(a.src), 2), a.out_alpha, { atol = 1e-9 })
    local f = F.index_fill
    fixture.assert_close(T(f.x):index_fill_(f.dim, T(f.idx), f.value), f.out)
    local c = F.index_copy
    fixture.assert_close(flare.index_copy(T(c.x), c.dim, T(c.idx), T(c.src)), c.out)
    err(function() T(a.x):index_add_(1, T(a.idx), flare.ones(3, 3):double()) end,
        'source of shape [3, 3] does not match the expected shape [4, 3]')
  end)
end)

describe('masks and nonzero', function()
  it('masked_select and masked_fill match PyTorch, with broadcasting', function()
    for _, name in ipairs { 'masked', 'masked_broadcast', 'masked_grow' } do
      local c = F[name]
      local x, m = T(c.x), T(c.mask)
      fixture.assert_close(x:masked_select(m), c.select)
      fixture.assert_close(flare.masked_select(x, m), c.select)
    end
    fixture.assert_close(T(F.masked.x):masked_fill(T(F.masked.mask), -7), F.masked.fill)
    fixture.assert_close(T(F.masked_broadcast.x):masked_fill(T(F.masked_broadcast.mask), 3), F.masked_broadcast.fill)
    local g = T(F.masked_grow.x)
    fixture.assert_close(flare.masked_fill(g, T(F.masked_grow.mask), 0.5), F.masked_grow.fill)
    fixture.assert_close(g, F.masked_grow.x)                -- out of place left g alone
  end)

  it('masked_fill_ writes in place, through views, with a number or 0-dim tensor', function()
    local x = flare.arange(0, 6):view(2, 3)
    x:t():masked_fill_(flare.tensor { { true, false }, { false, false }, { false, true } }, -1)
    assert.are.same({ { -1, 1, 2 }, { 3, 4, -1 } }, x:totable())
    x:masked_fill_(x:lt(0), flare.tensor { 9.7 }:view())
    assert.are.same({ { 9, 1, 2 }, { 3, 4, 9 } }, x:totable())
    err(function() x:masked_fill_(x:gt(0), flare.tensor { 1, 2 }) end,
        'value must be a number or a 0-dim tensor, got a tensor of shape [2]')
    err(function() x:masked_fill_(flare.tensor { true, false }, 0) end,
        'mask of shape [2] cannot be broadcast to the tensor\'s shape [2, 3]')
    err(function() x:masked_fill(x:gt(0):byte(), 0) end, 'mask must be a bool tensor, got uint8')
    err(function() x:masked_fill(x:gt(0):long(), 0) end, 'mask must be a bool tensor, got int64')
    err(function() x:masked_fill('m', 0) end, 'flare.Tensor expected, got string')
    err(function() x:masked_select(flare.ones(3, 3):bool()) end, 'cannot be broadcast')
  end)

  it('masked_scatter_ matches PyTorch', function()
    local c = F.masked_scatter
    local x = T(c.x)
    x:masked_scatter_(T(c.mask), T(c.src))
    fixture.assert_close(x, c.out)
    fixture.assert_close(T(c.x):masked_scatter(T(c.mask), T(c.src)), c.out)
    err(function() flare.zeros(3):masked_scatter_(flare.ones(3):bool(), flare.ones(2)) end,
        'source has 2 elements but the mask selects 3')
  end)

  it('nonzero returns 1-based coordinates as PyTorch (NaN is non-zero, -0 is zero)', function()
    fixture.assert_close(T(F.nonzero_float.x):nonzero(), F.nonzero_float.out)
    fixture.assert_close(flare.nonzero(T(F.nonzero_bool3.x)), F.nonzero_bool3.out)
    local x = flare.zeros(4, 3)
    x[{ 3, 2 }] = 1
    assert.are.same({ { 3, 2 } }, x:t():t():nonzero():totable())
    assert.are.same({ { 2, 3 } }, x:t():nonzero():totable())
    assert.are.same({ 0, 2 }, shape(flare.zeros(0, 5):nonzero()))
    assert.are.same({ 1, 0 }, shape(flare.tensor { 5 }:view():nonzero()))
    assert.equal('int64', x:nonzero():dtype())
  end)
end)

describe('Lua indexing syntax', function()
  it('x[i] selects along the first dim, negative from the end', function()
    local x = flare.arange(0, 12):view(3, 4)
    assert.are.same({ 4, 5, 6, 7 }, x[2]:totable())
    assert.are.same({ 8, 9, 10, 11 }, x[-1]:totable())
    assert.equal(6, x[2][3]:item())
    err(function() return x[4] end, 'index 4 is out of range for a dimension of size 3')
    err(function() return x[0] end, 'index 0 is out of range')
    err(function() return x[1.5] end, 'expected an integer')
  end)

  it('x[{...}] takes integers, {first, last[, step]} ranges and {} as views', function()
    local x = flare.arange(0, 24):view(4, 6)
    local v = x[{ { 2, 3 }, 3 }]
    assert.are.same({ 8, 14 }, v:totable())
    assert.are.same({ { 1, 3, 5 }, { 19, 21, 23 } }, x[{ { 1, -1, 3 }, { 2, -1, 2 } }]:totable())
    assert.are.same({ 6 }, shape(x[{ 2 }]))
    assert.are.same({ 4 }, shape(x[{ {}, -2 }]))
    assert.are.same({ 1, 6 }, shape(x[{ { 3 } }]))                 -- {i}: a range of one
    assert.are.same({ 0, 6 }, shape(x[{ { 3, 2 } }]))              -- {i, i - 1}: empty
    assert.are.same({ 0, 6 }, shape(x[{ { 5, 4 } }]))              -- even one past the end
    assert.are.same({ 4, 6 }, shape(x[{}]))
    assert.equal(17, x[{ 3, 6 }]:item())
    assert.equal(0, x[{ 3, 6 }]:dim())
    assert.equal(x:data_ptr() + (6 + 2) * 8, v:data_ptr())
    -- through a transposed (non-contiguous) tensor
    local t = x:t()
    assert.are.same({ 13, 19 }, t[{ 2, { 3, 4 } }]:totable())
  end)

  it('x[{...}] errors say which entry is wrong', function()
    local x = flare.zeros(4, 6)
    err(function() return x[{ 1, 2, 3 }] end, 'too many entries (3) in the index table for a 2-dim tensor')
    err(function() return x[{ 5 }] end, 'entry 1 of the index table: index 5 is out of range for dimension 1 of size 4')
    err(function() return x[{ {}, { 2, 7 } }] end, 'entry 2 of the index table: range end 7 is out of range')
    err(function() return x[{ { 3, 1 } }] end, 'range 3 to 1 goes backwards')
    err(function() return x[{ { 1, 3, 0 } }] end, 'range step must be positive, got 0')
    err(function() return x[{ 'a' }] end, 'must be an integer, a {first, last[, step]} range or {}, got string')
    err(function() return x[{ { 1, 'b' } }] end, 'range item 2 must be an integer')
    err(function() return x[{ flare.tensor { 1 } }] end, 'got a tensor (index with a tensor alone')
    err(function() return x[true] end, 'bad argument')
  end)

  it('assigns numbers and tensors through x[i] and x[{...}], broadcasting', function()
    local x = flare.zeros(3, 4)
    x[2] = 1
    x[{ {}, 4 }] = flare.tensor { 7, 8, 9 }
    x[{ 3, { 1, 2 } }] = flare.tensor { 5, 6 }
    x[{ { 1, 1 }, { 1, 3, 2 } }] = flare.tensor { { -1, -2 } }
    x[{ 1, 2 }] = 4
    assert.are.same({ { -1, 4, -2, 7 }, { 1, 1, 1, 8 }, { 5, 6, 0, 9 } }, x:totable())
    x[{ { 2, 3 }, {} }] = flare.tensor { 0, 1, 2, 3 }
    assert.are.same({ 0, 1, 2, 3 }, x[3]:totable())
    err(function() x[{ {}, 1 }] = flare.ones(2) end, 'source of shape [2] cannot be broadcast to destination shape [3]')
    err(function() x[{ 1 }] = 'a' end, 'flare.Tensor or number expected')
  end)

  it('x[mask] selects and x[mask] = v writes (mask over all or leading dims)', function()
    local x = flare.arange(0, 6):view(2, 3)
    assert.are.same({ 3, 4, 5 }, x[x:gt(2)]:totable())
    local rows = F.index_mask_rows
    fixture.assert_close(T(rows.x)[T(rows.mask)], rows.out)
    assert.are.same({ 1, 2, 3 }, shape(x[flare.tensor { true }:view()]))
    x[x:gt(3)] = 0
    assert.are.same({ { 0, 1, 2 }, { 3, 0, 0 } }, x:totable())
    x[x:eq(0)] = flare.tensor { 7, 8, 9 }
    assert.are.same({ { 7, 1, 2 }, { 3, 8, 9 } }, x:totable())
    x[flare.tensor { false, true }] = flare.tensor { -1, -2, -3 }
    assert.are.same({ { 7, 1, 2 }, { -1, -2, -3 } }, x:totable())
    x[flare.tensor { true, false }] = 4
    assert.are.same({ 4, 4, 4 }, x[1]:totable())
    err(function() x[x:gt(0)] = flare.tensor { 1, 2 } end, 'source of shape [2] cannot be broadcast')
    err(function() return x[flare.tensor { true, false, true }] end,
        'mask of shape [3] does not match the indexed tensor of shape [2, 3]')
    err(function() return x[x:gt(0):byte()] end, 'a tensor index must be a bool mask or int64/int32 indices, got uint8')
    err(function() return x[flare.ones(2)] end, 'got float32')
  end)

  it('x[idx] gathers rows and x[idx] = v writes them', function()
    local r = F.index_rows_2d
    fixture.assert_close(T(r.x)[T(r.idx)], r.out)
    local x = flare.arange(0, 6):view(3, 2)
    assert.are.same({ { 4, 5 }, { 0, 1 }, { 4, 5 } }, x[flare.tensor { 3, 1, 3 }]:totable())
    assert.are.same({ 0, 1 }, x[flare.tensor { 1 }:view()]:totable())
    x[flare.tensor { 1, 3 }] = 0
    assert.are.same({ { 0, 0 }, { 2, 3 }, { 0, 0 } }, x:totable())
    x[flare.tensor { 2, 3 }] = flare.tensor { 5, 6 }               -- broadcast to each row
    assert.are.same({ { 0, 0 }, { 5, 6 }, { 5, 6 } }, x:totable())
    x[flare.tensor { 1, 2 }:int()] = flare.tensor { { 1, 1 }, { 2, 2 } }
    assert.are.same({ { 1, 1 }, { 2, 2 }, { 5, 6 } }, x:totable())
    err(function() return x[flare.tensor { 4 }] end, 'index 4 is out of range for dimension 1 of size 3')
    err(function() x[flare.tensor { 1 }] = flare.ones(3):long() end, 'cannot be broadcast')
    err(function() x[flare.tensor { 1 }] = flare.ones(2) end, 'source of type float32 cannot be written into a tensor of type int64')
  end)
end)
