-- Hostile input: every public function and method, called with wrong types, wrong arity,
-- NaN, infinities, huge, negative and fractional sizes, and empty, 0-dim and
-- non-contiguous tensors of every dtype, must either work or raise a Lua error whose
-- message says what was expected. Never a crash (the sanitized run would catch one).
-- Functions are discovered from `flare` and `flare._methods`, so new ones are covered
-- as they appear.
local flare = require 'flare'

local DTYPES = { 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }

-- ---------------------------------------------------------------- hostile values

local function trap()
  return setmetatable({}, { __index = function() error('trap: a field was read') end })
end

-- Sizes here are either tiny or far beyond any machine's memory, never in between: a call
-- that accepts one must not be able to allocate gigabytes.
local VALUES = {
  { 'nil', nil }, { 'true', true }, { 'false', false },
  { "''", '' }, { "'abc'", 'abc' }, { "'2'", '2' }, { "'float64'", 'float64' },
  { '0', 0 }, { '1', 1 }, { '2', 2 }, { '-1', -1 }, { '1.5', 1.5 }, { '-0.5', -0.5 },
  { 'nan', 0 / 0 }, { 'inf', math.huge }, { '-inf', -math.huge },
  { '2^40', 2.0 ^ 40 }, { '1<<40', 1 << 40 }, { '-(1<<40)', -(1 << 40) },
  { 'maxinteger', math.maxinteger }, { 'mininteger', math.mininteger }, { '2^63', 2.0 ^ 63 },
  { '1e308', 1e308 },
  { '{}', {} }, { '{1, 2}', { 1, 2 } }, { '{-1}', { -1 } }, { '{1.5}', { 1.5 } },
  { '{1<<40}', { 1 << 40 } }, { '{1<<20, 1<<20}', { 1 << 20, 1 << 20 } },
  { '{{1}, {1, 2}}', { { 1 }, { 1, 2 } } }, { "{'a'}", { 'a' } },
  { "{dtype = 'nope'}", { dtype = 'nope' } }, { "{device = 'tpu'}", { device = 'tpu' } },
  { "{dtype = 'bool'}", { dtype = 'bool' } },
  { 'function', function() end }, { 'erroring function', function() error('boom') end },
  { 'io.stdout', io.stdout }, { 'coroutine', coroutine.create(function() end) },
  { 'trap table', trap() },
}

-- A shorter list for second and third arguments.
local SHORT = {
  { 'nil', nil }, { 'true', true }, { "'abc'", 'abc' }, { '0', 0 }, { '1', 1 }, { '-1', -1 },
  { '1.5', 1.5 }, { 'nan', 0 / 0 }, { 'inf', math.huge }, { '1<<40', 1 << 40 },
  { 'maxinteger', math.maxinteger }, { 'mininteger', math.mininteger },
  { '{2, 3}', { 2, 3 } }, { '{}', {} },
}

-- ---------------------------------------------------------------- tensors of every kind

-- A view that is not contiguous, made with whichever view method exists today.
local function noncontiguous(x)
  local tries = {
    function() return x:transpose(1, 2) end,
    function() return x:t() end,
    function() return x:permute(2, 1) end,
    function() return x:narrow(2, 2, 2) end,
  }
  for _, try in ipairs(tries) do
    local ok, y = pcall(try)
    if ok and flare.is_tensor(y) and not y:is_contiguous() then return y end
  end
end

-- Fresh small tensors (in-place methods change them): for every dtype a 2x3 matrix, a
-- non-contiguous view of one, empty ones and a 0-dim one; floats holding nan and inf.
local function tensors()
  local list = {}
  local function add(name, x) list[#list + 1] = { name, x } end
  for _, dt in ipairs(DTYPES) do
    local opts = { dtype = dt }
    add(dt .. ' 2x3', flare.tensor({ { 1, 0, 3 }, { 4, 5, 0 } }, opts))
    local nc = noncontiguous(flare.tensor({ { 1, 0, 3 }, { 4, 5, 0 } }, opts))
    if nc then add(dt .. ' non-contiguous', nc) end
    add(dt .. ' empty {0}', flare.zeros({ 0 }, opts))
    add(dt .. ' empty {2, 0}', flare.zeros({ 2, 0 }, opts))
    add(dt .. ' 0-dim', flare.tensor(1, opts))
  end
  add('float32 nan/inf', flare.tensor({ 0 / 0, math.huge, -math.huge, 0 }, { dtype = 'float32' }))
  add('float64 nan/inf', flare.tensor({ 0 / 0, math.huge, -math.huge, 0 }, { dtype = 'float64' }))
  -- indices far out of range, for gather, index_select, scatter and friends
  add('int64 extremes', flare.tensor({ math.maxinteger, math.mininteger, -1, 1 << 40 }))
  add('int32 extremes', flare.tensor({ 2147483647, -2147483648, -1, 0 }, { dtype = 'int32' }))
  -- a tensor freed early by a to-be-closed variable: its userdata lives on, empty
  local closed
  do
    local x <close> = flare.ones(2, 3)
    closed = x
  end
  add('closed tensor', closed)
  return list
end

-- ---------------------------------------------------------------- checking one call

-- A readable error names what was expected, or comes from luaL_argerror, or names the
-- function, or is an error raised by the caller's own callback.
local function readable(msg, fname)
  if type(msg) ~= 'string' or #msg == 0 or #msg > 2000 then return false end
  if msg:find('attempt to', 1, true) then return false end   -- a Lua VM error in library code
  local bare = msg:gsub('^[^:\n]+:%d+: ', '')   -- without the position of a Lua error()
  if msg:find(fname, 1, true) or bare:find('^[%a_#][%w_.]*: ') then   -- names the op or alias
    return true
  end
  local lower = msg:lower()
  for _, words in ipairs { 'expected', 'bad argument', 'out of memory', 'out of range', 'cannot',
                           'must', 'boom', 'trap:' } do
    if lower:find(words, 1, true) then return true end
  end
  return false
end

-- A tensor returned by a call that accepted hostile arguments must still be consistent.
local function sane(t)
  local size, n = t:size(), 1
  if #size ~= t:dim() then return false end
  for i = 1, #size do
    if math.type(size[i]) ~= 'integer' or size[i] < 0 then return false end
    n = n * size[i]
  end
  local dt = t:dtype()
  for _, d in ipairs(DTYPES) do
    if d == dt then return n == t:numel() end
  end
  return false
end

local function describe_args(names)
  return '(' .. table.concat(names, ', ') .. ')'
end

-- Global state a hostile call may change; restored after every function's calls.
local function save_state()
  return {
    threads = flare.get_num_threads(),
    rng = flare.get_rng_state(),
    grad = flare.is_grad_enabled and flare.is_grad_enabled(),
  }
end

local function restore_state(s)
  flare.set_num_threads(s.threads)
  flare.set_rng_state(s.rng)
  if flare.set_grad_enabled then flare.set_grad_enabled(s.grad) end
end

-- Runs fn with each argument list; returns the calls that misbehaved and the call count.
-- `must_fail(args)` marks calls that cannot be valid (e.g. a method whose self is not a
-- tensor).
local function sweep(fname, fn, arglists, must_fail)
  local bad, count = {}, 0
  for _, a in ipairs(arglists) do
    count = count + 1
    local ok, msg = pcall(fn, table.unpack(a.values, 1, a.n))
    local why
    if ok and must_fail and must_fail(a) then
      why = 'succeeded'
    elseif ok and flare.is_tensor(msg) and not sane(msg) then
      why = 'returned a malformed tensor'
    elseif not ok and not readable(msg, fname) then
      why = 'unreadable error: ' .. tostring(msg)
    end
    if why and #bad < 20 then
      bad[#bad + 1] = fname .. describe_args(a.names) .. ': ' .. why
    end
  end
  return bad, count
end

-- Argument lists for one function: `self` first when it is a method. Every value is tried
-- in every position that matters, but the tensors beside it rotate over dtypes and layouts
-- (differently for each function, through `seed`) instead of being crossed with all of
-- them: error messages are costly to build, and the rotation covers the pairs across
-- the many functions.
local function arglists(is_method, seed)
  local lists = {}
  local function add(names, values, n, self_is_tensor)
    lists[#lists + 1] = { names = names, values = values, n = n, self_is_tensor = self_is_tensor }
  end
  local ts = tensors()
  seed = seed or 0
  local function pick(list, k) return list[(k * 7919 + seed * 104729) % #list + 1] end
  add({}, {}, 0, false)                                           -- no arguments
  for _, v in ipairs(VALUES) do add({ v[1] }, { v[2] }, 1, false) end
  for _, t in ipairs(ts) do add({ t[1] }, { t[2] }, 1, true) end   -- every tensor alone
  for i, v in ipairs(VALUES) do                                   -- every value after a tensor
    local t = pick(ts, i)
    add({ t[1], v[1] }, { t[2], v[2] }, 2, true)
  end
  for i, t2 in ipairs(ts) do   -- tensors where numbers are expected; mismatched shapes, dtypes
    local t = pick(ts, i + 100)
    add({ t[1], t2[1] }, { t[2], t2[2] }, 2, true)
  end
  -- three and four arguments (dim, start, length and the like)
  for i, v in ipairs(SHORT) do
    for j = 1, 4 do
      local t, w = pick(ts, i * 4 + j + 200), pick(SHORT, i * 4 + j)
      add({ t[1], v[1], w[1] }, { t[2], v[2], w[2] }, 3, true)
    end
    for j = 1, 2 do
      local t, w = pick(ts, i * 2 + j + 300), pick(SHORT, i * 2 + j + 50)
      add({ t[1], '1', v[1], w[1] }, { t[2], 1, v[2], w[2] }, 4, true)
    end
  end
  -- lists of tensors (cat, stack), mismatched in shape and dtype, or holding a non-tensor
  for i = 1, 6 do
    local t, t2 = pick(ts, i + 400), pick(ts, i + 500)
    local names = '{' .. t[1] .. ', ' .. t2[1] .. '}'
    if is_method then
      add({ t[1], names }, { t[2], { t[2], t2[2] } }, 2, true)
      add({ t[1], '{tensor, 1}' }, { t[2], { t[2], 1 } }, 2, true)
    else
      add({ names }, { { t[2], t2[2] } }, 1, false)
      add({ names, '1' }, { { t[2], t2[2] }, 1 }, 2, false)
      add({ names, '-3' }, { { t[2], t2[2] }, -3 }, 2, false)
    end
  end
  if not is_method then
    -- module functions also take numbers first and tensors second
    for i, v in ipairs(VALUES) do
      local t = pick(ts, i + 600)
      add({ v[1], t[1] }, { v[2], t[2] }, 2, false)
    end
    for i, v in ipairs(SHORT) do
      for j = 1, 4 do
        local w = pick(SHORT, i * 4 + j + 700)
        add({ v[1], w[1] }, { v[2], w[2] }, 2, false)
      end
    end
  end
  return lists
end

-- Names not swept automatically: they print, touch files or the terminal, run a callback
-- a given number of times, or change process-wide state beyond what restore_state undoes.
-- Those that exist get hand-written cases below instead.
local SKIP = {
  repl_print = true, open_globals = true, set_num_threads = true, manual_seed = true,
  set_rng_state = true, set_grad_enabled = true,
}
local SKIP_PATTERNS = { 'save', 'load', 'open', 'write', 'read', 'plot', 'repl', 'prompt',
                        'print', 'sleep', 'exit', 'time' }

local function skipped(name)
  if SKIP[name] or name:find('^_') then return true end
  for _, p in ipairs(SKIP_PATTERNS) do
    if name:find(p, 1, true) then return true end
  end
  return false
end

-- Functions, and callable tables (classes such as nn.Linear, whose call constructs).
local function callable(v)
  if type(v) == 'function' then return true end
  local mt = type(v) == 'table' and getmetatable(v)
  return mt and type(mt) == 'table' and mt.__call ~= nil or false
end

local function sorted_functions(t)
  local names = {}
  for k, v in pairs(t) do
    if type(k) == 'string' and callable(v) and not skipped(k) then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  return names
end

-- ---------------------------------------------------------------- the sweeps

describe('hostile input', function()
  local total = 0

  describe('to module functions', function()
    for i, name in ipairs(sorted_functions(flare)) do
      it('flare.' .. name, function()
        local state = save_state()
        local bad, n = sweep(name, flare[name], arglists(false, i))
        restore_state(state)
        total = total + n
        assert(#bad == 0, table.concat(bad, '\n'))
      end)
    end
  end)

  describe('to tensor methods', function()
    for i, name in ipairs(sorted_functions(flare._methods)) do
      it('x:' .. name, function()
        local state = save_state()
        -- a method whose self is not a tensor can never succeed
        local bad, n = sweep(name, flare._methods[name], arglists(true, i),
                             function(a) return not a.self_is_tensor end)
        restore_state(state)
        total = total + n
        assert(#bad == 0, table.concat(bad, '\n'))
      end)
    end
  end)

  -- the public Lua parts of the library that have no side effects beyond their results
  -- (flare.format is the printer's internals, called by tostring, not by users)
  for _, sub in ipairs { 'autograd', 'nn', 'optim' } do
    if type(flare[sub]) == 'table' then
      describe('to flare.' .. sub, function()
        for i, name in ipairs(sorted_functions(flare[sub])) do
          it(name, function()
            local state = save_state()
            local bad, n = sweep(name, flare[sub][name], arglists(false, i))
            restore_state(state)
            total = total + n
            assert(#bad == 0, table.concat(bad, '\n'))
          end)
        end
      end)
    end
  end

  describe('to the metatable', function()
    local names = {}
    for k, v in pairs(flare._metatable) do
      -- __gc and __close free the tensor: they are exercised through the closed tensor
      if type(v) == 'function' and k ~= '__gc' and k ~= '__close' then names[#names + 1] = k end
    end
    table.sort(names)
    for i, name in ipairs(names) do
      it(name, function()
        local bad, n = sweep(name:sub(3), flare._metatable[name], arglists(false, i))
        total = total + n
        assert(#bad == 0, table.concat(bad, '\n'))
      end)
    end
  end)

  it('to x[i] and x[i] = v', function()
    local keys = {}
    for _, v in ipairs(VALUES) do keys[#keys + 1] = v end
    for _, k in ipairs {
      { '{{}}', { {} } }, { '{1, {}}', { 1, {} } }, { '{{1, 2}, 1}', { { 1, 2 }, 1 } },
      { '{{0}}', { { 0 } } }, { '{{-5, 2}}', { { -5, 2 } } }, { '{{2, 1}}', { { 2, 1 } } },
      { '{{1, 2, 0}}', { { 1, 2, 0 } } }, { '{{1, 2, -1}}', { { 1, 2, -1 } } },
      { '{1, 1, 1}', { 1, 1, 1 } }, { '{true}', { true } }, { "{'abc'}", { 'abc' } },
      { '{{1<<40}}', { { 1 << 40 } } }, { '{mininteger}', { math.mininteger } },
      { '{nan}', { 0 / 0 } },
    } do
      keys[#keys + 1] = k
    end
    local bad, n = {}, 0
    for i, k in ipairs(keys) do
      for j, t in ipairs(tensors()) do   -- fresh: assignments change them
        if k[1] ~= 'nil' then
          n = n + 2
          local x, key = t[2], k[2]
          local ok, msg = pcall(function() return x[key] end)
          if not ok and not readable(msg, 'index') then
            bad[#bad + 1] = string.format('(%s)[%s]: %s', t[1], k[1], tostring(msg))
          end
          local v = SHORT[(i + j) % #SHORT + 1]
          ok, msg = pcall(function() x[key] = v[2] end)
          if not ok and not readable(msg, 'index') then
            bad[#bad + 1] = string.format('(%s)[%s] = %s: %s', t[1], k[1], v[1], tostring(msg))
          end
        end
      end
      -- tensors as indices: index tensors and masks of every dtype
      local ts = tensors()
      for j, t in ipairs(ts) do
        local x, key = ts[(i + j) % 5 + 1][2], t[2]
        n = n + 1
        local ok, msg = pcall(function() return x[key] end)
        if not ok and not readable(msg, 'index') then
          bad[#bad + 1] = string.format('x[%s]: %s', t[1], tostring(msg))
        end
      end
    end
    total = total + n
    assert(#bad == 0, table.concat(bad, '\n', 1, math.min(#bad, 20)))
  end)

  it('made well over 200 hostile calls', function()
    assert.is_true(total > 200, 'only ' .. total .. ' calls')
  end)
end)

-- ---------------------------------------------------------------- hand-written cases

local function fails(pattern, fn, ...)
  local ok, msg = pcall(fn, ...)
  assert(not ok, 'expected an error matching "' .. pattern .. '", but the call succeeded')
  assert(type(msg) == 'string', 'error is a ' .. type(msg))
  assert(msg:find(pattern), 'error "' .. msg .. '" does not match "' .. pattern .. '"')
  return msg
end

describe('hostile input, by hand', function()
  it('refuses sizes beyond memory with an out-of-memory error', function()
    fails('out of memory', flare.zeros, 2 ^ 40)
    fails('out of memory', flare.zeros, 1 << 40)
    fails('out of memory', flare.ones, { 1 << 20, 1 << 20 })
    fails('too large', flare.empty, 1 << 62)
    fails('out of memory', flare.randn, 1 << 40, { dtype = 'float64' })
    fails('out of memory', flare.full, { 1 << 40 }, 7)
    fails('out of memory', flare.eye, 1 << 20)
    fails('out of memory', flare.randperm, 1 << 40)
    fails('out of memory', flare.linspace, 0, 1, 1 << 40)
    fails('out of memory', flare.arange, 0, 2 ^ 45)
    fails('too many', flare.arange, 0, 1e308)
    if flare._methods.expand then   -- a view of 2^40 elements is fine; a copy of it is not
      local big = flare.zeros(1):expand(1 << 40)
      assert.equal(1 << 40, big:numel())
      fails('out of memory', flare.zeros_like, big)
      fails('out of memory', function() return big + 1 end)
    end
  end)

  it('refuses sizes whose product overflows', function()
    fails('too many elements', flare.zeros, 1 << 32, 1 << 32)
    fails('too many elements', flare.zeros, math.maxinteger, 2)
    fails('too many elements', flare.zeros, { math.maxinteger, math.maxinteger, 4 })
  end)

  it('refuses negative, fractional and non-number sizes', function()
    fails('non%-negative', flare.zeros, -1)
    fails('non%-negative', flare.zeros, { 2, -3 })
    fails('integer', flare.zeros, 1.5)
    fails('integer', flare.zeros, 0 / 0)
    fails('integer', flare.zeros, math.huge)
    fails('integer', flare.ones, 2, 2.5)
    fails('bad argument', flare.zeros, '3')
    fails('bad argument', flare.zeros, true)
    fails('bad argument', flare.zeros, { 'a' })
    fails('at most', flare.zeros, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    fails('non%-negative', flare.eye, -1)
    fails('non%-negative', flare.randperm, -1)
    fails('randint', flare.randint, 10, 0, { 3 })
    fails('non%-negative', flare.randint, 0, 10, { -1 })
    fails('size table', flare.randint, 0, 10)
  end)

  it('draws integers over the whole int64 range', function()
    local x = flare.zeros(64, { dtype = 'int64' }):random_(math.mininteger, math.maxinteger)
    assert.equal(64, x:numel())
    assert.equal(64, flare.randint(math.mininteger, math.maxinteger, { 64 }):numel())
  end)

  it('accepts empty sizes', function()
    assert.equal(0, flare.zeros(0):numel())
    assert.equal(0, flare.ones({ 3, 0, 2 }):numel())
    assert.equal(0, flare.zeros(1 << 40, 0):numel())   -- no bytes needed
    assert.equal(0, flare.tensor({}):numel())
    assert.equal(0, flare.eye(0):numel())
    assert.equal(0, flare.randperm(0):numel())
  end)

  it('refuses bad nested tables in flare.tensor', function()
    fails('ragged', flare.tensor, { { 1 }, { 1, 2 } })
    fails('ragged', flare.tensor, { { 1 }, 2 })
    fails('tensor', flare.tensor, { 'a' })
    fails('tensor', flare.tensor, { { io.stdout } })
    local cycle = {}
    cycle[1] = cycle
    fails('at most', flare.tensor, cycle)
    fails('bad argument', flare.tensor, nil)
    fails('bad argument', flare.tensor, 'abc')
    fails('dtype', flare.tensor, { 1, 2 }, { dtype = 'float16' })
  end)

  it('refuses non-finite range bounds and steps', function()
    fails('finite', flare.arange, 0 / 0)
    fails('finite', flare.arange, 0, math.huge)
    fails('finite', flare.arange, 0, 10, -math.huge)
    fails('arange', flare.arange, 0, 10, 0)
    fails('finite', flare.linspace, 0, 0 / 0, 3)
    fails('linspace', flare.linspace, 0, 1, -1)
    fails('integer', flare.linspace, 0, 1, 2.5)
  end)

  it('refuses unknown dtypes and devices', function()
    fails('dtype', flare.zeros, 2, { dtype = 'nope' })
    fails('dtype', flare.zeros, 2, { dtype = 3 })
    fails('device', flare.zeros, 2, { device = 'tpu' })
    fails('cuda', flare.zeros, 2, { device = 'cuda' })   -- not built or not present: an error
    fails('cuda', flare.zeros, 2, { device = 'cuda:abc' })
    fails('floating', flare.randn, 2, { dtype = 'int64' })
    fails('floating', flare.rand, 2, { dtype = 'bool' })
    local x = flare.zeros(2)
    fails('dtype', x.to, x, 'float16')
    fails('dtype', x.to, x, { dtype = 'nope' })
    fails('bad argument', x.to, x, 42)
  end)

  it('refuses bad indices', function()
    local x = flare.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
    fails('out of range', function() return x[0] end)
    fails('out of range', function() return x[3] end)
    fails('out of range', function() return x[-3] end)
    fails('out of range', function() return x[math.mininteger] end)
    fails('integer', function() return x[1.5] end)
    fails('integer', function() return x[0 / 0] end)
    fails('bad argument', function() return x[true] end)
    fails('out of range', function() x[3] = 1 end)
    fails('bad argument', function() x[1] = 'abc' end)
    fails('bad argument', function() x[1] = {} end)
    fails('cannot set field', function() x.foo = 1 end)
    fails('0%-dim', function() return flare.tensor(1)[1] end)
    fails('0%-dim', function() return #flare.tensor(1) end)
    fails('out of range', function() return flare.zeros(0)[1] end)
    assert.is_nil(x.no_such_method)
    assert.are.same({ { 1, 2, 3 }, { 4, 5, 6 } }, x:totable())   -- untouched by the failures
  end)

  it('refuses bad operands to the operators', function()
    local x, y = flare.ones(2, 3), flare.ones(4)
    local msg = fails('bad argument', function() return x + 'abc' end)
    assert.is_truthy(msg:find('Tensor or number'))
    fails('bad argument', function() return 'abc' + x end)
    fails('bad argument', function() return x * {} end)
    fails('bad argument', function() return x - io.stdout end)
    fails('bad argument', function() return x / nil end)
    msg = fails('broadcast', function() return x + y end)
    assert.is_truthy(msg:find('[2, 3]', 1, true) and msg:find('[4]', 1, true), msg)
    fails('broadcast', function() return x:add_(flare.ones(3, 3)) end)
    -- valid, if odd: numbers of any kind, booleans, empty and 0-dim operands
    assert.equal(6, (x + 0 / 0):numel())
    assert.equal(6, (x * math.huge):numel())
    assert.equal(6, (x + true):numel())
    assert.equal(0, (flare.zeros(0) + flare.zeros(0)):numel())
    assert.equal(6, (x + flare.tensor(2)):numel())
  end)

  it('refuses bad element access and copies', function()
    local x = flare.ones(2, 3)
    fails('one element', x.item, x)
    fails('one element', flare.zeros(0).item, flare.zeros(0))
    fails('copy_', x.copy_, x, flare.ones(4))
    fails('bad argument', x.copy_, x, 3)
    fails('bad argument', x.fill_, x, 'abc')
    fails('bad argument', x.fill_, x)
    fails('bad argument', x.size, x, 'a')
    fails('out of range', x.size, x, 3)
    fails('out of range', x.size, x, 0)
    fails('bad argument', x.size, x, 1.5)
  end)

  it('refuses bad thread counts, seeds and generator states', function()
    local threads, rng = flare.get_num_threads(), flare.get_rng_state()
    fails('thread count', flare.set_num_threads, 0)
    fails('thread count', flare.set_num_threads, 100000)
    fails('integer', flare.set_num_threads, 1.5)
    fails('bad argument', flare.set_num_threads, 'abc')
    fails('integer', flare.manual_seed, 0 / 0)
    fails('bad argument', flare.manual_seed, 'abc')
    fails('bad argument', flare.manual_seed)
    fails('bad argument', flare.set_rng_state, {})
    fails('bad argument', flare.set_rng_state, { seed = 1.5, offset = 0 })
    fails('bad argument', flare.set_rng_state, 7)
    assert.equal(threads, flare.get_num_threads())
    flare.set_rng_state(rng)
  end)

  it('refuses non-callables in the helpers that take a function', function()
    for _, name in ipairs { 'timeit', 'uninterruptible', 'no_grad', 'enable_grad' } do
      local f = flare[name]
      if f then
        for _, v in ipairs { 'abc', 42, {}, io.stdout } do
          local ok, msg = pcall(f, v, 1)
          assert(ok or readable(msg, name), name .. '(' .. tostring(v) .. ', 1): ' .. tostring(msg))
        end
      end
    end
    if flare.set_grad_enabled then flare.set_grad_enabled(true) end
  end)

  it('refuses a tensor freed by a to-be-closed variable', function()
    local y
    do
      local x <close> = flare.ones(2, 3)
      y = x
    end
    fails('bad argument', y.numel, y)
    fails('bad argument', y.totable, y)
    fails('bad argument', function() return y + 1 end)
    fails('bad argument', function() return 1 + y end)
    fails('bad argument', function() return y[1] end)
    fails('bad argument', flare.zeros_like, y)
    fails('bad argument', flare.ones(2, 3).copy_, flare.ones(2, 3), y)
    getmetatable(y).__gc(y)   -- a second release is harmless
    getmetatable(y).__close(y)
  end)

  it('prints every kind of tensor', function()
    for _, t in ipairs(tensors()) do
      if t[1] == 'closed tensor' then goto continue end
      local s = tostring(t[2])
      assert.equal('string', type(s), t[1])
      local ok, tab = pcall(t[2].totable, t[2])
      assert(ok, t[1] .. ': ' .. tostring(tab))
      ::continue::
    end
  end)

  it('casts nan and inf to every dtype without crashing', function()
    local x = flare.tensor({ 0 / 0, math.huge, -math.huge, 1e30, -1e30 }, { dtype = 'float64' })
    for _, dt in ipairs(DTYPES) do
      assert.equal(5, x:to(dt):numel())
    end
  end)

  it('leaves the library working and every tensor byte freed after the sweep', function()
    collectgarbage()
    collectgarbage()
    local before = flare.bytes_allocated()
    do
      local state = save_state()
      local names = sorted_functions(flare._methods)
      for i = 1, #names, 5 do   -- a sample: the sweeps above checked the messages
        sweep(names[i], flare._methods[names[i]], arglists(true, i + 1))
      end
      restore_state(state)
    end
    collectgarbage()
    collectgarbage()
    assert.equal(before, flare.bytes_allocated())
    assert.are.same({ 3, 3 }, (flare.ones(2) + 2):totable())
  end)
end)
