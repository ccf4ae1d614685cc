-- Gradcheck cases for the reductions, sorting and linear algebra ops (merged by
-- gradcheck_spec.lua). Each op gets a plain input, a non-contiguous one and, where it applies,
-- a zero-size one; ties, zeros and other points PyTorch defines by convention are checked
-- against its values.
local flare = require 'flare'
local assert = require 'luassert'
local util = require 'support.gradcheck_util'
local gradcheck = flare.autograd.gradcheck
local randn, away, positive, strided = util.randn, util.away, util.positive, util.strided

local function f64(t) return flare.tensor(t, { dtype = 'float64' }):requires_grad() end

-- a non-contiguous float64 leaf of shape {a, b, c} (a permuted {c, a, b} tensor)
local function strided3(a, b, c)
  local t = flare.randn({ c, a, b }, { dtype = 'float64' }):permute(2, 3, 1)
  assert(not t:is_contiguous())
  return t:requires_grad()
end

-- a non-contiguous float64 leaf of n elements (a column of an {n, 2} tensor)
local function strided1(n)
  local t = flare.randn({ n, 2 }, { dtype = 'float64' }):select(2, 1)
  assert(not t:is_contiguous())
  return t:requires_grad()
end

-- x.grad after backward of f(x) summed with weights w (default: ones)
local function grad_of(f, x, w)
  x.grad = nil
  local y = f(x)
  y:backward(w or flare.ones_like(y))
  return x.grad
end

local function same(expected, actual)
  assert.are.same(expected, actual:totable())
end

local cases = {}

cases.sum = function()
  gradcheck(function(x) return x:sum() end, { randn(3, 4) })
  gradcheck(function(x) return x:sum(-1) end, { randn(3, 4) })
  gradcheck(function(x) return x:sum({ 1, 3 }, true) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return x:sum(1) end, { strided(3, 4) })
  gradcheck(function(x) return x:sum(1) end, { randn(0, 3) })
  gradcheck(function(x) return x:sum() end, { randn(0, 3) })
end

cases.mean = function()
  gradcheck(function(x) return x:mean() end, { randn(3, 4) })
  gradcheck(function(x) return x:mean(-2, true) end, { strided(3, 4) })
  gradcheck(function(x) return x:mean({ 2, 3 }) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return x:mean(2) end, { randn(0, 3) })
end

cases.prod = function()
  gradcheck(function(x) return x:prod(2) end, { away({ 3, 4 }) })
  gradcheck(function(x) return x:prod() end, { away({ 2, 3 }) })
  gradcheck(function(x) return x:prod(-2, true) end, { strided(3, 4) })
  gradcheck(function(x) return x:prod({ 1, 3 }) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return x:prod(1) end, { randn(0, 3) })
  -- zeros: one zero in a row (its gradient is the product of the others), two, none
  local z = { { 0, 2, 3 }, { 0, 0, 1.5 }, { 1, 2, 3 }, { 4, 0, -1 } }
  gradcheck(function(x) return x:prod(2) end, { f64(z) })
  gradcheck(function(x) return x:prod(1, true) end, { f64(z) })
  gradcheck(function(x) return x:prod() end, { f64 { 2, 0, 3 } })
  gradcheck(function(x) return x:prod({ 1, 2 }) end, { f64 { { 2, 0 }, { 0, 3 } } })
  same({ { 6, 0, 0 }, { 0, 0, 0 }, { 6, 3, 2 }, { 0, -4, 0 } }, grad_of(function(x) return x:prod(2) end, f64(z)))
end

local function extreme_case(name)
  return function()
    gradcheck(function(x) return x[name](x) end, { randn(3, 4) })
    gradcheck(function(x) return x[name](x, -1) end, { randn(3, 4) })
    gradcheck(function(x) return x[name](x, { 1, 3 }, true) end, { strided3(2, 3, 4) })
    gradcheck(function(x) return x[name](x, 1) end, { strided(3, 4) })
    gradcheck(function(x) return x[name](x, 2) end, { randn(0, 3) })
    -- two-way ties share the gradient (what central differences see, too)
    local ties = { { 1, 3, 3 }, { -2, -2, 0 } }
    gradcheck(function(x) return x[name](x, 2) end, { f64(ties) })
    gradcheck(function(x) return x[name](x) end, { f64 { 1, 5, 5, -5, -5 } })
    local expected = name == 'amax' and { { 0, 0.5, 0.5 }, { 0, 0, 1 } } or { { 1, 0, 0 }, { 0.5, 0.5, 0 } }
    same(expected, grad_of(function(x) return x[name](x, 2) end, f64(ties)))
  end
end
cases.amax = extreme_case('amax')
cases.amin = extreme_case('amin')

local function max_case(name)
  return function()
    gradcheck(function(x) return x[name](x) end, { randn(3, 4) })
    gradcheck(function(x) return (x[name](x, 2)) end, { randn(3, 4) })
    gradcheck(function(x) return (x[name](x, -1, true)) end, { strided(3, 4) })
    gradcheck(function(x) return (x[name](x, 2)) end, { strided3(2, 3, 4) })
    gradcheck(function(x) return (x[name](x, 2)) end, { randn(0, 3) })
    gradcheck(function(x) return (x[name](x, 1)) end, { flare.randn({ 1 }, { dtype = 'float64' }):sum():requires_grad() })
    -- max(dim) routes the gradient to the returned index (the first of tied values);
    -- max() shares it among ties
    local ties = { { 1, 3, 3 }, { -2, -2, 0 } }
    local x = f64(ties)
    local v, idx = x[name](x, 2)
    v:backward(flare.tensor({ 10, 20 }, { dtype = 'float64' }))
    local want = name == 'max' and { { 0, 10, 0 }, { 0, 0, 20 } } or { { 10, 0, 0 }, { 20, 0, 0 } }
    same(want, x.grad)
    same(name == 'max' and { 2, 3 } or { 1, 1 }, idx)
    same(name == 'max' and { 0, 0.5, 0.5, 0, 0 } or { 0, 0, 0, 0.5, 0.5 },
         grad_of(function(t) return t[name](t) end, f64 { 1, 5, 5, -5, -5 }))
  end
end
cases.max = max_case('max')
cases.min = max_case('min')

local function var_case(name)
  return function()
    gradcheck(function(x) return x[name](x) end, { randn(3, 4) })
    gradcheck(function(x) return x[name](x, 2) end, { randn(3, 4) })
    gradcheck(function(x) return x[name](x, -2, true, { unbiased = false }) end, { strided(3, 4) })
    gradcheck(function(x) return x[name](x, { 1, 3 }, { correction = 2 }) end, { strided3(2, 3, 4) })
    gradcheck(function(x) return x[name](x, 2) end, { randn(0, 3) })
    if name == 'std' then
      -- a constant row: PyTorch takes the gradient as 0 where std is 0
      same({ { 0, 0, 0 } }, grad_of(function(x) return x:std(2) end, f64 { { 2, 2, 2 } }))
    end
  end
end
cases.var = var_case('var')
cases.std = var_case('std')

cases.norm = function()
  gradcheck(function(x) return x:norm() end, { randn(3, 4) })
  gradcheck(function(x) return x:norm('fro', { 1, 2 }) end, { strided(3, 4) })
  gradcheck(function(x) return x:norm(2, -1, true) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return x:norm(1, 2) end, { away({ 3, 4 }) })
  gradcheck(function(x) return x:norm(math.huge, 1) end, { strided(3, 4) })
  gradcheck(function(x) return x:norm(-math.huge, 2) end, { away({ 3, 4 }) })
  gradcheck(function(x) return x:norm(3, 2) end, { away({ 3, 4 }) })
  gradcheck(function(x) return x:norm(0.5, 1) end, { strided(3, 4) })
  gradcheck(function(x) return x:norm(-1) end, { away({ 4 }) })
  gradcheck(function(x) return x:norm(2, 2) end, { randn(0, 3) })
  gradcheck(function(x) return x:norm(math.huge, 2) end, { f64 { { -2, 2, 1 }, { 3, 0, -1 } } })
  -- PyTorch's values where the norm is not differentiable
  local z = f64 { { 0, 0 }, { 0, 1 } }
  same({ { 0, 0 }, { 0, 1 } }, grad_of(function(x) return x:norm(2, 2) end, z))
  same({ { 0, 0 }, { 0, 1 } }, grad_of(function(x) return x:norm(1, 2) end, z))
  same({ { 0, 0 }, { 0, 1 } }, grad_of(function(x) return x:norm(math.huge, 2) end, z))
  same({ { 0, 0 }, { 0, 1 } }, grad_of(function(x) return x:norm(3, 2) end, z))
  same({ { 0, 0 }, { 0, 1 } }, grad_of(function(x) return x:norm(0.5, 2) end, z))
  same({ { 0, 0 }, { 0, 0 } }, grad_of(function(x) return x:norm(0, 2) end, z))
  same({ -0.5, 0.5, 0 }, grad_of(function(x) return x:norm(math.huge) end, f64 { -2, 2, 1 }))
end

cases.logsumexp = function()
  gradcheck(function(x) return x:logsumexp(2) end, { randn(3, 4) })
  gradcheck(function(x) return x:logsumexp({ 1, 2 }, true) end, { strided(3, 4) })
  gradcheck(function(x) return x:logsumexp(-1) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return x:logsumexp(2) end, { randn(0, 3) })
end

cases.cumsum = function()
  gradcheck(function(x) return x:cumsum(2) end, { randn(3, 4) })
  gradcheck(function(x) return x:cumsum(1) end, { strided(3, 4) })
  gradcheck(function(x) return x:cumsum(-1) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return x:cumsum(1) end, { randn(0, 3) })
  gradcheck(function(x) return x:cumsum(1) end, { flare.randn({ 1 }, { dtype = 'float64' }):sum():requires_grad() })
end

cases.cumprod = function()
  gradcheck(function(x) return x:cumprod(2) end, { away({ 3, 4 }) })
  gradcheck(function(x) return x:cumprod(1) end, { strided(3, 4) })
  gradcheck(function(x) return x:cumprod(-2) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return x:cumprod(2) end, { randn(0, 3) })
  -- zeros: before, at and after the first zero of a row
  local z = { { 2, 0, 3, 0, 5 }, { 1, 2, 0, 4, 0.5 }, { 0, 0, 1, 2, 3 }, { 1, -1, 2, -2, 3 } }
  gradcheck(function(x) return x:cumprod(2) end, { f64(z) })
  gradcheck(function(x) return x:cumprod(1) end, { f64(z) })
  same({ 1, 8, 0, 0, 0 }, grad_of(function(x) return x:cumprod(1) end, f64 { 2, 0, 3, 0, 5 }))
end

cases.sort = function()
  gradcheck(function(x) return (x:sort()) end, { randn(3, 4) })
  gradcheck(function(x) return (x:sort(1, true)) end, { strided(3, 4) })
  gradcheck(function(x) return (x:sort(-2)) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return (x:sort(2)) end, { randn(0, 3) })
end

cases.topk = function()
  gradcheck(function(x) return (x:topk(2)) end, { randn(3, 4) })
  gradcheck(function(x) return (x:topk(2, 1, false)) end, { strided(3, 4) })
  gradcheck(function(x) return (x:topk(1, 2)) end, { strided3(2, 3, 4) })
  gradcheck(function(x) return (x:topk(0)) end, { randn(2, 3) })
  gradcheck(function(x) return (x:topk(2)) end, { randn(0, 3) })
end

cases.matmul = function()
  local mm = function(a, b) return a:matmul(b) end
  gradcheck(mm, { randn(3, 4), randn(4, 2) })
  gradcheck(mm, { strided(3, 4), strided(4, 2) })
  gradcheck(mm, { randn(4), randn(4) })
  gradcheck(mm, { randn(3, 4), randn(4) })
  gradcheck(mm, { randn(4), randn(4, 2) })
  gradcheck(mm, { strided3(2, 3, 4), randn(4, 2) })          -- folded batch
  gradcheck(mm, { randn(2, 3, 4), randn(4) })
  gradcheck(mm, { randn(4), randn(2, 4, 3) })
  gradcheck(mm, { randn(3, 4), strided3(2, 4, 2) })          -- a broadcast over b's batch
  gradcheck(mm, { randn(2, 1, 3, 4), randn(3, 4, 2) })       -- broadcast batch dims
  gradcheck(mm, { randn(0, 4), randn(4, 2) })
  gradcheck(mm, { randn(3, 0), randn(0, 2) })
  -- only one operand requiring grad
  gradcheck(mm, { randn(3, 4), flare.randn({ 4, 2 }, { dtype = 'float64' }) })
  gradcheck(mm, { flare.randn({ 2, 3, 4 }, { dtype = 'float64' }), randn(4, 2) })
end

cases.mm = function()
  gradcheck(function(a, b) return a:mm(b) end, { randn(3, 4), randn(4, 2) })
  gradcheck(function(a, b) return flare.mm(a, b) end, { strided(3, 4), strided(4, 2) })
  gradcheck(function(a, b) return a:mm(b) end, { randn(0, 4), randn(4, 2) })
end

cases.bmm = function()
  gradcheck(function(a, b) return a:bmm(b) end, { randn(2, 3, 4), randn(2, 4, 2) })
  gradcheck(function(a, b) return a:bmm(b) end, { strided3(2, 3, 4), strided3(2, 4, 2) })
  gradcheck(function(a, b) return a:bmm(b) end, { randn(0, 3, 4), randn(0, 4, 2) })
end

cases.mv = function()
  gradcheck(function(a, b) return a:mv(b) end, { randn(3, 4), randn(4) })
  gradcheck(function(a, b) return a:mv(b) end, { strided(3, 4), strided1(4) })
  gradcheck(function(a, b) return a:mv(b) end, { randn(0, 4), randn(4) })
end

cases.dot = function()
  gradcheck(function(a, b) return a:dot(b) end, { randn(5), randn(5) })
  gradcheck(function(a, b) return a:dot(b) end, { strided1(5), randn(5) })
  gradcheck(function(a, b) return a:dot(b) end, { randn(0), randn(0) })
end

cases.outer = function()
  gradcheck(function(a, b) return a:outer(b) end, { randn(3), randn(4) })
  gradcheck(function(a, b) return flare.ger(a, b) end, { strided1(3), randn(2) })
  gradcheck(function(a, b) return a:outer(b) end, { randn(0), randn(4) })
end

cases.addmm = function()
  gradcheck(function(m, a, b) return flare.addmm(m, a, b) end, { randn(3, 2), randn(3, 4), randn(4, 2) })
  gradcheck(function(m, a, b) return flare.addmm(m, a, b, { beta = 0.5, alpha = -2 }) end,
            { randn(2), strided(3, 4), strided(4, 2) })
  gradcheck(function(m, a, b) return flare.addmm(m, a, b, { beta = 0, alpha = 3 }) end,
            { randn(1, 2), randn(3, 4), randn(4, 2) })
  gradcheck(function(m, a, b) return flare.addmm(m, a, b) end, { randn(0, 2), randn(0, 4), randn(4, 2) })
end

return cases
