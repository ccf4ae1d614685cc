-- Drives a real terminal for specs of the prompt: a program runs in a tmux pane on a private
-- tmux server; keys go in with send-keys and the screen comes back with capture-pane. Waits
-- poll the screen until a pattern shows or a timeout passes (no fixed sleeps), so the specs
-- hold on a loaded machine.
--
--   local term = tmux.start{ cmd = './flare', env = { HOME = dir }, width = 120, height = 50 }
--   term:line('x = 1')          -- types a line and Enter
--   term:keys('C-c')            -- tmux key names: Enter, Tab, Up, C-c, C-d, C-r ...
--   term:wait_for('> $')        -- a Lua pattern, matched against the whole screen
--   term:close()
local M = {}

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = sh_quote

local function run(cmd)
  local p = io.popen(cmd .. ' 2>&1')
  local out = p:read('a')
  local ok = p:close()
  return out, ok
end

function M.available()
  local _, ok = run('tmux -V')
  return ok == true
end

-- Wall-clock seconds (flare.clock when the core has it, else date).
function M.now()
  local flare = package.loaded['flare']
  if flare and flare.clock then return flare.clock() end
  local p = io.popen('date +%s.%N')
  local t = tonumber(p:read('l'))
  p:close()
  return t
end

function M.sleep(seconds)
  os.execute('sleep ' .. string.format('%.3f', seconds))
end

local Term = {}
Term.__index = Term

local counter = 0

-- Starts `cmd` (a shell command line) in a new pane. After the program exits, the pane shows
-- "[exit N]" and stays open for two minutes (so that its last output and exit status can be
-- read; the server then ends by itself should close() never be called).
function M.start(opts)
  counter = counter + 1
  local socket = string.format('flare-spec-%d-%d-%d', os.time(), math.random(1, 1e9), counter)
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. '=' .. sh_quote(v) end
  table.sort(env)
  local inner = 'env ' .. table.concat(env, ' ') .. ' ' .. opts.cmd .. '; echo "[exit $?]"; sleep 120'
  local self = setmetatable({ socket = socket, target = 'spec' }, Term)
  local out, ok = run(string.format('tmux -L %s -f /dev/null new-session -d -s spec -x %d -y %d %s',
    socket, opts.width or 120, opts.height or 50, sh_quote(inner)))
  if not ok then error('tmux new-session failed: ' .. out, 2) end
  -- a long history, so that capture-pane sees everything printed
  run(string.format('tmux -L %s set-option -t spec history-limit 5000', socket))
  return self
end

function Term:tmux(args)
  return run('tmux -L ' .. self.socket .. ' ' .. args)
end

-- Types text literally (no key names; a trailing ';' is escaped for tmux).
function Term:type(text)
  local t = text:gsub(';$', '\\;')
  self:tmux('send-keys -t spec -l ' .. sh_quote(t))
end

function Term:keys(...)
  self:tmux('send-keys -t spec ' .. table.concat({ ... }, ' '))
end

function Term:line(text)
  self:type(text)
  self:keys('Enter')
end

-- The screen, with the scrollback, wrapped lines joined, trailing blank lines dropped.
-- opts.color keeps the escape sequences.
function Term:screen(color)
  local out = self:tmux('capture-pane -p -J -t spec -S -5000' .. (color and ' -e' or ''))
  return (out:gsub('%s+$', ''))
end

-- Polls the screen until pred(screen) is true, or raises with the screen after
-- opts.timeout seconds (default 10). opts.color keeps escape sequences.
function Term:wait(pred, opts, what)
  opts = opts or {}
  local deadline = M.now() + (opts.timeout or 10)
  while true do
    local screen = self:screen(opts.color)
    if pred(screen) then return screen end
    if M.now() > deadline then
      error(string.format('timed out waiting for %s on screen:\n%s', what or 'a condition', screen), 3)
    end
    M.sleep(0.02)
  end
end

local function count_of(screen, pattern, plain)
  local n, init = 0, 1
  while true do
    local s, e = screen:find(pattern, init, plain)
    if not s then return n end
    n, init = n + 1, math.max(e, s) + 1
  end
end
M.count = count_of

-- Waits until `pattern` (a Lua pattern; plain text if opts.plain) occurs opts.count times
-- (default 1) on the screen.
function Term:wait_for(pattern, opts)
  opts = opts or {}
  local count = opts.count or 1
  return self:wait(function(screen) return count_of(screen, pattern, opts.plain) >= count end, opts,
                   string.format('%q (x%d)', pattern, count))
end

-- Ctrl-D at the prompt, then waits for the program to exit; returns its exit status.
function Term:quit(timeout)
  self:keys('C-d')
  local screen = self:wait_for('%[exit %d+%]$', { timeout = timeout })
  return tonumber(screen:match('%[exit (%d+)%]$'))
end

function Term:close()
  self:tmux('kill-server')
end

return M
