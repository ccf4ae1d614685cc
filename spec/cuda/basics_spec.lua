-- The Lua side of device tensors: values read and written from Lua (item, totable, x[i],
-- printing) through the host; x:set_; models moved in place with m:to / m:cuda / m:cpu so
-- that an optimizer built before keeps working; the memory of a long training loop staying
-- flat; a data loader with a device; one seed for all devices; autocast scopes.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('basics_spec.lua', pending) then return end

local nn, optim, data = flare.nn, flare.optim, flare.data

local dtypes = { 'float32', 'float64', 'int64', 'int32', 'uint8', 'bool' }

local function sample(dtype, ...)
  flare.manual_seed(11)
  local x = flare.randn(...) * 3
  if dtype == 'bool' then return x:gt(0) end
  if dtype == 'uint8' then return x:abs():to('uint8') end
  return x:to(dtype)
end

describe('cuda tensors read and written from Lua', function()
  it('give item, totable and tolist through the host, in every dtype', function()
    for _, dt in ipairs(dtypes) do
      local x = sample(dt, 3, 5)
      local g = x:cuda()
      assert.are.same(x:totable(), g:totable())
      assert.are.same(x:totable(), g:tolist())
      assert.are.equal(x[2][4]:item(), g[2][4]:item())
      assert.are.equal(x:sum():item(), g:cpu():sum():item())
      -- 0-dim and one-element tensors
      assert.are.equal(x[1][1]:item(), g[1][1]:totable())
      assert.are.equal(x:narrow(1, 2, 1):narrow(2, 3, 1):item(), g:narrow(1, 2, 1):narrow(2, 3, 1):item())
    end
    local s = flare.tensor(2.5):cuda()
    assert.are.equal(2.5, s:item())
    assert.has_error(function() flare.zeros(2, { device = 'cuda' }):item() end,
      'item: expected a tensor with one element, got 2 elements')
  end)

  it('reads strided views (transposed, sliced, expanded) element by element', function()
    local x = sample('float64', 4, 6)
    local g = x:cuda()
    assert.are.same(x:t():totable(), g:t():totable())
    assert.are.same(x[{ {}, { 2, 6, 2 } }]:totable(), g[{ {}, { 2, 6, 2 } }]:totable())
    assert.are.same(x[3]:totable(), g[3]:totable())
    assert.are.same(x[{ 2, { 3 } }]:totable(), g[{ 2, { 3 } }]:totable())
    local e = flare.tensor({ 1, 2, 3 }):cuda():reshape(3, 1):expand(3, 4)
    assert.are.same({ { 1, 1, 1, 1 }, { 2, 2, 2, 2 }, { 3, 3, 3, 3 } }, e:totable())
    assert.are.same({}, flare.zeros(0, { device = 'cuda' }):totable())
  end)

  it('writes through x[i] = v, x[{...}] = v and fill_', function()
    local x = flare.zeros(3, 4)
    local g = x:cuda()
    for _, t in ipairs { x, g } do
      t[2] = 7
      t[{ 3, { 2, 3 } }] = flare.tensor({ 1.5, -2 })
      t[1][4] = 9
      t[{ {}, 1 }] = flare.tensor({ 4, 5, 6 }):to(t:device())
    end
    assert.are.same(x:totable(), g:totable())
    assert.are.equal('cuda:0', g:device())
    g:fill_(3)
    assert.are.same(flare.full({ 3, 4 }, 3):totable(), g:totable())
  end)

  it('print with values and the device in the footer', function()
    local x = flare.tensor({ { 1, 2.5 }, { -3, 4 } })
    local s = tostring(x:cuda())
    assert.are.equal(tostring(x):gsub('%]$', ' on cuda:0]'), s)
    assert.matches('%[flare%.FloatTensor of size 2x2 on cuda:0%]$', s)
    assert.matches('%[flare%.LongTensor of size %[%] on cuda:0%]',
      tostring(flare.tensor(3, { dtype = 'int64' }):cuda()))
    -- big tensors are summarised from one copy, as on the CPU
    local big = flare.arange(1, 2001):reshape(40, 50)
    assert.are.equal(tostring(big):gsub('%]$', ' on cuda:0]'), tostring(big:cuda()))
    assert.matches('of size 3 on cuda:0', flare.format.inline(flare.zeros(3):cuda()))
    assert.matches('cuda', flare.format.value({ w = flare.zeros(2):cuda() }))
  end)

  it('give the raw bytes of a device tensor (flare._tobytes), and take them (frombuffer)', function()
    local x = sample('float32', 5, 3)
    assert.are.equal(flare._tobytes(x), flare._tobytes(x:cuda()))
    assert.are.equal(flare._tobytes(x:t()), flare._tobytes(x:cuda():t()))
    local back = flare.frombuffer(flare._tobytes(x), { dtype = 'float32', shape = { 5, 3 }, device = 'cuda' })
    assert.are.equal('cuda:0', back:device())
    assert.is_true(cuda.equal(back:cpu(), x))
  end)

  it('have a device pointer that views share', function()
    local g = flare.zeros(4, 4):cuda()
    assert.are.equal(g:data_ptr(), g[1]:data_ptr())
    assert.are_not.equal(g:data_ptr(), g[2]:data_ptr())
    assert.are_not.equal(g:data_ptr(), g:clone():data_ptr())
  end)
end)

describe('x:set_', function()
  it('makes x a view of y in place, across devices and dtypes', function()
    local x = flare.randn(2, 3)
    local ref = x
    local y = flare.arange(6, { dtype = 'float64' }):reshape(3, 2):cuda()
    assert.are.equal(x, x:set_(y))
    assert.are.equal(ref, x)
    assert.are.equal('cuda:0', ref:device())
    assert.are.equal('float64', ref:dtype())
    assert.are.same({ 3, 2 }, ref:size())
    assert.are.equal(y:data_ptr(), x:data_ptr())
    y[1][1] = 42                     -- shared storage
    assert.are.equal(42, x[1][1]:item())
    x:set_(y:t())                    -- layout follows too
    assert.are.same({ 2, 3 }, x:size())
    assert.is_false(x:is_contiguous())
  end)

  it('keeps requires_grad, and drops a gradient that no longer fits', function()
    local w = flare.randn(3, { requires_grad = true })
    w:sum():backward()
    assert.is_not_nil(w.grad)
    flare.no_grad(function() w:set_(w:to('cuda')) end)
    assert.is_true(w:wants_grad())
    assert.is_true(w.is_leaf)
    assert.is_nil(w.grad)            -- a CPU gradient of a cuda parameter would break a step
    local loss = (w * 2):sum()
    loss:backward()
    assert.are.equal('cuda:0', w.grad:device())
    assert.are.same({ 2, 2, 2 }, w.grad:totable())
  end)

  it('is refused where the tape could see it', function()
    local w = flare.randn(3, { requires_grad = true })
    assert.has_error(function() w:set_(flare.zeros(3)) end,
      'set_: the tensor is a leaf that requires grad; call it under flare.no_grad()')
    local y = w * 2
    assert.has_error(function() flare.no_grad(function() y:set_(flare.zeros(3)) end) end)
    assert.has_error(function() flare.zeros(2):set_(3) end)
  end)

  it('makes a graph that saved the old data refuse backward', function()
    local w = flare.randn(3, { requires_grad = true })
    local loss = (w * w):sum()       -- mul saves w
    flare.no_grad(function() w:set_(w:cuda()) end)
    assert.has_error(function() loss:backward() end)
  end)
end)

describe('moving models', function()
  local function mlp()
    flare.manual_seed(3)
    return nn.Sequential { nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3) }
  end

  it('moves parameters and buffers in place: the same tensor objects', function()
    local m = mlp()
    local before = {}
    for k, t in pairs(m:state_dict()) do before[k] = t:clone() end
    local params = m:parameters()
    local w = m[1].weight
    assert.are.equal(m, m:cuda())
    assert.are.equal(w, m[1].weight)
    assert.are.equal('cuda:0', w:device())
    assert.are.equal('cuda:0', m:device())
    for i, p in ipairs(m:parameters()) do
      assert.are.equal(params[i], p)
      assert.is_true(p:wants_grad())
      assert.is_true(p.is_leaf)
    end
    for k, t in pairs(m:state_dict()) do
      assert.are.equal('cuda:0', t:device(), k)
      assert.is_true(cuda.equal(t:cpu(), before[k]), k)
    end
    m:cpu()
    assert.are.equal('cpu', w:device())
    for k, t in pairs(m:state_dict()) do assert.is_true(cuda.equal(t, before[k]), k) end
    -- dtype and device together, and back
    m:to { device = 'cuda', dtype = 'float64' }
    assert.are.equal('float64', w:dtype())
    assert.are.equal('int64', m[2].num_batches_tracked:dtype())   -- integers keep their dtype
    assert.are.equal('cuda:0', m[2].num_batches_tracked:device())
    m:to('float32'):to('cpu')
    for k, t in pairs(m:state_dict()) do assert.is_true(cuda.equal(t, before[k]), k) end
  end)

  it('moves gradients with their parameters', function()
    local m = mlp()
    local x = flare.randn(4, 5)
    m(x):sum():backward()
    local g = m[1].weight.grad:clone()
    local gref = m[1].weight.grad
    m:cuda()
    assert.are.equal('cuda:0', m[1].weight.grad:device())
    assert.are.equal('cuda:0', gref:device())          -- the grad object moved in place
    assert.is_true(cuda.equal(m[1].weight.grad:cpu(), g))
  end)

  it('refuses bad devices before moving anything', function()
    local m = mlp()
    assert.has_error(function() m:to('tpu') end)
    assert.has_error(function() m:to { device = 'gpu' } end)
    assert.has_error(function() m:to('int64') end)
    assert.are.equal('cpu', m:device())
  end)

  -- Two runs of the same steps: one on the CPU, one that moves to the device after building
  -- the optimizer, trains, comes back, and trains again. Same losses, same final weights.
  local function run(moves)
    local m = mlp()
    -- SGD: Adam would turn the rounding noise in the gradient of the bias before the batch
    -- norm (zero in exact arithmetic) into steps of size lr, and the weights could not agree
    local opt = optim.SGD(m:parameters(), { lr = 0.1, momentum = 0.9 })
    flare.manual_seed(5)
    local x, y = flare.randn(16, 5), flare.randint(1, 4, { 16 })
    local losses = {}
    local function steps(n, dev)
      local xd, yd = x:to(dev), y:to(dev)
      for _ = 1, n do
        opt:zero_grad()
        local loss = nn.cross_entropy(m(xd), yd)
        loss:backward()
        opt:step()
        losses[#losses + 1] = loss:item()
      end
    end
    steps(3, 'cpu')
    if moves then m:cuda() end
    steps(4, moves and 'cuda' or 'cpu')
    if moves then m:cpu() end
    steps(3, 'cpu')
    return losses, m
  end

  it('keeps an optimizer built before the move working, both ways', function()
    local want, cpu_model = run(false)
    local got, moved_model = run(true)
    for i = 1, #want do assert.is_true(math.abs(want[i] - got[i]) < 1e-4, 'step ' .. i) end
    assert.is_true(want[#want] < want[1])
    for k, t in pairs(cpu_model:state_dict()) do
      cuda.assert_close(moved_model:state_dict()[k]:cuda(), t, 1e-4, 1e-5)
    end
  end)

  it('keeps optimizer state in step with a model moved after some steps', function()
    local m = mlp()
    local opt = optim.SGD(m:parameters(), { lr = 0.1, momentum = 0.9 })
    local x, y = flare.randn(8, 5), flare.randint(1, 4, { 8 })
    for _, dev in ipairs { 'cpu', 'cuda', 'cpu', 'cuda' } do
      m:to(dev)
      opt:zero_grad()
      nn.cross_entropy(m(x:to(dev)), y:to(dev)):backward()
      opt:step()
      for _, p in ipairs(m:parameters()) do
        assert.are.equal(p:device(), opt.state[p].momentum_buffer:device())
      end
    end
    -- a state dict saved with the model on the device loads into a CPU optimizer
    local sd = opt:state_dict()
    local m2 = mlp()
    local opt2 = optim.SGD(m2:parameters(), { lr = 0.1, momentum = 0.9 })
    opt2:load_state_dict(sd)
    for _, p in ipairs(m2:parameters()) do assert.are.equal('cpu', opt2.state[p].momentum_buffer:device()) end
  end)

  it('keeps the allocated device memory flat over 2,000 training steps', function()
    -- a small step (few kernels: the emulator runs each on the CPU), without collectgarbage
    flare.manual_seed(1)
    local m = nn.Linear(4, 1):cuda()
    local opt = optim.SGD(m:parameters(), { lr = 0.05 })
    local x = flare.randn(16, 4):cuda()
    local y = (x:cpu():sum(2, { keepdim = true }) * 0.5):cuda()
    local function step()
      opt:zero_grad()
      local loss = nn.mse_loss(m(x), y)
      loss:backward()
      opt:step()
      return loss
    end
    for _ = 1, 100 do step() end     -- warm-up: optimizer state, allocator cache
    local first = step():item()
    -- The loop never calls the collector; garbage tensors are freed by it anyway, so
    -- `allocated` is a sawtooth whose high points must stay bounded. Leaks are measured
    -- after each half with a full collection (for the measurement only): one leaked tensor
    -- a step would add >= 500 KB between the two.
    local live, hi = {}, { 0, 0 }
    for half = 1, 2 do
      for _ = 1, 1000 do
        step()
        hi[half] = math.max(hi[half], flare.cuda.memory_stats().allocated)
      end
      collectgarbage('collect')
      live[half] = flare.cuda.memory_stats().allocated
    end
    assert(live[2] <= live[1] + 16 * 1024, string.format('the live set grew from %d to %d bytes', live[1], live[2]))
    assert(hi[2] <= math.max(2 * hi[1], hi[1] + (1 << 20)),
           string.format('the high points grew from %d to %d bytes', hi[1], hi[2]))
    assert.is_true(step():item() < first)
  end)
end)

describe('flare.cuda.manual_seed', function()
  it('is flare.manual_seed: one generator for every device', function()
    flare.cuda.manual_seed(123)
    local a = flare.randn(5)
    flare.manual_seed(123)
    local b = flare.randn(5)
    assert.are.same(a:totable(), b:totable())
    flare.cuda.manual_seed_all(7)
    local c = flare.get_rng_state()
    flare.manual_seed(7)
    assert.are.same(flare.get_rng_state(), c)
  end)
end)

describe('data.loader with a device', function()
  local function dataset(n)
    flare.manual_seed(2)
    return data.TensorDataset(flare.randn(n, 3, 2), flare.randint(1, 5, { n }))
  end

  it('delivers the same batches on the device, the last (smaller) one included', function()
    local ds = dataset(23)
    local on_cpu = data.loader(ds, { batch_size = 5, shuffle = true, seed = 4 })
    local on_gpu = data.loader(ds, { batch_size = 5, shuffle = true, seed = 4, device = 'cuda' })
    for _ = 1, 2 do      -- two passes: the pinned staging buffers are reused
      local want = {}
      for x, y in on_cpu do want[#want + 1] = { x, y } end
      local i = 0
      for x, y in on_gpu do
        i = i + 1
        assert.are.equal('cuda:0', x:device())
        assert.are.equal('cuda:0', y:device())
        assert.is_true(cuda.equal(x:cpu(), want[i][1]))
        assert.is_true(cuda.equal(y:cpu(), want[i][2]))
      end
      assert.are.equal(#want, i)
      assert.are.equal(5, i)
    end
  end)

  it('works without pinning, with prefetch, collate and transform', function()
    local ds = dataset(10)
    local seen = 0
    for x, y in data.loader(ds, { batch_size = 4, device = 'cuda', pin_memory = false, prefetch = true }) do
      seen = seen + x:size(1)
      assert.are.equal('cuda:0', x:device())
      assert.are.equal('int64', y:dtype())
    end
    assert.are.equal(10, seen)
    local collate = function(samples)
      local xs, ys = {}, {}
      for i, s in ipairs(samples) do xs[i], ys[i] = s[1], s[2] end
      return { { image = flare.stack(xs) }, flare.stack(ys) }
    end
    for x, y in data.loader(ds, { batch_size = 4, device = 'cuda', collate = collate,
                                  transform = function(f) f[2] = f[2] + 1 return f end }) do
      assert.are.equal('cuda:0', x.image:device())
      assert.are.equal('cuda:0', y:device())
    end
    assert.has_error(function() data.loader(ds, { device = 'gpu' }) end)
  end)
end)

describe('flare.autocast', function()
  it('sets and restores the mode, as a call and as a to-be-closed scope', function()
    if not rawget(flare, '_set_autocast') then
      pending('flare._set_autocast is not in this build yet')
      return
    end
    assert.is_nil(flare.get_autocast())
    local inside, two = flare.autocast('bf16', function(a) return flare.get_autocast(), a + 1 end, 1)
    assert.are.equal('bfloat16', inside)
    assert.are.equal(2, two)
    assert.is_nil(flare.get_autocast())
    do
      local _ <close> = flare.autocast('bfloat16')
      assert.are.equal('bfloat16', flare.get_autocast())
      do
        local _ <close> = flare.autocast(false)
        assert.is_nil(flare.get_autocast())
      end
      assert.are.equal('bfloat16', flare.get_autocast())
    end
    assert.is_nil(flare.get_autocast())
    assert.has_error(function() flare.autocast('bf16', function() error('boom') end) end)
    assert.is_nil(flare.get_autocast())
    assert.has_error(function() flare.autocast(3) end)
    assert.has_error(function() flare.autocast('fp8') end)
    assert.is_nil(flare.get_autocast())
    if flare.cuda.set_allow_tf32 then
      local before = flare.cuda.set_allow_tf32(true)
      assert.is_true(flare.cuda.set_allow_tf32(before))
      assert.has_error(function() flare.cuda.set_allow_tf32('yes') end)
    end
    -- a product under autocast stays float32 and close to the float32 one
    local a, b = flare.randn(33, 17), flare.randn(17, 9)
    local want = a:matmul(b)
    local got = flare.autocast('bf16', function() return a:cuda():matmul(b:cuda()) end)
    assert.are.equal('float32', got:dtype())
    cuda.assert_close(got, want, 2e-2, 5e-2)
  end)
end)
