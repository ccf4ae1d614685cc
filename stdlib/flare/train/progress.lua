-- flare.train.progress: what a training run prints while it goes. On a terminal, one line
-- redrawn in place (epoch, a bar sized to the terminal, step, loss, accuracy, samples/s, ETA);
-- when the output is not a terminal (a log file, a pipe), plain lines every few seconds.
-- Each epoch ends with one summary line in both modes.
local flare = require 'flare.core'

local M = {}

local clock = flare.clock

-- Whether stdout is a terminal: `test -t 1` in a child shell, which inherits our stdout.
local tty_cache
local function stdout_is_tty()
  if tty_cache == nil then tty_cache = os.execute('test -t 1') == true end
  return tty_cache
end

-- Columns of the terminal: $COLUMNS, else stty on the controlling terminal, else 80.
function M.terminal_width()
  local cols = tonumber(os.getenv('COLUMNS') or '')
  if cols and cols > 0 then return math.floor(cols) end
  local p = io.popen('stty size </dev/tty 2>/dev/null')
  if p then
    local out = p:read('a') or ''
    p:close()
    cols = tonumber(out:match('^%d+%s+(%d+)'))
    if cols and cols > 0 then return cols end
  end
  return 80
end

--- progress.mode([mode]) -> 'bar' | 'lines' | 'none'
-- The mode a progress display takes: the one asked for, else $FLARE_PROGRESS, else 'bar'
-- when stdout is a terminal and 'lines' when it is not.
function M.mode(mode)
  if mode == nil or mode == 'auto' or mode == true then
    local env = os.getenv('FLARE_PROGRESS')
    if env == 'bar' or env == 'lines' or env == 'none' then return env end
    return stdout_is_tty() and 'bar' or 'lines'
  end
  if mode == false then return 'none' end
  if mode ~= 'bar' and mode ~= 'lines' and mode ~= 'none' then
    error("progress: mode must be 'bar', 'lines', 'none', 'auto', true or false, got " .. tostring(mode), 3)
  end
  return mode
end

-- ---------------------------------------------------------------- number formats

-- 0.2140, 12.3, 1.2e-05: four significant digits, fixed point where it reads well.
local function num(v)
  if v ~= v then return 'nan' end
  local a = math.abs(v)
  if a == math.huge then return v > 0 and 'inf' or '-inf' end
  if a ~= 0 and (a < 1e-3 or a >= 1e5) then return string.format('%.3e', v) end
  if a >= 100 then return string.format('%.1f', v) end
  return string.format('%.4f', v)
end
M.num = num

-- 1.9k, 12.3M
local function rate(v)
  if v >= 1e6 then return string.format('%.1fM', v / 1e6) end
  if v >= 1e4 then return string.format('%.0fk', v / 1e3) end
  if v >= 1e3 then return string.format('%.1fk', v / 1e3) end
  if v >= 10 then return string.format('%.0f', v) end
  return string.format('%.1f', v)
end
M.rate = rate

-- 4s, 2m05s, 1h02m
local function duration(s)
  if s ~= s or s == math.huge then return '?' end
  if s < 9.95 then return string.format('%.1fs', math.max(0, s)) end
  s = math.floor(s + 0.5)
  if s < 60 then return s .. 's' end
  if s < 3600 then return string.format('%dm%02ds', s // 60, s % 60) end
  return string.format('%dh%02dm', s // 3600, (s % 3600) // 60)
end
M.duration = duration

-- Bookkeeping fields of a metrics row that the line leaves out.
local hidden = { step = true, time = true, samples = true, epoch = true }

-- The order on the line: loss, acc, topK, val_loss, val_acc, val_topK, others, lr.
local function rank(k)
  local base, val = k:gsub('^val_', '')
  local r = base == 'loss' and 1 or base == 'acc' and 2 or base:match('^top%d+$') and 3 or nil
  if r then return r + (val > 0 and 3 or 0) end
  return k == 'lr' and 8 or 7
end

-- "name value" parts, in display order.
local function metric_parts(metrics)
  local keys = {}
  for k, v in pairs(metrics) do
    if type(k) == 'string' and type(v) == 'number' and not hidden[k] then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    local ra, rb = rank(a), rank(b)
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = metrics[k]
    parts[#parts + 1] = k .. ' ' .. (k == 'lr' and string.format('%.3g', v) or num(v))
  end
  return parts
end

local function metric_text(metrics)
  return table.concat(metric_parts(metrics), '  ')
end
M.metric_text = metric_text

-- ---------------------------------------------------------------- the display

local Progress = {}
Progress.__index = Progress
Progress.__name = 'flare.train.Progress'

--- progress.new{epochs = E, steps = S, mode = 'auto', out = io.stdout, every = 10,
-- width = nil, interval = 0.1} -> p
-- steps: batches per epoch (nil when unknown). every: seconds between lines in 'lines'
-- mode (0: every step). interval: seconds between redraws of the bar. width: columns
-- (default: the terminal's). out: anything with a write method.
--   p:epoch_begin(epoch, [first_step = 0])   (first_step: batches already done, on resume)
--   p:step(step_in_epoch, {loss = , acc = }, samples)
--   p:epoch_end(epoch, metrics)              the summary line
--   p:close()
function M.new(opts)
  if opts ~= nil and type(opts) ~= 'table' then
    error('progress.new: expected an options table, got ' .. type(opts), 2)
  end
  opts = opts or {}
  for _, k in ipairs { 'epochs', 'steps' } do
    local v = opts[k]
    if v ~= nil and (math.type(v) ~= 'integer' or v < 0) then
      error(string.format('progress.new: %s must be a non-negative integer, got %s', k, tostring(v)), 2)
    end
  end
  local out = opts.out or io.stdout
  if type(out) ~= 'userdata' and type(out) ~= 'table' then
    error('progress.new: out must be a file or an object with a write method, got ' .. type(out), 2)
  end
  local mode = M.mode(opts.mode)
  local p = setmetatable({
    mode = mode, out = out, epochs = opts.epochs, steps = opts.steps,
    every = opts.every or 10, interval = opts.interval or 0.1,
    width = opts.width, fixed_width = opts.width ~= nil,
    start = clock(), epoch_time = nil, val_time = 0, drawn = false,
  }, Progress)
  if mode == 'bar' and not p.width then p.width = M.terminal_width() end
  return p
end

function Progress:write(s)
  self.out:write(s)
  if self.out.flush then self.out:flush() end
end

function Progress:epoch_begin(epoch, first_step)
  self.epoch = epoch
  self.first_step = first_step or 0
  self.samples = 0
  self.t0 = clock()
  self.last_draw = -math.huge
  self.last_line = self.t0
  self.rate = nil
  if self.mode == 'bar' and not self.fixed_width then self.width = M.terminal_width() end
end

-- Seconds left: the rest of this epoch at the measured rate, plus the epochs to come
-- (each a full epoch, plus the time validation took last).
function Progress:eta(step)
  if not self.steps or self.steps == 0 then return nil end
  local done = step - self.first_step
  if done <= 0 then return nil end
  local per_step = (clock() - self.t0) / done
  local left = (self.steps - step) * per_step
  if self.epochs and self.epoch then
    left = left + (self.epochs - self.epoch) * (self.steps * per_step + self.val_time)
  end
  return left
end

function Progress:_head(step)
  local head = self.epochs and string.format('epoch %d/%d', self.epoch, self.epochs)
               or string.format('epoch %d', self.epoch)
  local count = self.steps and string.format('%d/%d', step, self.steps) or tostring(step)
  return head, count
end

-- The parts after the counter, each {text, priority}: what the line drops first when the
-- terminal is narrow has the lowest priority (samples/s, then the later metrics, then eta).
function Progress:_tail(metrics, step)
  local parts = {}
  for i, text in ipairs(metric_parts(metrics)) do parts[#parts + 1] = { text, i == 1 and 100 or 50 - i } end
  local dt = clock() - self.t0
  if dt > 0 and self.samples > 0 then parts[#parts + 1] = { rate(self.samples / dt) .. ' samples/s', 1 } end
  local eta = self:eta(step)
  if eta then parts[#parts + 1] = { 'eta ' .. duration(eta), 60 } end
  return parts
end

local function join(parts)
  local t = {}
  for i, p in ipairs(parts) do t[i] = p[1] end
  return table.concat(t, '  ')
end

local function drop_lowest(parts)
  local lo = 1
  for i, p in ipairs(parts) do if p[2] < parts[lo][2] then lo = i end end
  table.remove(parts, lo)
end

-- The bar line, fitted to the width: head [####----] pct count metrics rate eta. The bar
-- takes 10 to 40 columns; what still does not fit is dropped, least useful first.
function Progress:bar_line(step, metrics)
  local head, count = self:_head(step)
  local tail = self:_tail(metrics, step)
  local frac = self.steps and self.steps > 0 and math.min(1, step / self.steps) or nil
  local width = (self.width or 80) - 1 -- never write the last column: some terminals wrap there
  local pct = frac and string.format('%3d%%', math.floor(frac * 100)) or ''
  local fixed = #head + #count + (frac and #pct + 5 or 0) + 2 -- spaces and brackets around the bar
  while #tail > 0 and fixed + 10 + #join(tail) > width do drop_lowest(tail) end
  local text = join(tail)
  local bar_w = math.min(40, width - fixed - #text)
  local line
  if frac and bar_w >= 10 then
    local fill = math.floor(frac * bar_w + 0.5)
    line = string.format('%s [%s%s] %s %s  %s', head, string.rep('#', fill), string.rep('-', bar_w - fill), pct,
                         count, text)
  else
    line = string.format('%s %s  %s', head, count, text)
  end
  line = line:gsub('%s+$', '')
  if #line > width then line = line:sub(1, width) end
  return line
end

function Progress:step(step, metrics, samples)
  if self.mode == 'none' then return end
  self.samples = self.samples + (samples or 0)
  local now = clock()
  if self.mode == 'bar' then
    if now - self.last_draw < self.interval and step ~= self.steps then return end
    self.last_draw = now
    local line = self:bar_line(step, metrics or {})
    -- \r and the line, padded over what the previous one left
    local pad = self.drawn_len and self.drawn_len > #line and string.rep(' ', self.drawn_len - #line) or ''
    self:write('\r' .. line .. pad)
    self.drawn_len = #line
    self.drawn = true
  else
    if self.every > 0 and now - self.last_line < self.every then return end
    self.last_line = now
    local head, count = self:_head(step)
    self:write(string.format('%s  step %s  %s\n', head, count, join(self:_tail(metrics or {}, step))))
  end
end

--- p:epoch_end(epoch, metrics, [val_seconds]): the epoch's summary line (train and
-- validation metrics, time); on a terminal it replaces the bar.
function Progress:epoch_end(epoch, metrics, val_seconds)
  self.val_time = val_seconds or self.val_time
  if self.mode == 'none' then return end
  local head = self.epochs and string.format('epoch %d/%d', epoch, self.epochs) or string.format('epoch %d', epoch)
  local dt = clock() - (self.t0 or self.start)
  local line = string.format('%s  %s  %s', head, metric_text(metrics or {}), duration(dt))
  if self.mode == 'bar' then
    local pad = self.drawn_len and self.drawn_len > #line and string.rep(' ', self.drawn_len - #line) or ''
    self:write('\r' .. line .. pad .. '\n')
    self.drawn_len, self.drawn = nil, false
  else
    self:write(line .. '\n')
  end
end

--- p:message(text): a line of its own (above the bar on a terminal).
function Progress:message(text)
  if self.mode == 'none' then return end
  if self.mode == 'bar' and self.drawn then
    self:write('\r' .. string.rep(' ', self.drawn_len or 0) .. '\r')
    self.drawn, self.drawn_len = false, nil
  end
  self:write(text .. '\n')
end

function Progress:close()
  if self.mode == 'bar' and self.drawn then
    self:write('\n')
    self.drawn, self.drawn_len = false, nil
  end
end

M.Progress = Progress
return M
