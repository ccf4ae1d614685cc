-- flare.data.mnist: the IDX file format (data.idx) and the MNIST data set built on it
-- (data.mnist), read from files the user has: nothing is downloaded. Files may be raw or
-- gzip-compressed. Sizes in a header are checked against the bytes there before any
-- allocation, and errors name the file and the problem.
local flare = require 'flare.core'

local M = {}

local MAX_FILE = 1 << 40   -- read_file grows its buffer as bytes arrive: a ceiling, not an allocation

-- IDX type codes: dtype, bytes per element, and how the elements are read.
local IDX_TYPES = {
  [0x08] = { 'uint8', 1 }, [0x09] = { 'int8', 1 }, [0x0B] = { 'int16', 2 },
  [0x0C] = { 'int32', 4 }, [0x0D] = { 'float32', 4 }, [0x0E] = { 'float64', 8 },
}

local function fail(name, fmt, ...)
  error(string.format("'%s': " .. fmt, name, ...), 0)
end

--- data.parse_idx(bytes, name): the tensor in the bytes of an IDX file. uint8, int32,
-- float32 and float64 keep their type; int8 and int16 become int32.
function M.parse_idx(bytes, name)
  if #bytes < 4 then fail(name, 'not an IDX file: only %d bytes', #bytes) end
  local z1, z2, code, ndim = bytes:byte(1, 4)
  local kind = IDX_TYPES[code]
  if z1 ~= 0 or z2 ~= 0 or not kind then
    fail(name, 'not an IDX file (magic number %02x %02x %02x %02x)', z1, z2, code, ndim)
  end
  if ndim < 1 or ndim > 8 then fail(name, 'an IDX file of %d dimensions (flare reads 1 to 8)', ndim) end
  local start = 4 + 4 * ndim
  if #bytes < start then
    fail(name, 'truncated: the header of %d dimensions needs %d bytes, the file has %d', ndim, start, #bytes)
  end
  -- the element count saturates past 2^53 (no file holds that many), so it cannot wrap
  local shape, n, zero = {}, 1, false
  for d = 1, ndim do
    local s = string.unpack('>I4', bytes, 1 + 4 * d)
    shape[d] = s
    if s == 0 then zero = true
    elseif n > (1 << 53) // s then n = (1 << 53) + 1
    else n = n * s end
  end
  if zero then n = 0 end
  local es = kind[2]
  local have = #bytes - start
  local dims = table.concat(shape, 'x')
  if n * es > have then
    fail(name, 'truncated: the header declares %s %s values (%s bytes), the file has %d bytes after the header',
      dims, kind[1], n > (1 << 53) and 'over 2^53' or tostring(n * es), have)
  end
  if n * es < have then fail(name, '%d bytes follow the %s values the header declares', have - n * es, dims) end
  if kind[1] == 'int8' or kind[1] == 'int16' then
    -- no such dtypes in flare: sign-extend big-endian bytes into int32
    local b = flare.frombuffer(bytes, { dtype = 'uint8', offset = start, shape = { n, es } }):int()
    local v = es == 1 and b:select(2, 1) or b:select(2, 1) * 256 + b:select(2, 2)
    local top = es == 1 and 128 or 32768
    v = v - (v:ge(top):int() * (2 * top))
    return v:reshape(shape)
  end
  return flare.frombuffer(bytes, { dtype = kind[1], offset = start, shape = shape, byteorder = 'big' })
end

--- data.idx(path): the tensor in an IDX file (raw or .gz).
function M.idx(path)
  if type(path) ~= 'string' then
    error(string.format("bad argument #1 to 'idx' (file name expected, got %s)", type(path)), 2)
  end
  local ok, res = pcall(function() return M.parse_idx(flare.read_file(path, { max_bytes = MAX_FILE }), path) end)
  if not ok then error('idx: ' .. tostring(res):gsub('^read_file: ', ''), 2) end
  return res
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

local FILES = {
  train = { 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte' },
  test = { 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte' },
}

-- The file for a standard name in dir: as is, gzipped, or with the '.idx' spelling some
-- mirrors use (train-images.idx3-ubyte).
local function locate(dir, name, fname)
  local alt = name:gsub('%-(idx%d)', '.%1')
  for _, candidate in ipairs { name, name .. '.gz', alt, alt .. '.gz' } do
    local path = dir .. '/' .. candidate
    if exists(path) then return path end
  end
  error(string.format("%s: no '%s/%s' (or %s.gz): put the four MNIST files %s, %s, %s and %s "
    .. '(raw or .gz, as distributed) in %s', fname, dir, name, name, FILES.train[1], FILES.train[2],
    FILES.test[1], FILES.test[2], dir), 0)
end

--- data.mnist(dir, {split = 'train' | 'test', raw = false}): MNIST (or a data set in its
-- format, such as Fashion-MNIST) from the IDX files in dir, as a TensorDataset of images
-- (N, 1, 28, 28) float32 in [0, 1] (uint8 0..255 with raw = true) and labels (N) int64
-- holding class indices 1..10 for the digits 0..9.
function M.mnist(dir, opts)
  opts = opts or {}
  if type(dir) ~= 'string' then
    error(string.format("bad argument #1 to 'mnist' (directory of the MNIST files expected, got %s)", type(dir)), 2)
  end
  local split = opts.split or 'train'
  local names = FILES[split]
  if not names then error(string.format("mnist: split must be 'train' or 'test', got '%s'", tostring(split)), 2) end
  dir = dir:gsub('/+$', '')
  local ok, res = pcall(function()
    local ipath, lpath = locate(dir, names[1], 'mnist'), locate(dir, names[2], 'mnist')
    local images, labels = M.idx(ipath), M.idx(lpath)
    if images:dim() ~= 3 or images:dtype() ~= 'uint8' then
      fail(ipath, 'expected uint8 images (N, rows, cols), got %s of shape %s', images:dtype(),
        table.concat(images:size(), 'x'))
    end
    if labels:dim() ~= 1 or labels:dtype() ~= 'uint8' then
      fail(lpath, 'expected uint8 labels (N), got %s of shape %s', labels:dtype(), table.concat(labels:size(), 'x'))
    end
    if labels:size(1) ~= images:size(1) then
      error(string.format("mnist: '%s' has %d images but '%s' has %d labels", ipath, images:size(1), lpath,
        labels:size(1)), 0)
    end
    local n, h, w = table.unpack(images:size())
    local x = images:reshape(n, 1, h, w)
    if not opts.raw then x = x:float():div_(255) end
    return { x, labels:long():add_(1) }
  end)
  if not ok then
    res = tostring(res)
    error(res:match('^mnist: ') and res or 'mnist: ' .. res:gsub('^idx: ', ''), 2)
  end
  local ds = require('flare.data').TensorDataset(res[1], res[2])
  ds.classes = { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9' }
  return ds
end

return M
