-- Reductions on the GPU against the CPU: every case of the PyTorch fixture (non-contiguous
-- inputs, every dtype, empty and NaN inputs), rows of 1, 7, 33 and thousands of entries along
-- and across memory (both kernel walks, with and without split rows), several dims, keepdim,
-- max/min with their indices, cumulative ops, and gradients of the device computation.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('reduce_spec.lua', pending) then return end
local fixture = require 'support.fixture'

local fx = fixture.load('reduce')

local function tol(dtype)
  if dtype == 'float64' then return 1e-10, 1e-12 end
  return 1e-5, 1e-5
end

-- op(x, ...) on the CPU and on the device give the same results (every returned tensor).
local function agree(x, gx, op, ...)
  local want = { x[op](x, ...) }
  local got = { gx[op](gx, ...) }
  assert.are.equal(#want, #got)
  for k = 1, #want do
    local rtol, atol = tol(want[k]:dtype())
    cuda.assert_close(got[k], want[k], rtol, atol)
  end
end

local function sample(dtype, ...)
  local x = flare.randn(...) * 3
  if dtype == 'bool' then return x:gt(0) end
  if dtype == 'uint8' then return x:abs():to('uint8') end
  return x:to(dtype)
end

describe('cuda reductions', function()
  it('give the CPU results on every fixture case (non-contiguous device inputs)', function()
    for _, c in ipairs(fx.cases) do
      if c.op ~= 'sort' and c.op ~= 'topk' then
        local base = fixture.tensor(fx.inputs[c.input])
        local x = base:permute(table.unpack(fx.perm))
        local gx = base:cuda():permute(table.unpack(fx.perm))
        assert.is_false(gx:is_contiguous())
        local ok, err = pcall(agree, x, gx, c.op, table.unpack(c.args))
        assert(ok, string.format('%s:%s: %s', c.input, c.op, tostring(err)))
      end
    end
  end)

  it('reduce rows of 1, 7, 33 and thousands of entries along every dim', function()
    flare.manual_seed(1)
    for _, shape in ipairs({ { 1, 1 }, { 7, 1 }, { 1, 7 }, { 33, 7 }, { 7, 33 }, { 3, 1500 }, { 1500, 3 } }) do
      for _, dt in ipairs({ 'float32', 'float64' }) do
        local x = sample(dt, shape)
        local gx = x:cuda()
        for _, d in ipairs({ 1, 2 }) do
          for _, op in ipairs({ 'sum', 'mean', 'prod', 'amax', 'amin', 'logsumexp', 'var', 'std', 'norm', 'all', 'any' }) do
            agree(x, gx, op, d)
          end
          agree(x, gx, 'max', d)
          agree(x, gx, 'min', d, true)
          agree(x, gx, 'argmax', d)
          agree(x, gx, 'cumsum', d)
        end
        agree(x, gx, 'sum')
        agree(x, gx, 'argmin')
      end
    end
  end)

  it('split long rows into segments and fold them, along and across memory', function()
    flare.manual_seed(2)
    local x = flare.randn(20000)
    local gx = x:cuda()
    for _, op in ipairs({ 'sum', 'mean', 'amax', 'amin', 'var', 'std', 'norm', 'logsumexp', 'any' }) do
      agree(x, gx, op)
    end
    agree(x, gx, 'max', 1)
    agree(x, gx, 'argmin')
    local m = flare.randn(3000, 5):double()
    local gm = m:cuda()
    for _, op in ipairs({ 'sum', 'amax', 'var', 'logsumexp' }) do
      agree(m, gm, op, 1)
    end
    agree(m, gm, 'max', 1)
    agree(m, gm, 'min', 1, true)
    -- ties: the first position wins, in every segment
    local t = flare.zeros(3000, 2)
    t[{ 2000, 1 }] = 1
    t[{ 2500, 1 }] = 1
    agree(t, t:cuda(), 'max', 1)
    agree(t, t:cuda(), 'argmin', 1)
    local i = flare.randint(-50, 50, { 9000 })
    agree(i, i:cuda(), 'sum')
    agree(i, i:cuda(), 'max', 1)
  end)

  it('reduce several dims, strided inputs and keepdim', function()
    flare.manual_seed(3)
    local x = flare.randn(4, 5, 6, 7):double()
    local gx = x:cuda()
    local xt, gxt = x:transpose(2, 4), gx:transpose(2, 4)
    for _, dims in ipairs({ { 1, 3 }, { 2, 4 }, { 1, 2, 3 }, { 4 }, { 3 } }) do
      for _, op in ipairs({ 'sum', 'mean', 'amax', 'var', 'logsumexp', 'prod' }) do
        agree(x, gx, op, dims)
        agree(xt, gxt, op, dims, true)
      end
      agree(xt, gxt, 'std', { dim = dims, correction = 0 })
      agree(xt, gxt, 'norm', 3, dims)
    end
    agree(xt, gxt, 'norm', math.huge)
    agree(xt, gxt, 'norm', -math.huge, 2)
    agree(xt, gxt, 'norm', 0, { 1, 2 })
    agree(xt, gxt, 'max', 3, true)
    agree(xt, gxt, 'argmax')
    agree(xt, gxt, 'cumprod', 2)
    agree(xt, gxt, 'cumsum', 4)
  end)

  it('handle every dtype the CPU accepts', function()
    flare.manual_seed(4)
    for _, dt in ipairs({ 'int64', 'int32', 'uint8', 'bool' }) do
      local x = sample(dt, 6, 35)
      local gx = x:cuda()
      for _, op in ipairs({ 'sum', 'prod', 'amax', 'amin', 'all', 'any', 'logsumexp' }) do
        agree(x, gx, op)
        agree(x, gx, op, 2)
        agree(x:t(), gx:t(), op, 2)
      end
      agree(x, gx, 'max', 2)
      agree(x:t(), gx:t(), 'min', 2)
      agree(x, gx, 'argmax')
      agree(x, gx, 'cumsum', 2)
      agree(x, gx, 'cumprod', 1)
    end
    -- sums and products wrap around as on the CPU
    local big = flare.tensor({ 2 ^ 62, 2 ^ 62, 3, 2 ^ 40, 2 ^ 30 }, { dtype = 'int64' })
    agree(big, big:cuda(), 'sum')
    agree(big, big:cuda(), 'prod')
    agree(big, big:cuda(), 'cumprod', 1)
  end)

  it('propagate NaN and infinities as the CPU does', function()
    local x = flare.tensor { { 1, 0 / 0, 3, -1 }, { -math.huge, -math.huge, -math.huge, -math.huge },
                             { 1, math.huge, 2, 0 / 0 }, { 0, 0, 0, 0 } }
    local gx = x:cuda()
    for _, op in ipairs({ 'sum', 'amax', 'amin', 'logsumexp', 'prod', 'all', 'any', 'norm' }) do
      agree(x, gx, op, 2)
    end
    agree(x, gx, 'max', 2)
    agree(x, gx, 'min', 2)
    agree(x, gx, 'argmax', 1)
  end)

  it('give empty results and identities for empty inputs', function()
    local x = flare.zeros(0, 4)
    local gx = x:cuda()
    for _, op in ipairs({ 'sum', 'prod', 'all', 'any', 'norm', 'mean' }) do
      agree(x, gx, op, 1)
      agree(x, gx, op, 2)
    end
    agree(x, gx, 'cumsum', 1)
    local ok, err = pcall(function() return gx:amax(1) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('dimension of size 0', 1, true))
  end)
end)

describe('cuda reduction gradients', function()
  -- f(x) on the device, backward with weights w: x.grad agrees with the CPU's.
  local function grad_agree(f, x, rtol, atol)
    local cx = x:clone():requires_grad()
    local gx = x:cuda():requires_grad()
    local y = f(cx)
    local w = flare.randn(y:size()):to(y:dtype())
    y:backward(w)
    local gy = f(gx)
    assert.are.equal('cuda:0', gy:device())
    gy:backward(w:cuda())
    cuda.assert_close(gx.grad, cx.grad, rtol or 1e-5, atol or 1e-5)
  end

  it('match the CPU for every differentiable reduction', function()
    flare.manual_seed(5)
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local x = flare.randn(7, 33):to(dt)
      local fs = {
        function(t) return t:sum(2) end,
        function(t) return t:sum() end,
        function(t) return t:mean({ 1, 2 }, true) end,
        function(t) return t:prod(1) end,
        function(t) return t:amax(2) end,
        function(t) return t:amin(1, true) end,
        function(t) return t:logsumexp(2) end,
        function(t) return t:var(1) end,
        function(t) return t:std(2) end,
        function(t) return t:norm() end,
        function(t) return t:norm(1, 2) end,
        function(t) return t:norm(3, 1) end,
        function(t) return t:norm(math.huge, 2) end,
        function(t) return t:cumsum(2) end,
        function(t) return t:cumsum(1) end,
        function(t) return t:cumprod(2) end,
        function(t) return t:t():sum(1) end,
      }
      for _, f in ipairs(fs) do grad_agree(f, x) end
    end
  end)

  it('match the CPU through indices (max/min along a dim) and zeros (prod, cumprod)', function()
    flare.manual_seed(6)
    local x = flare.randn(6, 9):double()
    grad_agree(function(t) return (t:max(2)) end, x)
    grad_agree(function(t) return (t:min(1, true)) end, x)
    local z = x:clone()
    z[{ 2, 3 }] = 0
    z[{ 4, 5 }] = 0
    z[{ 4, 7 }] = 0
    grad_agree(function(t) return t:prod(2) end, z)
    grad_agree(function(t) return t:cumprod(2) end, z)
  end)
end)
