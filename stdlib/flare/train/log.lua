-- flare.train.log: a log of a training run, one row per step and one per epoch, as CSV
-- (the header `step,epoch,<metric>...`, an empty epoch cell on per-step rows: the layout
-- plot.log replots) or as JSON lines (one object per row, with "kind": "step" | "epoch").
local M = {}

local Log = {}
Log.__index = Log
Log.__name = 'flare.train.Log'

-- Numbers as short text (integers as integers).
local function fmt(v)
  if math.type(v) == 'integer' then return tostring(v) end
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format('%d', v) end
  return string.format('%.8g', v) -- a log is read by people and plots: 8 digits are plenty
end
M.fmt = fmt

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == '\\' then return '\\\\' end
    return string.format('\\u%04x', c:byte())
  end) .. '"'
end

local function json_number(v)
  if v ~= v or v == math.huge or v == -math.huge then return 'null' end -- JSON has no nan/inf
  return fmt(v)
end

local function format_of(path, format)
  if format ~= nil then
    if format ~= 'csv' and format ~= 'jsonl' then
      error("train.log: format must be 'csv' or 'jsonl', got " .. tostring(format), 3)
    end
    return format
  end
  if path:match('%.jsonl$') or path:match('%.json$') or path:match('%.ndjson$') then return 'jsonl' end
  return 'csv'
end

-- Reads back the rows of a log this module wrote (to go on after a resume).
local function read_rows(path, format)
  local f = io.open(path, 'r')
  if not f then return {} end
  local text = f:read('a')
  f:close()
  local rows = {}
  if format == 'csv' then
    local names
    for line in text:gmatch('[^\n]+') do
      local cells = {}
      for c in (line .. ','):gmatch('([^,]*),') do cells[#cells + 1] = c end
      if not names then
        names = cells
      else
        local r = { step = math.tointeger(tonumber(cells[1])) or tonumber(cells[1]),
                    epoch = cells[2] ~= '' and (math.tointeger(tonumber(cells[2])) or tonumber(cells[2])) or nil,
                    metrics = {} }
        for i = 3, #names do
          local v = cells[i]
          if v and v ~= '' then r.metrics[names[i]] = tonumber(v) end
        end
        rows[#rows + 1] = r
      end
    end
  else
    for line in text:gmatch('[^\n]+') do
      local r = { metrics = {} }
      for k, v in line:gmatch('"([^"]+)":%s*([^,}]+)') do
        local n = v == 'null' and 0 / 0 or tonumber(v)
        if k == 'step' then r.step = math.tointeger(n) or n
        elseif k == 'epoch' then r.epoch = math.tointeger(n) or n
        elseif k == 'kind' then r.kind = v:match('"(.*)"')
        elseif n then r.metrics[k] = n end
      end
      if r.kind == 'step' then r.epoch = nil end
      rows[#rows + 1] = r
    end
  end
  return rows
end

--- train.log(path, [{format = 'csv' | 'jsonl', keep_rows = n}]) -> log
-- A new log file (the format follows the extension: .jsonl/.json -> JSON lines, else CSV).
-- keep_rows = n keeps the first n rows of an existing log and goes on after them (resume).
--   log:step(step, metrics)             a per-step row
--   log:epoch(epoch, metrics, step)     an end-of-epoch row
--   log.rows                            the number of rows written
--   log:close()
function M.open(path, opts)
  if type(path) ~= 'string' or path == '' then
    error('train.log: expected a file name, got ' .. (path == '' and 'an empty string' or type(path)), 2)
  end
  if opts ~= nil and type(opts) ~= 'table' then
    error('train.log: expected an options table, got ' .. type(opts), 2)
  end
  opts = opts or {}
  local format = format_of(path, opts.format)
  local self = setmetatable({ path = path, format = format, columns = {}, colset = {}, kept = {}, rows = 0 }, Log)
  if opts.keep_rows then
    local old = read_rows(path, format)
    for i = 1, math.min(opts.keep_rows, #old) do self.kept[i] = old[i] end
  end
  local f, err = io.open(path, 'w')
  if not f then error('train.log: ' .. err, 2) end
  self.file = f
  for _, r in ipairs(self.kept) do self:_columns(r.metrics) end
  self:_rewrite()
  if format == 'jsonl' then self.kept = nil end -- JSON lines never need rewriting
  return self
end

-- Adds new metric names to the header; true when the header grew.
function Log:_columns(metrics)
  local new = {}
  for k, v in pairs(metrics) do
    if type(v) == 'number' and not self.colset[k] then new[#new + 1] = k end
  end
  if #new == 0 then return false end
  table.sort(new)
  for _, k in ipairs(new) do
    self.colset[k] = true
    self.columns[#self.columns + 1] = k
  end
  return true
end

function Log:_line(r)
  if self.format == 'csv' then
    local cells = { fmt(r.step), r.epoch and fmt(r.epoch) or '' }
    for i, k in ipairs(self.columns) do
      local v = r.metrics[k]
      cells[i + 2] = type(v) == 'number' and fmt(v) or ''
    end
    return table.concat(cells, ',')
  end
  local parts = { '"kind":' .. json_string(r.epoch and 'epoch' or 'step'), '"step":' .. fmt(r.step) }
  if r.epoch then parts[#parts + 1] = '"epoch":' .. fmt(r.epoch) end
  local keys = {}
  for k, v in pairs(r.metrics) do if type(v) == 'number' then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = json_string(k) .. ':' .. json_number(r.metrics[k]) end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Writes the whole file again (CSV: when a new column appears, the header grows).
function Log:_rewrite()
  self.file:close()
  local f = assert(io.open(self.path, 'w'))
  self.file = f
  if self.format == 'csv' then
    f:write('step,epoch', #self.columns > 0 and ',' .. table.concat(self.columns, ',') or '', '\n')
  end
  for _, r in ipairs(self.kept) do f:write(self:_line(r), '\n') end
  self.rows = #self.kept
  f:flush()
end

function Log:_add(step, epoch, metrics)
  if not self.file then error('train.log: the log is closed', 3) end
  if type(step) ~= 'number' then error('train.log: step must be a number, got ' .. type(step), 3) end
  if type(metrics) ~= 'table' then error('train.log: metrics must be a table, got ' .. type(metrics), 3) end
  local m = {}
  for k, v in pairs(metrics) do
    if type(v) == 'number' then m[tostring(k)] = v end
  end
  local r = { step = step, epoch = epoch, metrics = m }
  if self.format == 'csv' then
    self.kept[#self.kept + 1] = r
    if self:_columns(m) then
      self:_rewrite()
      return
    end
  end
  self.file:write(self:_line(r), '\n')
  self.file:flush()
  self.rows = self.rows + 1
end

function Log:step(step, metrics)
  self:_add(step, nil, metrics)
end

function Log:epoch(epoch, metrics, step)
  if type(epoch) ~= 'number' then error('train.log: epoch must be a number, got ' .. type(epoch), 2) end
  self:_add(step or 0, epoch, metrics)
end

function Log:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
end

Log.__close = Log.close
Log.__gc = Log.close

return M
