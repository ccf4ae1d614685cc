-- Gradcheck: every op with a backward rule (the engine's registry, flare._differentiable_ops)
-- is checked against central finite differences in float64, with a broadcast input, a
-- non-contiguous input and, where it applies, a zero-size input. The spec fails if an op in
-- the registry has no case here.
local flare = require 'flare'
local gradcheck = flare.autograd.gradcheck

flare.manual_seed(7)

local util = require 'support.gradcheck_util'
local randn, away, positive, strided = util.randn, util.away, util.positive, util.strided

local unary_domain = {
  log = positive, log2 = positive, sqrt = positive, rsqrt = positive, log1p = positive,
  asin = function(s) return away(s, 0.1, 0.8) end, acos = function(s) return away(s, 0.1, 0.8) end,
  reciprocal = away, abs = away, relu = away, sign = away,
  floor = function(s) return positive(s, 0.2, 0.8) end, ceil = function(s) return positive(s, 0.2, 0.8) end,
  round = function(s) return positive(s, 0.1, 0.4) end, trunc = function(s) return positive(s, 0.2, 0.8) end,
  tan = function(s) return away(s, 0.1, 1.2) end,
}

local function unary_case(name)
  local make = unary_domain[name] or away
  return function()
    gradcheck(function(x) return flare[name](x) end, { make({ 3, 4 }) })
    gradcheck(function(x) return x[name](x) end, { strided(3, 2, make) })
    gradcheck(function(x) return flare[name](x) end, { make({ 0, 3 }) })
  end
end

local function binary_case(name, make_a, make_b)
  make_a, make_b = make_a or away, make_b or away
  return function()
    gradcheck(function(a, b) return flare[name](a, b) end, { make_a({ 3, 1 }), make_b({ 4 }) })
    gradcheck(function(a, b) return flare[name](a, b) end, { strided(2, 3, make_a), make_b({ 2, 3 }) })
    gradcheck(function(a, b) return flare[name](a, b) end, { make_a({ 0, 3 }), make_b({ 3 }) })
  end
end

local cases = {
  add = binary_case('add'), sub = binary_case('sub'), mul = binary_case('mul'),
  div = binary_case('div'), pow = binary_case('pow', positive),
  maximum = binary_case('maximum'), minimum = binary_case('minimum'),
  fmod = binary_case('fmod', function(s) return positive(s, 2.1, 2.9) end, function(s) return positive(s, 0.7, 0.9) end),
  atan2 = binary_case('atan2'),
  clamp = function()
    gradcheck(function(x) return x:clamp(-0.5, 0.7) end, { away({ 3, 4 }, 0.05, 0.4) })
    gradcheck(function(x) return x:clamp(-1, 1) end, { strided(3, 4, function(s) return away(s, 1.2, 2) end) })
    gradcheck(function(x) return x:clamp_min(0.5) end, { positive({ 0, 2 }) })
  end,
  where = function()
    local cond = flare.tensor { { true, false, true, false } }
    gradcheck(function(a, b) return flare.where(cond, a, b) end, { randn(3, 1), randn(4) })
    gradcheck(function(a, b) return flare.where(cond:t(), a, b) end, { strided(4, 2), randn(4, 2) })
    gradcheck(function(a, b) return flare.where(flare.zeros(0, 4, { dtype = 'bool' }), a, b) end, { randn(4), randn(0, 4) })
  end,
  to = function()
    -- through float32: a larger step keeps rounding out of the difference quotient
    gradcheck(function(x) return x:float():double() * 2 end, { randn(3) }, { eps = 1e-2, atol = 1e-4, rtol = 1e-3 })
    gradcheck(function(x) return x:to('float64') * 3 end, { strided(2, 3) })
  end,
  softmax = function()
    gradcheck(function(x) return x:softmax(2) end, { randn(3, 4) })
    gradcheck(function(x) return x:softmax(1) end, { strided(3, 4) })
    gradcheck(function(x) return x:softmax(2) end, { randn(0, 4) })
  end,
  log_softmax = function()
    gradcheck(function(x) return x:log_softmax(2) end, { randn(3, 4) })
    gradcheck(function(x) return x:log_softmax(1) end, { strided(3, 4) })
    gradcheck(function(x) return x:log_softmax(2) end, { randn(0, 4) })
  end,
  cross_entropy = function()
    local t = flare.tensor { 1, 4, 2 }
    local w = flare.tensor({ 1, 2, 0.5, 1.5 }, { dtype = 'float64' })
    gradcheck(function(x) return flare.cross_entropy(x, t) end, { randn(3, 4) })
    gradcheck(function(x) return flare.cross_entropy(x, t, { weight = w, label_smoothing = 0.2 }) end, { strided(3, 4) })
    gradcheck(function(x) return flare.cross_entropy(x, flare.tensor { { 1, 2 }, { 3, 3 } }, { reduction = 'none' }) end, { randn(2, 3, 2) })
  end,
  nll_loss = function()
    local t = flare.tensor { 1, 4, 2 }
    gradcheck(function(x) return flare.nll_loss(x, t) end, { randn(3, 4) })
    local w = flare.rand(4, { dtype = 'float64' })
    gradcheck(function(x) return flare.nll_loss(x, t, { reduction = 'sum', weight = w }) end, { strided(3, 4) })
  end,
  binary_cross_entropy_with_logits = function()
    gradcheck(function(x, y) return flare.binary_cross_entropy_with_logits(x, y) end,
              { randn(3, 4), positive({ 3, 4 }, 0.1, 0.9) })
    local pw = flare.rand(4, { dtype = 'float64' })
    gradcheck(function(x, y) return flare.binary_cross_entropy_with_logits(x, y, { pos_weight = pw, reduction = 'none' }) end,
              { strided(3, 4), positive({ 3, 4 }, 0.1, 0.9) })
  end,
  mse_loss = function()
    gradcheck(function(a, b) return flare.mse_loss(a, b) end, { randn(3, 4), randn(3, 4) })
    gradcheck(function(a, b) return flare.mse_loss(a, b, { reduction = 'sum' }) end, { strided(3, 4), randn(3, 4) })
  end,
}

-- the cases of other areas (views and indexing, reductions and linear algebra)
for _, area in ipairs { 'view', 'reduce', 'nn' } do
  local found, extra = pcall(require, 'support.gradcases_' .. area)
  if found then
    for name, case in pairs(extra) do cases[name] = case end
  elseif not tostring(extra):match('not found') then
    error(extra)
  end
end

describe('gradcheck', function()
  it('has a case for every differentiable op in the registry', function()
    local missing = {}
    for _, name in ipairs(flare._differentiable_ops()) do
      if not cases[name] and not flare[name] then missing[#missing + 1] = name .. ' (no function)' end
      if not cases[name] and flare[name] then cases[name] = unary_case(name) end
    end
    for _, name in ipairs(flare._differentiable_ops()) do
      if not cases[name] then missing[#missing + 1] = name end
    end
    assert.are.same({}, missing)
  end)

  for _, name in ipairs(flare._differentiable_ops()) do
    it(name, function()
      local case = cases[name] or unary_case(name)
      case()
    end)
  end

  it('reports the worst element when a gradient is wrong', function()
    -- x:detach() hides the dependence from the tape, so the analytical gradient is wrong
    local ok, msg = gradcheck(function(x) return x * x:detach() end, { randn(3) }, { raise = false })
    assert.is_false(ok)
    assert.matches('gradcheck failed: input 1', msg)
  end)
end)
