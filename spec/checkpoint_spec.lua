-- Checkpoints: save_checkpoint / resume, exact across processes (k steps + save + a new
-- process + resume + N - k steps == N steps, to the bit), fit's own checkpoints and resume,
-- keeping the last K, the loader's state, and the errors.
local flare = require 'flare'
local nn = require 'flare.nn'
local optim = require 'flare.optim'
local data = require 'flare.data'
local train = require 'flare.train'
local checkpoint = require 'flare.train.checkpoint'

local interp = os.getenv('FLARE_SANITIZED') and 'build/asan/bin/flare' or 'lua5.4'

local function tmpdir()
  local p = io.popen('mktemp -d')
  local d = p:read('l')
  p:close()
  return d
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

local function write(path, text)
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
end

-- Runs a child process; returns its stdout (errors if it fails).
local function child(script, ...)
  local cmd = interp .. ' ' .. script
  for _, a in ipairs { ... } do cmd = cmd .. ' ' .. string.format('%q', tostring(a)) end
  local p = assert(io.popen(cmd .. ' 2>&1'))
  local out = p:read('a')
  local ok = p:close()
  assert(ok, 'child failed: ' .. cmd .. '\n' .. out)
  return out
end

local dir = tmpdir()
teardown(function() os.execute('rm -rf ' .. string.format('%q', dir)) end)

-- A training run as users write it: Adam, a step schedule, dropout and a shuffled loader
-- (all drawing on flare's generator). Modes: straight (N steps), first (k steps, then a
-- checkpoint), resume (from the checkpoint to N steps), resume_noloader (forgets the
-- loader's position: must differ). Prints every parameter as hex floats, and one random
-- number drawn at the end.
local loop_script = dir .. '/loop.lua'
write(loop_script, [[
local flare = require 'flare'
local nn, optim, data, train = require 'flare.nn', require 'flare.optim', require 'flare.data', require 'flare.train'
local mode, k, ck = arg[1], tonumber(arg[2]), arg[3]
local epochs = 3
flare.manual_seed(7)
local x = flare.randn(40, 5)
local y = x:sum(2):gt(0):to('int64') + 1
local loader = data.loader(data.TensorDataset(x, y), { batch_size = 8, shuffle = true }) -- 5 batches a pass
local model = nn.Sequential { nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2) }
local opt = optim.Adam(model:parameters(), { lr = 0.01 })
local sched = optim.lr_scheduler.StepLR(opt, { step_size = 1, gamma = 0.8 })
local step, first = 0, 1
if mode == 'resume' or mode == 'resume_noloader' then
  local info = train.resume(ck, { model = model, optimizer = opt, scheduler = sched,
                                  loader = mode == 'resume' and loader or nil })
  step, first = info.step, info.next_epoch
end
local function save(epoch)
  train.save_checkpoint(ck, { model = model, optimizer = opt, scheduler = sched, loader = loader,
                              epoch = epoch, step = step })
end
local function run()
  for epoch = first, epochs do
    for xb, yb in loader do
      opt:zero_grad()
      nn.cross_entropy(model(xb), yb):backward()
      opt:step()
      step = step + 1
      if mode == 'first' and step == k and loader:state_dict().in_pass then return save(epoch) end
    end
    sched:step()
    if mode == 'first' and step == k then return save(epoch) end
  end
end
run()
local out = {}
for _, p in ipairs(model:parameters()) do
  for _, v in ipairs(p:reshape(-1):totable()) do out[#out + 1] = string.format('%a', v) end
end
print(step, table.concat(out, ' '), string.format('%a', flare.rand(1):item()))
]])

describe('exact resume across processes', function()
  local ck = dir .. '/loop.flare'
  local straight = child(loop_script, 'straight', 0, ck)

  it('k steps + save + new process + resume + the rest == all steps at once (mid-epoch)', function()
    child(loop_script, 'first', 7, ck)
    local resumed = child(loop_script, 'resume', 7, ck)
    assert.equal(straight, resumed)
    assert.matches('^15\t', resumed)
  end)

  it('the same at an epoch boundary', function()
    child(loop_script, 'first', 10, ck)
    local info = train.load_checkpoint(ck)
    assert.equal(2, info.epoch)
    assert.equal(10, info.step)
    assert.is_false(info.loader.in_pass)
    assert.equal(straight, child(loop_script, 'resume', 10, ck))
  end)

  it('the test can fail: without the loader position the run differs', function()
    child(loop_script, 'first', 7, ck)
    local other = child(loop_script, 'resume_noloader', 7, ck)
    assert.are_not.equal(straight, other)
  end)
end)

describe('fit with checkpoints', function()
  -- fit with a checkpoint every 3 steps (keep 2), killed (os.exit in a callback) at step
  -- 17, then resumed in a new process, against the same fit run straight. 36 training
  -- samples in batches of 8: 5 steps an epoch, 20 in all; the checkpoint due at step 15,
  -- an epoch's last, is written after that epoch's validation. Prints the steps, epochs,
  -- validation losses and parameters.
  local fit_script = dir .. '/fit.lua'
  write(fit_script, [[
local flare = require 'flare'
local nn, optim, data, train = require 'flare.nn', require 'flare.optim', require 'flare.data', require 'flare.train'
local mode, dir, from = arg[1], arg[2], arg[3]
flare.manual_seed(3)
local x = flare.randn(48, 4)
local y = x:narrow(2, 1, 2):sum(2):gt(0):to('int64') + 1
local ds = data.TensorDataset(x, y)
local tr, va = ds:split(0.75, { seed = 1 })
local model = nn.Sequential { nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 2) }
local opt = optim.SGD(model:parameters(), { lr = 0.2, momentum = 0.9 })
local h = train.fit {
  model = model, loss = nn.cross_entropy, optimizer = opt, epochs = 4, progress = false,
  scheduler = optim.lr_scheduler.ExponentialLR(opt, { gamma = 0.9 }),
  data = data.loader(tr, { batch_size = 8, shuffle = true }), val = data.loader(va, { batch_size = 12 }),
  log = dir .. '/' .. (mode == 'straight' and 'straight' or 'run') .. '.csv',
  checkpoint = mode ~= 'straight' and { path = dir .. '/fit-{step}.flare', every_steps = 3, keep = 2 } or nil,
  resume = from,
  callbacks = { on_step_end = function(ctx) if mode == 'crash' and ctx.step == 17 then os.exit(0) end end },
}
local out = {}
for _, p in ipairs(model:parameters()) do
  for _, v in ipairs(p:reshape(-1):totable()) do out[#out + 1] = string.format('%a', v) end
end
local vl = {}
for i, v in ipairs(h.val_loss) do vl[i] = string.format('%a', v) end
print(h.steps, #h.epochs, table.concat(vl, ' '), table.concat(out, ' '))
]])

  -- the rows of a CSV log, without its time column
  local function rows(path)
    local list, time_col = {}, nil
    for line in io.lines(path) do
      local cells = {}
      for c in (line .. ','):gmatch('([^,]*),') do cells[#cells + 1] = c end
      if not time_col then
        for i, name in ipairs(cells) do if name == 'time' then time_col = i end end
      end
      if time_col then table.remove(cells, time_col) end
      list[#list + 1] = table.concat(cells, ',')
    end
    return list
  end

  it('a run killed after a checkpoint and resumed in a new process ends as the straight run', function()
    local straight = child(fit_script, 'straight', dir)
    assert.matches('^20\t4\t', straight)
    child(fit_script, 'crash', dir)
    local ck = function(step) return dir .. '/fit-' .. step .. '.flare' end
    -- keep = 2: of the checkpoints at steps 3, 6, 9, 12, 15, the last two are left
    for _, s in ipairs { 3, 6, 9 } do assert.is_false(exists(ck(s)), 'fit-' .. s) end
    assert.is_true(exists(ck(12)))
    assert.is_true(exists(ck(15)))
    assert.is_true(train.load_checkpoint(ck(12)).loader.in_pass)
    assert.is_false(train.load_checkpoint(ck(15)).loader.in_pass)
    -- from the middle of epoch 3
    assert.equal(straight, child(fit_script, 'resume', dir, ck(12)))
    assert.same(rows(dir .. '/straight.csv'), rows(dir .. '/run.csv'))
    assert.is_false(exists(ck(12)))
    assert.is_true(exists(ck(15)))
    assert.is_true(exists(ck(18)))
    -- from the end of epoch 3 (written by the resumed run)
    assert.equal(straight, child(fit_script, 'resume', dir, ck(15)))
    assert.same(rows(dir .. '/straight.csv'), rows(dir .. '/run.csv'))
  end)
end)

describe('keeping the last K checkpoints', function()
  local model = nn.Linear(2, 2)
  it('deletes older ones, also after a resume in a new process', function()
    local d = dir .. '/keep'
    os.execute('mkdir -p ' .. d)
    checkpoint._forget()
    for i = 1, 5 do train.save_checkpoint(d .. '/ck-' .. i .. '.flare', { model = model, step = i, keep = 3 }) end
    for i = 1, 5 do assert.equal(i >= 3, exists(d .. '/ck-' .. i .. '.flare'), 'ck-' .. i) end
    assert.same({ d .. '/ck-3.flare', d .. '/ck-4.flare', d .. '/ck-5.flare' },
      train.load_checkpoint(d .. '/ck-5.flare').checkpoints)
    checkpoint._forget() -- as a new process would start
    train.resume(d .. '/ck-5.flare', { model = model })
    train.save_checkpoint(d .. '/ck-6.flare', { model = model, step = 6, keep = 3 })
    assert.is_false(exists(d .. '/ck-3.flare'))
    for i = 4, 6 do assert.is_true(exists(d .. '/ck-' .. i .. '.flare')) end
    -- a file it did not write is never touched
    write(d .. '/notes.txt', 'mine')
    train.save_checkpoint(d .. '/ck-7.flare', { model = model, step = 7, keep = 1 })
    assert.is_true(exists(d .. '/notes.txt'))
    for i = 4, 6 do assert.is_false(exists(d .. '/ck-' .. i .. '.flare')) end
    assert.is_true(exists(d .. '/ck-7.flare'))
  end)
end)

describe('checkpoint contents', function()
  it('stores the rng state, epoch, step, the loader position and extra data', function()
    local x = flare.randn(10, 2)
    local loader = data.loader(data.TensorDataset(x, x:sum(2)), { batch_size = 3, shuffle = true })
    local it = 0
    for _ in loader do
      it = it + 1
      if it == 2 then break end
    end
    local state = loader:state_dict()
    assert.equal(6, state.position)
    assert.is_true(state.in_pass)
    flare.manual_seed(99)
    flare.rand(5)
    local rng = flare.get_rng_state()
    local path = dir .. '/contents.flare'
    train.save_checkpoint(path, { loader = loader, epoch = 1, step = 2, extra = { best = 0.25, note = 'hi' } })
    local ck = train.load_checkpoint(path)
    assert.equal(1, ck.epoch)
    assert.equal(2, ck.step)
    assert.same({ rng.seed, rng.offset }, ck.rng:totable())
    assert.equal(6, ck.loader.position)
    assert.same(state.order:totable(), ck.loader.order:totable())
    assert.equal(0.25, ck.extra.best)
    assert.equal('hi', ck.extra.note)
    -- resume restores the generator and the pass under way
    flare.manual_seed(1)
    local fresh = data.loader(data.TensorDataset(x, x:sum(2)), { batch_size = 3, shuffle = true })
    local info = train.resume(path, { loader = fresh })
    assert.equal(1, info.next_epoch)
    assert.is_true(info.in_pass)
    assert.same(rng, flare.get_rng_state())
    local rest = {}
    for xb in fresh do rest[#rest + 1] = xb:size(1) end
    assert.same({ 3, 1 }, rest) -- batches 3 and 4 of the pass
    assert.equal(1, fresh.epoch)
  end)
end)

describe('loader state', function()
  it('rejects a state of another loader', function()
    local ds = data.TensorDataset(flare.randn(10, 2))
    local a = data.loader(ds, { batch_size = 2 })
    local b = data.loader(ds, { batch_size = 5 })
    local ok, err = pcall(b.load_state_dict, b, a:state_dict())
    assert.is_false(ok)
    assert.matches('batches of 2, this one has 10 samples in batches of 5', err, 1, true)
    ok, err = pcall(b.load_state_dict, b, 'x')
    assert.is_false(ok)
    assert.matches('expected a table from loader:state_dict()', err, 1, true)
  end)
end)

describe('checkpoint errors', function()
  local model = nn.Linear(2, 2)
  local cases = {
    { function() train.save_checkpoint(nil, { model = model }) end, "bad argument #1 to 'save_checkpoint' (file name expected, got nil)" },
    { function() train.save_checkpoint(dir .. '/x.flare') end, "bad argument #2 to 'save_checkpoint' (table" },
    { function() train.save_checkpoint(dir .. '/x.flare', { modle = model }) end, "unknown field 'modle'" },
    { function() train.save_checkpoint(dir .. '/x.flare', { model = 3 }) end, 'model must be an object with state_dict' },
    { function() train.save_checkpoint(dir .. '/x.flare', { step = 1.5 }) end, 'step must be an integer, got 1.5' },
    { function() train.save_checkpoint(dir .. '/x.flare', { keep = 0 }) end, 'keep must be a positive integer' },
    { function() train.save_checkpoint(dir .. '/x.flare', { extra = { f = print } }) end, 'extra.f is a function' },
    { function() train.resume(dir .. '/missing.flare', { model = model }) end, "no checkpoint at '" },
    { function() train.resume(dir .. '/x.flare', { model = model, optimiser = 1 }) end, "unknown field 'optimiser'" },
  }
  for i, c in ipairs(cases) do
    it('case ' .. i .. ': ' .. c[2], function()
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.matches(c[2], tostring(err), 1, true)
    end)
  end

  it('a checkpoint without what resume asks for', function()
    local path = dir .. '/model_only.flare'
    train.save_checkpoint(path, { model = model, step = 1 })
    local ok, err = pcall(train.resume, path, { model = model, optimizer = optim.SGD(model:parameters(), { lr = 1 }) })
    assert.is_false(ok)
    assert.matches('holds no optimizer state', err, 1, true)
  end)

  it('a file that is not a checkpoint', function()
    local path = dir .. '/plain.flare'
    local save = flare.save or require('flare.serialize').save
    save(path, { a = flare.ones(2) })
    local ok, err = pcall(train.resume, path, {})
    assert.is_false(ok)
    assert.matches('is not a checkpoint', err, 1, true)
  end)

  it('a model of another shape', function()
    local path = dir .. '/shape.flare'
    train.save_checkpoint(path, { model = nn.Linear(2, 3), step = 1 })
    local ok, err = pcall(train.resume, path, { model = model })
    assert.is_false(ok)
    assert.matches('size mismatch', err, 1, true)
  end)
end)
