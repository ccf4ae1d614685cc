-- flare.format: turning tensors and values into text for printing.
--
-- Tensors print as aligned columns with a footer naming type and size, in the manner of
-- Torch7; big tensors are summarized (the first and last `edgeitems` along each
-- dimension, with '...' between), as PyTorch does. Other values print for the prompt:
-- tables nested and indented (cycles marked, long ones cut), modules as their tree with
-- parameter counts, functions by name; in colour when asked (opts.color).
local M = {}

-- threshold..linewidth: tensors; items: entries shown per table; depth: nesting shown;
-- string: characters of a string shown inside a table.
M.options = { threshold = 1000, edgeitems = 3, precision = 4, linewidth = 100,
              items = 30, depth = 4, string = 120 }

local type_names = {
  float32 = 'FloatTensor', float64 = 'DoubleTensor', int64 = 'LongTensor',
  int32 = 'IntTensor', uint8 = 'ByteTensor', bool = 'BoolTensor',
}

-- Indices to show along a dimension of size n: all, or the edges with a gap (false).
local function shown(n, summarize)
  local e = M.options.edgeitems
  local idx = {}
  if summarize and n > 2 * e then
    for i = 1, e do idx[#idx + 1] = i end
    idx[#idx + 1] = false
    for i = n - e + 1, n do idx[#idx + 1] = i end
  else
    for i = 1, n do idx[i] = i end
  end
  return idx
end

-- Collects the numbers that will be shown, to choose one format for all of them.
local function gather(t, summarize, out)
  if t:dim() == 0 then
    out[#out + 1] = t:item()
    return out
  end
  if t:dim() == 1 and not summarize then
    for _, v in ipairs(t:totable()) do out[#out + 1] = v end
    return out
  end
  for _, i in ipairs(shown(t:size(1), summarize)) do
    if i then gather(t[i], summarize, out) end
  end
  return out
end

-- A formatter for every value of the tensor: integers, fixed point or scientific.
local function number_format(values, dtype)
  if dtype == 'bool' then
    return function(v) return v and 'true' or 'false' end, 5
  end
  local integral = dtype ~= 'float32' and dtype ~= 'float64'
  local maxabs, minabs = 0, math.huge
  local all_int = true
  for _, v in ipairs(values) do
    local a = math.abs(v)
    if a == a and a ~= math.huge then
      if a > maxabs then maxabs = a end
      if a ~= 0 and a < minabs then minabs = a end
      if v ~= math.floor(v) then all_int = false end
    end
  end
  local p = M.options.precision
  local fmt
  if integral then
    fmt = '%d'
  elseif all_int and maxabs < 1e8 then
    fmt = '%.0f.'
  elseif maxabs >= 1e8 or (minabs < 1e-4 and minabs ~= math.huge) or maxabs / minabs > 1e7 then
    fmt = '%.' .. p .. 'e'
  else
    fmt = '%.' .. p .. 'f'
  end
  local function f(v)
    if v ~= v then return 'nan' end
    if v == math.huge then return 'inf' end
    if v == -math.huge then return '-inf' end
    return string.format(fmt, v)
  end
  local width = 0
  for _, v in ipairs(values) do width = math.max(width, #f(v)) end
  return f, width
end

local function pad(s, width)
  return string.rep(' ', width - #s) .. s
end

local function format_row(t, summarize, f, width)
  local parts = {}
  for _, i in ipairs(shown(t:size(1), summarize)) do
    parts[#parts + 1] = i and pad(f(t[i]:item()), width) or pad('...', width)
  end
  return table.concat(parts, ' ')
end

local function format_matrix(m, summarize, f, width, lines)
  for _, i in ipairs(shown(m:size(1), summarize)) do
    if i then
      lines[#lines + 1] = ' ' .. format_row(m[i], summarize, f, width)
    else
      lines[#lines + 1] = ' ...'
    end
  end
end

-- Tensors of 3 or more dims print as a sequence of matrices, each headed by its index
-- "(i,j,.,.) =", as Torch7 did.
local function format_slices(t, prefix, summarize, f, width, lines)
  if t:dim() == 2 then
    lines[#lines + 1] = '(' .. table.concat(prefix, ',') .. ',.,.) = '
    format_matrix(t, summarize, f, width, lines)
    lines[#lines + 1] = ''
    return
  end
  for _, i in ipairs(shown(t:size(1), summarize)) do
    if i then
      prefix[#prefix + 1] = tostring(i)
      format_slices(t[i], prefix, summarize, f, width, lines)
      prefix[#prefix] = nil
    else
      lines[#lines + 1] = '...'
      lines[#lines + 1] = ''
    end
  end
end

function M.footer(t)
  local dims = t:size()
  local size = #dims == 0 and '[]' or table.concat(dims, 'x')
  local dev = t:device()
  return string.format('[flare.%s of size %s%s]', type_names[t:dtype()], size,
                       dev == 'cpu' and '' or ' on ' .. dev)
end

-- A device tensor is printed from a host copy (one transfer), with its device in the footer.
function M.tensor(t)
  local footer = M.footer(t)
  if t:device() ~= 'cpu' then t = t:to('cpu') end
  local lines = {}
  if t:numel() > 0 then
    local summarize = t:numel() > M.options.threshold
    local f, width = number_format(gather(t, summarize, {}), t:dtype())
    local d = t:dim()
    if d == 0 then
      lines[1] = f(t:item())
    elseif d == 1 then
      lines[1] = ' ' .. format_row(t, summarize, f, width)
    elseif d == 2 then
      format_matrix(t, summarize, f, width, lines)
    else
      format_slices(t, {}, summarize, f, width, lines)
    end
  end
  lines[#lines + 1] = footer
  return table.concat(lines, '\n')
end

-- x:size() returns a plain list with this metatable: it prints as {2, 3} and compares by
-- value.
M.Size = {
  __tostring = function(s) return '{' .. table.concat(s, ', ') .. '}' end,
  __eq = function(a, b)
    if #a ~= #b then return false end
    for i = 1, #a do if a[i] ~= b[i] then return false end end
    return true
  end,
  __name = 'flare.Size',
}


-- ---------------------------------------------------------------- values for the prompt

local core = require 'flare.core'
local is_tensor = core.is_tensor

-- ANSI colours by kind of text, used when opts.color is set.
M.colors = {
  number = '\27[36m', string = '\27[32m', boolean = '\27[35m', ['nil'] = '\27[35m',
  ['function'] = '\27[33m', tensor = '\27[34m', module = '\27[1;34m', key = '',
  note = '\27[90m', error = '\27[31m', reset = '\27[0m',
}

local function paint(opts, kind, s)
  if not (opts and opts.color) then return s end
  local c = M.colors[kind]
  if not c or c == '' then return s end
  return c .. s .. M.colors.reset
end
M.paint = paint

-- 1234567 -> "1,234,567"
function M.count(n)
  local s = tostring(math.tointeger(n) or n)
  local sign, digits = s:match('^(-?)(%d+)$')
  if not digits then return s end
  return sign .. digits:reverse():gsub('(%d%d%d)', '%1,'):reverse():gsub('^,', '')
end

-- Names of library functions, so that a function prints as `flare.randn` rather than an
-- address. Built on demand from the loaded library tables.
local lua_libs = { 'string', 'table', 'math', 'io', 'os', 'coroutine', 'utf8', 'debug', 'package' }

function M.function_names()
  local names = {}
  local function add(f, name)
    if names[f] == nil then names[f] = name end
  end
  local flare = package.loaded['flare'] or core
  local methods = rawget(flare, '_methods')
  local keys = {}
  for k in pairs(flare) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local v = flare[k]
    if type(v) == 'function' and type(k) == 'string' and k:sub(1, 1) ~= '_' then
      add(v, 'flare.' .. k)
    end
  end
  if type(methods) == 'table' then
    for k, v in pairs(methods) do
      if type(v) == 'function' then add(v, 'Tensor:' .. k) end
    end
  end
  -- stdlib modules exposed as fields of flare (flare.plot, flare.nn, ...)
  for k, v in pairs(flare) do
    if type(v) == 'table' and type(k) == 'string' and k:sub(1, 1) ~= '_' and v ~= methods then
      for kk, vv in pairs(v) do
        if type(vv) == 'function' and type(kk) == 'string' then add(vv, 'flare.' .. k .. '.' .. kk) end
      end
    end
  end
  for _, lib in ipairs(lua_libs) do
    local t = _G[lib]
    if type(t) == 'table' then
      for k, v in pairs(t) do
        if type(v) == 'function' then add(v, lib .. '.' .. k) end
      end
    end
  end
  for k, v in pairs(_G) do
    if type(v) == 'function' and type(k) == 'string' then add(v, k) end
  end
  return names
end

local function function_text(f, opts)
  opts.names = opts.names or M.function_names()
  local name = opts.names[f]
  if name then return paint(opts, 'function', 'function: ' .. name) end
  local info = debug.getinfo(f, 'S')
  if info.what == 'C' then
    return paint(opts, 'function', 'function: builtin') .. paint(opts, 'note', ' (' .. tostring(f):match('0x%x+') .. ')')
  end
  return paint(opts, 'function', 'function: ' .. info.short_src .. ':' .. info.linedefined)
end

-- A string as a Lua literal, cut when long.
local function quote(s, limit)
  local cut = ''
  if limit and #s > limit then
    cut = string.format('...(%d bytes)', #s)
    s = s:sub(1, limit)
  end
  local q = s:gsub('[%c"\\]', function(c)
    local named = { ['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r', ['"'] = '\\"', ['\\'] = '\\\\' }
    return named[c] or string.format('\\%03d', c:byte())
  end)
  return '"' .. q .. '"' .. cut
end
M.quote = quote

-- ---------------------------------------------------------------- modules
-- The protocol a module follows to print as a tree (nn's modules do; any table may):
--   m:parameters()     a list (or map) of its tensors, counted for the parameter totals
--   m.__typename       its class name, e.g. 'nn.Linear' (or __typename/__name in its metatable)
--   m:extra_repr()     optional: the arguments shown after the name, e.g. '784, 128'
--   m:named_children() optional: its sub-modules as a list of {name, module} or a map;
--                      else m:children() (a list) or m.modules (a list, as in Torch7).

function M.is_module(v)
  if type(v) ~= 'table' or getmetatable(v) == nil or is_tensor(v) then return false end
  local ok, p = pcall(function() return v.parameters end)
  return ok and type(p) == 'function'
end

local function module_name(m)
  local mt = getmetatable(m)
  local ok, n = pcall(function() return m.__typename end)
  if ok and type(n) == 'string' then return n end
  n = mt and (rawget(mt, '__typename') or rawget(mt, '__name'))
  return type(n) == 'string' and n or 'module'
end

function M.count_parameters(m)
  local ok, ps = pcall(m.parameters, m)
  if not ok or type(ps) ~= 'table' then return nil end
  local n = 0
  for _, p in pairs(ps) do
    if is_tensor(p) then n = n + p:numel() end
  end
  return n
end

local function module_children(m)
  local list = {}
  local function try(method)
    local ok, f = pcall(function() return m[method] end)
    if not ok or type(f) ~= 'function' then return nil end
    local ok2, r = pcall(f, m)
    return ok2 and type(r) == 'table' and r or nil
  end
  local named = try('named_children')
  if named then
    if #named > 0 then
      for i, e in ipairs(named) do
        if type(e) == 'table' and e[2] ~= nil then list[#list + 1] = { tostring(e[1]), e[2] }
        else list[#list + 1] = { tostring(i), e } end
      end
    else
      local keys = {}
      for k in pairs(named) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      for _, k in ipairs(keys) do list[#list + 1] = { tostring(k), named[k] } end
    end
    return list
  end
  local kids = try('children')
  if not kids then
    local ok, mods = pcall(function() return m.modules end)
    kids = ok and type(mods) == 'table' and mods or {}
  end
  for i, c in ipairs(kids) do list[#list + 1] = { tostring(i), c } end
  return list
end

local function module_head(m, opts)
  local head = paint(opts, 'module', module_name(m))
  local ok, extra = pcall(function() return m:extra_repr() end)
  if ok and type(extra) == 'string' then head = head .. '(' .. extra .. ')' end
  return head
end

local function module_lines(m, opts, indent, lines, prefix, seen)
  local head = prefix .. module_head(m, opts)
  local nparams = M.count_parameters(m)
  local kids = seen[m] and {} or module_children(m)
  local note = nparams and nparams > 0 and paint(opts, 'note', ' (' .. M.count(nparams) .. ' parameters)') or ''
  if seen[m] then
    lines[#lines + 1] = indent .. head .. paint(opts, 'note', ' <cycle>')
    return
  end
  if #kids == 0 then
    lines[#lines + 1] = indent .. head .. note
    return
  end
  seen[m] = true
  lines[#lines + 1] = indent .. head .. note .. ' {'
  for _, kid in ipairs(kids) do
    local name, c = kid[1], kid[2]
    local p = '(' .. name .. '): '
    if M.is_module(c) then
      module_lines(c, opts, indent .. '  ', lines, p, seen)
    else
      lines[#lines + 1] = indent .. '  ' .. p .. M.inline(c, opts)
    end
  end
  lines[#lines + 1] = indent .. '}'
  seen[m] = nil
end

function M.module(m, opts)
  opts = opts or {}
  local lines = {}
  module_lines(m, opts, '', lines, '', {})
  return table.concat(lines, '\n')
end

-- ---------------------------------------------------------------- tables

local function is_identifier(k)
  local kw = { ['and'] = 1, ['break'] = 1, ['do'] = 1, ['else'] = 1, ['elseif'] = 1, ['end'] = 1,
    ['false'] = 1, ['for'] = 1, ['function'] = 1, ['goto'] = 1, ['if'] = 1, ['in'] = 1,
    ['local'] = 1, ['nil'] = 1, ['not'] = 1, ['or'] = 1, ['repeat'] = 1, ['return'] = 1,
    ['then'] = 1, ['true'] = 1, ['until'] = 1, ['while'] = 1 }
  return type(k) == 'string' and k:match('^[%a_][%w_]*$') and not kw[k]
end

-- Keys in a stable order: the array part first, then strings, numbers, then the rest.
local function sorted_keys(t, n)
  local keys = {}
  for k in next, t do
    if not (math.type(k) == 'integer' and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  local rank = { string = 1, number = 2, boolean = 3 }
  table.sort(keys, function(a, b)
    local ra, rb = rank[type(a)] or 4, rank[type(b)] or 4
    if ra ~= rb then return ra < rb end
    if ra <= 2 then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end

-- Length of the array part that pairs() would show: 1..n without holes.
local function array_length(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  return n
end

local function key_text(k, opts)
  if is_identifier(k) then return paint(opts, 'key', k) end
  return '[' .. M.inline(k, opts, 0, {}) .. ']'
end

local table_text

local function visible_length(s)
  return #s:gsub('\27%[[%d;]*m', '')
end

-- One value inside a table (or among several results): short, one line where possible.
function M.inline(v, opts, depth, path)
  opts = opts or {}
  local tv = type(v)
  if tv == 'string' then
    return paint(opts, 'string', quote(v, M.options.string))
  elseif tv == 'number' then
    return paint(opts, 'number', tostring(v))
  elseif tv == 'boolean' or tv == 'nil' then
    return paint(opts, tv, tostring(v))
  elseif tv == 'function' then
    return function_text(v, opts)
  elseif is_tensor(v) then
    return paint(opts, 'tensor', M.footer(v))
  elseif tv == 'table' then
    if M.is_module(v) then
      local n = M.count_parameters(v)
      return module_head(v, opts) .. (n and n > 0 and paint(opts, 'note', ' (' .. M.count(n) .. ' parameters)') or '')
    end
    local mt = getmetatable(v)
    if mt and rawget(mt, '__tostring') then
      local ok, s = pcall(tostring, v)
      if ok then return s end
    end
    return table_text(v, opts, depth or 0, path or {}, '')
  end
  return tostring(v)
end

-- A table, on one line if it fits, else one entry per line indented under its parent.
-- `path` holds the tables being printed around this one, to mark cycles.
function table_text(t, opts, depth, path, indent)
  if path[t] then return paint(opts, 'note', '<cycle: ' .. tostring(t) .. '>') end
  local n = array_length(t)
  local keys = sorted_keys(t, n)
  local total = n + #keys
  if total == 0 then return '{}' end
  if depth >= M.options.depth then
    return '{' .. paint(opts, 'note', '...' .. M.count(total) .. (total == 1 and ' entry' or ' entries')) .. '}'
  end
  path[t] = true
  local limit = M.options.items
  local items, multiline, positional = {}, false, {}
  local function add(s, pos)
    items[#items + 1] = s
    positional[#items] = pos
    if s:find('\n') then multiline = true end
  end
  local inner = indent .. '  '
  local function value(v)
    if type(v) == 'table' and not is_tensor(v) and not M.is_module(v)
       and not (getmetatable(v) and rawget(getmetatable(v), '__tostring')) then
      return table_text(v, opts, depth + 1, path, inner)
    end
    return M.inline(v, opts, depth + 1, path)
  end
  for i = 1, math.min(n, limit) do add(value(rawget(t, i)), true) end
  for j = 1, math.min(#keys, limit - math.min(n, limit)) do
    local k = keys[j]
    add(key_text(k, opts) .. ' = ' .. value(rawget(t, k)))
  end
  path[t] = nil
  if total > limit then add(paint(opts, 'note', '...' .. M.count(total - limit) .. ' more'), n > limit) end
  local one = '{' .. table.concat(items, ', ') .. '}'
  if not multiline and #indent + visible_length(one) <= M.options.linewidth then return one end
  -- one entry per line, except that short list items share lines up to the line width
  local lines, line = {}, nil
  for i, item in ipairs(items) do
    local fits = line and positional[i] and positional[i - 1] and not item:find('\n')
                 and #inner + visible_length(line) + 2 + visible_length(item) <= M.options.linewidth
    if fits then
      line = line .. ', ' .. item
    else
      if line then lines[#lines + 1] = line end
      line = item
    end
  end
  lines[#lines + 1] = line
  return '{\n' .. inner .. table.concat(lines, ',\n' .. inner) .. '\n' .. indent .. '}'
end

function M.table(t, opts)
  return table_text(t, opts or {}, 0, {}, '')
end

-- Any value, for the prompt (opts.color: use ANSI colours). Strings print as they are.
function M.value(v, opts)
  opts = opts or {}
  if type(v) == 'string' then return v end
  if is_tensor(v) then
    local s = M.tensor(v)
    if opts.color then
      local body, foot = s:match('^(.-)(%[flare%.[^\n]*%])$')
      if foot then s = body .. paint(opts, 'note', foot) end
    end
    return s
  end
  if M.is_module(v) then return M.module(v, opts) end
  return M.inline(v, opts, 0, {})
end

return M
