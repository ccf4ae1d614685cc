-- Views and the movement ops that copy, on the GPU against the CPU: views of device tensors
-- and their gradients, contiguous/reshape copies, cat and stack (dtype promotion, many
-- inputs), split/chunk/unbind, unfold; warp_affine; mixed devices refused.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('view_spec.lua', pending) then return end

local function sample(dtype, ...)
  flare.manual_seed(13)
  local x = flare.randn(...) * 3
  if dtype == 'bool' then return x:gt(0) end
  return x:to(dtype)
end

local function fails(fn, pattern)
  local ok, err = pcall(fn)
  assert.is_false(ok, 'expected an error matching ' .. pattern)
  assert.is_truthy(tostring(err):find(pattern, 1, true), 'error "' .. tostring(err) .. '" lacks "' .. pattern .. '"')
end

-- fn on CPU leaves and on device leaves of the same values: results, then the gradients of
-- a random upstream gradient. fn may return a list of tensors (their sum is not needed:
-- each gets its own upstream gradient, through one backward of a cat).
local function check(fn, inputs, rtol, atol)
  rtol, atol = rtol or 1e-6, atol or 1e-6
  local cpu, dev = {}, {}
  for i, x in ipairs(inputs) do
    local grad = x:dtype():match('float') ~= nil
    cpu[i] = grad and x:clone():requires_grad_() or x
    dev[i] = grad and x:cuda():requires_grad_() or x:cuda()
  end
  local want, got = fn(table.unpack(cpu)), fn(table.unpack(dev))
  if type(want) == 'table' then
    assert.are.equal(#want, #got)
    for i = 1, #want do cuda.assert_close(got[i], want[i], rtol, atol) end
    local flat = {}
    for i = 1, #want do flat[i] = want[i]:reshape(-1) end
    want = flare.cat(flat)
    for i = 1, #got do flat[i] = got[i]:reshape(-1) end
    got = flare.cat(flat)
  end
  cuda.assert_close(got, want, rtol, atol)
  if not want:wants_grad() then return end
  flare.manual_seed(4)
  local g = flare.randn(want:size()):to(want:dtype())
  want:backward(g)
  got:backward(g:cuda())
  for i, x in ipairs(cpu) do
    if x:wants_grad() then cuda.assert_close(dev[i].grad, x.grad, rtol, atol) end
  end
end

describe('cuda views', function()
  it('views of device tensors read the same elements, and send gradients back', function()
    local x = sample('float32', 5, 7, 33)
    check(function(t) return t:transpose(1, 3):select(2, 4) end, { x })
    check(function(t) return t:narrow(3, 2, 30):permute(3, 1, 2) end, { x })
    check(function(t) return t[{ { 2, 4 }, 3, { 1, 33, 2 } }] end, { x })
    check(function(t) return t:unsqueeze(2):expand(5, 3, 7, 33) end, { x })
    check(function(t) return t:view(35, 33):t():flatten() end, { x })
    check(function(t) return t:squeeze() end, { sample('float64', 1, 7, 1) })
  end)

  it('sums broadcast gradients back on the device, and anomaly mode reads them', function()
    check(function(a, b) return a * b end, { sample('float32', 7, 1, 33), sample('float32', 5, 1) })
    local x = flare.tensor({ 1.0, 0, 2 }):cuda():requires_grad_()
    flare._detect_anomaly(true)
    local ok, err = pcall(function() x:log():backward(flare.ones(3):cuda()) end)
    flare._detect_anomaly(false)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("the gradient computed by 'log' (input 1) has NaN or Inf", 1, true))
  end)

  it('contiguous and reshape copy strided device tensors in every dtype', function()
    for _, dt in ipairs({ 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }) do
      local x = sample(dt, 6, 35):t()
      local g = x:t():cuda():t()
      assert.is_false(g:is_contiguous())
      local c = g:contiguous()
      assert.is_true(c:is_contiguous())
      cuda.assert_close(c, x:contiguous())
      cuda.assert_close(g:reshape(5, 42), x:reshape(5, 42))
    end
    check(function(t) return t:t():reshape(-1) end, { sample('float32', 33, 7) })
    check(function(t) return t:t():contiguous() end, { sample('float64', 33, 7) })
  end)

  it('unfold, and its gradient over overlapping windows', function()
    check(function(t) return t:unfold(2, 5, 2) end, { sample('float32', 3, 40) })
    check(function(t) return t:t():unfold(1, 7, 3) end, { sample('float64', 6, 33) })
  end)
end)

describe('cuda cat and stack', function()
  it('cat along every dim, with promotion and skipped empty tensors', function()
    local a, b, c = sample('float32', 4, 7, 3), sample('float32', 4, 2, 3), sample('float32', 4, 33, 3)
    for d = 1, 3 do
      local x, y = sample('float32', 4, 7, 3), sample('float32', 4, 7, 3):transpose(1, 2):contiguous():transpose(1, 2)
      check(function(p, q) return flare.cat({ p, q }, d) end, { x, y })
    end
    check(function(p, q, r) return flare.cat({ p, q, r }, 2) end, { a, b, c })
    local i = flare.ones(4, 1, 3):long()
    cuda.assert_close(flare.cat({ a:cuda(), i:cuda() }, 2), flare.cat({ a, i }, 2))   -- promoted to float32
    cuda.assert_close(flare.cat({ flare.zeros(0):cuda(), a:cuda() }, 1), flare.cat({ flare.zeros(0), a }, 1))
  end)

  it('cat and stack of many inputs (a chained gradient)', function()
    local xs = {}
    for k = 1, 7 do xs[k] = sample('float32', 3, k) + k end
    check(function(...) return flare.cat({ ... }, 2) end, xs)
    local ys = {}
    for k = 1, 7 do ys[k] = sample('float64', 2, 5) * k end
    check(function(...) return flare.stack({ ... }, 2) end, ys)
    check(function(...) return flare.stack({ ... }, 3) end, ys)
  end)

  it('split, chunk and unbind, with gradients', function()
    local x = sample('float32', 33, 6)
    check(function(t) return t:split(10) end, { x })
    check(function(t) return t:split(4, 2) end, { x })
    check(function(t) return t:chunk(4) end, { x })
    check(function(t) return t:unbind(2) end, { x })
  end)

  it('refuses to mix devices', function()
    local a = flare.ones(2, 3)
    fails(function() flare.cat({ a, a:cuda() }) end, 'expected all tensors on the same device')
    fails(function() flare.stack({ a:cuda(), a }) end, 'expected all tensors on the same device')
  end)
end)

describe('cuda warp_affine', function()
  it('matches the CPU for nearest and bilinear, shared and per-image theta', function()
    for _, dt in ipairs({ 'float32', 'float64' }) do
      local x = sample(dt, 3, 2, 17, 23)
      local per = flare.tensor({ { { 0.9, -0.2, 1.5 }, { 0.3, 1.1, -2 } },
                                 { { -1, 0, 0 }, { 0, 1, 0 } },          -- a flip: exact
                                 { { 1, 0, 3 }, { 0, 1, -1 } } }, dt)     -- a whole-pixel shift
      local shared = flare.tensor({ { 0.8, 0.1, 0.25 }, { -0.1, 1.2, 0.5 } })
      for _, mode in ipairs({ 'nearest', 'bilinear' }) do
        for _, th in ipairs({ per, shared }) do
          local opts = { mode = mode, fill = -1, size = { 11, 30 } }
          cuda.assert_close(flare.warp_affine(x:cuda(), th:cuda(), opts), flare.warp_affine(x, th, opts), 1e-6, 1e-6)
        end
      end
      local img = sample(dt, 3, 9, 8)
      cuda.assert_close(flare.warp_affine(img:cuda(), shared:cuda()), flare.warp_affine(img, shared), 1e-6, 1e-6)
    end
  end)

  it('refuses images and theta on different devices', function()
    fails(function() flare.warp_affine(flare.ones(1, 1, 4, 4):cuda(), flare.eye(2, 3)) end,
          'expected all tensors on the same device')
  end)
end)
