-- Gradients of composite expressions through the reductions, sort/topk and matrix products,
-- against PyTorch (spec/fixtures/reduce_grad.lua, written by gen_reduce_grad.py), and what
-- recording costs: nothing saved that the rule does not need, integer results without a
-- node, a clear error when a saved tensor was modified in place.
local flare = require 'flare'
local fixture = require 'support.fixture'
_G.assert = assert

local fx = fixture.load('reduce_grad')

-- the expressions of gen_reduce_grad.py (t: leaves, c: constants)
local losses = {
  mlp = function(t, c)
    return ((t.x:matmul(t.w1) + t.b1):relu():matmul(t.w2):log_softmax(2) * c.c):sum()
  end,
  attention = function(t, c)
    return ((t.q:bmm(t.kt) / 2):softmax(-1):matmul(t.v) * c.c):sum()
  end,
  batched = function(t)
    local y = t.x:matmul(t.w)
    return y:std(2):norm() + y:logsumexp(-1):mean() + y:var(1, true, { unbiased = false }):sum()
  end,
  stats = function(t, c)
    local x = t.x
    return (x:prod(2) * c.c1):sum() + x:cumprod(2):cumsum(1):amax(2):sum() + x:norm(3, 1):sum()
      + x:mean(1):dot(c.c2)
  end,
  sorting = function(t, c)
    local x = t.x
    local s = x:sort(2, true)
    local k = x:topk(2, 1)
    local m = x:max(2)
    return (s * c.c1):sum() + (k * c.c2):sum() + (m * c.c3):sum() + x:amin()
  end,
  products = function(t, c)
    return (flare.addmm(t.m, t.a, t.b, { beta = 0.5, alpha = 2 }) * c.c):sum()
      + t.a:mv(t.w):dot(t.u) + (t.u:outer(t.w) * t.a):sum()
  end,
  zeros = function(t, c)
    local x = t.x
    return (x:prod(2) * c.c1):sum() + (x:cumprod(2) * c.c2):sum() + x:prod(1):sum()
  end,
}

describe('gradients of reductions and products against PyTorch', function()
  local names = {}
  for name in pairs(fx) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    it(name, function()
      local case = fx[name]
      local t, c = {}, {}
      for k, e in pairs(case.inputs) do t[k] = fixture.tensor(e):requires_grad() end
      for k, e in pairs(case.consts) do c[k] = fixture.tensor(e) end
      local loss = losses[name](t, c)
      local f32 = case.inputs[next(case.inputs)].dtype == 'float32'
      local tol = f32 and { rtol = 1e-4, atol = 1e-5 } or { rtol = 1e-9, atol = 1e-10 }
      assert.is_true(math.abs(loss:item() - case.loss) <= tol.atol + tol.rtol * math.abs(case.loss))
      loss:backward()
      for k, e in pairs(case.grads) do
        assert(t[k].grad, 'no gradient for ' .. k)
        fixture.assert_close(t[k].grad, e, tol)
      end
    end)
  end
end)

describe('recording reductions and products', function()
  it('records no node for integer results and for indices', function()
    local x = flare.randn(3, 4):requires_grad()
    assert.is_nil(x:argmax(2).grad_fn)
    local v, i = x:max(2)
    assert.is_not_nil(v.grad_fn)
    assert.is_nil(i.grad_fn)
    local s, si = x:sort(1)
    assert.is_not_nil(s.grad_fn)
    assert.is_nil(si.grad_fn)
    assert.is_nil(flare.ones(3, 4, { dtype = 'int64' }):sum().grad_fn)
    assert.is_nil(x:any().grad_fn)
  end)

  it('records nothing in no_grad', function()
    local a = flare.randn(3, 3):requires_grad()
    flare.no_grad(function()
      assert.is_nil(a:matmul(a).grad_fn)
      assert.is_nil(a:sum().grad_fn)
      assert.is_nil((a:sort()).grad_fn)
    end)
  end)

  it('gives a gradient to one operand only when only it requires grad', function()
    local a = flare.randn(3, 4, { dtype = 'float64' }):requires_grad()
    local b = flare.randn(4, 2, { dtype = 'float64' })
    a:matmul(b):sum():backward()
    assert.is_nil(b.grad)
    fixture.assert_close(a.grad, b:sum(2):reshape(1, 4):expand(3, 4):contiguous(), { rtol = 1e-12 })
  end)

  it('sums the gradient of a broadcast batch', function()
    local a = flare.randn(2, 3, 4, { dtype = 'float64' }):requires_grad()
    local w = flare.randn(4, 5, { dtype = 'float64' }):requires_grad()
    a:matmul(w):sum():backward()
    -- d/dw sum(a w) = sum over rows of a, for every column
    local rows = a:detach():sum({ 1, 2 })
    fixture.assert_close(w.grad, rows:reshape(4, 1):expand(4, 5):contiguous(), { rtol = 1e-12 })
  end)

  it('names the op whose saved tensor was modified in place', function()
    local x = flare.randn(3, 4):requires_grad()
    local v, idx = x:max(2)
    idx:add_(0)
    local ok, err = pcall(function() v:sum():backward() end)
    assert.is_false(ok)
    assert.matches("gradient of 'max' was modified in place", err)
  end)

  it('keeps float32 gradients in float32 and casts outer products back', function()
    local u = flare.randn(3):requires_grad()
    local w = flare.randn(4, { dtype = 'float64' }):requires_grad()
    local o = u:outer(w)
    assert.equal('float64', o:dtype())
    o:sum():backward()
    assert.equal('float32', u.grad:dtype())
    assert.equal('float64', w.grad:dtype())
    fixture.assert_close(u.grad, flare.full({ 3 }, w:detach():sum():item()), { rtol = 1e-6 })
  end)
end)
