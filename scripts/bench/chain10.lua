-- chain10.lua: the per-op cost of autograd on scalars (BENCHMARKS.md): 1-element tensors x,
-- w, b requiring grad; ten ops forward, backward, then the three gradients reset; 20,000
-- iterations per timed run. Prints microseconds per op (loop time / (iterations x 10)).
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'

local ITERS = 20000
local x = flare.tensor({ 0.5 }):requires_grad()
local w = flare.tensor({ 1.5 }):requires_grad()
local b = flare.tensor({ -0.3 }):requires_grad()
local y
local function run(n)
  for _ = 1, n do
    local t1 = x * w
    local t2 = t1 + b
    local t3 = t2:tanh()
    local t4 = t3 * t3
    local t5 = t4 - x
    local t6 = t5:sigmoid()
    local t7 = t6 * w
    local t8 = t7:exp()
    local t9 = t8 + t1
    y = t9 * t9
    y:backward()
    x.grad, w.grad, b.grad = nil, nil, nil
  end
end
-- a short warm-up, then the median of 3 timed runs (PyTorch's side takes seconds per run)
run(ITERS // 10)
local runs = {}
for r = 1, 3 do
  local t0 = bench.clock()
  run(ITERS)
  runs[r] = (bench.clock() - t0) / ITERS
end
local s = bench.median(runs)
assert(y:item() > 0)
bench.report('chain10', s / 10 * 1e6, 'us')
