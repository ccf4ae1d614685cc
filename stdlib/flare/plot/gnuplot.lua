-- flare.plot.gnuplot: finding gnuplot, choosing where figures draw, and the gnuplot process
-- behind each figure.
--
-- A process is `sh -c 'trap "" INT; gnuplot 2>>LOG; echo $? >LOG.exit; cat >/dev/null; rm ...'`
-- opened with io.popen(..., 'w'). The shell keeps the pipe's read end open, so a gnuplot that
-- dies never turns our next write into a SIGPIPE that would kill a training run, and it
-- removes its temporary files once the pipe closes (even after os.exit or a crash of ours).
-- Ctrl-C at the prompt reaches the whole process group: the trap keeps the shell alive and
-- gnuplot itself survives SIGINT. Closing the pipe (pclose) waits for the shell, so a closed
-- figure leaves no process and no zombie behind.
local M = {}

-- Settings that can be changed through plot.config.
M.settings = {
  gnuplot = os.getenv('FLARE_GNUPLOT') or 'gnuplot',
  backend = os.getenv('FLARE_PLOT'),           -- nil: automatic
  sixel_probe = true,                          -- ask the terminal whether it draws sixel
}

-- Quoting for /bin/sh (single quotes, ' written as '\'').
local function shq(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shq = shq

local function sh_ok(cmd)
  local ok = os.execute(cmd)
  return ok == true
end

-- What a shell command prints on stdout (its stderr is dropped unless `keep_stderr`).
local function sh_read(cmd, keep_stderr)
  local p = io.popen(keep_stderr and cmd or '{ ' .. cmd .. '\n} 2>/dev/null', 'r')
  if not p then return nil end
  local out = p:read('a')
  p:close()
  return out
end

-- ---------------------------------------------------------------- gnuplot and its terminals

local probe -- cached: {ok, terminals = set, version, why}

function M.reset()
  probe = nil
end

-- Whether gnuplot runs, and which terminals it has. Cached until M.reset().
function M.probe()
  if probe then return probe end
  local cmd = M.settings.gnuplot
  local out = sh_read(shq(cmd) .. [[ -e 'print GPVAL_VERSION, GPVAL_PATCHLEVEL; print GPVAL_TERMINALS' 2>&1 </dev/null]],
                    true)
  local version, terms = nil, nil
  if out then version, terms = out:match('^%s*([%d%.]+%s*%S*)\n(.-)%s*$') end
  if not version then
    probe = { ok = false, terminals = {},
              why = string.format("gnuplot not found (tried %s)", cmd) }
    return probe
  end
  local set = {}
  for t in terms:gmatch('%S+') do set[t] = true end
  probe = { ok = true, terminals = set, version = version:gsub('%s+', '.') }
  return probe
end

function M.has_terminal(name)
  return M.probe().terminals[name] == true
end

-- The first of `names` that this gnuplot has.
function M.first_terminal(names)
  for _, n in ipairs(names) do
    if M.has_terminal(n) then return n end
  end
  return nil
end

-- ---------------------------------------------------------------- where figures draw

M.backends = { window = true, sixel = true, dumb = true, file = true, none = true }

local function is_tty(fd)
  return sh_ok('test -t ' .. fd)
end

-- Terminal size in characters: stty on the controlling terminal, then $COLUMNS/$LINES.
function M.terminal_size()
  local out = sh_read('stty size </dev/tty')
  local rows, cols = out and out:match('^(%d+)%s+(%d+)')
  rows, cols = tonumber(rows), tonumber(cols)
  if not rows or rows == 0 then
    rows, cols = tonumber(os.getenv('LINES')), tonumber(os.getenv('COLUMNS'))
  end
  return cols or 80, rows or 24
end

-- Terminals known to draw sixel without asking them.
local sixel_terms = { mlterm = true, foot = true, contour = true, yaft = true, ['xterm-sixel'] = true }
local sixel_programs = { WezTerm = true, ['iTerm.app'] = true, mintty = true, BlackBox = true }

-- Sends Primary Device Attributes (ESC [ c) to the terminal; attribute 4 means sixel. Waits
-- at most 0.2 s for the answer, once per session.
local function probe_sixel()
  local term = os.getenv('TERM') or ''
  if term == 'dumb' or term == '' then return false end
  if sixel_terms[term] or sixel_terms[term:match('^[^-]+') or ''] then return true end
  if sixel_programs[os.getenv('TERM_PROGRAM') or ''] then return true end
  if not M.settings.sixel_probe then return false end
  local reply = sh_read([[exec </dev/tty; old=$(stty -g) || exit 1
stty raw -echo min 0 time 2; printf '\033[c' >/dev/tty
r=$(dd bs=64 count=1 2>/dev/null); stty "$old"; printf '%s' "$r"]])
  local attrs = reply and reply:match('\27%[%?([%d;]*)c')
  if not attrs then return false end
  for a in attrs:gmatch('%d+') do
    if a == '4' then return true end
  end
  return false
end

local choice -- cached automatic choice: {backend, terminal, why}

-- Works out where figures draw: a window when a display and a window terminal exist, else
-- sixel or dumb text in the terminal, else files only. Returns {backend, terminal, why}.
function M.choose()
  local forced = M.settings.backend
  if forced and forced ~= '' and forced ~= 'auto' then
    return M.resolve(forced, 'forced')
  end
  if choice then return choice end
  choice = M.auto()
  return choice
end

function M.auto()
  local p = M.probe()
  if not p.ok then return { backend = 'none', why = p.why } end
  local display = os.getenv('DISPLAY') or os.getenv('WAYLAND_DISPLAY')
  local win = M.first_terminal { 'qt', 'wxt', 'x11', 'aqua' }
  if (display and display ~= '' and win) or win == 'aqua' then
    return { backend = 'window', terminal = win, why = 'display ' .. (display or 'aqua') }
  end
  local why = display and display ~= '' and 'a display but no window terminal in this gnuplot'
    or 'no display'
  if is_tty(1) then
    if is_tty(0) and M.has_terminal('sixelgd') and probe_sixel() then
      return { backend = 'sixel', terminal = 'sixelgd', why = why .. ', terminal draws sixel' }
    end
    return { backend = 'dumb', terminal = 'dumb', why = why .. ', text terminal' }
  end
  return { backend = 'file', why = why .. ', output is not a terminal' }
end

-- A backend named by the user ('window', 'qt', 'sixel', 'dumb', 'file', 'none').
function M.resolve(name, why)
  local p = M.probe()
  if not p.ok then return { backend = 'none', why = p.why } end
  if name == 'window' then
    local t = M.first_terminal { 'qt', 'wxt', 'x11', 'aqua' }
    if not t then error("no window terminal (qt, wxt, x11) in this gnuplot", 0) end
    return { backend = 'window', terminal = t, why = why }
  elseif name == 'qt' or name == 'wxt' or name == 'x11' or name == 'aqua' then
    if not M.has_terminal(name) then error("this gnuplot has no '" .. name .. "' terminal", 0) end
    return { backend = 'window', terminal = name, why = why }
  elseif name == 'sixel' then
    if not M.has_terminal('sixelgd') then error("this gnuplot has no 'sixelgd' terminal", 0) end
    return { backend = 'sixel', terminal = 'sixelgd', why = why }
  elseif name == 'dumb' then
    return { backend = 'dumb', terminal = 'dumb', why = why }
  elseif name == 'file' or name == 'none' then
    return { backend = name, why = why }
  end
  error("unknown plot backend '" .. tostring(name) ..
        "' (expected 'auto', 'window', 'qt', 'wxt', 'x11', 'sixel', 'dumb', 'file' or 'none')", 0)
end

function M.forget_choice()
  choice = nil
end

-- ---------------------------------------------------------------- file terminals

-- Terminal for a file name, by extension: (terminal, size argument, extension).
function M.file_terminal(path, size)
  local ext = (path:match('%.([%w]+)$') or ''):lower()
  local w, h = size and size[1], size and size[2]
  if ext == 'png' then
    local t = M.first_terminal { 'pngcairo', 'png' }
    return t, string.format('size %d,%d', w or 800, h or 600), ext
  elseif ext == 'svg' then
    return M.has_terminal('svg') and 'svg', string.format('size %d,%d dynamic', w or 800, h or 600), ext
  elseif ext == 'pdf' then
    -- pdf sizes are in inches; we take pixels at 100 per inch like the other formats
    return M.first_terminal { 'pdfcairo' },
      string.format('size %gin,%gin', (w or 800) / 100, (h or 600) / 100), ext
  elseif ext == 'jpg' or ext == 'jpeg' then
    return M.first_terminal { 'jpeg' }, string.format('size %d,%d', w or 800, h or 600), ext
  elseif ext == 'gif' then
    return M.first_terminal { 'gif' }, string.format('size %d,%d', w or 800, h or 600), ext
  elseif ext == 'eps' then
    return M.first_terminal { 'epscairo' },
      string.format('size %gin,%gin', (w or 800) / 100, (h or 600) / 100), ext
  elseif ext == 'txt' then
    return 'dumb', string.format('size %d,%d', w or 80, h or 25), ext
  end
  return nil, nil, ext
end

-- ---------------------------------------------------------------- the process

local Process = {}
Process.__index = Process

-- Starts gnuplot. stdout: true keeps gnuplot's standard output (terminal drawing), false
-- sends it to the log. Returns the process, or nil and a message.
function M.start(stdout)
  local p = M.probe()
  if not p.ok then return nil, p.why end
  local log = os.tmpname()
  local files = shq(log) .. ' ' .. shq(log .. '.exit') .. ' ' .. shq(log .. '.sync')
  local out = stdout and '' or ' >>' .. shq(log)
  local cmd = string.format("trap '' INT; %s%s 2>>%s; echo $? >%s; cat >/dev/null; rm -f %s",
                            shq(M.settings.gnuplot), out, shq(log), shq(log .. '.exit'), files)
  local pipe, err = io.popen(cmd, 'w')
  if not pipe then
    os.remove(log)
    return nil, 'cannot start gnuplot: ' .. tostring(err)
  end
  pipe:setvbuf('full')
  return setmetatable({ pipe = pipe, log = log, log_seen = 0, syncs = 0 }, Process)
end

function Process:is_open()
  return self.pipe ~= nil
end

-- Whether gnuplot is still running (the shell writes LOG.exit when it ends).
function Process:alive()
  if not self.pipe then return false end
  local f = io.open(self.log .. '.exit', 'r')
  if f then
    f:close()
    return false
  end
  return true
end

function Process:send(s)
  if not self.pipe then return false end
  local ok = self.pipe:write(s)
  return ok ~= nil
end

function Process:flush()
  if self.pipe then self.pipe:flush() end
end

-- What gnuplot wrote to stderr since the last call.
function Process:messages()
  local f = io.open(self.log, 'r')
  if not f then return '' end
  f:seek('set', self.log_seen)
  local s = f:read('a') or ''
  self.log_seen = self.log_seen + #s
  f:close()
  return s
end

local function sleep(s)
  os.execute('sleep ' .. s)
end

-- Waits until gnuplot has run everything sent so far (it prints a numbered line to
-- LOG.sync when it gets there). Returns true, or false and why.
function Process:sync(timeout)
  if not self.pipe then return false, 'gnuplot is not running' end
  self.syncs = self.syncs + 1
  local token = 'sync ' .. self.syncs
  local marker = self.log .. '.sync'
  self:send(string.format("set print '%s'\nprint '%s'\nunset print\n", marker, token))
  self:flush()
  local waited, step = 0, 0.002
  timeout = timeout or 30
  while true do
    local f = io.open(marker, 'r')
    if f then
      local line = f:read('l')
      f:close()
      if line == token then return true end
    end
    if not self:alive() then return false, 'gnuplot exited' end
    if waited > timeout then return false, 'gnuplot did not answer in ' .. timeout .. ' s' end
    sleep(step)
    waited = waited + step
    step = math.min(step * 2, 0.05)
  end
end

-- Ends gnuplot and waits for it. Safe to call twice, and from __gc (the pipe may already
-- have been closed by its own finalizer when the Lua state closes).
function Process:close()
  local pipe = self.pipe
  self.pipe = nil
  if pipe and io.type(pipe) == 'file' then pcall(pipe.close, pipe) end
  if self.log then
    os.remove(self.log)
    os.remove(self.log .. '.exit')
    os.remove(self.log .. '.sync')
  end
end

Process.__gc = Process.close
Process.__close = Process.close

return M
