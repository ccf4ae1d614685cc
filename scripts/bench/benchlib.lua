-- benchlib.lua: what the flare side of every benchmark shares: a wall clock, a median, and
-- a timer that warms up, repeats and reports the median. Results are printed as
-- "<case> <value> <unit>" lines that run.sh pairs with the C and PyTorch figures.
local M = {}

-- A wall clock in seconds. luasystem (installed with busted) gives a monotonic nanosecond
-- clock; os.clock is CPU time, which overstates multi-threaded work, so say so if used.
local ok, system = pcall(require, 'system')
if ok and system.monotime then
  M.clock = system.monotime
else
  io.stderr:write('benchlib: luasystem not found, timing with os.clock (CPU time)\n')
  M.clock = os.clock
end

function M.median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

-- Seconds per iteration of body(iters), the median of `repeats` timed runs after one warm-up
-- run. With `iters` unset, the count is doubled until one run lasts at least `min_s`.
function M.time(body, opts)
  opts = opts or {}
  local repeats, min_s = opts.repeats or 5, opts.min_s or 0.2
  local iters = opts.iters
  if not iters then
    iters = 1
    while true do
      local t0 = M.clock()
      body(iters)
      if M.clock() - t0 >= min_s / 4 or iters >= 1 << 30 then break end
      iters = iters * 2
    end
    iters = iters * 4
  end
  body(iters)   -- warm-up
  local runs = {}
  for r = 1, repeats do
    local t0 = M.clock()
    body(iters)
    runs[r] = (M.clock() - t0) / iters
  end
  return M.median(runs), iters
end

function M.report(case, value, unit)
  print(string.format('%s %.6g %s', case, value, unit))
  io.stdout:flush()
end

return M
