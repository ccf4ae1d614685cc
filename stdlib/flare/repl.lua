-- flare.repl: the Lua half of the prompt (the terminal half is repl/prompt.c): printing of
-- results and `_`, completion candidates, the :commands and `?name`, the banner, and the
-- text of errors and timings.
--
-- What the prompt keeps: `_` holds the first value of the last command that printed
-- something, and nothing else does: each new result replaces it (so at most one result is
-- kept alive, whatever its size), statements and errors leave it alone, and `_ = nil`
-- releases it. There is no list of past results (Torch7's prompt kept every model printed
-- alive that way).
local format = require 'flare.format'

local M = {}

-- time: print the wall time of each command (:time on); color: ANSI colours (set by the
-- executable when stdout is a terminal and NO_COLOR is not set).
M.options = { time = false, color = false }

-- Names of the globals present before the user typed anything (who() lists the others).
M.baseline = nil

local lua_release = _VERSION

-- Called by the executable before ~/.flarerc and any -i script run.
function M.init(opts)
  opts = opts or {}
  M.options.color = opts.color and true or false
  lua_release = opts.lua or _VERSION
  M.baseline = {}
  for k in pairs(_G) do M.baseline[k] = true end
  M.baseline._ = true
end

local function flare()
  return package.loaded['flare'] or require 'flare'
end

-- ---------------------------------------------------------------- printing

function M.print(...)
  local n = select('#', ...)
  if n == 0 then return end
  rawset(_G, '_', (...))
  local opts = { color = M.options.color }
  local parts, multiline = {}, false
  for i = 1, n do
    parts[i] = format.value((select(i, ...)), opts)
    if parts[i]:find('\n') then multiline = true end
  end
  io.write(table.concat(parts, multiline and '\n' or '\t'), '\n')
end

function M.time_text(seconds)
  return format.paint({ color = M.options.color }, 'note', 'time: ' .. M.duration(seconds))
end

-- An error for the prompt: the traceback without the frames of the prompt itself, and
-- none at all when the error is in the line just typed.
function M.error_text(msg)
  msg = tostring(msg)
  -- Ctrl-C: the terminal has echoed ^C, so the message starts on a line of its own
  if msg == 'interrupted!' then return '\n' .. format.paint({ color = M.options.color }, 'error', msg) end
  local head, trace = msg:match('^(.-)\nstack traceback:\n(.*)$')
  if head then
    local kept = {}
    for line in trace:gmatch('[^\n]+') do
      if not line:match('^%s*%[C%]: in %?$') and not line:match('^%s*%(%.%.%.tail calls%.%.%.%)$') then
        kept[#kept + 1] = line
      end
    end
    local only_prompt = true
    for _, line in ipairs(kept) do
      if not line:match('^%s*stdin:%d+: in main chunk$') and not line:match('^%s*%[C%]: in function \'error\'$') then
        only_prompt = false
      end
    end
    msg = head
    if not only_prompt then msg = msg .. '\nstack traceback:\n' .. table.concat(kept, '\n') end
  end
  return format.paint({ color = M.options.color }, 'error', msg)
end

-- The banner does not probe the GPU: loading the CUDA libraries and creating a context
-- takes from tens of milliseconds to seconds, and start-up must stay instant. It says how
-- to ask instead (or what FLARE_CUDA chose).
function M.banner()
  local f = flare()
  local mode = os.getenv('FLARE_CUDA')
  local cuda = mode == '0' and 'off (FLARE_CUDA=0)'
    or mode == 'emu' and 'emulated on the CPU (FLARE_CUDA=emu)'
    or 'probed on first use (flare.cuda.is_available())'
  return string.format('flare %s — %s, %s, CUDA: %s\n%s', f.version, lua_release, f.blas_info(), cuda,
    format.paint({ color = M.options.color }, 'note',
      'help() for a tour, ?name for help on name, :time on to time commands, Ctrl-D to quit'))
end

-- ---------------------------------------------------------------- timeit

local function duration(s)
  if s < 1e-6 then return string.format('%.0f ns', s * 1e9) end
  if s < 1e-3 then return string.format('%.2f µs', s * 1e6) end
  if s < 1 then return string.format('%.2f ms', s * 1e3) end
  return string.format('%.3f s', s)
end
M.duration = duration

local Timing = {
  __name = 'flare.Timing',
  __tostring = function(t)
    return string.format('%s per call (median; min %s, mean %s, max %s; %d calls)',
      duration(t.median), duration(t.min), duration(t.mean), duration(t.max), t.n)
  end,
}

-- flare.timeit(f, [n], [opts]): calls f() n times after opts.warmup (default 1) calls and
-- returns the seconds per call: a table {median, min, mean, max, total, n} that prints as a
-- line. Without n, calls f for about opts.seconds (default 0.5) in all. Calls faster than
-- 0.1 ms are timed in batches, so the clock's own cost does not count.
function M.timeit(f, n, opts)
  local mt = getmetatable(f)
  if type(f) ~= 'function' and not (mt and mt.__call) then
    error('bad argument #1 to \'timeit\' (function expected, got ' .. type(f) .. ')', 2)
  end
  if n ~= nil and (math.type(n) ~= 'integer' or n < 1) then
    error('bad argument #2 to \'timeit\' (a positive integer count expected, got ' .. tostring(n) .. ')', 2)
  end
  opts = opts or {}
  local clock = flare().clock or os.clock
  local warmup = math.max(1, opts.warmup or 1)
  local t0 = clock()
  for _ = 1, warmup do f() end
  local once = math.max((clock() - t0) / warmup, 1e-9)   -- sizes the batches
  n = n or math.max(1, math.min(10000000, math.floor((opts.seconds or 0.5) / once)))
  local batch = math.max(1, math.min(n, math.floor(1e-4 / once)))
  local samples, done, total = {}, 0, 0
  while done < n do
    local k = math.min(batch, n - done)
    local s = clock()
    for _ = 1, k do f() end
    local dt = clock() - s
    total = total + dt
    samples[#samples + 1] = dt / k
    done = done + k
  end
  table.sort(samples)
  local m = #samples
  local median = m % 2 == 1 and samples[(m + 1) // 2] or (samples[m // 2] + samples[m // 2 + 1]) / 2
  return setmetatable({ n = n, median = median, min = samples[1], max = samples[m],
                        mean = total / n, total = total }, Timing)
end

-- ---------------------------------------------------------------- commands

local commands = {}

commands.time = function(arg)
  if arg == 'on' then M.options.time = true
  elseif arg == 'off' then M.options.time = false
  elseif arg ~= '' then error(':time expects on or off, got ' .. arg, 0)
  else M.options.time = not M.options.time end
  print('timing ' .. (M.options.time and 'on' or 'off'))
end
commands.help = function(arg) require('flare.help').help(arg ~= '' and arg or nil) end
commands.who = function() require('flare.help').who() end
commands.quit = function() return 'quit' end
commands.q = commands.quit
commands.color = function(arg)
  if arg == 'on' then M.options.color = true elseif arg == 'off' then M.options.color = false
  else M.options.color = not M.options.color end
  print('colour ' .. (M.options.color and 'on' or 'off'))
end

local command_help = {
  { ':time [on|off]', 'print the wall time of each command' },
  { ':color [on|off]', 'colours in printed values' },
  { ':who', 'the globals you defined, with types and sizes (also who())' },
  { ':help [name]', 'help (also help(), help(x), ?x)' },
  { ':quit', 'leave (also Ctrl-D)' },
}
M.command_help = command_help

-- A line typed at the prompt that starts with ':' or '?'. Returns 'quit' to leave.
function M.command(line)
  line = line:match('^%s*(.-)%s*$')
  if line:sub(1, 1) == '?' then
    local name = line:sub(2):match('^%s*(.-)%s*$')
    require('flare.help').help(name ~= '' and name or nil)
    return
  end
  local name, arg = line:match('^:(%a+)%s*(.*)$')
  local f = name and commands[name]
  if not f then
    local lines = { 'unknown command ' .. line .. '; the prompt knows:' }
    for _, c in ipairs(command_help) do lines[#lines + 1] = string.format('  %-16s %s', c[1], c[2]) end
    error(table.concat(lines, '\n'), 0)
  end
  return f(arg)
end

-- ---------------------------------------------------------------- completion

local keywords = { 'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for', 'function',
  'goto', 'if', 'in', 'local', 'nil', 'not', 'or', 'repeat', 'return', 'then', 'true', 'until',
  'while' }

-- Is the end of `line` inside a string literal? (A small scanner for quotes, long brackets
-- and comments.)
function M.in_string(line)
  local i, n = 1, #line
  while i <= n do
    local c = line:sub(i, i)
    if c == '-' and line:sub(i, i + 1) == '--' then
      local level = line:match('^%[(=*)%[', i + 2)
      if not level then return false end
      local close = line:find(']' .. level .. ']', i + 2, true)
      if not close then return false end
      i = close + #level + 2
    elseif c == '"' or c == "'" then
      local j = i + 1
      while true do
        if j > n then return true end
        local d = line:sub(j, j)
        if d == '\\' then j = j + 2
        elseif d == c then break
        else j = j + 1 end
      end
      i = j + 1
    elseif c == '[' and line:match('^%[=*%[', i) then
      local level = line:match('^%[(=*)%[', i)
      local close = line:find(']' .. level .. ']', i + #level + 2, true)
      if not close then return true end
      i = close + #level + 2
    else
      i = i + 1
    end
  end
  return false
end

-- Keys of a table and of the tables its metatables' __index chain leads to.
local function collect_keys(t, out, methods_only, depth)
  depth = depth or 0
  if depth > 8 then return end
  if type(t) == 'table' then
    for k, v in next, t do
      if type(k) == 'string' and (not methods_only or type(v) == 'function') then out[k] = true end
    end
  end
  local mt = getmetatable(t)
  if type(mt) == 'table' then
    local idx = rawget(mt, '__index')
    if type(idx) == 'table' then collect_keys(idx, out, methods_only, depth + 1) end
  end
end

-- Resolves a dotted path of names ("flare.nn") from the globals, or nil.
local function resolve(path)
  local v = _G
  for name in path:gmatch('[^%.]+') do
    if not name:match('^[%a_][%w_]*$') then return nil end
    local ok, r = pcall(function() return v[name] end)
    if not ok or r == nil then return nil end
    v = r
  end
  return v
end
M.resolve = resolve

local function candidates_of(v, colon)
  local keys = {}
  local f = flare()
  if f.is_tensor(v) then
    for k in pairs(f._methods) do keys[k] = true end
    if not colon and type(f._properties) == 'table' then
      for k in pairs(f._properties) do keys[k] = true end
    end
  elseif type(v) == 'string' then
    collect_keys(string, keys, true)
  elseif type(v) == 'table' or type(v) == 'userdata' then
    collect_keys(v, keys, colon)
  end
  return keys
end

-- Candidates for the word being completed. `before` is the line up to the word. Returns a
-- sorted list of full replacements for `word`, or 'file' inside a string literal.
function M.complete(before, word)
  if M.in_string(before) then return 'file' end
  -- the part of the word that is a name path (the rest was typed before it, e.g. "x/fl")
  local head, path = word:match('^(.-)([%a_][%w_%.:]*)$')
  if not path then
    if word == '' then head, path = '', '' else return {} end
  end
  local base, sep, partial = path:match('^(.*)([%.:])([%w_]*)$')
  local keys
  if base then
    if base:find(':') then return {} end
    local v = resolve(base)
    if v == nil then return {} end
    keys = candidates_of(v, sep == ':')
  else
    base, sep, partial = '', '', path
    keys = {}
    collect_keys(_G, keys)
    for _, k in ipairs(keywords) do keys[k] = true end
  end
  local list = {}
  for k in pairs(keys) do
    if k:sub(1, #partial) == partial and k:match('^[%a_][%w_]*$')
       and (k:sub(1, 1) ~= '_' or partial:sub(1, 1) == '_') then
      list[#list + 1] = head .. base .. sep .. k
    end
  end
  table.sort(list)
  return list
end

return M
