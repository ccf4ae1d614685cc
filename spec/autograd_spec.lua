-- Autograd: the tape, backward, grad modes, errors, fused losses against PyTorch, and
-- gradcheck (central differences in float64) for every backward rule.
local flare = require 'flare'
local fixture = require 'support.fixture'

local cases = fixture.load('autograd')

local function leaf(e) return fixture.tensor(e):requires_grad() end

describe('autograd basics', function()
  it('computes and accumulates gradients until zeroed', function()
    local x = flare.tensor({ 1.0, 2.0, 3.0 }, { requires_grad = true })
    local y = x * x * 2
    y:backward(flare.ones(3))
    assert.are.same({ 4, 8, 12 }, x.grad:totable())
    y = x * 3
    y:backward(flare.ones(3))
    assert.are.same({ 7, 11, 15 }, x.grad:totable())
    x:zero_grad()
    assert.are.same({ 0, 0, 0 }, x.grad:totable())
    x.grad = nil
    assert.is_nil(x.grad)
  end)

  it('reports leaves, grad_fn names and detaches', function()
    local x = flare.randn(2, { requires_grad = true })
    local y = (x * 2):exp()
    assert.is_true(x.is_leaf)
    assert.is_false(y.is_leaf)
    assert.equal('ExpBackward', y.grad_fn)
    assert.is_nil(x.grad_fn)
    local d = y:detach()
    assert.is_true(d.is_leaf)
    assert.is_false(d:wants_grad())
    assert.equal(y:data_ptr(), d:data_ptr())
  end)

  it('does not record under no_grad, in both forms, and restores the mode', function()
    local x = flare.randn(3, { requires_grad = true })
    do
      local _ <close> = flare.no_grad()
      assert.is_false(flare.is_grad_enabled())
      assert.is_nil((x * 2).grad_fn)
      do
        local _ <close> = flare.enable_grad()
        assert.equal('MulBackward', (x * 2).grad_fn)
      end
      assert.is_false(flare.is_grad_enabled())
    end
    assert.is_true(flare.is_grad_enabled())
    local r = flare.no_grad(function() return (x * 2).grad_fn, 7 end)
    assert.is_nil(r)
    assert.has_error(function() flare.no_grad(function() error('boom') end) end)
    assert.is_true(flare.is_grad_enabled())
  end)

  it('refuses a second backward unless the graph is retained', function()
    local x = flare.randn(3, { requires_grad = true })
    local y = x:exp() * x
    y:backward(flare.ones(3), { retain_graph = true })
    y:backward(flare.ones(3))
    local ok, err = pcall(function() y:backward(flare.ones(3)) end)
    assert.is_false(ok)
    assert.matches('second time', err)
  end)

  it('names the op when a saved tensor was changed in place', function()
    local x = flare.randn(3, { requires_grad = true })
    local w = flare.ones(3)
    local y = x * w
    w:add_(1)
    local ok, err = pcall(function() y:backward(flare.ones(3)) end)
    assert.is_false(ok)
    assert.matches("'mul' was modified in place", err)
  end)

  it('refuses in-place ops on tensors that require grad, but not under no_grad', function()
    local x = flare.randn(3, { requires_grad = true })
    assert.has_error(function() x:add_(1) end)
    assert.has_error(function() x:fill_(0) end)
    flare.no_grad(function() x:add_(1) end)
  end)

  it('asks for a gradient for non-scalar outputs and checks its shape', function()
    local x = flare.randn(3, { requires_grad = true })
    local y = x * 2
    assert.has_error(function() y:backward() end)
    assert.has_error(function() y:backward(flare.ones(4)) end)
    assert.has_error(function() flare.randn(3):backward(flare.ones(3)) end)
  end)

  it('sums gradients over broadcast dimensions', function()
    local a = flare.randn(3, 1, { requires_grad = true })
    local b = flare.randn(4, { requires_grad = true })
    local y = a + b
    y:backward(flare.ones(3, 4))
    assert.are.same({ { 4 }, { 4 }, { 4 } }, a.grad:totable())
    assert.are.same({ 3, 3, 3, 3 }, b.grad:totable())
  end)

  it('gives integer and bool inputs no gradient', function()
    assert.has_error(function() flare.tensor({ 1, 2 }):requires_grad() end)
    local x = flare.randn(2, { requires_grad = true })
    local y = x * flare.tensor { 2, 3 }
    y:backward(flare.ones(2))
    assert.are.same({ 2, 3 }, x.grad:totable())
  end)
end)

describe('composite gradients against PyTorch', function()
  it('matches a broadcast expression', function()
    local c = cases.composite
    local a, b = leaf(c.a), leaf(c.b)
    local z = (a * b + a / (b ^ 2 + 1)):tanh() * a:sigmoid() - (-b):exp()
    fixture.assert_close(z, c.z, { rtol = 1e-5 })
    z:backward(fixture.tensor(c.g))
    fixture.assert_close(a.grad, c.grad_a, { rtol = 1e-4, atol = 1e-6 })
    fixture.assert_close(b.grad, c.grad_b, { rtol = 1e-4, atol = 1e-6 })
  end)
end)

describe('fused softmax and losses against PyTorch', function()
  for _, name in ipairs { 'softmax_last', 'log_softmax_last', 'softmax_first' } do
    it(name, function()
      local c = cases[name]
      local x = leaf(c.x)
      local y = c.log and x:log_softmax(c.dim) or x:softmax(c.dim)
      fixture.assert_close(y, c.out)
      y:backward(fixture.tensor(c.g))
      fixture.assert_close(x.grad, c.grad, { rtol = 1e-5, atol = 1e-6 })
    end)
  end

  for _, name in ipairs { 'ce_mean', 'ce_sum', 'ce_none', 'ce_weight', 'ce_smooth', 'ce_weight_smooth',
                          'ce_ignore', 'ce_large', 'ce_spatial', 'ce_f64', 'nll_mean', 'nll_weight_sum' } do
    it(name, function()
      local c = cases[name]
      local x = leaf(c.x)
      local opts = {}
      for k, v in pairs(c.opts) do opts[k] = type(v) == 'table' and fixture.tensor(v) or v end
      if opts.ignore_index then opts.ignore_index = opts.ignore_index + 1 end
      local f = name:match('^nll') and flare.nll_loss or flare.cross_entropy
      local out = f(x, fixture.tensor(c.target), opts)
      fixture.assert_close(out, c.out, { rtol = 1e-5, atol = 1e-5 })
      out:backward(fixture.tensor(c.g))
      fixture.assert_close(x.grad, c.grad, { rtol = 1e-5, atol = 1e-6 })
    end)
  end

  it('binary_cross_entropy_with_logits with weight and pos_weight', function()
    local c = cases.bce_logits
    local x, y = leaf(c.x), leaf(c.y)
    local out = flare.binary_cross_entropy_with_logits(x, y, { weight = fixture.tensor(c.weight),
                                                                pos_weight = fixture.tensor(c.pos_weight) })
    fixture.assert_close(out, c.out)
    out:backward()
    fixture.assert_close(x.grad, c.grad_x, { atol = 1e-6 })
    fixture.assert_close(y.grad, c.grad_y, { atol = 1e-6 })
  end)

  it('mse_loss', function()
    local c = cases.mse
    local x, y = leaf(c.x), leaf(c.y)
    local out = flare.mse_loss(x, y)
    fixture.assert_close(out, c.out)
    out:backward()
    fixture.assert_close(x.grad, c.grad_x, { atol = 1e-6 })
    fixture.assert_close(y.grad, c.grad_y, { atol = 1e-6 })
  end)

  it('stays finite for logits of 1e4', function()
    local x = flare.tensor({ { 1e4, -1e4, 0 } }, { requires_grad = true })
    local l = flare.cross_entropy(x, flare.tensor { 2 })
    assert.near(2e4, l:item(), 1e-2)
    l:backward()
    for _, v in ipairs(x.grad:totable()[1]) do assert.is_true(v == v) end
    local s = x:log_softmax(2)
    for _, v in ipairs(s:totable()[1]) do assert.is_true(v == v and v > -math.huge) end
  end)

  it('rejects bad targets with the range it expected', function()
    local x = flare.randn(2, 3)
    local ok, err = pcall(flare.cross_entropy, x, flare.tensor { 1, 4 })
    assert.is_false(ok)
    assert.matches('out of range for 3 classes', err)
    assert.matches('1%-based', err)
    assert.has_error(function() flare.cross_entropy(x, flare.tensor { 1.0, 2.0 }) end)
    assert.has_error(function() flare.cross_entropy(x, flare.tensor { 1, 2, 3 }) end)
    assert.has_error(function() flare.cross_entropy(x, flare.tensor { 1, 2 }, { reduction = 'avg' }) end)
    assert.has_error(function() flare.mse_loss(x, flare.randn(3, 2)) end)
  end)
end)

describe('hooks, anomaly mode and the functional form', function()
  it('runs hooks on the summed gradient of a leaf and lets them replace it', function()
    local x = flare.tensor({ 1.0, 2.0 }, { requires_grad = true })
    local seen
    local h = x:register_hook(function(g) seen = g:clone() return g * 10 end)
    local y = x * x
    local calls = 0
    y:register_hook(function(g) calls = calls + 1 end)
    y:backward(flare.ones(2))
    assert.are.same({ 2, 4 }, seen:totable())
    assert.are.same({ 20, 40 }, x.grad:totable())
    assert.equal(1, calls)
    h.remove()
    x.grad = nil
    (x * 3):backward(flare.ones(2))
    assert.are.same({ 3, 3 }, x.grad:totable())
  end)

  it('turns an error in a hook into a backward error', function()
    local x = flare.tensor({ 1.0 }, { requires_grad = true })
    x:register_hook(function() error('bad hook') end)
    local ok, err = pcall(function() (x * 2):backward() end)
    assert.is_false(ok)
    assert.matches('bad hook', err)
  end)

  it('names the op and the line of its forward when backward makes a NaN', function()
    flare.autograd.detect_anomaly(true)
    local z = flare.tensor({ 0.0, 1.0 }, { requires_grad = true })
    local w = z:sqrt() -- the line the message must name
    local ok, err = pcall(function() w:backward(flare.ones(2)) end)
    flare.autograd.detect_anomaly(false)
    assert.is_false(ok)
    assert.matches("'sqrt'", err)
    assert.matches('autograd_spec.lua:%d+', err)
  end)

  it('gives value and gradient through autograd.grad', function()
    local df = flare.autograd.grad(function(p) return flare.mse_loss(p.w * 3, flare.zeros(2)) end)
    local value, grads = df { w = flare.tensor { 1.0, -1.0 } }
    assert.near(9, value:item(), 1e-6)
    assert.are.same({ 9, -9 }, grads.w:totable())
    local v2, g2 = flare.autograd.grad(function(x) return (x * x):exp() end)(flare.tensor { 0.5 })
    assert.near(math.exp(0.25), v2:item(), 1e-6)
    assert.near(math.exp(0.25), g2:item(), 1e-6)
  end)

  it('runs a very long chain without recursion and frees it', function()
    local n = os.getenv('FLARE_SANITIZED') and 100000 or 1000000
    local before = flare.bytes_allocated()
    local x = flare.tensor({ 1.0 }, { requires_grad = true })
    local y = x
    for _ = 1, n do y = y * 1.0 end
    y:backward()
    assert.equal(1, x.grad:item())
    y = nil
    collectgarbage()
    collectgarbage()
    -- what is left: x and its gradient
    assert.is_true(flare.bytes_allocated() - before <= 64)
  end)
end)

describe('in-place copies from a tensor that requires grad', function()
  it('are refused instead of silently dropping the gradient', function()
    local w = flare.randn(3, { requires_grad = true })
    local x = flare.zeros(2, 3)
    for _, write in ipairs({
      function() x:copy_(flare.randn(2, 3, { requires_grad = true })) end,
      function() x[1] = w end,
      function() x[{ {}, 2 }] = flare.randn(2, { requires_grad = true }) end,
      function() x[x:gt(-1)] = flare.randn(6, { requires_grad = true }) end,
    }) do
      local ok, err = pcall(write)
      assert.is_false(ok)
      assert.matches('requires grad', err)
      assert.matches('detach', err)
    end
    assert.are.equal(0, x:abs():sum():item())   -- nothing was written
  end)

  it('are allowed with a detached source, under no_grad, and as index_copy (differentiable)', function()
    local w = flare.randn(3, { requires_grad = true })
    local x = flare.zeros(2, 3)
    x[1] = w:detach()
    flare.no_grad(function() x[2] = w end)
    assert.is_true(x[1]:eq(w:detach()):all():item() and x[2]:eq(w:detach()):all():item())
    local y = flare.zeros(2, 3):index_copy(1, flare.tensor({ 2 }), w:view(1, 3))
    y:sum():backward()
    assert.are.same({ 1, 1, 1 }, w.grad:totable())
  end)
end)
