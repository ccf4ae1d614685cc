-- Saving and loading with device tensors: a file saved from the GPU is byte for byte the
-- file saved from the CPU and loads as CPU tensors; flare.load(path, {device = 'cuda'})
-- puts tensors and models on the GPU; checkpoints of a model trained on the GPU resume on
-- either side; .npy writers read device tensors through the host.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('serialize_spec.lua', pending) then return end

local nn, optim, train = flare.nn, flare.optim, flare.train

local function tmp(ext)
  local p = os.tmpname()
  os.remove(p)
  return p .. (ext or '.flare')
end

local function bytes(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

local function model()
  flare.manual_seed(4)
  return nn.Sequential { nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2) }
end

describe('cuda save and load', function()
  local files = {}
  local function file(ext)
    local p = tmp(ext)
    files[#files + 1] = p
    return p
  end
  after_each(function()
    for _, p in ipairs(files) do os.remove(p) end
    files = {}
  end)

  it('writes the same file from the device as from the CPU, in every dtype', function()
    flare.manual_seed(1)
    local value = {
      f32 = flare.randn(7, 3), f64 = flare.randn(5, { dtype = 'float64' }),
      i64 = flare.randint(-9, 9, { 4, 2 }), i32 = flare.randint(0, 9, { 3 }, { dtype = 'int32' }),
      u8 = flare.randint(0, 255, { 6 }, { dtype = 'uint8' }), b = flare.randn(9):gt(0),
      strided = flare.randn(4, 6):t(), scalar = flare.tensor(2.5), empty = flare.zeros(0, 3),
      n = 3, s = 'text',
    }
    local on_device = {}
    for k, v in pairs(value) do on_device[k] = flare.is_tensor(v) and v:cuda() or v end
    local a, b = file(), file()
    flare.save(a, value)
    flare.save(b, on_device)
    assert.are.equal(bytes(a), bytes(b))
    local back = flare.load(b)
    for k, v in pairs(value) do
      if flare.is_tensor(v) then
        assert.are.equal('cpu', back[k]:device(), k)
        assert.is_true(cuda.equal(back[k], v), k)
      else
        assert.are.equal(v, back[k])
      end
    end
  end)

  it('saves a model from the device and loads it on the CPU, or on the device', function()
    local m = model()
    m(flare.randn(8, 6))                          -- running statistics move off their start
    local cpu_file, gpu_file = file(), file()
    flare.save(cpu_file, m)
    m:cuda()
    flare.save(gpu_file, m)
    assert.are.equal(bytes(cpu_file), bytes(gpu_file))
    local back = flare.load(gpu_file)
    assert.are.equal('cpu', back:device())
    local on_dev = flare.load(cpu_file, { device = 'cuda' })
    assert.are.equal('cuda:0', on_dev:device())
    for k, t in pairs(m:state_dict()) do
      assert.is_true(cuda.equal(back:state_dict()[k], t:cpu()), k)
      assert.are.equal('cuda:0', on_dev:state_dict()[k]:device(), k)
      assert.is_true(cuda.equal(on_dev:state_dict()[k]:cpu(), t:cpu()), k)
    end
    for _, p in ipairs(on_dev:parameters()) do
      assert.is_true(p:wants_grad())
      assert.is_true(p.is_leaf)
    end
    -- the same outputs on both sides
    local x = flare.randn(3, 6)
    back:eval()
    on_dev:eval()
    cuda.assert_close(on_dev(x:cuda()), back(x), 1e-5, 1e-6)
  end)

  it('loads tables of tensors on the device, keeping shared tensors shared', function()
    local w = flare.randn(3, { requires_grad = true })
    local path = file()
    flare.save(path, { a = w, b = w, nested = { c = flare.ones(2, { dtype = 'int64' }) }, k = 1 })
    local t = flare.load(path, { device = 'cuda' })
    assert.are.equal(t.a, t.b)
    assert.are.equal('cuda:0', t.a:device())
    assert.is_true(t.a:wants_grad())
    assert.is_true(t.a.is_leaf)
    assert.are.equal('cuda:0', t.nested.c:device())
    assert.are.equal(1, t.k)
    assert.is_true(cuda.equal(t.a:cpu():detach(), w:detach()))
    -- a plain safetensors file (no description) too
    local raw = file('.safetensors')
    flare.serialize.write_safetensors(raw, { x = flare.randn(2, 2) })
    assert.are.equal('cuda:0', flare.load(raw, { device = 'cuda' }).x:device())
    assert.are.equal('cpu', flare.load(raw, { device = 'cpu' }).x:device())
    assert.has_error(function() flare.load(raw, { device = 'gpu' }) end)
    assert.has_error(function() flare.load(raw, 'cuda') end)
  end)

  it('writes .npy and .npz files of device tensors', function()
    local x = flare.randn(4, 3)
    local a, b = file('.npy'), file('.npy')
    flare.save_npy(a, x)
    flare.save_npy(b, x:cuda():t():contiguous():t())
    assert.are.equal(bytes(a), bytes(b))
    local z1, z2 = file('.npz'), file('.npz')
    flare.save_npz(z1, { x = x })
    flare.save_npz(z2, { x = x:cuda() })
    assert.are.equal(bytes(z1), bytes(z2))
  end)

  it('keeps a failed save from touching the previous file', function()
    local path = file()
    flare.save(path, { x = flare.ones(2):cuda() })
    local before = bytes(path)
    assert.has_error(function() flare.save(path, { x = flare.ones(2):cuda(), f = print }) end)
    assert.are.equal(before, bytes(path))
  end)
end)

describe('cuda checkpoints', function()
  local function steps(m, opt, dev, n, losses)
    flare.manual_seed(9)
    local x, y = flare.randn(16, 6):to(dev), flare.randint(1, 3, { 16 }):to(dev)
    for _ = 1, n do
      opt:zero_grad()
      local loss = nn.cross_entropy(m(x), y)
      loss:backward()
      opt:step()
      losses[#losses + 1] = loss:item()
    end
  end

  it('resumes a run trained on the device on the device and on the CPU alike', function()
    local path = tmp()
    finally(function() os.remove(path) end)
    -- reference: 6 steps on the CPU
    local ref_m = model()
    local ref_opt = optim.Adam(ref_m:parameters(), { lr = 1e-2 })
    local want = {}
    steps(ref_m, ref_opt, 'cpu', 3, want)
    steps(ref_m, ref_opt, 'cpu', 3, want)
    -- 3 steps on the device, a checkpoint, then 3 more after resuming on each side
    local m = model():cuda()
    local opt = optim.Adam(m:parameters(), { lr = 1e-2 })
    local got = {}
    steps(m, opt, 'cuda', 3, got)
    train.save_checkpoint(path, { model = m, optimizer = opt, epoch = 1, step = 3 })
    for _, dev in ipairs { 'cuda', 'cpu' } do
      local m2 = model():to(dev)
      local opt2 = optim.Adam(m2:parameters(), { lr = 1e-2 })
      local info = train.resume(path, { model = m2, optimizer = opt2 })
      assert.are.equal(3, info.step)
      for _, p in ipairs(m2:parameters()) do
        assert.are.equal(p:device(), opt2.state[p].exp_avg:device())
      end
      local after = { table.unpack(got) }
      steps(m2, opt2, dev, 3, after)
      for i = 1, 6 do assert.is_true(math.abs(after[i] - want[i]) < 1e-4, dev .. ' step ' .. i) end
    end
  end)
end)
