-- Indexing ops on the GPU against the CPU: index_select, gather, scatter/scatter_add,
-- index_copy/add/fill, masked fill/select/scatter, nonzero, x[idx] and x[mask] (reads and
-- writes), sort and topk; their gradients; out-of-range indices (a clear error, nothing
-- written) and mixed devices.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('index_spec.lua', pending) then return end

local function sample(dtype, ...)
  flare.manual_seed(11)
  local x = flare.randn(...) * 3
  if dtype == 'bool' then return x:gt(0) end
  if dtype == 'uint8' then return x:abs():to('uint8') end
  return x:to(dtype)
end

-- Indices in [1, n], count of them, seeded.
local function indices(n, count, dtype)
  flare.manual_seed(5)
  return flare.randint(1, n + 1, { count }, { dtype = dtype or 'int64' })
end

-- idx on the device of t
local function on(t, idx) return t:is_cuda() and idx:cuda() or idx end

local function fails(fn, pattern)
  local ok, err = pcall(fn)
  assert.is_false(ok, 'expected an error matching ' .. pattern)
  assert.is_truthy(tostring(err):find(pattern, 1, true), 'error "' .. tostring(err) .. '" lacks "' .. pattern .. '"')
end

-- Runs fn on CPU leaves and on device leaves made from the same values; compares the results
-- and, for float inputs, the gradients of a random upstream gradient.
local function check(fn, inputs, rtol, atol)
  rtol, atol = rtol or 1e-5, atol or 1e-6
  local cpu, dev = {}, {}
  for i, x in ipairs(inputs) do
    local grad = x:dtype():match('float') ~= nil
    cpu[i] = grad and x:clone():requires_grad_() or x
    dev[i] = grad and x:cuda():requires_grad_() or x:cuda()
  end
  local want, got = fn(table.unpack(cpu)), fn(table.unpack(dev))
  cuda.assert_close(got, want, rtol, atol)
  if not want:wants_grad() then return end
  flare.manual_seed(3)
  local g = flare.randn(want:size()):to(want:dtype())
  want:backward(g)
  got:backward(g:cuda())
  for i, x in ipairs(cpu) do
    if x:wants_grad() then
      assert.is_not_nil(dev[i].grad, 'no gradient for device input ' .. i)
      cuda.assert_close(dev[i].grad, x.grad, rtol, atol)
    end
  end
end

describe('cuda index_select and gather', function()
  it('index_select along every dim, every dtype, odd sizes, int32 and int64 indices', function()
    for _, dt in ipairs({ 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }) do
      local x = sample(dt, 7, 33, 5)
      for d = 1, 3 do
        local n = x:size(d)
        check(function(t) return t:index_select(d, on(t, indices(n, 9))) end, { x })
        check(function(t) return t:index_select(d, on(t, indices(n, 4, 'int32'))) end, { x })
      end
    end
    local big = sample('float32', 1500)
    check(function(t) return t:index_select(1, on(t, indices(1500, 1200))) end, { big })
    check(function(t) return t:index_select(1, on(t, flare.tensor({ 1 }))) end, { sample('float64', 1) })
  end)

  it('index_select and x[idx] on non-contiguous inputs and indices, with gradients', function()
    local x = sample('float32', 6, 9)
    local idx = indices(9, 14):view(2, 7)
    check(function(t)
      local i = on(t, idx)
      return t:t():index_select(1, i:t():contiguous():t():select(2, 1))
    end, { x })
    check(function(t)
      local i = on(t, idx)
      return t:t()[i]   -- a 2-d index: (2, 7, 6)
    end, { x })
    check(function(t) return t:index_select(2, on(t, idx:view(-1))) end, { sample('float64', 3, 9) }, 1e-12, 1e-12)
  end)

  it('gather along every dim with repeated indices, and its gradient', function()
    for _, dt in ipairs({ 'float32', 'float64', 'int64' }) do
      local x = sample(dt, 5, 8, 33)
      for d = 1, 3 do
        flare.manual_seed(d)
        local size = { 4, 6, 20 }
        size[d] = 11
        local idx = flare.randint(1, x:size(d) + 1, size)
        check(function(t) return t:gather(d, on(t, idx)) end, { x })
        check(function(t) return flare.gather(t, d, on(t, idx:int())) end, { x })
      end
    end
    local x = sample('float32', 40, 7):t()   -- non-contiguous
    local idx = flare.randint(1, 41, { 7, 30 })
    check(function(t) return t:gather(2, on(t, idx)) end, { x })
  end)
end)

describe('cuda scatter and index updates', function()
  it('scatter keeps the last write of repeated indices, as the CPU', function()
    for _, dt in ipairs({ 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }) do
      local x, src = sample(dt, 6, 9), sample(dt, 7, 9):narrow(1, 2, 6)
      flare.manual_seed(21)
      local idx = flare.randint(1, 7, { 5, 9 })   -- many repeats along dim 1
      check(function(t, s) return t:scatter(1, on(t, idx), s) end, { x, src })
      check(function(t) return t:scatter(2, on(t, idx:narrow(2, 1, 6)), 1) end, { x })
    end
    local big = sample('float32', 2000)
    local idx = indices(2000, 3000)
    check(function(t, s) return t:scatter(1, on(t, idx), s) end, { big, sample('float32', 3000) })
  end)

  it('scatter_add accumulates repeated indices in every dtype, and its gradient', function()
    for _, dt in ipairs({ 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }) do
      local x, src = sample(dt, 6, 9), sample(dt, 7, 10)
      flare.manual_seed(22)
      local idx = flare.randint(1, 7, { 7, 9 })
      check(function(t, s) return t:scatter_add(1, on(t, idx), s) end, { x, src }, 1e-5, 1e-5)
      check(function(t, s) return t:t():scatter_add(2, on(t, idx:t()), s:t()) end, { x, src }, 1e-5, 1e-5)
    end
    local x = sample('float32', 3, 5):requires_grad_(false)
    local y = x:cuda()
    y:scatter_add_(2, flare.tensor({ { 1, 1, 1 } }):cuda(), flare.ones(1, 3):cuda())
    x:scatter_add_(2, flare.tensor({ { 1, 1, 1 } }), flare.ones(1, 3))
    cuda.assert_close(y, x)
  end)

  it('index_copy, index_add and index_fill (and their in-place forms), with gradients', function()
    local x = sample('float32', 7, 33)
    local idx = flare.tensor({ 3, 1, 7, 3, 5 })
    local src = sample('float32', 5, 33)
    check(function(t, s) return t:index_copy(1, on(t, idx), s) end, { x, src })
    check(function(t, s) return t:index_add(1, on(t, idx), s) end, { x, src })
    check(function(t, s) return t:index_add(2, on(t, flare.tensor({ 33, 1, 1 })), s, 2) end, { x, sample('float32', 7, 3) })
    check(function(t) return t:index_fill(2, on(t, flare.tensor({ 2, 33 })), -4.5) end, { x })
    for _, dt in ipairs({ 'float64', 'int64', 'uint8', 'bool' }) do
      local a, s = sample(dt, 7, 4), sample(dt, 5, 4)
      local ga = a:cuda()
      a:index_add_(1, idx, s)
      ga:index_add_(1, idx:cuda(), s:cuda())
      cuda.assert_close(ga, a, 1e-12, 1e-12)
      a:index_copy_(1, idx, s)
      ga:index_copy_(1, idx:cuda(), s:cuda())
      cuda.assert_close(ga, a)
      a:index_fill_(2, flare.tensor({ 4 }), 1)
      ga:index_fill_(2, flare.tensor({ 4 }):cuda(), 1)
      cuda.assert_close(ga, a)
    end
  end)

  it('x[idx] = v writes rows, the last of repeated indices winning', function()
    local x = sample('float32', 9, 4)
    local idx = flare.tensor({ 2, 9, 2, 5 })
    local g = x:cuda()
    x[idx] = sample('float32', 4, 4)
    g[idx:cuda()] = sample('float32', 4, 4):cuda()
    cuda.assert_close(g, x)
    x[idx] = 3
    g[idx:cuda()] = 3
    cuda.assert_close(g, x)
  end)
end)

describe('cuda masks and nonzero', function()
  it('masked_fill with a number, a device 0-dim tensor and a CPU one, broadcast masks', function()
    local x = sample('float32', 6, 35)
    local m = sample('bool', 6, 35)
    local row = sample('bool', 35)
    check(function(t) return t:masked_fill(on(t, m), -2) end, { x })
    check(function(t) return t:masked_fill(on(t, row), 7) end, { x })
    check(function(t) return t:t():masked_fill(on(t, m:t()), 1.5) end, { x })
    local v = flare.tensor(2.5):view()
    check(function(t, val) return t:masked_fill(on(t, m), val) end, { x, v })
    local g = x:cuda()
    g:masked_fill_(m:cuda(), v)   -- a CPU value fills a device tensor
    cuda.assert_close(g, x:masked_fill(m, v))
    local cv = v:clone():requires_grad_()   -- and its gradient comes back to the CPU
    x:cuda():masked_fill(m:cuda(), cv):backward(flare.ones(6, 35):cuda())
    assert.are.equal('cpu', cv.grad:device())
    assert.is_true(math.abs(cv.grad:item() - m:long():sum():item()) < 1e-4)
    for _, dt in ipairs({ 'float64', 'int64', 'int32', 'uint8', 'bool' }) do
      local a = sample(dt, 5, 7)
      cuda.assert_close(a:cuda():masked_fill(m:narrow(1, 1, 5):narrow(2, 1, 7):cuda(), 1), a:masked_fill(m:narrow(1, 1, 5):narrow(2, 1, 7), 1))
    end
  end)

  it('masked_select keeps the CPU order across block boundaries, and its gradient', function()
    for _, n in ipairs({ 1, 7, 33, 1000, 5000 }) do
      local x = sample('float32', n)
      local m = sample('bool', n)
      check(function(t) return t:masked_select(on(t, m)) end, { x })
    end
    local x = sample('float64', 5, 300)
    local m = sample('bool', 300)   -- broadcast
    check(function(t) return t:masked_select(on(t, m)) end, { x }, 1e-12, 1e-12)
    check(function(t) return t:t():masked_select(on(t, m:view(300, 1))) end, { x }, 1e-12, 1e-12)
    for _, dt in ipairs({ 'int64', 'int32', 'uint8', 'bool' }) do
      local a = sample(dt, 40, 9)
      local mm = sample('bool', 40, 9)
      cuda.assert_close(a:cuda():masked_select(mm:cuda()), a:masked_select(mm))
    end
  end)

  it('masked_scatter and x[mask] reads and writes, with gradients', function()
    local x = sample('float32', 33, 41)
    local m = sample('bool', 33, 41)
    local src = sample('float32', 1400)
    check(function(t, s) return t:masked_scatter(on(t, m), s) end, { x, src })
    check(function(t) return t[on(t, m)] end, { x })
    local rows = sample('bool', 33)
    check(function(t) return t[on(t, rows)] end, { x })
    local g = x:cuda()
    local c = x:clone()
    c[m] = 5
    g[m:cuda()] = 5
    cuda.assert_close(g, c)
    c[rows] = sample('float32', 41)
    g[rows:cuda()] = sample('float32', 41):cuda()
    cuda.assert_close(g, c)
    fails(function() flare.zeros(3):cuda():masked_scatter_(flare.ones(3):bool():cuda(), flare.ones(2):cuda()) end,
          'source has 2 elements but the mask selects 3')
  end)

  it('nonzero gives the CPU coordinates (NaN counts, -0 does not)', function()
    for _, dt in ipairs({ 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }) do
      local x = sample(dt, 4, 33, 3)
      if dt:match('float') then x = x:gt(1):to(dt) * x end
      cuda.assert_close(x:cuda():nonzero(), x:nonzero())
      cuda.assert_close(x:cuda():permute(3, 1, 2):nonzero(), x:permute(3, 1, 2):nonzero())
    end
    local f = flare.tensor({ 0, -0.0, 0 / 0, 1, 0 })
    cuda.assert_close(f:cuda():nonzero(), f:nonzero())
    local big = sample('bool', 3000)
    cuda.assert_close(big:cuda():nonzero(), big:nonzero())
    cuda.assert_close(flare.zeros(0, 5):cuda():nonzero(), flare.zeros(0, 5):nonzero())
    cuda.assert_close(flare.tensor(5):view():cuda():nonzero(), flare.tensor(5):view():nonzero())
  end)
end)

describe('cuda sort and topk (through the host)', function()
  it('match the CPU, values, indices and gradients', function()
    local x = sample('float32', 7, 33)
    x[{ 2, 3 }] = 0 / 0
    for _, d in ipairs({ 1, 2 }) do
      for _, desc in ipairs({ false, true }) do
        local v, i = x:sort(d, desc)
        local gv, gi = x:cuda():sort(d, desc)
        cuda.assert_close(gv, v)
        cuda.assert_close(gi, i)
      end
      local v, i = x:topk(3, d)
      local gv, gi = x:cuda():topk(3, d)
      cuda.assert_close(gv, v)
      cuda.assert_close(gi, i)
    end
    local y = sample('float64', 5, 9)
    check(function(t) return (t:sort(2)) end, { y })
    check(function(t) return (t:topk(2, 1, false)) end, { y })
  end)
end)

describe('cuda index errors', function()
  it('reports out-of-range and negative indices as the CPU does, writing nothing', function()
    local x = flare.zeros(3, 4):cuda()
    fails(function() x:index_select(2, flare.tensor({ 1, 5 }):cuda()) end,
          'index 5 is out of range for dimension 2 of size 4 (valid indices are 1 to 4)')
    fails(function() x:gather(2, flare.tensor({ { 0 } }):cuda()) end, 'index 0 is out of range')
    fails(function() x:gather(2, flare.tensor({ { -1 } }):int():cuda()) end, 'index -1 is out of range')
    fails(function() return x[flare.tensor({ 4 }):cuda()] end, 'index 4 is out of range')
    fails(function() x:scatter_(1, flare.tensor({ { 1, 4 } }):cuda(), 7) end, 'index 4 is out of range')
    fails(function() x:index_add_(1, flare.tensor({ 2, 9 }):cuda(), flare.ones(2, 4):cuda()) end, 'index 9 is out of range')
    -- the first bad index in order is named
    fails(function() x:index_select(1, flare.tensor({ 1, 7, 2, 0 }):cuda()) end, 'index 7 is out of range')
    assert.are.equal(0, x:cpu():abs():max():item())
  end)

  it('refuses to mix devices', function()
    local x = flare.zeros(3, 4):cuda()
    local idx = flare.tensor({ 1, 2 })
    fails(function() x:index_select(1, idx) end, 'expected all tensors on the same device')
    fails(function() x:gather(1, idx:view(1, 2)) end, 'expected all tensors on the same device')
    fails(function() x:scatter(1, idx:view(1, 2):cuda(), flare.ones(1, 2)) end, 'expected all tensors on the same device')
    fails(function() x:masked_fill(flare.ones(3, 4):bool(), 1) end, 'expected all tensors on the same device')
    fails(function() x:masked_select(flare.ones(3, 4):bool()) end, 'expected all tensors on the same device')
    fails(function() flare.zeros(3):masked_fill(flare.ones(3):bool(), flare.tensor(1):view():cuda()) end,
          'expected all tensors on the same device')
    fails(function() x:index_add(1, idx:cuda(), flare.ones(2, 4)) end, 'expected all tensors on the same device')
  end)
end)
