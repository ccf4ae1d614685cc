-- flare.format: turning tensors and values into text for printing.
--
-- Tensors print as aligned columns with a footer naming type and size, in the manner of
-- Torch7; big tensors are summarized (the first and last `edgeitems` along each
-- dimension, with '...' between), as PyTorch does.
local M = {}

M.options = { threshold = 1000, edgeitems = 3, precision = 4, linewidth = 100 }

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

function M.tensor(t)
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
  lines[#lines + 1] = M.footer(t)
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

-- Any value, for the prompt.
function M.value(v)
  return tostring(v)
end

return M
