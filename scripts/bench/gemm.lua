-- gemm.lua: C = A·B on square float32 matrices, n = 256, 1024, 2048 (or the sizes given as
-- arguments). Prints GFLOP/s, counting 2n³ flops per product.
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'

local sizes = {}
for i = 1, #arg do sizes[i] = math.tointeger(tonumber(arg[i])) end
if #sizes == 0 then sizes = { 256, 1024, 2048 } end

local matmul = flare.matmul or flare._methods.matmul
for _, n in ipairs(sizes) do
  if not matmul then
    print(string.format('gemm:n=%d unavailable -', n))
  else
    flare.manual_seed(0)
    local a, b = flare.randn(n, n), flare.randn(n, n)
    local c
    local s = bench.time(function(iters)
      for _ = 1, iters do c = matmul(a, b) end
    end, { repeats = 5, min_s = 0.2 })
    assert(c:size(1) == n and c:size(2) == n)
    bench.report('gemm:n=' .. n, 2 * n ^ 3 / s / 1e9, 'gflops')
  end
end
