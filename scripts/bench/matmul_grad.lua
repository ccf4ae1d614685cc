-- matmul_grad.lua: what recording autograd costs a large op: C = A·B on 1024x1024 float32,
-- plain and with A requiring grad (forward only; the graph is dropped with C). The two are
-- timed in alternation, so that load from elsewhere hits both alike. Prints milliseconds
-- per product for each.
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'

local n = 1024
flare.manual_seed(0)
local a, b = flare.randn(n, n), flare.randn(n, n)
local ag = a:detach():requires_grad()
local c
local function time(x, iters)
  local t0 = bench.clock()
  for _ = 1, iters do c = flare.matmul(x, b) end
  return (bench.clock() - t0) / iters
end
local plain, grad = {}, {}
time(a, 3)
time(ag, 3)
for r = 1, 7 do
  plain[r] = time(a, 10)
  grad[r] = time(ag, 10)
end
assert(c:size(1) == n)
bench.report('matmul_grad:plain', bench.median(plain) * 1e3, 'ms')
bench.report('matmul_grad:requires_grad', bench.median(grad) * 1e3, 'ms')
