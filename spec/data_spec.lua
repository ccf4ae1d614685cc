-- Data: the bundled digits, TensorDataset, splits, loaders, and the byte-level readers
-- (flare.read_file with gzip, flare.frombuffer) that file parsers build on.
local flare = require 'flare'
local data = require 'flare.data'

local function tmpfile(bytes)
  local path = os.tmpname()
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
  return path
end

describe('bundled digits', function()
  it('loads 1797 8x8 images with 1-based labels', function()
    local ds = data.digits()
    assert.equal(1797, #ds)
    local x, y = ds.tensors[1], ds.tensors[2]
    assert.are.same({ 1797, 1, 8, 8 }, { table.unpack(x:size()) })
    assert.equal('float32', x:dtype())
    assert.equal(1, y:min():item())
    assert.equal(10, y:max():item())
    assert.is_true(x:max():item() <= 1 and x:min():item() >= 0)
    -- the first sample of the UCI test set is a 0
    assert.equal(1, y[1]:item())
  end)
end)

describe('data sets and loaders', function()
  local x = flare.arange(10):float():reshape(10, 1)
  local y = flare.arange(1, 11)
  local ds = data.TensorDataset(x, y)

  it('splits reproducibly into disjoint parts', function()
    local a1, b1 = ds:split(0.8, { seed = 5 })
    local a2 = ds:split(0.8, { seed = 5 })
    assert.equal(8, #a1)
    assert.equal(2, #b1)
    assert.are.same(a1.indices:totable(), a2.indices:totable())
    local seen = {}
    for _, i in ipairs(flare.cat({ a1.indices, b1.indices }):totable()) do
      assert.is_nil(seen[i])
      seen[i] = true
    end
  end)

  it('visits every sample once per pass, in batches', function()
    local loader = data.loader(ds, { batch_size = 3, shuffle = true, seed = 1 })
    assert.equal(4, #loader)
    for _ = 1, 2 do
      local seen, batches = {}, 0
      for bx, by in loader do
        batches = batches + 1
        assert.equal(bx:size(1), by:size(1))
        for _, v in ipairs(by:totable()) do
          assert.is_nil(seen[v])
          seen[v] = true
        end
      end
      assert.equal(4, batches)
      assert.equal(10, #(function() local t = {} for k in pairs(seen) do t[#t + 1] = k end return t end)())
    end
  end)

  it('loads batches of a subset', function()
    local a = ds:split(0.5, { seed = 2 })
    local total = 0
    for bx, by in data.loader(a, { batch_size = 2 }) do
      total = total + by:numel()
      assert.are.same(by:totable(), (bx:reshape(bx:size(1)) + 1):long():totable())
    end
    assert.equal(5, total)
  end)

  it('drops the last short batch when asked and keeps order without shuffle', function()
    local loader = data.loader(ds, { batch_size = 4, drop_last = true })
    local firsts = {}
    for _, by in loader do firsts[#firsts + 1] = by[1]:item() end
    assert.are.same({ 1, 5 }, firsts)
  end)

  it('batches plain Lua data sets through collate', function()
    local plain = setmetatable({}, {
      __len = function() return 5 end,
      __index = function(_, i) return { flare.full({ 2 }, i), i } end,
    })
    local got = {}
    for bx, by in data.loader(plain, { batch_size = 2 }) do
      got[#got + 1] = { bx:size(1), by:totable() }
    end
    assert.are.same({ { 2, { 1, 2 } }, { 2, { 3, 4 } }, { 1, { 5 } } }, got)
  end)

  it('rejects bad arguments', function()
    assert.has_error(function() data.TensorDataset(x, flare.arange(3)) end)
    assert.has_error(function() data.TensorDataset('x') end)
    assert.has_error(function() data.loader(ds, { batch_size = 0 }) end)
    assert.has_error(function() data.random_split(ds, { 8, 8 }) end)
  end)
end)

describe('byte readers', function()
  it('reads plain and gzip files and reports truncation and absence', function()
    local plain = tmpfile('hello')
    assert.equal('hello', flare.read_file(plain))
    local gz = os.tmpname()
    assert(os.execute('printf "hello gzip" | gzip -c > ' .. gz))
    assert.equal('hello gzip', flare.read_file(gz))
    local whole = flare.read_file(gz .. '', { max_bytes = 100 })
    assert.equal('hello gzip', whole)
    local raw = io.open(gz, 'rb'):read('a')
    local cut = tmpfile(raw:sub(1, #raw - 6))
    local ok, err = pcall(flare.read_file, cut)
    assert.is_false(ok)
    assert.matches('truncated', err)
    ok, err = pcall(flare.read_file, '/nonexistent/file.gz')
    assert.is_false(ok)
    assert.matches("cannot open '/nonexistent/file.gz'", err)
    ok, err = pcall(flare.read_file, plain, { max_bytes = 2 })
    assert.is_false(ok)
    assert.matches('more than 2 bytes', err)
    os.remove(plain); os.remove(gz); os.remove(cut)
  end)

  it('makes tensors from bytes in either byte order and checks sizes', function()
    assert.are.same({ 16909060, 5 }, flare.frombuffer('\1\2\3\4\0\0\0\5', { dtype = 'int32', byteorder = 'big' }):totable())
    assert.are.same({ 67305985 }, flare.frombuffer('\1\2\3\4', { dtype = 'int32' }):totable())
    assert.are.same({ { 3, 4 } }, flare.frombuffer('\1\2\3\4', { offset = 2, shape = { 1, 2 } }):totable())
    assert.has_error(function() flare.frombuffer('\1\2\3', { dtype = 'int32', shape = { 1 } }) end)
    assert.has_error(function() flare.frombuffer('\1\2', { offset = 3 }) end)
    assert.has_error(function() flare.frombuffer('\1\2', { shape = { 2 ^ 40 } }) end)
    assert.has_error(function() flare.frombuffer('\1\2', { byteorder = 'middle' }) end)
  end)
end)
