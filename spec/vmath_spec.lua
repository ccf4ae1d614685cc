-- float32 exp, tanh and sigmoid (the vectorised forms of kernels/cpu/vmath.h) against libm
-- in float64: at most a few units in the last place over the whole float range, from
-- subnormals to overflow, and libm's answers for ±inf, NaN, ±0 and the edges of the range.
local flare = require 'flare'

-- Inputs spread over every binade of float32 (both signs, 2^-149 to 2^127), a dense sweep
-- of the range where the results are neither 0, 1 nor inf, and the special values.
local function inputs()
  flare.manual_seed(3)
  local n = 100000
  local e = flare.rand(n, { dtype = 'float64' }) * 277 - 149
  local sign = flare.randint(0, 2, { n }):double() * 2 - 1
  local spread = sign * flare.pow(2, e) * (flare.rand(n, { dtype = 'float64' }) + 1)
  local sweep = flare.linspace(-110, 95, 100001, { dtype = 'float64' })
  local special = flare.tensor({ 0, -0.0, 1 / 0, -1 / 0, 0 / 0, 3.4028234663852886e38, -3.4028234663852886e38,
    1.1754943508222875e-38, -1.1754943508222875e-38, 1.401298464324817e-45, -1.401298464324817e-45,
    88.72283935546875, 88.72284, 88.7228, 89, -87.33654, -103.97207, -103.97208, -103.9721, -104, 0.625, -0.625,
    0.62499994, 9, 10, 10.000001, -9, -10, 1e-4, -1e-4, 1e-30, -1e-30, 20, -20, 1, -1, 0.5 }, { dtype = 'float64' })
  return flare.cat({ spread, sweep, special }, 1):float()
end

local function sigmoid64(x) return flare.sigmoid(x) end

-- The worst error of got (float32) against want (float64), in float32 ulps of want; NaN and
-- infinities must match exactly (an error of math.huge otherwise).
local function worst_ulps(x, got, want)
  local want32 = want:float()
  local finite = want32:isfinite()
  -- non-finite answers: same class and sign
  local nf = finite:logical_not()
  if nf:any():item() then
    local g, w = got[nf], want32[nf]
    local same = (g:isnan():logical_and(w:isnan())):logical_or(g:eq(w))
    if not same:all():item() then
      local bad = same:logical_not()
      return math.huge, x[nf][bad][1]:item()
    end
  end
  local w, g = want[finite], got[finite]:double()
  -- one ulp of want as a float32: 2^(exponent - 23), and 2^-149 among the subnormals
  local ulp = flare.pow(2, flare.floor(flare.log2(w:abs():clamp_min(1.1754943508222875e-38))) - 23)
  local err = (g - w):abs() / ulp
  local m = err:max():item()
  return m, x[finite][err:argmax():item()]:item()
end

describe('float32 exp, tanh and sigmoid', function()
  local x = inputs()
  local x64 = x:double()

  for _, case in ipairs {
    { 'exp', flare.exp, flare.exp },
    { 'tanh', flare.tanh, flare.tanh },
    { 'sigmoid', flare.sigmoid, sigmoid64 },
  } do
    local name, f32, f64 = case[1], case[2], case[3]
    it(name .. ' is within 4 ulp of libm over the whole range', function()
      local m, at = worst_ulps(x, f32(x), f64(x64))
      assert(m <= 4, string.format('%s: %.3g ulp at x = %.9g', name, m, at))
    end)
  end

  it('gives libm\'s special values', function()
    local s = flare.tensor({ 1 / 0, -1 / 0, 0 / 0, 0, -0.0, 89, -104 }, { dtype = 'float32' })
    local e, t, g = s:exp(), s:tanh(), s:sigmoid()
    assert.is_true(e[3]:isnan():item() and t[3]:isnan():item() and g[3]:isnan():item())
    -- the others, NaN (which equals nothing) left out
    local function but_nan(v) local l = v:totable(); table.remove(l, 3); return l end
    assert.are.same({ 1 / 0, 0, 1, 1, 1 / 0, 0 }, but_nan(e))
    assert.are.same({ 1, -1, 0, 0, 1, -1 }, but_nan(t))
    assert.are.equal(-math.huge, 1 / t[5]:item())   -- tanh(-0) = -0
    assert.are.same({ 1, 0, 0.5, 0.5, 1, 0 }, but_nan(g))
  end)

  it('works on strided and odd-length tensors alike', function()
    local a = flare.randn(37, 5):t()
    assert.is_false(a:is_contiguous())
    for _, f in ipairs { 'exp', 'tanh', 'sigmoid', 'silu' } do
      local got, want = a[f](a), a:double()[f](a:double())
      local rel = ((got:double() - want):abs() / want:abs():clamp_min(1e-30)):max():item()
      assert(rel < 1e-6, f .. ': relative error ' .. rel)
    end
  end)
end)
