-- tiny_add.lua: the per-op overhead: c = a + b on 4-element float32 tensors, 100,000
-- iterations per timed run, a new result each time. Prints microseconds per op.
-- tiny_add_grad: the same with `a` requiring grad (forward only: each result's graph is
-- dropped with it), when autograd is built in.
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'

local function time_add(a, b)
  local c
  local s = bench.time(function(n)
    for _ = 1, n do c = a + b end
  end, { iters = 100000, repeats = 7 })
  assert(c:numel() == 4)
  return s
end

flare.manual_seed(0)
local a, b = flare.randn(4), flare.randn(4)
bench.report('tiny_add', time_add(a, b) * 1e6, 'us')
if flare._methods.requires_grad then
  bench.report('tiny_add_grad', time_add(flare.randn(4):requires_grad(), b) * 1e6, 'us')
else
  print('tiny_add_grad unavailable -')
end
