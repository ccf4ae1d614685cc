-- Data formats: MNIST (IDX), CIFAR-10, CSV, NumPy .npy/.npz (read and write), text corpora,
-- batch transforms and the loader's background prefetch. Files under spec/fixtures/data
-- were written by NumPy (spec/fixtures/gen_data.py), which also wrote the expected values;
-- every parser's rejections of truncated, oversized and corrupt files are tested.
local flare = require 'flare'
local data = require 'flare.data'
local fixture = require 'support.fixture'

local F = fixture.load('data')
local DIR = 'spec/fixtures/data/'

local function slurp(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

local tmpfiles = {}
local function tmpfile(bytes, suffix)
  local base = os.tmpname()   -- (os.tmpname creates the file)
  local path = base .. (suffix or '')
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
  tmpfiles[#tmpfiles + 1] = base
  tmpfiles[#tmpfiles + 1] = path
  return path
end

local function tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute('mkdir -p ' .. path))
  tmpfiles[#tmpfiles + 1] = path
  return path
end

teardown(function()
  for _, p in ipairs(tmpfiles) do os.execute('rm -rf ' .. p) end
end)

-- Asserts that f() raises an error containing every one of the plain strings given.
local function fails(f, ...)
  local ok, err = pcall(f)
  assert.is_false(ok, 'expected an error')
  err = tostring(err)
  for _, want in ipairs { ... } do
    if not err:find(want, 1, true) then
      error(string.format('error %q does not mention %q', err, want), 2)
    end
  end
  return err
end

local function shape(t) return { table.unpack(t:size()) } end

-- A digest from gen_data.py: the shape, every step-th value, and each plane's sum.
local function assert_digest(x, d)
  assert.are.same(d.shape, shape(x))
  local flat = x:reshape(x:numel()):long()
  local every = flat:index_select(1, flare.arange(1, x:numel() + 1, d.step)):totable()
  assert.are.same(d.every, every)
  local planes = #d.shape == 4 and d.shape[1] * d.shape[2] or d.shape[1]
  assert.are.same(d.plane_sums, flat:reshape(planes, x:numel() // planes):sum(2):totable())
end

------------------------------------------------------------------------------ IDX / MNIST

describe('IDX files and MNIST', function()
  it('reads the train split (gzipped) and the test split (raw)', function()
    local train = data.mnist(DIR .. 'mnist')
    assert.equal(3, #train)
    local x, y = train.tensors[1], train.tensors[2]
    assert.equal('float32', x:dtype())
    assert.are.same({ 3, 1, 28, 28 }, shape(x))
    assert_digest((x * 255):round():reshape(3, 28, 28), F.mnist.train_x)
    assert.are.same({ 6, 1, 10 }, y:totable())   -- class indices are the digits + 1
    assert.equal('int64', y:dtype())
    local test = data.mnist(DIR .. 'mnist/', { split = 'test', raw = true })
    assert.equal('uint8', test.tensors[1]:dtype())
    assert_digest(test.tensors[1]:reshape(2, 28, 28), F.mnist.test_x)
    assert.are.same({ 8, 3 }, test.tensors[2]:totable())
    assert.equal('0', train.classes[1])
  end)

  it('reads every IDX element type (big-endian), int8 and int16 as int32', function()
    for _, name in ipairs { 'int16', 'int8', 'float32', 'float64', 'int32' } do
      fixture.assert_close(data.idx(DIR .. 'idx/' .. name .. '.idx'), F.idx[name], { rtol = 0, atol = 0 })
    end
  end)

  it('says which files to put where when they are missing', function()
    fails(function() data.mnist(tmpdir()) end, 'train-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 'put the')
    fails(function() data.mnist(DIR .. 'mnist', { split = 'valid' }) end, "'train' or 'test'")
  end)

  it('rejects images and labels of different counts', function()
    local dir = tmpdir()
    os.execute(string.format('cp %smnist/t10k-images-idx3-ubyte %s/', DIR, dir))
    local f = assert(io.open(dir .. '/t10k-labels-idx1-ubyte', 'wb'))
    f:write(string.pack('>BBBBI4', 0, 0, 8, 1, 3), '\1\2\3')
    f:close()
    fails(function() data.mnist(dir, { split = 'test' }) end, '2 images', '3 labels')
  end)

  it('rejects bad magic, short headers, truncated and oversized files', function()
    fails(function() data.idx(tmpfile('\1\0\8\1' .. string.pack('>I4', 1) .. 'x')) end, 'not an IDX file')
    fails(function() data.idx(tmpfile('\0\0\8\3' .. string.pack('>I4', 2))) end, 'truncated', 'header')
    -- a header declaring 2^48 bytes of data in a 100-byte file: an error, not an allocation
    local huge = tmpfile('\0\0\8\3' .. string.pack('>I4I4I4', 65536, 65536, 65536) .. string.rep('\0', 84))
    local before = flare.bytes_allocated()
    local err = fails(function() data.idx(huge) end, 'truncated', '65536x65536x65536', huge)
    assert.is_nil(err:find('memory'))
    assert.is_true(flare.bytes_allocated() <= before)
    fails(function() data.idx(tmpfile('\0\0\8\1' .. string.pack('>I4', 5) .. 'abc')) end, 'truncated', '5 uint8')
    fails(function() data.idx(tmpfile('\0\0\8\1' .. string.pack('>I4', 2) .. 'abcd')) end, '2 bytes follow')
    -- a gzip stream cut short
    local gz = slurp(DIR .. 'mnist/train-images-idx3-ubyte.gz')
    local cut = tmpfile(gz:sub(1, #gz // 2), '.gz')
    fails(function() data.idx(cut) end, cut)
    fails(function() data.idx('/nonexistent/file.idx') end, '/nonexistent/file.idx')
  end)
end)

------------------------------------------------------------------------------ CIFAR-10

describe('CIFAR-10 binary batches', function()
  it('reads the five training batches and the test batch (channels first)', function()
    local train = data.cifar10(DIR .. 'cifar')   -- finds cifar-10-batches-bin inside
    assert.equal(5, #train)
    local x, y = train.tensors[1], train.tensors[2]
    assert.are.same({ 5, 3, 32, 32 }, shape(x))
    assert.equal('float32', x:dtype())
    assert_digest((x * 255):round(), F.cifar.train_x)
    assert.are.same((fixture.tensor(F.cifar.train_y):long() + 1):totable(), y:totable())
    local test = data.cifar10(DIR .. 'cifar/cifar-10-batches-bin', { split = 'test', raw = true })
    assert_digest(test.tensors[1], F.cifar.test_x)
    assert.are.same((fixture.tensor(F.cifar.test_y):long() + 1):totable(), test.tensors[2]:totable())
    assert.equal('airplane', train.classes[1])
  end)

  it('rejects missing, truncated and corrupt batches', function()
    fails(function() data.cifar10(tmpdir()) end, 'data_batch_1.bin', 'put the CIFAR-10 binary batches')
    local dir = tmpdir()
    local rec = slurp(DIR .. 'cifar/cifar-10-batches-bin/test_batch.bin')
    local f = assert(io.open(dir .. '/test_batch.bin', 'wb'))
    f:write(rec:sub(1, 3073 + 100))
    f:close()
    fails(function() data.cifar10(dir, { split = 'test' }) end, 'test_batch.bin', '3173 bytes', 'truncated')
    f = assert(io.open(dir .. '/test_batch.bin', 'wb'))
    f:write(rec:sub(1, 3073), '\200', rec:sub(3075))
    f:close()
    fails(function() data.cifar10(dir, { split = 'test' }) end, 'record 2 has label 200')
  end)
end)

------------------------------------------------------------------------------ CSV

describe('CSV files', function()
  it('reads features and a label chosen by name, with quotes and CRLF', function()
    local ds = data.csv(DIR .. 'csv/iris.csv', { label = 'class', label_base = 0 })
    assert.equal(4, #ds)
    fixture.assert_close(ds.tensors[1], F.csv.x)
    fixture.assert_close(ds.tensors[2], F.csv.y, { rtol = 0, atol = 0 })
    assert.are.same({ 'sepal length', 'sepal_width', 'petal, length' }, ds.columns)
    assert.equal('class', ds.label_column)
  end)

  it('takes columns by number, negative from the end', function()
    local ds = data.csv(DIR .. 'csv/iris.csv', { features = { 3, -4 }, label = -1, header = true })
    fixture.assert_close(ds.tensors[1], F.csv.x2)
    assert.are.same({ 0, 1, 2, 2 }, ds.tensors[2]:totable())
  end)

  it('reads files without a header, other delimiters and float labels', function()
    local path = tmpfile('1;2.5;0.5\n3;4;-1\n\n')
    local ds = data.csv(path, { delimiter = ';', label = 3 })
    assert.are.same({ { 1, 2.5 }, { 3, 4 } }, ds.tensors[1]:totable())
    assert.equal('float32', ds.tensors[2]:dtype())
    assert.are.same({ 0.5, -1 }, ds.tensors[2]:totable())
    local only = data.csv(path, { delimiter = ';', dtype = 'float64' })
    assert.are.same({ 2, 3 }, shape(only.tensors[1]))
    assert.equal('float64', only.tensors[1]:dtype())
  end)

  it('names the line and column of a bad value', function()
    local path = tmpfile('a,b\n1,2\n3,x\n')
    fails(function() data.csv(path) end, path, 'line 3', "column 2 ('b')", "'x' is not a number")
    path = tmpfile('1,2\n3,4,5\n')
    fails(function() data.csv(path) end, 'line 2 has 3 fields, expected 2')
    fails(function() data.csv(DIR .. 'csv/iris.csv', { label = 'species' }) end, "no label column 'species'",
      'sepal length')
    fails(function() data.csv(DIR .. 'csv/iris.csv', { label = 9 }) end, 'out of range', '4 columns')
    fails(function() data.csv(tmpfile('a,b\n')) end, 'no rows')
    fails(function() data.csv(tmpfile('"1,2\n')) end, 'line 1', 'not closed')
  end)
end)

------------------------------------------------------------------------------ npy / npz

describe('NumPy .npy files', function()
  it('reads every dtype, both byte orders, C and Fortran order, 0-dim and empty arrays', function()
    for name, expected in pairs(F.npy) do
      local t = data.npy(DIR .. 'npy/' .. name .. '.npy')
      fixture.assert_close(t, expected, { rtol = 0, atol = 0 })
    end
    fixture.assert_close(data.npy(DIR .. 'npy/v2.npy'), F.npy.f4, { rtol = 0, atol = 0 })
  end)

  it('writes the bytes NumPy writes, and reads back what it wrote', function()
    local t = data.npy(DIR .. 'npy/f4.npy')
    local path = os.tmpname()
    tmpfiles[#tmpfiles + 1] = path
    data.save_npy(path, t)
    assert.equal(slurp(DIR .. 'npy/f4.npy'), slurp(path))
    for _, x in ipairs { flare.tensor(3.5, { dtype = 'float64' }), flare.zeros(0, 4, { dtype = 'int32' }),
                         flare.arange(24):reshape(2, 3, 4):transpose(1, 3), flare.tensor({ true, false }),
                         flare.tensor({ 0, 255 }, { dtype = 'uint8' }), flare.randn(5) } do
      data.save_npy(path, x)
      local back = data.npy(path)
      assert.equal(x:dtype(), back:dtype())
      assert.are.same(shape(x), shape(back))
      assert.is_true((x:numel() == 0) or x:eq(back):all():item())
    end
  end)

  it('rejects unsupported dtypes and pickles', function()
    fails(function() data.npy(DIR .. 'npy/f2.npy') end, "'<f2' is not supported", 'f2.npy')
    fails(function() data.npy(DIR .. 'npy/object.npy') end, 'Python objects')
    fails(function() data.npy(DIR .. 'npy/structured.npy') end, 'structured')
  end)

  it('rejects bad magic, headers past the end, oversized shapes, truncated data and trailing bytes', function()
    local good = slurp(DIR .. 'npy/f4.npy')
    local function with_header(h, payload)
      return '\x93NUMPY\1\0' .. string.pack('<I2', #h) .. h .. (payload or '')
    end
    fails(function() data.npy(tmpfile('PK\3\4 not npy')) end, 'not a .npy file')
    fails(function() data.npy(tmpfile(good:sub(1, 40))) end, 'runs past the end')
    fails(function() data.npy(tmpfile(good:sub(1, #good - 3))) end, 'truncated', '(2, 3)', '24 bytes', '21 bytes')
    fails(function() data.npy(tmpfile(good .. 'xyz')) end, '3 bytes follow')
    local huge = tmpfile(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }\n",
      string.rep('\0', 100)))
    local err = fails(function() data.npy(huge) end, 'truncated', '(1099511627776,)', huge)
    assert.is_nil(err:find('memory'))
    fails(function() data.npy(tmpfile(with_header("{'descr': '<f4', 'fortran_order': False, }\n"))) end, 'shape')
    fails(function() data.npy(tmpfile(with_header("{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }\n"))) end,
      'fortran_order')
    fails(function() data.npy(tmpfile(with_header("not a dict"))) end, 'not a dictionary')
    fails(function() data.npy(tmpfile(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }"))) end,
      '9 dimensions')
    fails(function() data.npy(tmpfile('\x93NUMPY\9\0' .. good:sub(9))) end, 'version 9.0')
  end)
end)

describe('NumPy .npz archives', function()
  it('reads stored (np.savez) and deflated (np.savez_compressed) archives', function()
    for _, kind in ipairs { 'stored', 'deflated' } do
      local arrays = data.npz(DIR .. 'npz/' .. kind .. '.npz')
      local n = 0
      for name, expected in pairs(F.npz[kind]) do
        fixture.assert_close(arrays[name], expected, { rtol = 0, atol = 0 })
        n = n + 1
      end
      local got = 0
      for _ in pairs(arrays) do got = got + 1 end
      assert.equal(n, got)
    end
  end)

  it('round-trips through save_npz', function()
    local path = os.tmpname()
    tmpfiles[#tmpfiles + 1] = path
    local a = { w = flare.randn(3, 4), idx = flare.arange(5), flags = flare.tensor({ true, false }) }
    data.save_npz(path, a)
    local back = data.npz(path)
    for k, v in pairs(a) do
      assert.equal(v:dtype(), back[k]:dtype())
      assert.is_true(v:eq(back[k]):all():item())
    end
  end)

  it('rejects non-zip, truncated and corrupt archives', function()
    local stored = slurp(DIR .. 'npz/stored.npz')
    local deflated = slurp(DIR .. 'npz/deflated.npz')
    fails(function() data.npz(tmpfile(string.rep('x', 100))) end, 'not a zip file')
    fails(function() data.npz(tmpfile('abc')) end, 'not a zip file')
    -- cut off the front: the directory now points past the data
    fails(function() data.npz(tmpfile(stored:sub(200))) end, 'corrupt zip')
    -- a flipped byte in a stored entry's data: the CRC catches it
    local at = stored:find('\x93NUMPY', 1, true) + 100
    local flipped = stored:sub(1, at - 1) .. string.char(stored:byte(at) ~ 0xff) .. stored:sub(at + 1)
    fails(function() data.npz(tmpfile(flipped)) end, 'CRC-32', "entry 'a.npy'")
    -- garbage in a deflated stream
    local d = deflated:find('PK\3\4', 1, true)
    local nlen, xlen = string.unpack('<I2I2', deflated, d + 26)
    local s = d + 30 + nlen + xlen
    local broken = deflated:sub(1, s - 1) .. string.rep('\255', 8) .. deflated:sub(s + 8)
    fails(function() data.npz(tmpfile(broken)) end, 'npz', 'weights.npy')
    -- a central directory declaring a huge uncompressed size: refused before allocating
    local c = deflated:find('PK\1\2', 1, true)
    local lying = deflated:sub(1, c + 23) .. string.pack('<I4', 0xFFFFFFF0) .. deflated:sub(c + 28)
    fails(function() data.npz(tmpfile(lying)) end, 'cannot hold')
  end)
end)

describe('every parser', function()
  it('rejects every truncation of a good file with an error naming it', function()
    local npy, idx, cifar = require 'flare.data.npy', require 'flare.data.mnist', require 'flare.data.cifar'
    local function npz(b, name) for _, e in ipairs(npy.read_zip(b, name)) do npy.parse_npy(e.data, name) end end
    for _, case in ipairs {
      { 'npy/f8_fortran.npy', npy.parse_npy }, { 'npz/stored.npz', npz }, { 'npz/deflated.npz', npz },
      { 'mnist/t10k-labels-idx1-ubyte', idx.parse_idx }, { 'idx/float64.idx', idx.parse_idx },
      { 'cifar/cifar-10-batches-bin/data_batch_1.bin', cifar.parse_cifar },
    } do
      local good = slurp(DIR .. case[1])
      assert.is_true(pcall(case[2], good, case[1]))
      local n = 0
      while n < #good do   -- every cut in the first 200 bytes (the headers), then every 97th
        local ok, err = pcall(case[2], good:sub(1, n), case[1])
        assert.is_false(ok, case[1] .. ' cut to ' .. n .. ' bytes was accepted')
        assert.is_truthy(tostring(err):find(case[1], 1, true))
        n = n + (n < 200 and 1 or 97)
      end
    end
  end)
end)

------------------------------------------------------------------------------ text

describe('text corpora', function()
  it('reads tiny Shakespeare with a sorted character vocabulary', function()
    local c = data.shakespeare()
    assert.equal(F.shakespeare.length, #c)
    assert.equal(65, #c.vocab)
    assert.equal(F.shakespeare.vocab, table.concat(c.vocab.itos))
    assert.equal('int64', c.tokens:dtype())
    assert.are.same(F.shakespeare.first, c.tokens:narrow(1, 1, 40):totable())
    assert.are.same(F.shakespeare.last, c.tokens:narrow(1, #c - 9, 10):totable())
    assert.equal('First Citizen', c.vocab:decode(c.tokens:narrow(1, 1, 13)))
    assert.equal(c.vocab.stoi['F'], c.tokens[1]:item())
  end)

  it('encodes and decodes, UTF-8 included, and names unknown characters', function()
    local c = data.text(nil, { text = 'héllo wörld' })
    assert.are.same({ ' ', 'd', 'h', 'l', 'o', 'r', 'w', 'é', 'ö' }, c.vocab.itos)
    assert.equal(11, #c)
    assert.equal('héllo wörld', c.vocab:decode(c.tokens))
    assert.are.same({ 3, 8, 4 }, c.vocab:encode('hél'):totable())
    fails(function() c.vocab:encode('hox') end, '"x"', 'not in the vocabulary')
    fails(function() data.text('/no/such/file.txt') end, '/no/such/file.txt')
  end)

  it('makes (input, target) sequences shifted by one, batched by the loader', function()
    local c = data.text(nil, { text = 'abcdefghij' })
    local seqs = c:sequences(4, { stride = 2 })
    assert.equal(3, #seqs)   -- starts 1, 3, 5 (a target needs one token past the input)
    local s = seqs:get(2)
    assert.equal('cdef', c.vocab:decode(s[1]))
    assert.equal('defg', c.vocab:decode(s[2]))
    local n = 0
    for x, y in data.loader(seqs, { batch_size = 2 }) do
      n = n + 1
      assert.equal('int64', x:dtype())
      assert.are.same(x:narrow(2, 2, 3):totable(), y:narrow(2, 1, 3):totable())
      if n == 1 then
        assert.are.same({ 2, 4 }, shape(x))
        assert.equal('abcd', c.vocab:decode(x[1]))
        assert.equal('defg', c.vocab:decode(y[2]))
      end
    end
    assert.equal(2, n)
    local train, val = c:split(0.8)
    assert.equal(8, #train)
    assert.equal('ij', c.vocab:decode(val.tokens))
    flare.manual_seed(3)
    local bx, by = train:sample_batch(5, 3)
    assert.are.same({ 5, 3 }, shape(bx))
    assert.are.same(bx:narrow(2, 2, 2):totable(), by:narrow(2, 1, 2):totable())
    fails(function() c:sequences(10) end, '10 tokens', 'needs 11')
  end)
end)

------------------------------------------------------------------------------ transforms

describe('transforms', function()
  local T = data.transforms

  it('warp_affine matches PyTorch grid_sample (align_corners) bilinear and nearest', function()
    for _, case in ipairs(F.warp) do
      local y = flare.warp_affine(fixture.tensor(case.x), fixture.tensor(case.theta), { mode = case.mode })
      fixture.assert_close(y, case.y, { rtol = 1e-9, atol = 1e-12 })
      local y32 = flare.warp_affine(fixture.tensor(case.x):float(), fixture.tensor(case.theta), { mode = case.mode })
      fixture.assert_close(y32, case.y, { rtol = 1e-5, atol = 1e-5, any_dtype = true })
    end
  end)

  it('normalizes per channel and one-hot encodes', function()
    local x = flare.ones(2, 3, 2, 2)
    local n = T.normalize({ 0.5, 1, 2 }, { 0.5, 1, 4 })(x)
    assert.are.same({ 1, 0, -0.25 }, n[{ 1, {}, 1, 1 }]:totable())
    local fields = T.one_hot(4)({ x, flare.tensor({ 2, 4 }) })
    assert.are.same({ { 0, 1, 0, 0 }, { 0, 0, 0, 1 } }, fields[2]:totable())
    assert.equal(x, fields[1])
    fails(function() T.one_hot(3)(flare.tensor({ 4 })) end, 'class index 4 is outside 1..3')
    fails(function() T.normalize({ 1, 2 }, 1)(x) end, '2 values', '3 channels')
  end)

  it('random crops with padding are whole-pixel shifts of each image', function()
    flare.manual_seed(7)
    local x = flare.arange(1, 4 * 2 * 6 * 6 + 1):float():reshape(4, 2, 6, 6)
    local y = T.random_crop(6, { padding = 2 })(x)
    assert.are.same({ 4, 2, 6, 6 }, shape(y))
    for i = 1, 4 do
      -- find the shift from the first non-zero pixel, then check the whole image
      local found = false
      for dy = -2, 2 do
        for dx = -2, 2 do
          local ok = true
          for r = 1, 6 do
            for c = 1, 6 do
              local sr, sc = r + dy, c + dx
              local want = (sr >= 1 and sr <= 6 and sc >= 1 and sc <= 6) and x[{ i, 1, sr, sc }]:item() or 0
              if y[{ i, 1, r, c }]:item() ~= want then ok = false end
            end
          end
          found = found or ok
        end
      end
      assert.is_true(found, 'image ' .. i .. ' is not a shifted copy')
    end
    -- a smaller window: the size changes
    assert.are.same({ 4, 2, 4, 5 }, shape(T.random_crop({ 4, 5 })(x)))
    fails(function() T.random_crop(9, { padding = 1 })(x) end, 'does not fit')
  end)

  it('flips, rotates and composes, repeatably from the seed', function()
    local x = flare.randn(8, 3, 5, 5)
    local flip = T.hflip({ p = 1 })(x)
    assert.is_true(flip:eq(x:index_select(4, flare.tensor({ 5, 4, 3, 2, 1 }))):all():item())
    assert.is_true(T.hflip({ p = 0 })(x):eq(x):all():item())
    local aug = T.compose { T.random_crop(5, { padding = 1 }), T.hflip(), T.random_rotation(15),
                            T.normalize(0.1, 2), T.one_hot(10) }
    local y = flare.randint(1, 11, { 8 })
    flare.manual_seed(11)
    local a = aug({ x, y })
    flare.manual_seed(11)
    local b = aug({ x, y })
    assert.is_true(a[1]:eq(b[1]):all():item())
    assert.are.same({ 8, 10 }, shape(a[2]))
    flare.manual_seed(12)
    assert.is_false(aug({ x, y })[1]:eq(a[1]):all():item())
    -- a rotation by 0 with bilinear sampling changes nothing; by 90 degrees it turns the image
    assert.is_true(T.random_rotation(0)(x):eq(x):all():item())
    local r = T.random_rotation({ 90, 90 }, { mode = 'nearest' })(x)
    assert.is_true(r:eq(x:transpose(3, 4):index_select(3, flare.tensor({ 5, 4, 3, 2, 1 }))):all():item()
      or r:eq(x:transpose(3, 4):index_select(4, flare.tensor({ 5, 4, 3, 2, 1 }))):all():item())
    fails(function() T.hflip()(flare.ones(3, 4)) end, '(N, C, H, W)')
    fails(function() T.hflip()(flare.ones(1, 1, 2, 2, { dtype = 'uint8' })) end, 'to_float')
  end)

  it('are applied per batch by the loader', function()
    local ds = data.TensorDataset(flare.ones(6, 1, 2, 2, { dtype = 'uint8' }):mul(255), flare.tensor({ 1, 2, 3, 1, 2, 3 }))
    local loader = data.loader(ds, { batch_size = 4, transform = T.compose { T.to_float(), T.one_hot(3) } })
    local sizes = {}
    for x, y in loader do
      assert.equal('float32', x:dtype())
      assert.equal(1, x:max():item())
      assert.equal(3, y:size(2))
      sizes[#sizes + 1] = x:size(1)
    end
    assert.are.same({ 4, 2 }, sizes)
  end)
end)
