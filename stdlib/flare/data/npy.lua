-- flare.data.npy: NumPy's array files. data.npy(path) reads a .npy file, data.npz(path) a
-- .npz archive (a zip of .npy files, stored or deflated), and save_npy / save_npz write them
-- (little-endian, C order, stored entries), so NumPy and PyTorch users can move arrays
-- both ways. Every size in a header is checked against the bytes actually there before
-- anything is allocated, and every error names the file and what is wrong with it.
local flare = require 'flare.core'

local M = {}

-- NumPy's type codes (without the byte order) and flare's dtypes.
local FROM_NUMPY = { f4 = 'float32', f8 = 'float64', i8 = 'int64', i4 = 'int32', u1 = 'uint8', b1 = 'bool' }
local TO_NUMPY = { float32 = '<f4', float64 = '<f8', int64 = '<i8', int32 = '<i4', uint8 = '|u1', bool = '|b1' }
local ITEMSIZE = { float32 = 4, float64 = 8, int64 = 8, int32 = 4, uint8 = 1, bool = 1 }
local MAGIC = '\x93NUMPY'
local MAX_DIMS = 8
local MAX_FILE = 1 << 46   -- read_file's ceiling; it grows its buffer only as bytes arrive

local function fail(name, fmt, ...)
  error(string.format("'%s': " .. fmt, name, ...), 0)
end

-- numel of a shape, or nil when it passes 2^53 (no file holds that many elements).
local function count(shape)
  local n, zero = 1, false
  for _, s in ipairs(shape) do
    if s == 0 then zero = true
    elseif n and n > (1 << 53) // s then n = nil
    elseif n then n = n * s end
  end
  return zero and 0 or n
end

local function shape_str(shape)
  if #shape == 1 then return '(' .. shape[1] .. ',)' end
  local parts = {}
  for k, s in ipairs(shape) do parts[k] = tostring(s) end
  return '(' .. table.concat(parts, ', ') .. ')'
end

-- The dictionary of a .npy header: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
local function parse_header(header, name)
  if not header:match('^%s*{') or not header:match('}%s*$') then
    fail(name, 'the .npy header is not a dictionary: %q', header:sub(1, 80))
  end
  local descr = header:match("['\"]descr['\"]%s*:%s*['\"]([^'\"]*)['\"]")
  if not descr then
    if header:match("['\"]descr['\"]%s*:%s*%[") then
      fail(name, 'holds a structured array (fields), which flare does not read')
    end
    fail(name, "the .npy header has no 'descr' (the dtype)")
  end
  local order = header:match("['\"]fortran_order['\"]%s*:%s*(%a+)")
  if order ~= 'True' and order ~= 'False' then
    fail(name, "the .npy header's 'fortran_order' is %s, expected True or False", tostring(order))
  end
  local dims = header:match("['\"]shape['\"]%s*:%s*%(([^)]*)%)")
  if not dims then fail(name, "the .npy header has no 'shape' tuple") end
  local shape = {}
  for item in dims:gmatch('[^,]+') do
    if item:match('%S') then
      local v = item:match('^%s*(%d+)L?%s*$')
      if not v or #v > 18 then fail(name, "the .npy shape (%s) holds '%s', expected sizes", dims, item) end
      shape[#shape + 1] = math.tointeger(tonumber(v))
    end
  end
  if #shape > MAX_DIMS then
    fail(name, 'the array has %d dimensions, flare tensors have at most %d', #shape, MAX_DIMS)
  end
  return descr, order == 'True', shape
end

local function dtype_of(descr, name)
  local order, code = descr:match('^([<>|=]?)(%a%d+)$')
  local dtype = code and FROM_NUMPY[code]
  if not dtype then
    if descr:match('^[<>|=]?O') then
      fail(name, 'holds Python objects (a pickle), which flare never loads')
    end
    fail(name, "dtype '%s' is not supported (flare reads <f4 <f8 <i8 <i4 |u1 |b1, either byte order)", descr)
  end
  return dtype, order == '>' and ITEMSIZE[dtype] > 1
end

--- data.parse_npy(bytes, name): the tensor in the bytes of a .npy file (name is for errors).
function M.parse_npy(bytes, name)
  if #bytes < 10 or bytes:sub(1, 6) ~= MAGIC then
    fail(name, 'not a .npy file (it does not start with \\x93NUMPY)')
  end
  local major, minor = bytes:byte(7, 8)
  local hlen, start
  if major == 1 then
    hlen, start = string.unpack('<I2', bytes, 9), 11
  elseif (major == 2 or major == 3) and #bytes >= 12 then
    hlen, start = string.unpack('<I4', bytes, 9), 13
  else
    fail(name, 'unsupported .npy format version %d.%d', major, minor)
  end
  if start + hlen - 1 > #bytes then
    fail(name, 'the .npy header of %d bytes runs past the end of the file (%d bytes)', hlen, #bytes)
  end
  local descr, fortran, shape = parse_header(bytes:sub(start, start + hlen - 1), name)
  local dtype, big = dtype_of(descr, name)
  local n = count(shape)
  local have = #bytes - (start + hlen - 1)
  if not n or n * ITEMSIZE[dtype] > have then
    fail(name, 'truncated: the header declares shape %s of %s (%s bytes), the file holds %d bytes of data',
      shape_str(shape), descr, n and tostring(n * ITEMSIZE[dtype]) or 'more than 2^53 x ' .. ITEMSIZE[dtype], have)
  end
  if n * ITEMSIZE[dtype] < have then
    fail(name, '%d bytes follow the data of shape %s of %s', have - n * ITEMSIZE[dtype], shape_str(shape), descr)
  end
  local opts = { dtype = dtype, offset = start + hlen - 1, byteorder = big and 'big' or 'little' }
  if fortran and #shape > 1 then
    -- column-major: read as the reversed shape, then reverse the dims back
    local rev, perm = {}, {}
    for k = 1, #shape do rev[k], perm[k] = shape[#shape + 1 - k], #shape + 1 - k end
    opts.shape = rev
    return flare.frombuffer(bytes, opts):permute(perm):contiguous()
  end
  opts.shape = shape
  return flare.frombuffer(bytes, opts)
end

local function read(path, fname)
  if type(path) ~= 'string' then
    error(string.format("bad argument #1 to '%s' (file name expected, got %s)", fname, type(path)), 3)
  end
  local ok, bytes = pcall(flare.read_file, path, { max_bytes = MAX_FILE })
  if not ok then error(fname .. ': ' .. tostring(bytes):gsub('^read_file: ', ''), 3) end
  return bytes
end

--- data.npy(path): the array in a .npy file as a tensor (float32, float64, int64, int32,
-- uint8 or bool; Fortran order and big-endian data are converted).
function M.npy(path)
  local bytes = read(path, 'npy')
  local ok, t = pcall(M.parse_npy, bytes, path)
  if not ok then error('npy: ' .. tostring(t), 2) end
  return t
end

------------------------------------------------------------------------------ .npz (zip)

local LOCAL, CENTRAL, EOCD, EOCD64, LOCATOR64 = 'PK\3\4', 'PK\1\2', 'PK\5\6', 'PK\6\6', 'PK\6\7'

-- The end of central directory record: its position, entry count, directory size and offset.
local function find_directory(z, name)
  if #z < 22 then fail(name, 'not a zip file (.npz): only %d bytes', #z) end
  local from = math.max(1, #z - 22 - 65535 + 1)
  local at, pos = nil, from
  while true do
    local found = z:find(EOCD, pos, true)
    if not found or found > #z - 21 then break end
    at, pos = found, found + 1
  end
  if not at then fail(name, 'not a zip file (.npz): no end-of-directory record') end
  local _, _, _, entries, size, offset = string.unpack('<I2I2I2I2I4I4', z, at + 4)
  if entries == 0xFFFF or size == 0xFFFFFFFF or offset == 0xFFFFFFFF then
    -- zip64: a locator just before points at the 64-bit record
    if at < 21 or z:sub(at - 20, at - 17) ~= LOCATOR64 then
      fail(name, 'corrupt zip: the zip64 directory locator is missing')
    end
    local rec = string.unpack('<I8', z, at - 20 + 8)
    if rec < 0 or rec + 56 > #z or z:sub(rec + 1, rec + 4) ~= EOCD64 then
      fail(name, 'corrupt zip: the zip64 directory record is not where the locator says')
    end
    entries, size, offset = string.unpack('<I8I8I8', z, rec + 1 + 32)
  end
  if offset < 0 or size < 0 or offset + size > at - 1 then
    fail(name, 'corrupt zip: the directory (%d bytes at offset %d) runs past the end of the data', size, offset)
  end
  if entries < 0 or entries > size // 46 then
    fail(name, 'corrupt zip: %d entries cannot fit in a directory of %d bytes', entries, size)
  end
  return entries, offset
end

-- The zip64 extra field: 64-bit values for those that read 0xFFFFFFFF, in this order.
local function zip64_sizes(extra, usize, csize, offset, name, entry)
  local p = 1
  while p + 3 <= #extra do
    local id, len = string.unpack('<I2I2', extra, p)
    if id == 1 then
      local q = p + 4
      local function take(v)
        if v ~= 0xFFFFFFFF then return v end
        if q + 7 > p + 3 + len then fail(name, "corrupt zip: entry '%s' has a short zip64 field", entry) end
        local x = string.unpack('<I8', extra, q)
        q = q + 8
        return x
      end
      usize = take(usize)
      csize = take(csize)
      offset = take(offset)
      return usize, csize, offset
    end
    p = p + 4 + len
  end
  if usize == 0xFFFFFFFF or csize == 0xFFFFFFFF or offset == 0xFFFFFFFF then
    fail(name, "corrupt zip: entry '%s' needs a zip64 field and has none", entry)
  end
  return usize, csize, offset
end

--- data.read_zip(bytes, name) -> list of {name, data}: the entries of a zip archive.
function M.read_zip(z, name)
  local entries, p = find_directory(z, name)
  local out, seen = {}, {}
  p = p + 1
  for k = 1, entries do
    if p + 45 > #z or z:sub(p, p + 3) ~= CENTRAL then
      fail(name, 'corrupt zip: directory entry %d is damaged', k)
    end
    local flags, method, crc, csize, usize, nlen, xlen, clen =
      string.unpack('<I2I2xxxxI4I4I4I2I2I2', z, p + 8)
    local offset = string.unpack('<I4', z, p + 42)
    local entry = z:sub(p + 46, p + 45 + nlen)
    local extra = z:sub(p + 46 + nlen, p + 45 + nlen + xlen)
    p = p + 46 + nlen + xlen + clen
    usize, csize, offset = zip64_sizes(extra, usize, csize, offset, name, entry)
    if flags & 1 ~= 0 then fail(name, "entry '%s' is encrypted", entry) end
    if method ~= 0 and method ~= 8 then
      fail(name, "entry '%s' uses compression method %d (flare reads stored and deflated entries)", entry, method)
    end
    if seen[entry] then fail(name, "corrupt zip: entry '%s' appears twice", entry) end
    seen[entry] = true
    if offset + 30 > #z or z:sub(offset + 1, offset + 4) ~= LOCAL then
      fail(name, "corrupt zip: entry '%s' has no local header at offset %d", entry, offset)
    end
    local lnlen, lxlen = string.unpack('<I2I2', z, offset + 27)
    local start = offset + 30 + lnlen + lxlen + 1
    if start + csize - 1 > #z then
      fail(name, "truncated: entry '%s' (%d bytes at offset %d) runs past the end of the file (%d bytes)",
        entry, csize, start - 1, #z)
    end
    local data = z:sub(start, start + csize - 1)
    if method == 0 then
      if csize ~= usize then fail(name, "corrupt zip: stored entry '%s' has sizes %d and %d", entry, csize, usize) end
    else
      local ok, inflated = pcall(flare._inflate_raw, data, usize)
      if not ok then fail(name, "entry '%s': %s", entry, tostring(inflated):gsub('^_inflate_raw: ', '')) end
      data = inflated
    end
    if flare._crc32(data) ~= crc then
      fail(name, "entry '%s' is corrupt (its CRC-32 does not match)", entry)
    end
    out[#out + 1] = { name = entry, data = data }
  end
  return out
end

--- data.npz(path) -> {name = tensor, ...}: the arrays of a .npz archive (np.savez or
-- np.savez_compressed), keyed as NumPy keys them (the entry names without '.npy').
function M.npz(path)
  local bytes = read(path, 'npz')
  local ok, res = pcall(function()
    local arrays = {}
    for _, e in ipairs(M.read_zip(bytes, path)) do
      local key = e.name:match('^(.*)%.npy$')
      if not key then fail(path, "entry '%s' is not a .npy array", e.name) end
      arrays[key] = M.parse_npy(e.data, path .. ':' .. e.name)
    end
    return arrays
  end)
  if not ok then error('npz: ' .. tostring(res), 2) end
  return res
end

------------------------------------------------------------------------------ writers

local function npy_bytes(t, fname)
  if not flare.is_tensor(t) then
    error(string.format("bad argument #2 to '%s' (flare.Tensor expected, got %s)", fname, type(t)), 3)
  end
  local descr = TO_NUMPY[t:dtype()]
  local dims = {}
  for k, s in ipairs(t:size()) do dims[k] = tostring(s) end
  local shape = #dims == 1 and '(' .. dims[1] .. ',)' or '(' .. table.concat(dims, ', ') .. ')'
  local header = string.format("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
  -- NumPy pads the header with spaces so the data starts at a multiple of 64 bytes
  local fixed = #header + 1 < 65536 - 10 and 10 or 12
  header = header .. string.rep(' ', (64 - (fixed + #header + 1) % 64) % 64) .. '\n'
  local prefix = fixed == 10 and MAGIC .. '\1\0' .. string.pack('<I2', #header)
                              or MAGIC .. '\2\0' .. string.pack('<I4', #header)
  return prefix .. header .. flare._tobytes(t:detach())
end

-- Writes bytes to path atomically (temporary file, fsync, rename), as flare.save does: a
-- crash half-way leaves any previous file as it was.
local function write_atomic(path, bytes, fname)
  local ok, err = pcall(require('flare.serialize').write_file_atomic, path, bytes)
  if not ok then error(string.format('%s: %s', fname, tostring(err)), 3) end
end

--- flare.save_npy(path, t): writes t as a .npy file (little-endian, C order) that
-- numpy.load reads.
function M.save_npy(path, t)
  if type(path) ~= 'string' then
    error(string.format("bad argument #1 to 'save_npy' (file name expected, got %s)", type(path)), 2)
  end
  write_atomic(path, npy_bytes(t, 'save_npy'), 'save_npy')
end

local function dos_time()
  local d = os.date('*t')
  return ((d.hour << 11) | (d.min << 5) | (d.sec // 2)), (((d.year - 1980) << 9) | (d.month << 5) | d.day)
end

--- flare.save_npz(path, {name = tensor, ...}): writes the tensors as an uncompressed .npz
-- archive (what np.savez writes) that numpy.load reads.
function M.save_npz(path, arrays)
  if type(path) ~= 'string' then
    error(string.format("bad argument #1 to 'save_npz' (file name expected, got %s)", type(path)), 2)
  end
  if type(arrays) ~= 'table' then
    error(string.format("bad argument #2 to 'save_npz' (table of tensors expected, got %s)", type(arrays)), 2)
  end
  local names = {}
  for k in pairs(arrays) do
    if type(k) ~= 'string' then
      error(string.format("bad argument #2 to 'save_npz' (names must be strings, got %s)", type(k)), 2)
    end
    names[#names + 1] = k
  end
  table.sort(names)
  local time, date = dos_time()
  local parts, central, offset = {}, {}, 0
  for _, key in ipairs(names) do
    local data = npy_bytes(arrays[key], 'save_npz')
    local entry = key .. '.npy'
    local crc = flare._crc32(data)
    local big = #data >= 0xFFFFFFFF or offset >= 0xFFFFFFFF
    local size32 = big and 0xFFFFFFFF or #data
    local extra = big and string.pack('<I2I2I8I8', 1, 16, #data, #data) or ''
    local lh = string.pack('<c4I2I2I2I2I2I4I4I4I2I2', LOCAL, big and 45 or 20, 0, 0, time, date, crc,
      size32, size32, #entry, #extra) .. entry .. extra
    local cextra = big and string.pack('<I2I2I8I8I8', 1, 24, #data, #data, offset) or ''
    central[#central + 1] = string.pack('<c4I2I2I2I2I2I2I4I4I4I2I2I2I2I2I4I4', CENTRAL, 45, big and 45 or 20, 0, 0,
      time, date, crc, size32, size32, #entry, #cextra, 0, 0, 0, 0, big and 0xFFFFFFFF or offset) .. entry .. cextra
    parts[#parts + 1] = lh
    parts[#parts + 1] = data
    offset = offset + #lh + #data
  end
  local dir = table.concat(central)
  local tail
  if offset >= 0xFFFFFFFF or #names >= 0xFFFF then
    tail = string.pack('<c4I8I2I2I4I4I8I8I8I8', EOCD64, 44, 45, 45, 0, 0, #names, #names, #dir, offset)
      .. string.pack('<c4I4I8I4', LOCATOR64, 0, offset + #dir, 1)
      .. string.pack('<c4I2I2I2I2I4I4I2', EOCD, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
  else
    tail = string.pack('<c4I2I2I2I2I4I4I2', EOCD, 0, 0, #names, #names, #dir, offset, 0)
  end
  parts[#parts + 1] = dir
  parts[#parts + 1] = tail
  write_atomic(path, table.concat(parts), 'save_npz')
end

return M
