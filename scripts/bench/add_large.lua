-- add_large.lua: c = a + b on 16M-element float32 tensors (64 MiB each), a new result each
-- time, on flare's default threads. Prints milliseconds per add. The in-place a:add_(b)
-- is timed too, to separate the cost of allocating the result from the loop itself.
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'

local n = 16 << 20
flare.manual_seed(0)
local a, b = flare.randn(n), flare.randn(n)
local c
local s = bench.time(function(iters)
  for _ = 1, iters do c = a + b end
end, { iters = 10, repeats = 5 })
assert(c:numel() == n)
bench.report('add_large', s * 1e3, 'ms')
c = nil
if type(a.add_) == 'function' then
  local s_inplace = bench.time(function(iters)
    for _ = 1, iters do a:add_(b) end
  end, { iters = 10, repeats = 5 })
  bench.report('add_large:inplace', s_inplace * 1e3, 'ms')
else
  print('add_large:inplace unavailable -')
end
