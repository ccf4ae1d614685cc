-- flare.serialize: flare.save and flare.load. A file is a safetensors file: its tensors are
-- stored under PyTorch-style dotted names, so PyTorch (safetensors.torch.load_file, or a few
-- lines of Python) reads them, and flare reads files PyTorch wrote. Everything else - the
-- shape of nested tables, numbers, strings, booleans, a model's architecture - is a JSON
-- description in one field of the header's metadata. A model is rebuilt from the registry of
-- module classes (nn.registry) and its state dict: a file holds data, never code, and
-- loading runs none. Writes are atomic (temporary file, fsync, rename) and Ctrl-C cannot
-- stop one half-way.
--
-- The description ("flare" in the metadata) is {"version": 1, "object": value}, where value
-- is JSON with a few tagged objects (keys starting with one '$'; a table's own keys that
-- start with '$' are written with one more):
--   {"$tensor": name [, "$grad": true]}   a tensor of the file (requires_grad if $grad)
--   {"$module": {"describe": d, "state": {key: tensor}, "training": b, "frozen": [names]}}
--   {"$float": "inf" | "-inf" | "nan"}    numbers JSON cannot write
--   {"$table": [[key, value], ...]}       a table whose keys are not all strings (nor 1..n)
--   {"$bytes": "hex"}                     a string that is not UTF-8
-- Integers are written as integers and floats always with a '.' or an exponent, so each
-- comes back as the same Lua number.
local core = require 'flare.core'

local M = {}

local VERSION = 1
local META = 'flare'
local MAX_DEPTH = 400    -- nesting of Lua tables (the JSON reader allows 2048 levels)

local is_tensor = core.is_tensor

local function is_module(v)
  local mt = type(v) == 'table' and getmetatable(v)
  return type(mt) == 'table' and rawget(mt, '_is_module_class') == true
end

-- ---------------------------------------------------------------- writing JSON

local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t' }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return escapes[c] or string.format('\\u%04x', c:byte()) end) .. '"'
end

local function json_number(x)
  if math.type(x) == 'integer' then return string.format('%d', x) end
  if x ~= x then return '{"$float":"nan"}' end
  if x == math.huge then return '{"$float":"inf"}' end
  if x == -math.huge then return '{"$float":"-inf"}' end
  local s = string.format('%.15g', x)
  if tonumber(s) ~= x then s = string.format('%.17g', x) end
  if not s:find('[.eE]') then s = s .. '.0' end     -- read back as a float, not an integer
  return s
end

local function is_utf8(s) return utf8.len(s) ~= nil end

-- a string: as JSON text if it is UTF-8, else tagged hex bytes
local function encode_string(s)
  if is_utf8(s) then return json_string(s) end
  return '{"$bytes":"' .. s:gsub('.', function(c) return string.format('%02x', c:byte()) end) .. '"}'
end

-- the component a key adds to a tensor's dotted name
local function key_text(k)
  if math.type(k) == 'float' then return json_number(k) end
  return tostring(k)
end

-- $table keys sort: numbers, then strings, then false, true
local kind_rank = { number = 1, string = 2, boolean = 3 }
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return kind_rank[ta] < kind_rank[tb] end
  if ta == 'boolean' then return not a and b end
  return a < b
end

-- ---------------------------------------------------------------- encoding values

-- The encoder's state: tensors collected (names, tensors, names already used), the tables
-- being encoded (to refuse cycles), and the output pieces.
local function new_encoder()
  return { names = {}, tensors = {}, name_of = {}, used = { __metadata__ = true }, open = {}, out = {} }
end

local function fail(where, msg)
  if where == '' then where = 'the value' end
  if #where > 100 then where = '...' .. where:sub(-97) end
  error({ serialize_error = where .. ': ' .. msg })
end

local function tensor_name(enc, t, path)
  local name = enc.name_of[t]
  if name then return name end
  name = path == '' and 'tensor' or path
  if enc.used[name] then
    local i = 2
    while enc.used[name .. '#' .. i] do i = i + 1 end
    name = name .. '#' .. i
  end
  enc.used[name] = true
  enc.name_of[t] = name
  enc.names[#enc.names + 1] = name
  enc.tensors[#enc.tensors + 1] = t
  return name
end

local encode

local function join(path, k)
  local c = key_text(k)
  return path == '' and c or (path .. '.' .. c)
end

local function encode_table(enc, v, path, depth)
  local mt = getmetatable(v)
  if mt ~= nil and not (type(mt) == 'table' and mt.__name == 'flare.nn.OrderedDict') then
    local name = type(mt) == 'table' and (rawget(mt, '__name') or rawget(mt, '__typename'))
    fail(path, (name and 'a ' .. tostring(name) .. ' object' or 'a table with a metatable') ..
      ' cannot be saved (save plain tables, tensors, numbers, strings, booleans and nn modules; for an optimizer or a loader, its state_dict())')
  end
  if enc.open[v] then fail(path, 'the table contains itself (a cycle cannot be saved)') end
  if depth > MAX_DEPTH then fail(path, 'tables nested more than ' .. MAX_DEPTH .. ' levels deep') end
  enc.open[v] = true
  local keys, n_int, max_int, all_str = {}, 0, 0, true
  for k in pairs(v) do
    local tk = type(k)
    if tk ~= 'string' and tk ~= 'number' and tk ~= 'boolean' then
      fail(path, 'a key of type ' .. (is_tensor(k) and 'tensor' or tk) .. ' cannot be saved')
    end
    keys[#keys + 1] = k
    if math.type(k) == 'integer' and k >= 1 then
      n_int = n_int + 1
      if k > max_int then max_int = k end
    end
    if tk ~= 'string' or not is_utf8(k) then all_str = false end
  end
  local out = enc.out
  if #keys > 0 and n_int == #keys and max_int == #keys then
    out[#out + 1] = '['                                          -- a sequence 1..n
    for i = 1, #keys do
      if i > 1 then out[#out + 1] = ',' end
      encode(enc, v[i], join(path, i), depth + 1)
    end
    out[#out + 1] = ']'
  elseif all_str then
    if not (mt and mt.__pairs) then table.sort(keys) end         -- ordered tables keep their order
    out[#out + 1] = '{'
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = ',' end
      out[#out + 1] = json_string(k:sub(1, 1) == '$' and '$' .. k or k)
      out[#out + 1] = ':'
      encode(enc, v[k], join(path, k), depth + 1)
    end
    out[#out + 1] = '}'
  else
    table.sort(keys, key_less)
    out[#out + 1] = '{"$table":['
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = ',' end
      out[#out + 1] = '['
      encode(enc, k, path, depth + 1)
      out[#out + 1] = ','
      encode(enc, v[k], join(path, k), depth + 1)
      out[#out + 1] = ']'
    end
    out[#out + 1] = ']}'
  end
  enc.open[v] = nil
end

local function encode_module(enc, m, path, depth)
  local ok, desc = pcall(m.describe, m)
  if not ok then fail(path, tostring(desc):gsub('^.-:%d+: ', '')) end
  local frozen = {}
  for name, p in pairs(m:named_parameters()) do
    if not p:wants_grad() then frozen[#frozen + 1] = name end
  end
  local out = enc.out
  out[#out + 1] = '{"$module":{"describe":'
  encode(enc, desc, path, depth + 1)
  out[#out + 1] = ',"state":'
  encode(enc, m:state_dict(), path, depth + 1)
  out[#out + 1] = ',"training":' .. tostring(m.training ~= false)
  if #frozen > 0 then
    out[#out + 1] = ',"frozen":'
    encode(enc, frozen, path, depth + 1)
  end
  out[#out + 1] = '}}'
end

encode = function(enc, v, path, depth)
  local out, tv = enc.out, type(v)
  if tv == 'string' then
    out[#out + 1] = encode_string(v)
  elseif tv == 'number' then
    out[#out + 1] = json_number(v)
  elseif tv == 'boolean' then
    out[#out + 1] = tostring(v)
  elseif is_tensor(v) then
    -- a device tensor is written as is: the writer copies it to the host, so the file is
    -- the same as from the CPU (and a tensor shared by two paths is stored once)
    out[#out + 1] = '{"$tensor":' .. json_string(tensor_name(enc, v, path)) ..
      (v:wants_grad() and ',"$grad":true}' or '}')
  elseif is_module(v) then
    encode_module(enc, v, path, depth)
  elseif tv == 'table' then
    encode_table(enc, v, path, depth)
  else
    fail(path, 'a ' .. (tv == 'userdata' and 'userdata (not a tensor)' or tv) .. ' cannot be saved (a file holds data, never code)')
  end
end

-- ---------------------------------------------------------------- decoding values

local decode

local function bad_file(ctx, msg) error({ serialize_error = msg }) end

local function plain_decode(ctx, v)
  local out = {}
  for k, x in pairs(v) do
    if type(k) == 'string' and k:sub(1, 2) == '$$' then k = k:sub(2) end
    out[k] = decode(ctx, x)
  end
  return out
end

local function decode_tensor(ctx, v)
  local name = v['$tensor']
  if type(name) ~= 'string' then bad_file(ctx, 'the description names a tensor with a ' .. type(name)) end
  local t = ctx.tensors[name]
  if not t then bad_file(ctx, "the description refers to tensor '" .. name .. "', which the file does not hold") end
  if v['$grad'] == true and not t:wants_grad() then
    if t:dtype() ~= 'float32' and t:dtype() ~= 'float64' then
      bad_file(ctx, "tensor '" .. name .. "' is marked requires_grad but is " .. t:dtype())
    end
    t:requires_grad()
  end
  return t
end

local function decode_module(ctx, spec)
  if type(spec) ~= 'table' or type(spec.describe) ~= 'table' or type(spec.state) ~= 'table' then
    bad_file(ctx, 'a $module entry needs a description and a state')
  end
  local desc = decode(ctx, spec.describe)
  local state = decode(ctx, spec.state)
  for k, t in pairs(state) do
    if type(k) ~= 'string' or not is_tensor(t) then bad_file(ctx, "a model's state must map names to tensors") end
  end
  local nn = require 'flare.nn'
  -- building initialises parameters that the state dict then overwrites: keep the random
  -- generator where it was, so that loading a checkpoint does not change what comes next
  local rng = core.get_rng_state()
  -- a description is data from a file: building it may allocate what its weights need
  -- (with room for the initialisers' temporaries), not what a hostile file asks for
  local need = 0
  for _, t in pairs(state) do need = need + t:nbytes() end
  local prev = core._set_alloc_budget(8 * need + (64 << 20))
  local ok, m = pcall(nn.build, desc)
  core._set_alloc_budget(prev)
  core.set_rng_state(rng)
  if not ok then bad_file(ctx, 'cannot rebuild the model: ' .. tostring(m):gsub('^.-:%d+: ', '')) end
  -- a model saved after m:double() comes back in float64 (constructors make float32)
  local float_dtype
  for _, t in pairs(state) do
    local dt = t:dtype()
    if dt == 'float32' or dt == 'float64' then
      if float_dtype and float_dtype ~= dt then float_dtype = 'mixed' break end
      float_dtype = dt
    end
  end
  if float_dtype == 'float64' then m:to('float64') end
  local ok2, err = pcall(m.load_state_dict, m, state)
  if not ok2 then bad_file(ctx, tostring(err):gsub('^.-:%d+: ', '')) end
  m:train(spec.training ~= false)
  if type(spec.frozen) == 'table' then
    local params = m:named_parameters()
    for _, name in ipairs(spec.frozen) do
      if params[name] then params[name]:requires_grad(false) end
    end
  end
  return m
end

local float_values = { inf = math.huge, ['-inf'] = -math.huge, nan = 0 / 0 }

local tags = {
  ['$tensor'] = function(ctx, v) return decode_tensor(ctx, v) end,
  ['$grad'] = false,   -- goes with $tensor
  ['$module'] = function(ctx, v) return decode_module(ctx, v['$module']) end,
  ['$float'] = function(ctx, v)
    local x = float_values[v['$float']]
    if not x then bad_file(ctx, 'unknown $float value ' .. tostring(v['$float'])) end
    return x
  end,
  ['$bytes'] = function(ctx, v)
    local hex = v['$bytes']
    if type(hex) ~= 'string' or #hex % 2 ~= 0 or hex:find('[^0-9a-fA-F]') then
      bad_file(ctx, '$bytes must hold an even number of hex digits')
    end
    return (hex:gsub('..', function(h) return string.char(tonumber(h, 16)) end))
  end,
  ['$table'] = function(ctx, v)
    local list, out = v['$table'], {}
    if type(list) ~= 'table' then bad_file(ctx, '$table must be a list of [key, value] pairs') end
    for _, pair in ipairs(list) do
      if type(pair) ~= 'table' or pair[1] == nil or pair[2] == nil then
        bad_file(ctx, '$table must be a list of [key, value] pairs')
      end
      local k = decode(ctx, pair[1])
      if k ~= k or type(k) == 'table' or is_tensor(k) then bad_file(ctx, '$table has a key that cannot be a key') end
      out[k] = decode(ctx, pair[2])
    end
    return out
  end,
}

decode = function(ctx, v)
  if type(v) ~= 'table' then return v end
  local tag
  for k in pairs(v) do
    if type(k) == 'string' and k:sub(1, 1) == '$' and k:sub(2, 2) ~= '$' then
      if tags[k] == nil then bad_file(ctx, 'unknown tag ' .. k .. ' in the description') end
      if tags[k] then
        if tag then bad_file(ctx, 'an object in the description has two tags, ' .. tag .. ' and ' .. k) end
        tag = k
      end
    end
  end
  if not tag then
    if v['$grad'] ~= nil then bad_file(ctx, '$grad without $tensor in the description') end
    return plain_decode(ctx, v)
  end
  for k in pairs(v) do
    if k ~= tag and not (tag == '$tensor' and k == '$grad') then
      bad_file(ctx, 'unexpected key ' .. tostring(k) .. ' beside ' .. tag .. ' in the description')
    end
  end
  return tags[tag](ctx, v)
end

-- ---------------------------------------------------------------- files

-- Runs f(...), turning the errors raised with fail/bad_file into "fname: 'path': message".
local function guarded(fname, path, f, ...)
  local res = table.pack(pcall(f, ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  local err = res[2]
  if type(err) == 'table' and err.serialize_error then
    error(string.format("%s: '%s': %s", fname, path, err.serialize_error), 3)
  end
  error(err, 0)
end

local function check_path(path, fname, level)
  if type(path) ~= 'string' or path == '' then
    error(string.format("bad argument #1 to '%s' (file name expected, got %s)", fname,
      path == '' and 'an empty string' or type(path)), level + 1)
  end
end

local function uninterruptible(f, ...)
  local flare = package.loaded.flare
  if flare and flare.uninterruptible then return flare.uninterruptible(f, ...) end
  return f(...)
end

-- Calls a C function of the core; its errors are raised again at the caller of the caller
-- of this (the user's line), without the position inside this file.
local function call_core(f, ...)
  local res = table.pack(pcall(f, ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  local err = res[2]
  if type(err) == 'string' then error((err:gsub('^[^:\n]*:%d+: ', '')), 3) end
  error(err, 0)
end

--- serialize.read_safetensors(path) -> tensors, metadata, names
-- The raw contents of any safetensors file: a table name -> tensor, the header's metadata
-- (string -> string) and the names in the order of their bytes in the file. F16 and BF16
-- tensors come back as float32; I8, I16 and U16 as int32; U32 as int64.
function M.read_safetensors(path)
  check_path(path, 'read_safetensors', 1)
  return call_core(core._safetensors_read, path)
end

--- serialize.write_safetensors(path, tensors, [metadata])
-- Writes a table name -> tensor (and string -> string metadata) as a plain safetensors file,
-- atomically. Names are written in sorted order; the tensors in any layout (written
-- contiguous).
function M.write_safetensors(path, tensors, metadata)
  check_path(path, 'write_safetensors', 1)
  if type(tensors) ~= 'table' then
    error("bad argument #2 to 'write_safetensors' (table name -> tensor expected, got " .. type(tensors) .. ')', 2)
  end
  local names, list = {}, {}
  for k, t in pairs(tensors) do
    if type(k) ~= 'string' then error('write_safetensors: tensor names must be strings, got a ' .. type(k), 2) end
    if not is_tensor(t) then error("write_safetensors: '" .. k .. "' is a " .. type(t) .. ', expected a tensor', 2) end
    names[#names + 1] = k
  end
  table.sort(names)
  for i, k in ipairs(names) do list[i] = tensors[k] end
  local mk, mv = {}, {}
  if metadata ~= nil then
    if type(metadata) ~= 'table' then
      error("bad argument #3 to 'write_safetensors' (table of strings expected, got " .. type(metadata) .. ')', 2)
    end
    for k, v in pairs(metadata) do
      if type(k) ~= 'string' or type(v) ~= 'string' then
        error('write_safetensors: metadata must map strings to strings, got ' .. type(k) .. ' -> ' .. type(v), 2)
      end
      mk[#mk + 1] = k
    end
    table.sort(mk)
    for i, k in ipairs(mk) do mv[i] = metadata[k] end
  end
  call_core(uninterruptible, core._safetensors_write, path, names, list, mk, mv)
end

--- flare.save(path, value, [{metadata = {key = 'string', ...}}])
-- Saves a tensor, a table (state dicts, checkpoints: nested tables of tensors, numbers,
-- strings, booleans) or a whole nn model to a safetensors file, atomically (a crash leaves
-- the previous file whole) and so that Ctrl-C cannot stop the write half-way. Tensors are
-- named by their dotted path ('model.0.weight'); a model stores its state dict under
-- PyTorch's names, and its architecture (module class names and constructor arguments) as
-- data in the header. `metadata` adds string fields to the header (e.g. format = 'pt').
--
--   flare.save('digits.safetensors', model)
--   flare.save('ckpt.safetensors', {model = model:state_dict(), optimizer = opt:state_dict(), epoch = 3})
--   -- in Python: safetensors.torch.load_file('digits.safetensors') is the state dict
function M.save(path, value, opts)
  if type(path) ~= 'string' and type(value) == 'string' then path, value = value, path end  -- save(model, path)
  check_path(path, 'save', 1)
  if value == nil then error("bad argument #2 to 'save' (a value to save expected, got nil)", 2) end
  if opts ~= nil and type(opts) ~= 'table' then
    error("bad argument #3 to 'save' (options table expected, got " .. type(opts) .. ')', 2)
  end
  local meta = { format = 'pt' }   -- what Hugging Face's loaders expect of PyTorch-layout weights
  if opts and opts.metadata ~= nil then
    if type(opts.metadata) ~= 'table' then error('save: metadata must be a table of strings, got ' .. type(opts.metadata), 2) end
    for k, v in pairs(opts.metadata) do
      if type(k) ~= 'string' or type(v) ~= 'string' then
        error('save: metadata must map strings to strings, got ' .. type(k) .. ' -> ' .. type(v), 2)
      end
      if k == META then error("save: metadata key '" .. META .. "' is flare's own", 2) end
      meta[k] = v
    end
  end
  local enc = new_encoder()
  guarded('save', path, function()
    enc.out[1] = '{"version":' .. VERSION .. ',"object":'
    encode(enc, value, '', 0)
    enc.out[#enc.out + 1] = '}'
  end)
  meta[META] = table.concat(enc.out)
  local mk, mv = {}, {}
  for k in pairs(meta) do mk[#mk + 1] = k end
  table.sort(mk)
  for i, k in ipairs(mk) do mv[i] = meta[k] end
  call_core(uninterruptible, core._safetensors_write, path, enc.names, enc.tensors, mk, mv)
end

-- Moves what load built to a device in place: models by m:to, tensors by x:set_ (so a
-- tensor reachable twice stays one object, and requires_grad stays).
local function move_loaded(v, device, seen)
  if seen[v] then return end
  if is_tensor(v) then
    seen[v] = true
    local moved = v:to(device)
    if moved ~= v then v:set_(moved) end
  elseif is_module(v) then
    seen[v] = true
    v:to(device)
  elseif type(v) == 'table' then
    seen[v] = true
    for k, x in pairs(v) do
      move_loaded(k, device, seen)
      move_loaded(x, device, seen)
    end
  end
end

local function load_options(opts)
  if opts == nil then return nil end
  if type(opts) ~= 'table' or is_tensor(opts) then
    error("bad argument #2 to 'load' (options table {device =} expected, got " .. type(opts) .. ')', 3)
  end
  local d = opts.device
  if d ~= nil and d ~= 'cpu' and not (type(d) == 'string' and d:match('^cuda[:%d]*$')) then
    error("load: device must be 'cpu' or 'cuda', got " .. tostring(d), 3)
  end
  if d == 'cpu' then return nil end
  if d ~= nil and not core.cuda.is_available() then
    error('load: device ' .. d .. ' is not available: ' .. tostring(core.cuda.why_unavailable()), 3)
  end
  return d
end

--- flare.load(path, [{device = 'cuda'}]) -> value
-- Loads what flare.save wrote: the tensor, table or model (rebuilt from nn.registry: a
-- model of your own classes needs the file defining them loaded first). Any other
-- safetensors file (from PyTorch, Hugging Face, ...) loads as a table name -> tensor.
-- Every size and offset is checked before anything is allocated; a damaged or hostile file
-- is an error naming the file and the problem, and loading never runs code from the file.
-- Files do not record a device: what was saved from the GPU loads on the CPU (on a machine
-- without one too); device = 'cuda' moves every tensor and model there after loading.
function M.load(path, opts)
  check_path(path, 'load', 1)
  local device = load_options(opts)
  local function placed(v)
    if device then core.no_grad(function() move_loaded(v, device, {}) end) end
    return v
  end
  local tensors, meta = call_core(core._safetensors_read, path)
  local text = meta[META]
  if text == nil then return placed(tensors) end
  return guarded('load', path, function()
    local ok, doc = pcall(core._json_decode, text)
    if not ok then bad_file(nil, 'the description in the metadata is not valid: ' .. tostring(doc):gsub('^.-:%d+: ', '')) end
    if type(doc) ~= 'table' or math.type(doc.version) ~= 'integer' then
      bad_file(nil, 'the description in the metadata has no version')
    end
    if doc.version > VERSION then
      bad_file(nil, string.format('written by a newer flare (format version %d; this one reads up to %d)', doc.version, VERSION))
    end
    return placed(decode({ tensors = tensors }, doc.object))
  end)
end

--- serialize.write_file_atomic(path, bytes)
-- Replaces the file at path with bytes (a string) atomically, as flare.save does: a
-- temporary file beside it, fsync, rename, fsync of the directory; Ctrl-C waits for it.
function M.write_file_atomic(path, bytes)
  check_path(path, 'write_file_atomic', 1)
  if type(bytes) ~= 'string' then
    error("bad argument #2 to 'write_file_atomic' (string expected, got " .. type(bytes) .. ')', 2)
  end
  call_core(uninterruptible, core._write_file_atomic, path, bytes)
end

--- serialize.json_decode(text) -> value
-- JSON text to Lua values (objects -> tables, arrays -> sequences, null -> nil; integers
-- that fit in 64 bits -> Lua integers).
M.json_decode = core._json_decode

return M
