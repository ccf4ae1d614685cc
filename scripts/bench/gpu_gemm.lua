-- gpu_gemm.lua: flare's matmul on the GPU against cuBLAS called directly inside flare's CUDA
-- library, in the same run: C = A·B on n x n float32 matrices (n = 8192, or the first
-- argument; iterations: the second) in exact float32, with TF32 allowed, and under bf16
-- autocast. The bf16 reference is timed twice: the bare bf16 GEMM, and the GEMM with the
-- float32 -> bf16 conversion of both operands (what autocast has to do). Prints
-- TFLOP/s (2n³ flops per product) and flare / cuBLAS as a ratio (1 = as fast).
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'

local n = math.tointeger(tonumber(arg[1] or '8192'))
local iters = math.tointeger(tonumber(arg[2] or '20'))
assert(n and n > 0 and iters and iters > 0, 'usage: gpu_gemm.lua [n] [iterations]')

if not flare.cuda.is_available() then
  print('gpu_gemm: skipped: no GPU (' .. tostring(flare.cuda.why_unavailable()) .. ')')
  return
end
local set_allow_tf32 = flare.cuda.set_allow_tf32 or flare._cuda_set_allow_tf32
local bench_gemm = flare.cuda._bench_gemm or flare._cuda_bench_gemm
print(string.format('gpu_gemm: n=%d, %d products per timing, on %s%s', n, iters, flare.cuda.device_info().name,
                    flare.cuda.is_emulated() and ' (emulated: timings mean nothing)' or ''))

flare.manual_seed(0)
local a, b = flare.randn(n, n):cuda(), flare.randn(n, n):cuda()

-- Seconds per product of flare's matmul: one warm-up, then `iters` products between two
-- synchronisations (the products queue on the GPU; the host never waits in between).
local function flare_time()
  local c = a:matmul(b)
  flare.cuda.synchronize()
  local t0 = flare.clock()
  for _ = 1, iters do c = a:matmul(b) end
  flare.cuda.synchronize()
  assert(c:size(1) == n)
  return (flare.clock() - t0) / iters
end

local modes = {
  { name = 'float32', setup = function() end, ref = { 'float32' } },
  { name = 'tf32', setup = function() set_allow_tf32(true) end, ref = { 'tf32' } },
  { name = 'bf16', setup = function() flare._set_autocast('bfloat16') end, ref = { 'bf16', 'bf16_cast' } },
}

local tflops = function(s) return 2 * n ^ 3 / s / 1e12 end
for _, m in ipairs(modes) do
  m.setup()
  local ok, s = pcall(flare_time)
  set_allow_tf32(false)
  flare._set_autocast(nil)
  assert(ok, s)
  bench.report(string.format('gpu_gemm:n=%d:%s', n, m.name), tflops(s), 'tflops')
  for _, ref in ipairs(m.ref) do
    local r = bench_gemm(n, ref, iters)
    print(string.format('  cuBLAS %-10s %8.2f TFLOP/s   flare/cuBLAS speed ratio %.3f', ref, tflops(r), r / s))
    bench.report(string.format('gpu_gemm:n=%d:%s:ratio_vs_%s', n, m.name, ref), r / s, 'x')
  end
end
