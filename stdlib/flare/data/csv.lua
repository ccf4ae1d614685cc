-- flare.data.csv: numeric tables from CSV files as data sets. Which columns are features
-- and which one is the label is chosen by number or (with a header) by name; every value
-- must be a number, and a bad one is reported with its line and column.
local flare = require 'flare.core'

local M = {}

-- Fields of one line. Double-quoted fields may hold the delimiter and "" for a quote.
local function split_line(line, delim, name, lineno)
  if not line:find('"', 1, true) then
    local fields, start = {}, 1
    while true do
      local at = line:find(delim, start, true)
      if not at then
        fields[#fields + 1] = line:sub(start)
        return fields
      end
      fields[#fields + 1] = line:sub(start, at - 1)
      start = at + #delim
    end
  end
  local fields, pos, n = {}, 1, #line
  while true do
    local field
    if line:sub(pos, pos) == '"' then
      local parts, p = {}, pos + 1
      while true do
        local q = line:find('"', p, true)
        if not q then error(string.format("'%s' line %d: a quoted field is not closed", name, lineno), 0) end
        parts[#parts + 1] = line:sub(p, q - 1)
        if line:sub(q + 1, q + 1) == '"' then
          parts[#parts + 1] = '"'
          p = q + 2
        else
          pos = q + 1
          break
        end
      end
      field = table.concat(parts)
      if pos <= n and line:sub(pos, pos + #delim - 1) ~= delim then
        error(string.format("'%s' line %d: text after a closing quote", name, lineno), 0)
      end
    else
      local at = line:find(delim, pos, true) or n + 1
      field = line:sub(pos, at - 1)
      pos = at
    end
    fields[#fields + 1] = field
    if pos > n then return fields end
    pos = pos + #delim
    if pos > n then
      fields[#fields + 1] = ''
      return fields
    end
  end
end

local function number(s)
  -- tonumber accepts hex and surrounding spaces; CSV numbers are decimal (nan, inf allowed)
  local v = tonumber(s)
  if v and not s:find('^%s*[-+]?0[xX]') then return v end
  local l = s:lower():match('^%s*(.-)%s*$')
  if l == 'nan' then return 0 / 0 end
  if l == 'inf' or l == '+inf' or l == 'infinity' then return math.huge end
  if l == '-inf' or l == '-infinity' then return -math.huge end
  return nil
end

-- A column given by number (1-based, negative from the end) or by header name.
local function column(spec, names, ncols, what)
  if math.type(spec) == 'integer' then
    local c = spec < 0 and ncols + 1 + spec or spec
    if c < 1 or c > ncols then
      error(string.format('csv: %s column %d is out of range (the file has %d columns)', what, spec, ncols), 0)
    end
    return c
  end
  if type(spec) == 'string' then
    if not names then error(string.format("csv: %s column '%s' is named, but the file has no header", what, spec), 0) end
    for c, n in ipairs(names) do if n == spec then return c end end
    error(string.format("csv: no %s column '%s' (the header has: '%s')", what, spec, table.concat(names, "', '")), 0)
  end
  error(string.format('csv: %s column must be a number or a header name, got %s', what, type(spec)), 0)
end

--- data.csv(path, {header, delimiter = ',', features, label, dtype = 'float32',
-- label_dtype, label_base}): a TensorDataset of features (N, F) and, when `label` names a
-- column, labels (N); with a header, ds.columns and ds.label_column hold the names.
-- header: true, false, or nil to guess (a first line that is not all numbers is a header).
-- features: a list of columns (numbers, negative from the end, or header names); default
-- every column but the label. label: one column. Labels become int64 when they are all
-- whole numbers (else dtype), or label_dtype; label_base = 0 says class labels in the file
-- count from 0 and shifts them to flare's class indices, which count from 1.
function M.csv(path, opts)
  opts = opts or {}
  if type(path) ~= 'string' then
    error(string.format("bad argument #1 to 'csv' (file name expected, got %s)", type(path)), 2)
  end
  local delim = opts.delimiter or ','
  if type(delim) ~= 'string' or #delim == 0 then error('csv: delimiter must be a non-empty string', 2) end
  local columns, label_name
  local ok, res = pcall(function()
    local text = flare.read_file(path, { max_bytes = opts.max_bytes or 1 << 34 })
    if text:sub(1, 3) == '\239\187\191' then text = text:sub(4) end   -- a UTF-8 byte order mark
    local lineno, first = 0, nil
    local header = opts.header
    local names, ncols, fcols, lcol
    local feats, labels, nrows = {}, {}, 0
    local all_int = true
    for line in (text .. '\n'):gmatch('([^\n]*)\n') do
      lineno = lineno + 1
      line = line:gsub('\r$', '')
      if line:match('%S') then
        local fields = split_line(line, delim, path, lineno)
        if not ncols then
          ncols = #fields
          if header == nil then
            header = false
            for _, f in ipairs(fields) do if not number(f) then header = true break end end
          end
          if header then
            names = {}
            for c, f in ipairs(fields) do names[c] = f:match('^%s*(.-)%s*$') end
          end
          if opts.label ~= nil then lcol = column(opts.label, names, ncols, 'label') end
          fcols = {}
          if opts.features then
            if type(opts.features) ~= 'table' then
              error('csv: features must be a list of columns, got ' .. type(opts.features), 0)
            end
            for k, spec in ipairs(opts.features) do fcols[k] = column(spec, names, ncols, 'feature') end
          else
            for c = 1, ncols do if c ~= lcol then fcols[#fcols + 1] = c end end
          end
          if #fcols == 0 then error("csv: no feature columns (the file has only the label's)", 0) end
          if header then goto continue end
        end
        if #fields ~= ncols then
          error(string.format("'%s' line %d has %d fields, expected %d (as on line %d)", path, lineno, #fields,
            ncols, first or lineno), 0)
        end
        first = first or lineno
        nrows = nrows + 1
        local base = (nrows - 1) * #fcols
        for k, c in ipairs(fcols) do
          local v = number(fields[c])
          if not v then
            error(string.format("'%s' line %d, column %d%s: '%s' is not a number", path, lineno, c,
              names and " ('" .. names[c] .. "')" or '', fields[c]), 0)
          end
          feats[base + k] = v
        end
        if lcol then
          local v = number(fields[lcol])
          if not v then
            error(string.format("'%s' line %d, column %d%s: label '%s' is not a number", path, lineno, lcol,
              names and " ('" .. names[lcol] .. "')" or '', fields[lcol]), 0)
          end
          all_int = all_int and v == math.floor(v) and math.abs(v) < 2 ^ 53
          labels[nrows] = v
        end
      end
      ::continue::
    end
    if nrows == 0 then error(string.format("'%s' holds no rows of data", path), 0) end
    local x = flare.tensor(feats, { dtype = opts.dtype or 'float32' }):reshape(nrows, #fcols)
    if names then
      columns = {}
      for k, c in ipairs(fcols) do columns[k] = names[c] end
      label_name = lcol and names[lcol]
    end
    if not lcol then return { x } end
    local ldtype = opts.label_dtype or (all_int and 'int64' or opts.dtype or 'float32')
    if opts.label_base ~= nil then
      if math.type(opts.label_base) ~= 'integer' then error('csv: label_base must be an integer', 0) end
      for i = 1, nrows do labels[i] = labels[i] - opts.label_base + 1 end
    end
    if ldtype == 'int64' or ldtype == 'int32' then
      for i = 1, nrows do labels[i] = math.tointeger(labels[i]) or labels[i] end
    end
    return { x, flare.tensor(labels, { dtype = ldtype }) }
  end)
  if not ok then
    res = tostring(res)
    error('csv: ' .. (res:gsub('^csv: ', ''):gsub('^read_file: ', '')), 2)
  end
  local ds = require('flare.data').TensorDataset(table.unpack(res))
  ds.columns, ds.label_column = columns, label_name   -- header names, when there is a header
  return ds
end

return M
