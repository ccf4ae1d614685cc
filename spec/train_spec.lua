-- flare.train: fit on tiny problems, evaluate, metrics against hand-computed values, the
-- progress display (forced modes, and the automatic choice on a pseudo-terminal and a pipe),
-- early stopping, schedulers, clipping, callbacks, the run log, and argument errors.
local flare = require 'flare'
local nn = require 'flare.nn'
local optim = require 'flare.optim'
local data = require 'flare.data'
local train = require 'flare.train'
local metrics = train.metrics

-- A buffer with a write method, standing in for stdout.
local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for _, s in ipairs { ... } do self.parts[#self.parts + 1] = s end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

local function tmpname(ext)
  local p = os.tmpname()
  os.remove(p)
  return p .. (ext or '')
end

-- Three separable classes in 4-D: y is the argmax of a fixed linear map.
local function problem(n, seed)
  flare.manual_seed(seed or 1)
  local x = flare.randn(n, 4)
  local w = flare.tensor({ { 2, -1, 0 }, { 0, 2, -1 }, { -1, 0, 2 }, { 1, 1, -2 } }, { dtype = 'float32' })
  local y = x:matmul(w):argmax(2)
  return data.TensorDataset(x, y)
end

local function small_model()
  return nn.Sequential { nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3) }
end

local function setup(opts)
  opts = opts or {}
  local ds = problem(opts.n or 240)
  local tr, va = ds:split(0.75, { seed = 2 })
  local model = small_model()
  local opt = optim.Adam(model:parameters(), { lr = opts.lr or 0.03 })
  return {
    model = model, optimizer = opt, loss = nn.cross_entropy,
    data = data.loader(tr, { batch_size = 30, shuffle = true }),
    val = data.loader(va, { batch_size = 60 }), progress = false,
  }
end

local function run(extra)
  local o = setup(extra and extra._setup)
  for k, v in pairs(extra or {}) do if k ~= '_setup' then o[k] = v end end
  return train.fit(o), o
end

describe('train.fit', function()
  it('trains a tiny classifier below a loss threshold and returns the history', function()
    local h, o = run { epochs = 12 }
    assert.equal(12, #h.epochs)
    assert.equal(12, #h.loss)
    assert.equal(12 * 6, h.steps)               -- 180 samples in batches of 30
    assert.is_true(h.loss[1] > 0.5, 'first epoch loss ' .. h.loss[1])
    assert.is_true(h.loss[12] < 0.15, 'final loss ' .. h.loss[12])
    assert.is_true(h.val_acc[12] >= 0.9, 'val accuracy ' .. h.val_acc[12])
    assert.is_false(h.stopped_early)
    -- the model was left in training mode, as it was
    assert.is_true(o.model.training)
    -- the history's validation numbers are what evaluate says
    local ev = train.evaluate(o.model, o.val, { loss = nn.cross_entropy })
    assert.near(h.val_loss[12], ev.loss, 1e-6)
    assert.near(h.val_acc[12], ev.acc, 1e-12)
  end)

  it('accepts a plain list of batches and a loss module', function()
    local ds = problem(60)
    local x, y = ds.tensors[1], ds.tensors[2]
    local model = small_model()
    local h = train.fit { model = model, loss = nn.CrossEntropyLoss(), progress = false, epochs = 40,
                          optimizer = optim.Adam(model:parameters(), { lr = 0.05 }), data = { { x, y } } }
    assert.equal(40, h.steps)
    assert.is_true(h.loss[40] < 0.2, 'loss ' .. h.loss[40])
    assert.equal(1, h.acc[40] >= 0.95 and 1 or h.acc[40])
  end)

  it('uses forward for models that take more than x', function()
    local ds = problem(60)
    local x, y = ds.tensors[1], ds.tensors[2]
    local model = small_model()
    local seen = 0
    local h = train.fit { model = model, loss = nn.cross_entropy, progress = false, epochs = 2,
                          optimizer = optim.SGD(model:parameters(), { lr = 0.1 }),
                          data = { { x, x * 0, y } },
                          forward = function(m, a, b) seen = seen + 1 return m(a + b) end }
    assert.equal(2, seen)
    assert.equal(2, h.steps)
  end)

  it('steps the scheduler once per epoch (ReduceLROnPlateau with the validation loss)', function()
    local o = setup()
    local sched = optim.lr_scheduler.StepLR(o.optimizer, { step_size = 1, gamma = 0.5 })
    o.scheduler, o.epochs = sched, 3
    local h = train.fit(o)
    assert.near(0.03 / 8, o.optimizer.param_groups[1].lr, 1e-15)
    assert.near(0.03, h.lr[1], 1e-15) -- lr logged at the end of epoch 1 (before the step)
    o = setup()
    local seen = {}
    local plateau = optim.lr_scheduler.ReduceLROnPlateau(o.optimizer, { patience = 0, factor = 0.5 })
    local step = plateau.step
    plateau.step = function(self, m) seen[#seen + 1] = m return step(self, m) end
    o.scheduler, o.epochs = plateau, 2
    h = train.fit(o)
    assert.equal(2, #seen)
    assert.equal(h.val_loss[1], seen[1])
    assert.equal(h.val_loss[2], seen[2])
  end)

  it('steps the scheduler after every batch with scheduler_step = step', function()
    local o = setup()
    o.scheduler = optim.lr_scheduler.StepLR(o.optimizer, { step_size = 1, gamma = 0.9 })
    o.scheduler_step, o.epochs = 'step', 1
    train.fit(o)
    assert.near(0.03 * 0.9 ^ 6, o.optimizer.param_groups[1].lr, 1e-12)
  end)

  it('clips the gradient norm', function()
    local ds = problem(30)
    local model = small_model()
    local before = {}
    for i, p in ipairs(model:parameters()) do before[i] = p:clone() end
    train.fit { model = model, loss = nn.cross_entropy, progress = false, clip = 1e-3,
                optimizer = optim.SGD(model:parameters(), { lr = 1 }), data = { ds.tensors } }
    local sq = 0
    for i, p in ipairs(model:parameters()) do sq = sq + ((p - before[i]) ^ 2):sum():item() end
    assert.is_true(math.sqrt(sq) <= 1e-3 * (1 + 1e-5), 'update norm ' .. math.sqrt(sq))
    assert.is_true(math.sqrt(sq) > 0.9e-3)
  end)

  it('calls the callbacks, which may stop training', function()
    local counts = { on_train_begin = 0, on_epoch_begin = 0, on_step_end = 0, on_epoch_end = 0, on_train_end = 0 }
    local cb = {}
    for k in pairs(counts) do cb[k] = function(ctx) counts[k] = counts[k] + 1 end end
    local h = run { epochs = 2, callbacks = cb }
    assert.same({ on_train_begin = 1, on_epoch_begin = 2, on_step_end = 12, on_epoch_end = 2, on_train_end = 1 }, counts)
    assert.equal(12, h.steps)
    h = run { epochs = 5, callbacks = { { on_step_end = function(ctx) if ctx.step == 8 then ctx.stop = true end end } } }
    assert.equal(8, h.steps)
    assert.equal(2, #h.epochs) -- the epoch cut short still ends (validation, its row)
    h = run { epochs = 5, callbacks = { function(ctx) if ctx.epoch == 3 then return 'stop' end end } }
    assert.equal(3, #h.epochs)
  end)
end)

describe('early stopping', function()
  it('stops after `patience` epochs without improvement', function()
    -- lr 0: the validation loss never changes, so it never improves after epoch 1
    local h = run { epochs = 20, patience = 3, _setup = { lr = 0 } }
    assert.is_true(h.stopped_early)
    assert.equal(4, #h.epochs)
    assert.equal(1, h.best_epoch)
  end)

  it('honours monitor, mode and restore_best', function()
    local snapshot
    local h, o = run { epochs = 10,
      early_stopping = { monitor = 'val_loss', mode = 'max', patience = 2, restore_best = true },
      callbacks = { on_epoch_end = function(ctx)
        if ctx.epoch == 1 then
          snapshot = {}
          for i, p in ipairs(ctx.model:parameters()) do snapshot[i] = p:clone() end
        end
      end } }
    -- training lowers the validation loss, so with mode = 'max' epoch 1 stays the best
    assert.is_true(h.stopped_early)
    assert.equal(3, #h.epochs)
    assert.equal(1, h.best_epoch)
    assert.is_true(h.restored_best)
    for i, p in ipairs(o.model:parameters()) do
      assert.is_true(p:eq(snapshot[i]):all():item(), 'parameter ' .. i .. ' restored')
    end
  end)

  it('says when the monitored metric is not measured', function()
    local ok, err = pcall(run, { epochs = 2, early_stopping = { monitor = 'val_f2' } })
    assert.is_false(ok)
    assert.matches("monitors 'val_f2'", err)
    assert.matches('val_loss', err)
  end)
end)

describe('metrics', function()
  local out = flare.tensor {
    { 0.1, 0.7, 0.2 },   -- predicts 2, target 2: right
    { 0.5, 0.3, 0.2 },   -- predicts 1, target 2: wrong; 2 is second
    { 0.2, 0.3, 0.5 },   -- predicts 3, target 3: right
    { 0.6, 0.3, 0.1 },   -- predicts 1, target 3: wrong; 3 is last
    { 0.35, 0.4, 0.25 }, -- predicts 2, target 1: wrong; 1 is second
    { 0.9, 0.05, 0.05 }, -- predicts 1, target 1: right
  }
  local y = flare.tensor { 2, 2, 3, 3, 1, 1 }

  it('accuracy and top-k accuracy', function()
    assert.equal(0.5, metrics.accuracy(out, y))
    assert.equal(3, metrics.correct(out, y))
    assert.equal(0.5, metrics.accuracy(flare.tensor { 2, 1, 3, 1, 2, 1 }, y)) -- predictions given
    assert.near(5 / 6, metrics.topk_accuracy(out, y, 2), 1e-15)               -- all but sample 4
    assert.equal(1, metrics.topk_accuracy(out, y, 3))
    assert.equal(1, metrics.topk_accuracy(out, y, 10))                          -- k clipped to C
  end)

  it('confusion matrix and per-class precision / recall', function()
    local cm = metrics.confusion_matrix(out, y, 3)
    -- rows: true class, columns: predicted
    assert.same({ { 1, 1, 0 }, { 1, 1, 0 }, { 1, 0, 1 } }, cm:totable())
    assert.equal('int64', cm:dtype())
    local pr = metrics.precision_recall(cm)
    -- class 1: predicted 3 times, right once; present twice
    assert.near(1 / 3, pr.precision[1]:item(), 1e-12)
    assert.near(1 / 2, pr.recall[1]:item(), 1e-12)
    assert.near(1 / 2, pr.precision[2]:item(), 1e-12)
    assert.near(1 / 2, pr.recall[2]:item(), 1e-12)
    assert.near(1, pr.precision[3]:item(), 1e-12)
    assert.near(1 / 2, pr.recall[3]:item(), 1e-12)
    assert.near(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2), pr.f1[1]:item(), 1e-12)
    assert.same({ 2, 2, 2 }, pr.support:totable())
    -- a class never predicted has precision 0, not NaN
    local pr2 = metrics.precision_recall(flare.tensor({ { 2, 0 }, { 1, 0 } }, { dtype = 'int64' }))
    assert.equal(0, pr2.precision[2]:item())
    assert.equal(0, pr2.f1[2]:item())
  end)

  it('prints the confusion matrix as a table', function()
    local text = metrics.format_confusion(metrics.confusion_matrix(out, y, 3), { 'cat', 'dog', 'owl' })
    local lines = {}
    for l in text:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.equal(4, #lines)
    assert.matches('true\\pred%s+cat%s+dog%s+owl%s+precision%s+recall%s+support', lines[1])
    assert.matches('^%s*cat%s+1%s+1%s+0%s+0%.333%s+0%.500%s+2$', lines[2])
    assert.matches('^%s*owl%s+1%s+0%s+1%s+1%.000%s+0%.500%s+2$', lines[4])
  end)

  it('a tracker sums over batches', function()
    local tr = metrics.tracker { topk = { 2 }, confusion = true }
    tr:add(1.0, 2, out:narrow(1, 1, 2), y:narrow(1, 1, 2))
    tr:add(flare.tensor(4.0), 4, out:narrow(1, 3, 4), y:narrow(1, 3, 4))
    local r = tr:result()
    assert.near((1 * 2 + 4 * 4) / 6, r.loss, 1e-12)
    assert.equal(0.5, r.acc)
    assert.near(5 / 6, r.top2, 1e-15)
    assert.same(metrics.confusion_matrix(out, y, 3):totable(), r.confusion:totable())
    assert.equal(6, r.samples)
  end)

  it('rejects bad input with clear errors', function()
    local cases = {
      { function() metrics.accuracy(out, y:narrow(1, 1, 3)) end, 'output 6x3 and target 3' },
      { function() metrics.accuracy(out, y:float()) end, 'class indices' },
      { function() metrics.accuracy('x', y) end, 'model output as a tensor' },
      { function() metrics.topk_accuracy(out, y, 0) end, 'positive integer' },
      { function() metrics.confusion_matrix(out, y, 2) end, 'predicted class 3 is outside 1..2' },
      { function() metrics.confusion_matrix(flare.tensor { 1, 1 }, flare.tensor { 1, 4 }, 2) end,
        'target class 4 is outside 1..2' },
      { function() metrics.precision_recall(flare.zeros(2, 3)) end, 'square' },
      { function() metrics.tracker { topk = { 0 } } end, 'topk' },
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok, 'case ' .. i)
      assert.matches(c[2], tostring(err), 1, true)
    end
  end)
end)

describe('progress display', function()
  local function fit_to(out, mode, extra)
    local o = setup()
    o.progress, o.out, o.epochs, o.every = mode, out, 2, 0
    for k, v in pairs(extra or {}) do o[k] = v end
    return train.fit(o)
  end

  it("prints plain lines in 'lines' mode", function()
    local b = buffer()
    fit_to(b, 'lines')
    local text = b:text()
    assert.is_nil(text:find('\r', 1, true))
    local steps, epochs = 0, 0
    for line in text:gmatch('[^\n]+') do
      if line:match('^epoch %d/2  step %d/6  loss [%d.]+  acc [%d.]+  [%d.k]+ samples/s  eta [%d.]+s$') then
        steps = steps + 1
      elseif line:match('^epoch %d/2  loss [%d.]+  acc [%d.]+  val_loss [%d.]+  val_acc [%d.]+  lr 0.03  [%d.]+s$') then
        epochs = epochs + 1
      else
        error('unexpected line: ' .. line)
      end
    end
    assert.equal(12, steps)
    assert.equal(2, epochs)
  end)

  it('prints a line every `every` seconds, not every step', function()
    local b = buffer()
    fit_to(b, 'lines', { every = 3600 })
    local n = 0
    for _ in b:text():gmatch('[^\n]+') do n = n + 1 end
    assert.equal(2, n) -- the epoch summaries only
  end)

  it("redraws one line in place in 'bar' mode, sized to the width", function()
    local p = train.progress.new { epochs = 3, steps = 10, mode = 'bar', width = 100, out = buffer(), interval = 0 }
    p:epoch_begin(2)
    p:step(4, { loss = 0.25, acc = 0.875 }, 32)
    local text = p.out:text()
    assert.equal('\r', text:sub(1, 1))
    local line = text:sub(2)
    assert.is_true(#line <= 99, #line .. ' columns')
    assert.matches('^epoch 2/3 %[#+%-+%]  40%% 4/10  loss 0%.2500  acc 0%.8750  ', line)
    assert.matches('samples/s', line)
    assert.matches('eta [%d.]+s$', line)
    -- a narrow terminal keeps the bar and drops the least useful parts first
    p = train.progress.new { epochs = 3, steps = 10, mode = 'bar', width = 52, out = buffer(), interval = 0 }
    p:epoch_begin(2)
    p:step(4, { loss = 0.25, acc = 0.875 }, 32)
    line = p.out:text():sub(2)
    assert.is_true(#line <= 51)
    assert.matches('%[#+%-+%]', line)
    assert.matches('loss 0%.2500', line)
    assert.is_nil(line:find('samples/s', 1, true))
  end)

  it('ends each epoch with a summary line that replaces the bar', function()
    local b = buffer()
    fit_to(b, 'bar', { width = 100 })
    local text = b:text()
    local lines = {}
    for l in text:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.equal(2, #lines)
    for i, l in ipairs(lines) do
      local last = l:match('\r([^\r]*)$')
      assert.matches('^epoch ' .. i .. '/2  loss [%d.]+  acc [%d.]+  val_loss', last)
      assert.matches('\repoch ' .. i .. '/2 %[', l) -- the bar came first
    end
  end)

  it('prints the confusion matrix after training when asked', function()
    local b = buffer()
    local h = fit_to(b, 'lines', { every = 3600, metrics = { 'confusion' }, classes = { 'a', 'b', 'c' } })
    local text = b:text()
    assert.matches('\ntrue\\pred%s+a%s+b%s+c%s+precision%s+recall%s+support\n', text)
    assert.equal(60, h.confusion:sum():item())            -- the 60 validation samples
    assert.equal(3, h.precision:numel())
  end)

  it("draws nothing with progress = false", function()
    local b = buffer()
    fit_to(b, false)
    assert.equal('', b:text())
  end)

  -- The automatic choice, in child processes: a pseudo-terminal (script) and a pipe.
  local interp = os.getenv('FLARE_SANITIZED') and 'build/asan/bin/flare' or 'lua5.4'
  local child = tmpname('.lua')
  local f = assert(io.open(child, 'w'))
  f:write([[
local flare = require 'flare'
local nn, optim, data, train = require 'flare.nn', require 'flare.optim', require 'flare.data', require 'flare.train'
flare.manual_seed(1)
local x = flare.randn(64, 4)
local ds = data.TensorDataset(x, x:sum(2):gt(0):to('int64') + 1)
local model = nn.Sequential { nn.Linear(4, 2) }
train.fit { model = model, loss = nn.cross_entropy, optimizer = optim.SGD(model:parameters(), { lr = 0.1 }),
            data = data.loader(ds, { batch_size = 16 }), epochs = 2 }
]])
  f:close()
  local function capture(cmd)
    local p = assert(io.popen(cmd .. ' 2>&1'))
    local out = p:read('a')
    p:close()
    return out
  end

  it('chooses lines when stdout is a pipe', function()
    local out = capture('FLARE_PROGRESS= ' .. interp .. ' ' .. child)
    assert.is_nil(out:find('\r', 1, true), out)
    assert.matches('epoch 1/2  loss', out)
    assert.matches('epoch 2/2  loss', out)
  end)

  it('chooses the bar on a terminal (a pseudo-terminal from script)', function()
    if not os.execute('command -v script >/dev/null 2>&1') then
      pending('script (util-linux) is not installed')
      return
    end
    local out = capture('COLUMNS=90 FLARE_PROGRESS= script -qec ' .. string.format('%q', interp .. ' ' .. child) .. ' /dev/null')
    assert.matches('\repoch 1/2 %[', out)
    assert.matches('4/4', out)
  end)

  it('FLARE_PROGRESS forces the mode', function()
    local out = capture('FLARE_PROGRESS=bar COLUMNS=90 ' .. interp .. ' ' .. child)
    assert.matches('\repoch 1/2 %[', out)
    out = capture('FLARE_PROGRESS=none ' .. interp .. ' ' .. child)
    assert.equal('', out)
  end)

  teardown(function() os.remove(child) end)
end)

describe('run log', function()
  it('writes a CSV row per step and per epoch that plot.log can read', function()
    local path = tmpname('.csv')
    local h = run { epochs = 2, log = path, metrics = { 'top2' } }
    local names, cols, n = require('flare.plot.data').read_csv(path)
    assert.equal('step', names[1])
    assert.equal('epoch', names[2])
    local idx = {}
    for i, name in ipairs(names) do idx[name] = i end
    for _, k in ipairs { 'loss', 'acc', 'lr', 'val_loss', 'val_acc', 'top2', 'val_top2', 'time' } do
      assert.is_not_nil(idx[k], 'column ' .. k)
    end
    assert.equal(12 + 2, n)
    local step_rows, epoch_rows = 0, 0
    for r = 1, n do
      if cols[2][r] then
        epoch_rows = epoch_rows + 1
        assert.near(h.val_loss[cols[2][r]], cols[idx.val_loss][r], 1e-6)
      else
        step_rows = step_rows + 1
        assert.is_nil(cols[idx.val_loss][r])
      end
    end
    assert.equal(12, step_rows)
    assert.equal(2, epoch_rows)
    assert.equal(12, cols[1][n]) -- the epoch row carries the step it ended at
    os.remove(path)
  end)

  it('writes JSON lines', function()
    local path = tmpname('.jsonl')
    run { epochs = 1, log = path }
    local lines = {}
    for l in io.lines(path) do lines[#lines + 1] = l end
    assert.equal(7, #lines)
    assert.matches('^{"kind":"step","step":1,"acc":[%d.e-]+,"loss":[%d.e-]+,"lr":0.03}$', lines[1])
    assert.matches('^{"kind":"epoch","step":6,"epoch":1,.*"val_loss":[%d.e-]+', lines[7])
    os.remove(path)
  end)

  it('is usable on its own, and keeps rows to go on after a resume', function()
    local path = tmpname('.csv')
    local log = train.log(path)
    log:step(1, { loss = 0.5 })
    log:step(2, { loss = 0.25, extra = 3 })
    log:epoch(1, { val_loss = 0.125 }, 2)
    log:close()
    local text = io.open(path):read('a')
    assert.equal('step,epoch,loss,extra,val_loss\n1,,0.5,,\n2,,0.25,3,\n2,1,,,0.125\n', text)
    log = train.log(path, { keep_rows = 2 })
    log:step(3, { loss = 0.2 })
    log:close()
    text = io.open(path):read('a')
    assert.equal('step,epoch,loss,extra\n1,,0.5,\n2,,0.25,3\n3,,0.2,\n', text)
    os.remove(path)
  end)
end)

describe('live plot', function()
  it('feeds plot.training_figure with plot = true', function()
    local plot = require 'flare.plot'
    local was = plot.backend()
    plot.backend('none')
    local ok, h = pcall(run, { epochs = 2, plot = true })
    plot.backend(was == 'none' and 'none' or 'auto')
    assert.is_true(ok, tostring(h))
    local tp = h.figure
    assert.is_not_nil(tp)
    assert.equal(12, tp.last_step)
    tp:close()
  end)
end)

describe('argument errors', function()
  local base = setup()
  local function with(changes)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(changes) do
      if v == 'nil' then o[k] = nil else o[k] = v end
    end
    return o
  end
  local cases = {
    { 'nothing', nil, "bad argument #1 to 'fit' (table" },
    { 'no model', with { model = 'nil' }, 'model is required' },
    { 'model not a module', with { model = {} }, 'model must be an nn module' },
    { 'no loss', with { loss = 'nil' }, 'loss is required' },
    { 'loss not callable', with { loss = 3 }, 'loss must be a function' },
    { 'no optimizer', with { optimizer = 'nil' }, 'optimizer is required' },
    { 'no data', with { data = 'nil' }, 'data is required' },
    { 'bad data', with { data = 5 }, 'data must be a data.loader' },
    { 'epochs', with { epochs = 1.5 }, 'epochs must be a non-negative integer, got 1.5' },
    { 'unknown option', with { epoch = 3 }, "unknown option 'epoch'" },
    { 'unknown metric', with { metrics = { 'f1score' } }, "unknown metric 'f1score'" },
    { 'clip', with { clip = -1 }, 'clip must be a positive number' },
    { 'patience', with { patience = 0 }, 'patience must be a positive integer' },
    { 'callback hook', with { callbacks = { on_stepend = function() end } }, "unknown hook 'on_stepend'" },
    { 'scheduler_step', with { scheduler_step = 'batch' }, "scheduler_step must be 'epoch' or 'step'" },
    { 'progress', with { progress = 'fancy' }, "progress: mode must be 'bar', 'lines'" },
    { 'checkpoint', with { checkpoint = { every = 1 } }, 'checkpoint.path must be a file name' },
    { 'log', with { log = 3 }, 'log must be a file name' },
    { 'resume missing', with { resume = '/nonexistent/ck.flare' }, "no checkpoint at '/nonexistent/ck.flare'" },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local ok, err = pcall(train.fit, c[2])
      assert.is_false(ok)
      assert.matches(c[3], tostring(err), 1, true)
    end)
  end

  it('a loss that is not a tensor', function()
    local ok, err = pcall(train.fit, with { loss = function() return 1 end })
    assert.is_false(ok)
    assert.matches('the loss function must return a tensor, got number', err, 1, true)
  end)

  it('evaluate', function()
    local ok, err = pcall(train.evaluate, {}, base.val)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'evaluate' (nn module expected", err, 1, true)
    ok, err = pcall(train.evaluate, base.model, nil)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'evaluate'", err, 1, true)
  end)
end)

-- The example scripts, end to end on tiny data: MNIST and CIFAR-10 are not on the test
-- machine, so they read small fake files in the real formats written here (IDX, raw and
-- gzipped; CIFAR-10 binary batches), in which each class is a bright bar at its own place.
describe('example scripts', function()
  local flare_bin = os.getenv('FLARE_SANITIZED') and 'build/asan/bin/flare' or './flare'
  local dir = os.tmpname()
  os.remove(dir)
  os.execute('mkdir -p ' .. dir)
  teardown(function() os.execute('rm -rf ' .. dir) end)

  local root = io.popen('pwd'):read('l')
  local exe = root .. '/' .. flare_bin
  -- the scripts run in a directory of their own: the library's path made absolute
  local env = string.format("LUA_PATH='%s/stdlib/?.lua;%s/stdlib/?/init.lua;;' LUA_CPATH='%s/build/?.so;;' ", root, root,
    root)

  local function run_script(cmd)
    local p = assert(io.popen('cd ' .. dir .. ' && ' .. env .. cmd .. ' 2>&1'))
    local out = p:read('a')
    local ok = p:close()
    return ok, out
  end

  local function image_bytes(n, c, h, w, label)
    local parts = {}
    for i = 1, n do
      local y = label(i)
      for ch = 1, c do
        for r = 1, h do
          local bright = (r - 1) // 2 == y and ch == 1 + y % c
          parts[#parts + 1] = string.rep(bright and '\240' or '\20', w)
        end
      end
    end
    return table.concat(parts)
  end
  local function label(i) return (i * 7) % 10 end

  it('mnist_cnn.lua trains, saves and reloads on fake IDX files', function()
    local d = dir .. '/mnist'
    os.execute('mkdir -p ' .. d)
    local function write_file(path, bytes)
      local f = assert(io.open(path, 'wb'))
      f:write(bytes)
      f:close()
    end
    for _, s in ipairs { { 'train', 64 }, { 't10k', 32 } } do
      local n = s[2]
      write_file(d .. '/' .. s[1] .. '-images-idx3-ubyte',
        string.pack('>BBBBI4I4I4', 0, 0, 8, 3, n, 28, 28) .. image_bytes(n, 1, 28, 28, label))
      local labels = {}
      for i = 1, n do labels[i] = string.char(label(i)) end
      write_file(d .. '/' .. s[1] .. '-labels-idx1-ubyte', string.pack('>BBBBI4', 0, 0, 8, 1, n) .. table.concat(labels))
    end
    os.execute('gzip ' .. d .. '/train-images-idx3-ubyte') -- one file gzipped, as distributed
    local ok, out = run_script(exe .. ' ' .. root .. '/scripts/mnist_cnn.lua --data mnist --epochs 1 --batch-size 32 '
      .. '--optimizer adam --lr 1e-3 --progress lines --log mnist.csv')
    assert.is_true(ok, out)
    assert.matches('MNIST: 64 training and 32 test images', out)
    assert.matches('epoch 1/1  loss [%d.]+  acc [%d.]+  val_loss', out)
    assert.matches('saved to mnist_cnn.flare; reloaded: test accuracy [%d.]+', out)
    assert.is_not_nil(io.open(dir .. '/mnist.csv'))
  end)

  it('cifar10_cnn.lua trains with augmentation, saves and reloads on fake batches', function()
    local d = dir .. '/cifar'
    os.execute('mkdir -p ' .. d)
    local function batch(name, n, offset)
      local records = {}
      for i = 1, n do
        local y = label(i + offset)
        records[i] = string.char(y) .. image_bytes(1, 3, 32, 32, function() return y end)
      end
      local f = assert(io.open(d .. '/' .. name, 'wb'))
      f:write(table.concat(records))
      f:close()
    end
    for k = 1, 5 do batch('data_batch_' .. k .. '.bin', 8, k * 8) end
    batch('test_batch.bin', 16, 0)
    local ok, out = run_script(exe .. ' ' .. root .. '/scripts/cifar10_cnn.lua --data cifar --epochs 1 --batch-size 20 '
      .. '--progress lines')
    assert.is_true(ok, out)
    assert.matches('CIFAR%-10: 40 training and 16 test images', out)
    assert.matches('saved to cifar10_cnn.flare; reloaded: test accuracy [%d.]+', out)
  end)

  it('train_digits.lua and char_rnn.lua run, save and reload', function()
    local ok, out = run_script(exe .. ' ' .. root .. '/scripts/train_digits.lua --epochs 1 --progress none')
    assert.is_true(ok, out)
    assert.matches('test accuracy [%d.]+ %(359 images%)', out)
    assert.matches('saved to digits_cnn.flare; reloaded: test accuracy', out)
    local f = assert(io.open(dir .. '/tiny.txt', 'w'))
    f:write(string.rep('to be or not to be, that is the question.\n', 60))
    f:close()
    ok, out = run_script(exe .. ' ' .. root .. '/scripts/char_rnn.lua --text tiny.txt --hidden 16 --embed 8 '
      .. '--seq-len 16 --batch-size 8 --max-steps 6 --sample-every 3 --sample-length 20 --progress none')
    assert.is_true(ok, out)
    assert.matches('%-%-%- step 3, validation loss [%d.]+, a sample at temperature 0%.80:\nt', out) -- no character of ROMEO: is in the text
    assert.matches('saved to char_rnn.flare; the reloaded model computes the same logits', out)
  end)

  it('reject bad options and --device cuda clearly', function()
    -- FLARE_CUDA=0: no GPU, whatever the machine has
    local ok, out = run_script('FLARE_CUDA=0 ' .. exe .. ' ' .. root .. '/scripts/train_digits.lua --device cuda')
    assert.is_falsy(ok)
    assert.matches('%-%-device cuda: no usable GPU %(CUDA is switched off', out)
    ok, out = run_script(exe .. ' ' .. root .. '/scripts/train_digits.lua --device tpu')
    assert.is_falsy(ok)
    assert.matches("%-%-device must be 'cpu' or 'cuda', got 'tpu'", out)
    ok, out = run_script(exe .. ' ' .. root .. '/scripts/train_digits.lua --epochs many')
    assert.is_falsy(ok)
    assert.matches("%-%-epochs takes a number, got 'many'", out)
    ok, out = run_script(exe .. ' ' .. root .. '/scripts/mnist_cnn.lua --data nowhere')
    assert.is_falsy(ok)
    assert.matches("no 'nowhere/train%-images%-idx3%-ubyte'", out)
  end)
end)
