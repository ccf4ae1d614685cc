-- flare.save / flare.load and safetensors files: round trips of every dtype and shape,
-- nested tables and exact numbers, files PyTorch wrote (spec/fixtures/serialize, from
-- gen_serialize.py, whose --check mode reads flare's files back in Python), models rebuilt
-- from their description (also in a fresh process), checkpoint-like tables, one test per
-- kind of damaged file, the JSON reader, and atomic writes (a process killed while saving).
local flare = require 'flare'
local nn = require 'flare.nn'
local optim = require 'flare.optim'
local S = require 'flare.serialize'
local fixture = require 'support.fixture'

local save, load = flare.save or S.save, flare.load or S.load

local interp = os.getenv('FLARE_SANITIZED') and 'build/asan/bin/flare' or 'lua5.4'
local lua_env = "LUA_PATH='stdlib/?.lua;stdlib/?/init.lua;;' LUA_CPATH='build/?.so;;' "

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read('a')
  local ok = p:close()
  return out, ok
end

local dir = sh('mktemp -d'):gsub('%s+$', '')
teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

local function write(path, bytes)
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
end

local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

local function listdir(d)
  local names = {}
  for line in sh("ls -A '" .. d .. "'"):gmatch('[^\n]+') do names[#names + 1] = line end
  table.sort(names)
  return names
end

local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, 'expected an error')
  return tostring(err)
end

local function plain(s) return (s:gsub('%p', '%%%0')) end

-- The elements of t, flat, as Lua values.
local function flat(t)
  if t:dim() == 0 then return { t:item() } end
  if t:numel() == 0 then return {} end
  return t:contiguous():reshape(t:numel()):totable()
end

-- Same dtype, shape and values, bit for bit where it matters: NaN matches NaN, -0 only -0.
local function assert_same(want, got, what)
  what = what or 'tensor'
  assert(flare.is_tensor(got), what .. ': expected a tensor, got ' .. type(got))
  assert.equal(want:dtype(), got:dtype(), what .. ' dtype')
  assert.same(want:size(), got:size(), what .. ' shape')
  local a, b = flat(want), flat(got)
  assert.equal(#a, #b)
  for i = 1, #a do
    local x, y = a[i], b[i]
    local same = x == y or (x ~= x and y ~= y)
    if same and type(x) == 'number' and x == 0 and math.type(x) == 'float' then same = 1 / x == 1 / y end
    if not same then error(string.format('%s element %d: expected %s, got %s', what, i, tostring(x), tostring(y)), 2) end
  end
end

-- A tensor of the given dtype and shape, with the awkward values of that dtype first.
local specials = {
  float32 = { 0 / 0, math.huge, -math.huge, -0.0, 1e-40, 3.4028234663852886e38, 0.1 },
  float64 = { 0 / 0, math.huge, -math.huge, -0.0, 5e-324, 1.7976931348623157e308, 0.1 },
  int64 = { math.mininteger, math.maxinteger, -1, 0, (1 << 53) + 1 },
  int32 = { -2147483648, 2147483647, -1, 0 },
  uint8 = { 0, 255, 128, 1 },
  bool = { true, false, false, true },
}
local function sample(dtype, shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local vals, sp = {}, specials[dtype]
  for i = 1, math.max(n, 1) do
    local v = sp[i]
    if v == nil then
      if dtype == 'bool' then v = i % 3 == 0
      elseif dtype == 'uint8' then v = (i * 37) % 256
      elseif dtype == 'float32' or dtype == 'float64' then v = (i * 0.37 - 3) / 7
      else v = i * 1000003 - 7 end
    end
    vals[i] = v
  end
  if #shape == 0 then return flare.tensor(vals[1], { dtype = dtype }) end
  if n == 0 then return flare.zeros(shape, { dtype = dtype }) end
  return flare.tensor(vals, { dtype = dtype }):reshape(shape)
end

local function st_file(header, data)
  return string.pack('<I8', #header) .. header .. (data or '')
end

-- ---------------------------------------------------------------- round trips

describe('round trips', function()
  local dtypes = { 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }
  local shapes = { {}, { 0 }, { 7 }, { 2, 3 }, { 2, 0, 3 }, { 1, 2, 1, 2, 3 }, { 3, 1, 1, 1, 1, 1, 1, 2 } }

  it('every dtype and shape (0-dim and zero-size included), bit for bit', function()
    local path = dir .. '/t.safetensors'
    for _, dt in ipairs(dtypes) do
      for _, shape in ipairs(shapes) do
        local t = sample(dt, shape)
        save(path, t)
        assert_same(t, load(path), dt .. ' ' .. table.concat(shape, 'x'))
      end
    end
  end)

  it('a table of every dtype and shape in one file', function()
    local path = dir .. '/all.safetensors'
    local all = {}
    for _, dt in ipairs(dtypes) do
      for i, shape in ipairs(shapes) do all[dt .. '_' .. i] = sample(dt, shape) end
    end
    save(path, all)
    local back = load(path)
    for k, t in pairs(all) do assert_same(t, back[k], k) end
    for k in pairs(back) do assert.is_not_nil(all[k], k) end
  end)

  it('non-contiguous tensors are written contiguously', function()
    local base = flare.arange(0, 24, 1, { dtype = 'float64' }):reshape(4, 6)
    local views = { t = base:t(), narrow = base:narrow(2, 2, 3), row = base[3], expanded = flare.arange(0, 3):expand(4, 3),
                    permuted = flare.arange(0, 24):reshape(2, 3, 4):permute(3, 1, 2) }
    local path = dir .. '/views.safetensors'
    save(path, views)
    local back = load(path)
    for k, v in pairs(views) do
      assert_same(v:contiguous(), back[k], k)
      assert.is_true(back[k]:is_contiguous())
    end
    -- the views' storage was not written: the file holds just the visible elements
    local _, _, names = S.read_safetensors(path)
    assert.equal(5, #names)
    assert.is_true(#read(path) < 8 + 1000 + (18 + 12 + 6 + 12 + 24) * 8)
  end)

  it('loaded tensors are new, writable and independent of the saved ones', function()
    local t = flare.ones(4)
    local path = dir .. '/indep.safetensors'
    save(path, t)
    local a, b = load(path), load(path)
    a:fill_(5)
    assert.same({ 1, 1, 1, 1 }, b:totable())
    assert.same({ 1, 1, 1, 1 }, t:totable())
  end)

  it('nested tables, numbers, strings and booleans exactly', function()
    local shared = flare.randn(3)
    local value = {
      ints = { 0, -1, math.maxinteger, math.mininteger, (1 << 53) + 1 },
      floats = { 0.1, 1.0, -0.0, 1e300, 5e-324, 2 ^ 53, 1 / 3, math.huge, -math.huge },
      nan = 0 / 0,
      strings = { '', 'plain', 'quote " backslash \\ slash /', 'nul \0 byte', 'tab\tnewline\n', 'é ü 😀',
                  '\xff\xfe not utf-8', '\127' },
      flags = { true, false },
      ['$dollar'] = 'a key starting with $', ['$$two'] = 2,
      sparse = { [1] = 'a', [3] = 'c', [-2] = 'negative', n = 3 },
      mixed = { 10, 20, name = 'x', [2.5] = 'float key', [true] = 'bool key' },
      empty = {},
      deep = { a = { b = { c = { d = { e = flare.tensor({ 1, 2 }, { dtype = 'int32' }) } } } } },
      list = { shared, shared, flare.zeros(0) },
      [7] = 'an integer key at the top',
    }
    local path = dir .. '/nested.safetensors'
    save(path, value)
    local back = load(path)
    for i, v in ipairs(value.ints) do
      assert.equal(v, back.ints[i])
      assert.equal('integer', math.type(back.ints[i]))
    end
    for i, v in ipairs(value.floats) do
      assert.equal('float', math.type(back.floats[i]), 'float ' .. i)
      assert.equal(v, back.floats[i])
    end
    assert.equal(-math.huge, 1 / back.floats[3])
    assert.is_true(back.nan ~= back.nan)
    assert.same(value.strings, back.strings)
    assert.same(value.flags, back.flags)
    assert.equal('a key starting with $', back['$dollar'])
    assert.equal(2, back['$$two'])
    assert.same(value.sparse, back.sparse)
    assert.same(value.mixed, back.mixed)
    assert.same({}, back.empty)
    assert_same(value.deep.a.b.c.d.e, back.deep.a.b.c.d.e)
    assert.equal('an integer key at the top', back[7])
    -- a tensor met twice is stored once and comes back as one tensor
    assert_same(shared, back.list[1])
    assert.equal(back.list[1], back.list[2])
    assert_same(flare.zeros(0), back.list[3])
  end)

  it('names tensors by their dotted path, so a flat state dict is a PyTorch state dict', function()
    local path = dir .. '/names.safetensors'
    save(path, { model = { ['0.weight'] = flare.ones(2, 2), ['0.bias'] = flare.zeros(2) }, list = { flare.ones(1) },
                 scale = flare.tensor(2.0) })
    local tensors, meta, names = S.read_safetensors(path)
    table.sort(names)
    assert.same({ 'list.1', 'model.0.bias', 'model.0.weight', 'scale' }, names)
    assert.equal('pt', meta.format)
    assert_same(flare.ones(2, 2), tensors['model.0.weight'])
    -- a single tensor is called 'tensor'
    save(path, flare.ones(3))
    local _, _, n2 = S.read_safetensors(path)
    assert.same({ 'tensor' }, n2)
  end)

  it('keeps requires_grad on tensors saved in tables', function()
    local w = flare.randn(2, 2, { requires_grad = true })
    local path = dir .. '/grad.safetensors'
    save(path, { w = w, c = flare.ones(2) })
    local back = load(path)
    assert.is_true(back.w:wants_grad())
    assert.is_true(back.w.is_leaf)
    assert.is_false(back.c:wants_grad())
    assert_same(w:detach(), back.w:detach())
  end)

  it('accepts extra string metadata, and save(value, path) as DESIGN.md writes it', function()
    local path = dir .. '/meta.safetensors'
    save(path, { a = flare.ones(1) }, { metadata = { format = 'pt', note = 'hello' } })
    local _, meta = S.read_safetensors(path)
    assert.equal('hello', meta.note)
    save(flare.ones(2), path)
    assert_same(flare.ones(2), load(path))
    assert.matches("metadata key 'flare' is flare's own", error_of(save, path, {}, { metadata = { flare = 'x' } }))
  end)

  it('refuses what a file cannot hold, naming where it is', function()
    local path = dir .. '/refused.safetensors'
    assert.matches('f: a function cannot be saved', error_of(save, path, { f = print }))
    assert.matches('co: a thread cannot be saved', error_of(save, path, { co = coroutine.create(print) }))
    local cyc = {}
    cyc.a = { b = cyc }
    assert.matches('a%.b: the table contains itself', error_of(save, path, cyc))
    assert.matches('opt: a optim%.Adam object cannot be saved.*state_dict',
      error_of(save, path, { opt = optim.Adam({ flare.zeros(1, { requires_grad = true }) }) }))
    assert.matches('a key of type table cannot be saved', error_of(save, path, { [{}] = 1 }))
    assert.matches("bad argument #2 to 'save'", error_of(save, path, nil))
    assert.matches("bad argument #1 to 'save'", error_of(save, '', 1))
    assert.is_false(exists(path))
  end)

  it('plain safetensors files: write_safetensors and read_safetensors', function()
    local path = dir .. '/plain.safetensors'
    S.write_safetensors(path, { b = flare.ones(2), a = flare.zeros(1, { dtype = 'int64' }) }, { format = 'pt' })
    local t, meta, names = S.read_safetensors(path)
    assert.same({ 'a', 'b' }, names)       -- int64 first (the reference order), then by name
    assert.same({ format = 'pt' }, meta)
    assert_same(flare.ones(2), t.b)
    -- no description: flare.load gives the table name -> tensor
    local back = load(path)
    assert_same(flare.zeros(1, { dtype = 'int64' }), back.a)
    assert.matches("'__metadata__' is reserved", error_of(S.write_safetensors, path, { __metadata__ = flare.ones(1) }))
    assert.matches('not valid UTF%-8', error_of(S.write_safetensors, path, { ['\xff'] = flare.ones(1) }))
  end)
end)

describe('the C layer (flare._safetensors_*, flare._json_decode)', function()
  it('refuses bad arguments with a message, writing nothing', function()
    local p = dir .. '/c_layer.safetensors'
    assert.matches('2 names and 1 tensors', error_of(flare._safetensors_write, p, { 'a', 'b' }, { flare.ones(1) }))
    assert.matches('tensors 1 is a number, expected a tensor', error_of(flare._safetensors_write, p, { 'a' }, { 1 }))
    assert.matches('names 1 is a boolean, expected a string', error_of(flare._safetensors_write, p, { true }, { flare.ones(1) }))
    assert.matches('metadata values 1 is a number', error_of(flare._safetensors_write, p, {}, {}, { 'k' }, { 1 }))
    assert.matches('given twice', error_of(flare._safetensors_write, p, {}, {}, { 'k', 'k' }, { '1', '2' }))
    assert.matches('two tensors are named', error_of(flare._safetensors_write, p, { 'a', 'a' }, { flare.ones(1), flare.ones(1) }))
    assert.matches('table expected', error_of(flare._safetensors_write, p, 'a', {}))
    assert.is_false(exists(p))
    assert.matches('string expected', error_of(flare._safetensors_read, {}))
    assert.matches('string expected', error_of(flare._json_decode, {}))
  end)
end)

-- ---------------------------------------------------------------- files PyTorch wrote

describe('files written by PyTorch', function()
  local fx = fixture.load('serialize')

  local function expected(e)
    local data = {}
    for i, v in ipairs(e.data) do data[i] = e.dtype == 'int64' and math.tointeger(tonumber(v)) or v end
    if #e.shape == 0 then return flare.tensor(data[1], { dtype = e.dtype }) end
    local n = 1
    for _, s in ipairs(e.shape) do n = n * s end
    if n == 0 then return flare.zeros(e.shape, { dtype = e.dtype }) end
    return flare.tensor(data, { dtype = e.dtype }):reshape(e.shape)
  end

  it('every dtype, 0-dim and zero-size, with identical values', function()
    local t = load('spec/fixtures/serialize/dtypes.safetensors')
    local n = 0
    for name, e in pairs(fx.dtypes) do
      assert_same(expected(e), t[name], name)
      n = n + 1
    end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    assert.equal(n, count)
    local _, meta = S.read_safetensors('spec/fixtures/serialize/dtypes.safetensors')
    assert.equal('gen_serialize.py', meta.written_by)
  end)

  it('widens F16, BF16, I8 and I16 to float32 and int32', function()
    local t = load('spec/fixtures/serialize/narrow.safetensors')
    for name, e in pairs(fx.narrow) do assert_same(expected(e), t[name], name) end
  end)

  it("a PyTorch model's state dict computes PyTorch's outputs in flare", function()
    local sd = load('spec/fixtures/serialize/model.safetensors')
    local m = nn.Sequential { nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3) }
    m:load_state_dict(sd)
    fixture.assert_close(m(fixture.tensor(fx.model.x)), fx.model.y, { rtol = 1e-5, atol = 1e-6 })
  end)

  it('a file with no tensors', function()
    assert.same({}, load('spec/fixtures/serialize/empty.safetensors'))
  end)

  it("flare writes the reference implementation's bytes for the same tensors", function()
    for _, name in ipairs { 'dtypes', 'model', 'empty' } do
      local src = 'spec/fixtures/serialize/' .. name .. '.safetensors'
      local t, meta = S.read_safetensors(src)
      local out = dir .. '/rewritten.safetensors'
      S.write_safetensors(out, t, meta)
      assert.is_true(read(out) == read(src), name)
    end
  end)
end)

-- ---------------------------------------------------------------- models

-- A user-defined module class (registered by name, so it can be described and rebuilt).
local Block = nn.Module:extend('SpecSerializeBlock')
function Block:init(n_in, n_out, opts)
  self.fc = nn.Linear(n_in, n_out)
  self.act = (opts and opts.act == 'tanh') and nn.Tanh() or nn.ReLU()
  self:register_buffer('scale', flare.full({ n_out }, opts and opts.scale or 1.0))
end
function Block:forward(x) return self.act(self.fc(x)) * self.scale end

describe('models', function()
  local function model()
    flare.manual_seed(11)
    local m = nn.Sequential {
      Block(6, 12, { act = 'tanh', scale = 0.5 }), nn.BatchNorm1d(12), nn.Dropout(0.3), nn.Linear(12, 4), nn.LogSoftmax(2),
    }
    m(flare.randn(16, 6))          -- training mode: moves the batch-norm statistics
    return m
  end

  it('save a model and load it back: architecture, parameters, buffers, mode', function()
    local m = model()
    m:eval()
    m[4].bias:requires_grad(false)   -- a frozen parameter stays frozen
    local path = dir .. '/model.safetensors'
    save(path, m)
    local m2 = load(path)
    assert.equal(tostring(m), tostring(m2))
    assert.is_false(m2.training)
    assert.is_false(m2[3].training)
    assert.is_false(m2[4].bias:wants_grad())
    assert.is_true(m2[4].weight:wants_grad())
    for k, t in pairs(m:state_dict()) do assert_same(t, m2:state_dict()[k], k) end
    local x = flare.randn(5, 6)
    assert_same(m(x):detach(), m2(x):detach())
    -- training mode is kept too
    m:train()
    save(path, m)
    assert.is_true(load(path).training)
  end)

  it('a float64 model comes back in float64', function()
    local m = nn.Sequential { nn.Linear(3, 2), nn.Tanh() }:double()
    local path = dir .. '/double.safetensors'
    save(path, m)
    local m2 = load(path)
    assert.equal('float64', m2[1].weight:dtype())
    assert_same(m[1].weight:detach(), m2[1].weight:detach())
  end)

  it('PyTorch reads the state dict of a saved model under its usual names', function()
    local path = dir .. '/model_names.safetensors'
    save(path, nn.Sequential { nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1) })
    local t, meta = S.read_safetensors(path)
    local names = {}
    for k in pairs(t) do names[#names + 1] = k end
    table.sort(names)
    assert.same({ '0.bias', '0.weight', '2.bias', '2.weight' }, names)
    assert.equal('pt', meta.format)
    local desc = S.json_decode(meta.flare)
    assert.equal('Sequential', desc.object['$module'].describe.type)
  end)

  it('a model saved by one process runs identically in a fresh one', function()
    local m = model()
    m:eval()
    local x = flare.randn(7, 6)
    save(dir .. '/m.safetensors', m)
    save(dir .. '/x.safetensors', x)
    local script = dir .. '/run_model.lua'
    write(script, [[
local flare = require 'flare'
local S = require 'flare.serialize'
local save, load = flare.save or S.save, flare.load or S.load
-- the user's class must be defined before loading (the file holds no code)
local nn = require 'flare.nn'
local Block = nn.Module:extend('SpecSerializeBlock')
function Block:init(n_in, n_out, opts)
  self.fc = nn.Linear(n_in, n_out)
  self.act = (opts and opts.act == 'tanh') and nn.Tanh() or nn.ReLU()
  self:register_buffer('scale', flare.full({ n_out }, opts and opts.scale or 1.0))
end
function Block:forward(x) return self.act(self.fc(x)) * self.scale end
local dir = arg[1]
local m = load(dir .. '/m.safetensors')
assert(not m.training, 'eval mode was not restored')
save(dir .. '/y.safetensors', { y = m(load(dir .. '/x.safetensors')):detach(), text = tostring(m) })
]])
    local out, ok = sh(lua_env .. interp .. ' ' .. script .. " '" .. dir .. "' 2>&1")
    assert(ok, out)
    local r = load(dir .. '/y.safetensors')
    assert.equal(tostring(m), r.text)
    assert_same(m(x):detach(), r.y)
  end)

  it('a class that is not registered is an error naming it; nothing runs', function()
    local path = dir .. '/user.safetensors'
    save(path, Block(2, 2))
    local saved = nn.registry.SpecSerializeBlock
    nn.registry.SpecSerializeBlock = nil
    local err = error_of(load, path)
    nn.registry.SpecSerializeBlock = saved
    assert.matches("load: '" .. plain(path) .. "': cannot rebuild the model: .*unknown module class SpecSerializeBlock", err)
    assert.equal('SpecSerializeBlock', getmetatable(load(path))._class_name)
    -- a description naming anything but a registered class is refused the same way
    local header = '{"__metadata__":{"flare":"{\\"version\\":1,\\"object\\":{\\"$module\\":{\\"describe\\":' ..
      '{\\"type\\":\\"os.execute\\",\\"args\\":[\\"touch ' .. dir .. '/pwned\\"]},\\"state\\":{}}}}"}}'
    write(path, st_file(header))
    assert.matches('unknown module class os%.execute', error_of(load, path))
    assert.is_false(exists(dir .. '/pwned'))
  end)

  it('a description that asks for more memory than its weights is refused before allocating it', function()
    local path = dir .. '/huge.safetensors'
    -- Linear(40000, 40000): 6.4 GB of weights, described in a file that holds none
    local header = '{"__metadata__":{"flare":"{\\"version\\":1,\\"object\\":{\\"$module\\":{\\"describe\\":' ..
      '{\\"type\\":\\"Linear\\",\\"args\\":[40000,40000]},\\"state\\":{}}}}"}}'
    write(path, st_file(header))
    local before = flare.bytes_allocated()
    assert.matches('cannot rebuild the model: .*allocation budget exceeded', error_of(load, path))
    assert.is_true(flare.bytes_allocated() - before < (64 << 20))
    assert.is_nil(flare._set_alloc_budget(nil))   -- the cap is lifted afterwards
    -- the same model with its weights in the file loads (the budget follows the weights)
    local m = nn.Linear(300, 200)
    save(path, m)
    assert_same(m.weight, load(path).weight)
  end)

  it('deeply nested containers', function()
    local m = nn.Linear(2, 2)
    for _ = 1, 40 do m = nn.Sequential { m } end
    local path = dir .. '/deep.safetensors'
    save(path, m)
    local x = flare.randn(3, 2)
    assert_same(m(x):detach(), load(path)(x):detach())
  end)

  it('a model that cannot be described is an error before anything is written', function()
    local Anon = nn.Module:extend()
    function Anon:init() self.fc = nn.Linear(1, 1) end
    local path = dir .. '/anon.safetensors'
    assert.matches('not a registered module class', error_of(save, path, Anon()))
    assert.is_false(exists(path))
  end)

  it('a checkpoint-like table: model, optimizer state, RNG state, numbers; training goes on identically', function()
    local function step(m, opt, x)
      opt:zero_grad()
      local y = m(x)
      local loss = (y * y):sum()
      loss:backward()
      opt:step()
    end
    flare.manual_seed(5)
    local m = nn.Sequential { nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2) }
    local opt = optim.Adam(m:parameters(), { lr = 0.01, betas = { 0.8, 0.99 } })
    local x = flare.randn(6, 3)
    step(m, opt, x)
    step(m, opt, x)
    local path = dir .. '/ck.safetensors'
    save(path, { model = m, optimizer = opt:state_dict(), rng = flare.get_rng_state(), epoch = 2, loss = 0.25 })
    local ck = load(path)
    assert.equal(2, ck.epoch)
    assert.equal(0.25, ck.loss)
    assert.same(flare.get_rng_state(), ck.rng)
    local m2 = ck.model
    local opt2 = optim.Adam(m2:parameters(), { lr = 0.5 })
    opt2:load_state_dict(ck.optimizer)
    assert.equal(0.01, opt2.param_groups[1].lr)
    step(m, opt, x)
    step(m2, opt2, x)
    for k, t in pairs(m:state_dict()) do assert_same(t, m2:state_dict()[k], k) end
  end)
end)

-- ---------------------------------------------------------------- damaged and hostile files

describe('damaged files', function()
  local path = dir .. '/bad.safetensors'
  local P = plain(path)

  -- the error names the file and the problem, and nothing allocated stays allocated
  local function rejects(bytes, pattern)
    write(path, bytes)
    collectgarbage()
    local before = flare.bytes_allocated()
    local err = error_of(load, path)
    assert.matches("load: '" .. P .. "'", err)
    assert.matches(pattern, err)
    collectgarbage()
    assert.equal(before, flare.bytes_allocated())
    return err
  end

  local function tensor(name, dtype, shape, b, e)
    return string.format('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}', name, dtype,
      table.concat(shape, ','), b, e)
  end

  it('short files', function()
    rejects('', 'too short to be a safetensors file: 0 bytes')
    rejects('\1\0\0', 'too short to be a safetensors file: 3 bytes')
  end)

  it('a header running past the end of the file', function()
    rejects(string.pack('<I8', 100) .. '{}', 'the header runs past the end of the file: 100 bytes declared, the file has 2')
  end)

  it('a header too large (> 100 MB)', function()
    rejects(string.pack('<I8', 100000001) .. '{}', 'the header is too large: 100000001 bytes declared, at most 100000000')
    rejects(string.pack('<I8', math.mininteger) .. '{}', 'the header is too large')
  end)

  it('invalid JSON', function()
    rejects(st_file('{"a":'), 'invalid JSON in the header: at byte 5: expected a value, got the end')
    rejects(st_file('{' .. tensor('a', 'F32', { 1 }, 0, 4) .. ',}', '\0\0\0\0'), "invalid JSON.*expected a value after ','")
    rejects(st_file('{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}', '\0\0\0\0'), 'invalid JSON')
    rejects(st_file('{} x'), 'invalid JSON.*expected the end of the text')
    rejects(st_file('{"\\x":1}'), "invalid JSON.*unknown escape")
    rejects(st_file('{"a":{"dtype":"F32\1","shape":[],"data_offsets":[0,4]}}', '\0\0\0\0'), 'invalid JSON.*control character')
    rejects(st_file('[]'), 'the header must be a JSON object')
    rejects(st_file('\xff{}'), 'not valid UTF%-8')
    rejects(st_file(string.rep('{"a":', 100)), 'nested more than 64 levels')
  end)

  it('unknown and unsupported dtypes', function()
    rejects(st_file('{' .. tensor('w', 'F99', { 1 }, 0, 4) .. '}', '\0\0\0\0'), "tensor 'w' has an unknown dtype 'F99'")
    rejects(st_file('{' .. tensor('w', 'U64', { 1 }, 0, 8) .. '}', string.rep('\0', 8)), "tensor 'w' has dtype U64, which flare cannot hold")
    rejects(st_file('{"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}', '\0\0\0\0'), 'dtype must be a string')
  end)

  it('shape x dtype size overflow, and sizes that do not match their offsets', function()
    rejects(st_file('{' .. tensor('w', 'F64', { 4611686018427387904, 4 }, 0, 8) .. '}', string.rep('\0', 8)),
      "tensor 'w': shape %[4611686018427387904, 4%] of F64 is too large")
    rejects(st_file('{' .. tensor('w', 'F32', { 2 }, 0, 4) .. '}', '\0\0\0\0'),
      "tensor 'w': data_offsets %[0, 4%] span 4 bytes, but shape %[2%] of F32 needs 8")
    rejects(st_file('{' .. tensor('w', 'F32', { 1 }, 4, 0) .. '}', '\0\0\0\0'), 'end before they begin')
    rejects(st_file('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', '\0\0\0\0'), 'shape must hold non%-negative integers')
    rejects(st_file('{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', '\0\0\0\0'), 'shape must hold non%-negative integers')
    rejects(st_file('{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}', '\0\0\0\0'), 'non%-negative integers')
    rejects(st_file('{' .. tensor('w', 'U8', { 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 0, 1) .. '}', '\0'), 'more than 8 dims')
  end)

  it('a declared size is never trusted: 4 GB announced in a small file', function()
    rejects(st_file('{' .. tensor('w', 'F32', { 1000000000 }, 0, 4000000000) .. '}', '\0\0\0\0'),
      "tensor 'w' runs past the data: data_offsets %[0, 4000000000%], but the data holds 4 bytes")
  end)

  it('offsets that overlap', function()
    rejects(st_file('{' .. tensor('a', 'F32', { 2 }, 0, 8) .. ',' .. tensor('b', 'F32', { 2 }, 4, 12) .. '}', string.rep('\0', 12)),
      "tensors 'a' %(bytes 0 to 8%) and 'b' %(bytes 4 to 12%) overlap")
    rejects(st_file('{' .. tensor('a', 'F32', { 2 }, 0, 8) .. ',' .. tensor('b', 'F32', { 2 }, 0, 8) .. '}', string.rep('\0', 8)),
      'overlap')
    -- a zero-size tensor inside another one's bytes
    rejects(st_file('{' .. tensor('a', 'F32', { 2 }, 0, 8) .. ',' .. tensor('e', 'F32', { 0 }, 4, 4) .. '}', string.rep('\0', 8)),
      'overlap')
  end)

  it('offsets that leave gaps', function()
    rejects(st_file('{' .. tensor('a', 'F32', { 1 }, 0, 4) .. ',' .. tensor('b', 'F32', { 1 }, 8, 12) .. '}', string.rep('\0', 12)),
      "a gap of 4 bytes between tensors 'a' %(ends at byte 4%) and 'b' %(starts at 8%)")
    rejects(st_file('{' .. tensor('a', 'F32', { 1 }, 4, 8) .. '}', string.rep('\0', 8)), "a gap of 4 bytes before the first tensor 'a'")
  end)

  it('offsets that run past the data', function()
    rejects(st_file('{' .. tensor('a', 'F32', { 2 }, 0, 8) .. '}', '\0\0\0\0'),
      "tensor 'a' runs past the data: data_offsets %[0, 8%], but the data holds 4 bytes")
  end)

  it('trailing bytes', function()
    rejects(st_file('{' .. tensor('a', 'F32', { 1 }, 0, 4) .. '}', string.rep('\0', 7)),
      '3 trailing bytes after the tensors %(they end at byte 4 of 7 bytes of data%)')
    rejects(st_file('{}', 'x'), '1 trailing bytes')
  end)

  it('duplicate names', function()
    rejects(st_file('{' .. tensor('a', 'F32', { 1 }, 0, 4) .. ',' .. tensor('a', 'F32', { 1 }, 4, 8) .. '}', string.rep('\0', 8)),
      "tensor 'a' appears twice in the header")
    rejects(st_file('{"__metadata__":{},"__metadata__":{}}'), '__metadata__ appears twice')
    rejects(st_file('{"__metadata__":{"k":"1","k":"2"}}'), "metadata key 'k' appears twice")
    rejects(st_file('{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', '\0\0\0\0'), 'dtype appears twice')
  end)

  it('other malformed entries', function()
    rejects(st_file('{"a":{"dtype":"F32","shape":[1]}}'), "tensor 'a' has no data_offsets")
    rejects(st_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}'), 'data_offsets must be %[begin, end%], got 1 number')
    rejects(st_file('{"a":[1,2]}'), "tensor 'a': expected an object")
    rejects(st_file('{"__metadata__":{"k":1}}'), "metadata value of 'k' must be a string")
    rejects(st_file('{"__metadata__":[]}'), '__metadata__ must be a JSON object of strings')
  end)

  it('fields of later versions of the format are skipped', function()
    write(path, st_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"future":{"x":[1,2,{"y":null}]}}}',
      string.pack('<f', 1.5)))
    assert.same({ 1.5 }, load(path).a:totable())
  end)

  it('a description that is damaged or refers to what is not there', function()
    local function with_flare(desc, data)
      local h = '{"__metadata__":{"flare":' .. string.format('"%s"', desc:gsub('[\\"]', '\\%0')) .. '}' ..
        (data and (',' .. tensor('t', 'F32', { 1 }, 0, 4)) or '') .. '}'
      return st_file(h, data)
    end
    rejects(with_flare('not json'), 'the description in the metadata is not valid')
    rejects(with_flare('{"object":1}'), 'has no version')
    rejects(with_flare('{"version":99,"object":1}'), 'written by a newer flare %(format version 99')
    rejects(with_flare('{"version":1,"object":{"$tensor":"missing"}}'), "refers to tensor 'missing', which the file does not hold")
    rejects(with_flare('{"version":1,"object":{"$eval":"os.exit()"}}'), 'unknown tag %$eval')
    rejects(with_flare('{"version":1,"object":{"$tensor":"t","x":1}}', '\0\0\0\0'), 'unexpected key x beside %$tensor')
    rejects(with_flare('{"version":1,"object":{"$float":"big"}}'), 'unknown %$float value big')
    rejects(with_flare('{"version":1,"object":{"$bytes":"zz"}}'), '%$bytes must hold an even number of hex digits')
    rejects(with_flare('{"version":1,"object":{"$table":[[1]]}}'), '%$table must be a list of %[key, value%] pairs')
  end)

  it('every truncation of a valid file, and damaged header bytes, are errors, never crashes', function()
    local good = dir .. '/good.safetensors'
    save(good, { w = flare.randn(3, 2), n = 3, s = 'text', b = flare.tensor({ true }, { dtype = 'bool' }) })
    local bytes = read(good)
    for n = 0, #bytes - 1 do
      write(path, bytes:sub(1, n))
      assert.is_false((pcall(load, path)), 'a file cut at ' .. n .. ' bytes loaded')
    end
    local hlen = string.unpack('<I8', bytes)
    for i = 9, 8 + hlen do
      for _, c in ipairs { '"', '{', '0', '\0', '\\', ']' } do
        write(path, bytes:sub(1, i - 1) .. c .. bytes:sub(i + 1))
        pcall(load, path)      -- an error or a value: the specs run under ASan as well
      end
    end
  end)

  it('names the file in errors about the file itself', function()
    assert.matches("load: cannot open '" .. plain(dir) .. "/nope': No such file or directory", error_of(load, dir .. '/nope'))
    assert.matches("is not a regular file", error_of(load, dir))
  end)
end)

-- ---------------------------------------------------------------- the JSON reader

describe('json_decode', function()
  local decode = S.json_decode

  it('reads JSON into Lua values', function()
    local v = decode(' {"a": [1, -2, 2.5, 1e2, -0.0, 9223372036854775807, 9223372036854775808], "s": "\\u00e9\\ud83d\\ude00\\n\\u0000\\/",' ..
      ' "t": true, "f": false, "n": null, "o": {}} ')
    assert.equal(1, v.a[1])
    assert.equal('integer', math.type(v.a[1]))
    assert.equal(-2, v.a[2])
    assert.equal(2.5, v.a[3])
    assert.equal('float', math.type(v.a[4]))
    assert.equal(-math.huge, 1 / v.a[5])
    assert.equal(math.maxinteger, v.a[6])
    assert.equal('float', math.type(v.a[7]))
    assert.equal('é😀\n\0/', v.s)
    assert.is_true(v.t)
    assert.is_false(v.f)
    assert.is_nil(v.n)
    assert.same({}, v.o)
  end)

  it('rejects malformed text with the position', function()
    local cases = {
      { '', 'at byte 0: expected a value' },
      { '[1,]', "at byte 3: expected a value after ','" },
      { '{"a" 1}', "expected ':'" },
      { '{"a":1 "b":2}', "expected ',' or '}'" },
      { '"abc', 'string never ends' },
      { '"\\ud800"', 'unpaired surrogate' },
      { '"\\u12"', 'four hex digits' },
      { '01', 'expected the end of the text' },
      { '1.', "a digit after '.'" },
      { 'tru', 'expected true, false or null' },
      { '{"a":1,"a":2}', "key 'a' appears twice" },
      { '"\xc0\xaf"', 'not valid UTF%-8' },
      { string.rep('[', 2049) .. string.rep(']', 2049), 'nested more than 2048 levels' },
    }
    for _, c in ipairs(cases) do
      assert.matches(c[2], error_of(decode, c[1]), c[1])
    end
  end)
end)

-- ---------------------------------------------------------------- atomic writes

describe('atomic writes', function()
  it('a failed save leaves the previous file whole and no temporary file', function()
    local d = dir .. '/atomic'
    os.execute("mkdir -p '" .. d .. "'")
    local path = d .. '/f.safetensors'
    save(path, { x = flare.ones(3) })
    assert.matches('f: a function cannot be saved', error_of(save, path, { x = flare.zeros(3), f = print }))
    assert_same(flare.ones(3), load(path).x)
    assert.same({ 'f.safetensors' }, listdir(d))
    assert.matches("save: cannot write '" .. plain(d) .. "/no/such/dir/f': No such file or directory",
      error_of(save, d .. '/no/such/dir/f', flare.ones(1)))
    assert.matches("cannot write '" .. plain(d) .. "/'", error_of(save, d .. '/', flare.ones(1)))
    assert.same({ 'f.safetensors' }, listdir(d))
  end)

  it('replaces a file through a symbolic link, keeping the link, and keeps permissions', function()
    local d = dir .. '/links'
    os.execute("mkdir -p '" .. d .. "/real' && chmod 600 /dev/null 2>/dev/null; true")
    local target = d .. '/real/w.safetensors'
    save(target, flare.ones(1))
    os.execute("chmod 640 '" .. target .. "' && ln -s real/w.safetensors '" .. d .. "/link'")
    save(d .. '/link', flare.full({ 2 }, 7))
    assert.equal('link', sh("find '" .. d .. "/link' -type l -printf '%f'"))
    assert_same(flare.full({ 2 }, 7), load(target))
    assert.equal('640', sh("stat -c %a '" .. target .. "'"):gsub('%s', ''))
  end)

  it('write_file_atomic replaces any file the same way', function()
    local path = dir .. '/atomic_text'
    S.write_file_atomic(path, 'first')
    S.write_file_atomic(path, 'second\0bytes')
    assert.equal('second\0bytes', read(path))
    assert.matches("write_file_atomic: cannot write '" .. plain(dir) .. "/nodir/x'", error_of(S.write_file_atomic, dir .. '/nodir/x', ''))
    assert.matches('string expected', error_of(S.write_file_atomic, path, 1))
  end)

  it('the write runs inside flare.uninterruptible (Ctrl-C waits until it is done)', function()
    local calls, real = 0, flare.uninterruptible
    flare.uninterruptible = function(f, ...)
      calls = calls + 1
      return real(f, ...)
    end
    local ok, err = pcall(save, dir .. '/u.safetensors', flare.ones(1))
    flare.uninterruptible = real
    assert(ok, err)
    assert.equal(1, calls)
  end)

  it('the next save removes the temporary file of a writer that was killed, not of a live one', function()
    local d = dir .. '/stale'
    os.execute("mkdir -p '" .. d .. "'")
    local path = d .. '/m.safetensors'
    local dead, live = d .. '/.m.safetensors.999999999.abcdef', d .. '/.m.safetensors.1.ghijkl'
    write(dead, 'half a file')
    write(live, 'another process, still writing')
    save(path, { x = flare.ones(3) })
    assert.is_false(exists(dead))
    assert.is_true(exists(live))
    assert.equal(3, load(path).x:sum():item())
  end)

  it('a process killed in the middle of saves leaves a loadable file, old or new, never mixed', function()
    local d = dir .. '/kill'
    os.execute("mkdir -p '" .. d .. "'")
    local path = d .. '/big.safetensors'
    local n = 1 << 21                       -- 8 MB a save
    save(path, { step = 0, x = flare.zeros(n) })
    local script = d .. '/saver.lua'
    write(script, [[
local flare = require 'flare'
local S = require 'flare.serialize'
local save = flare.save or S.save
local path, n, first = arg[1], math.tointeger(tonumber(arg[2])), math.tointeger(tonumber(arg[3]))
local x = flare.zeros(n)
for i = first, math.huge do
  x:fill_(i)
  save(path, { step = i, x = x })
  io.write(i, '\n')
  io.flush()
end
]])
    local function alive(pid)
      local f = io.open('/proc/' .. pid .. '/stat')
      if not f then return false end
      local stat = f:read('a')
      f:close()
      return stat:match('^%d+ %b() (%a)') ~= 'Z'
    end
    local function sleep(s) os.execute(string.format('sleep %.3f', s)) end
    math.randomseed(os.time())
    -- kill at random moments until at least two kills have landed in the middle of a write
    -- (about half of them do)
    local mid_write, last, round = 0, 0, 0
    local current                            -- the saver running, killed whatever happens
    finally(function() if current and alive(current) then os.execute('kill -9 ' .. current) end end)
    while round < 4 or (mid_write < 2 and round < 30) do
      round = round + 1
      local log = d .. '/log' .. round
      local pid = sh(lua_env .. "lua5.4 '" .. script .. "' '" .. path .. "' " .. n .. ' ' .. (last + 1) .. " > '" .. log .. "' 2>&1 & echo $!")
      pid = assert(math.tointeger(tonumber(pid)), 'no pid')
      current = pid
      assert.equal('lua5.4', sh('ps -o comm= -p ' .. pid):gsub('%s', ''))   -- the saver itself, not a shell
      local t0 = flare.clock()
      while not (exists(log) and read(log):find('\n')) do   -- it has saved at least once
        assert(alive(pid), 'the saver died: ' .. (exists(log) and read(log) or ''))
        assert(flare.clock() - t0 < 20, 'the saver did not start')
        sleep(0.01)
      end
      sleep(0.01 + math.random() * 0.15)
      os.execute('kill -9 ' .. pid)
      t0 = flare.clock()
      while alive(pid) do
        assert(flare.clock() - t0 < 10, 'the saver did not die')
        sleep(0.01)
      end
      -- the killed write's temporary file, if it was caught in the middle of one
      for _, name in ipairs(listdir(d)) do
        if name:match('^%.big%.safetensors%.') then
          mid_write = mid_write + 1
          os.remove(d .. '/' .. name)
        end
      end
      local r = load(path)
      assert.equal('integer', math.type(r.step))
      assert.is_true(r.step >= last)
      assert.equal(n, r.x:numel())
      assert.equal(r.step, r.x:amin():item())
      assert.equal(r.step, r.x:amax():item())
      last = r.step
    end
    assert.is_true(last > 0, 'the saver never replaced the file')
    assert.is_true(mid_write >= 2, 'kills landed in the middle of a write only ' .. mid_write .. ' times in ' .. round)
  end)
end)
