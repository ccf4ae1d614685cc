-- flare.train.fit: the common training loop in one call — epochs of forward, loss, backward,
-- clipping and optimizer steps, validation, metrics, early stopping, schedulers, callbacks,
-- checkpoints (and resuming from one), a log file, a progress display and live curves.
-- Everything it does can be written as a plain Lua loop (the README's training section shows one); fit is
-- that loop with the bookkeeping done.
local flare = require 'flare.core'
local metrics = require 'flare.train.metrics'
local progress = require 'flare.train.progress'
local logmod = require 'flare.train.log'
local checkpoint = require 'flare.train.checkpoint'

local M = {}

local function callable(v)
  if type(v) == 'function' then return true end
  local mt = getmetatable(v)
  return type(mt) == 'table' and mt.__call ~= nil
end

local function is_module(v)
  return type(v) == 'table' and type(v.parameters) == 'function' and type(v.train) == 'function'
         and callable(v)
end

local function fail(msg) error('fit: ' .. msg, 3) end

-- ---------------------------------------------------------------- batches

-- The passes over a data source: a loader (or any object called as the generic for calls
-- it, a nil control value starting a pass), or a Lua list of batches {{x, y}, ...}.
local function batches(data)
  if callable(data) then
    return function()
      local control
      return function()
        local fields = table.pack(data(nil, control))
        if fields[1] == nil then return nil end
        control = fields[1]
        return fields
      end
    end
  end
  return function()
    local i = 0
    return function()
      i = i + 1
      local b = data[i]
      if b == nil then return nil end
      if flare.is_tensor(b) then return { b, n = 1 } end
      return table.pack(table.unpack(b))
    end
  end
end

-- The class names of a loader's data set (data.digits() and the file formats name them),
-- looking through subsets to the data set they select from.
local function class_names(loader)
  local ds = type(loader) == 'table' and rawget(loader, 'dataset')
  for _ = 1, 10 do
    if type(ds) ~= 'table' then return nil end
    local c = rawget(ds, 'classes')
    if type(c) == 'table' then return c end
    ds = rawget(ds, 'dataset')
  end
  return nil
end

local function count_batches(data)
  local ok, n = pcall(function() return #data end)
  if ok and math.type(n) == 'integer' then return n end
  return nil
end

-- A batch's tensors (and tables of them) on `device`; the batch itself when device is nil.
local function on_device(fields, device)
  if not device then return fields end
  local function move(v)
    if flare.is_tensor(v) then return v:to(device) end
    if type(v) == 'table' then
      local out = {}
      for k, x in pairs(v) do out[k] = move(x) end
      return out
    end
    return v
  end
  local out = { n = fields.n }
  for i = 1, fields.n do out[i] = move(fields[i]) end
  return out
end

local function batch_size(fields)
  local x = fields[1]
  if flare.is_tensor(x) then return x:dim() > 0 and x:size(1) or 1 end
  if type(x) == 'table' and flare.is_tensor(x[1]) then return x[1]:size(1) end
  return 1
end

-- ---------------------------------------------------------------- options

local known = {
  model = true, loss = true, optimizer = true, data = true, val = true, epochs = true, scheduler = true,
  scheduler_step = true, clip = true, metrics = true, callbacks = true, checkpoint = true, plot = true,
  log = true, early_stopping = true, patience = true, progress = true, resume = true, forward = true,
  classes = true, out = true, every = true, width = true, title = true, device = true,
}

-- metrics = {'accuracy', 'top5', 'confusion', 'precision_recall'} -> tracker options
local function metric_options(list)
  local o = { topk = {}, confusion = false }
  if list == nil then return o end
  if type(list) == 'string' then list = { list } end
  if type(list) ~= 'table' then fail("metrics must be a list such as {'accuracy', 'top5', 'confusion'}, got " .. type(list)) end
  for _, name in ipairs(list) do
    local k = type(name) == 'string' and tonumber(name:match('^top%-?(%d+)$') or name:match('^top(%d+)_accuracy$'))
    if k then
      o.topk[#o.topk + 1] = math.tointeger(k)
    elseif name == 'accuracy' or name == 'acc' then
      -- always counted for classification
    elseif name == 'confusion' or name == 'confusion_matrix' or name == 'precision_recall'
        or name == 'precision' or name == 'recall' then
      o.confusion = true
    else
      fail(string.format("unknown metric '%s' (expected 'accuracy', 'topK' such as 'top5', 'confusion' or 'precision_recall')",
        tostring(name)))
    end
  end
  return o
end

local function check_options(o)
  if type(o) ~= 'table' then
    error("bad argument #1 to 'fit' (table {model, loss, optimizer, data, ...} expected, got " .. type(o) .. ')', 3)
  end
  for k in pairs(o) do
    if not known[k] then fail(string.format("unknown option '%s'", tostring(k))) end
  end
  if o.model == nil then fail('model is required (an nn module)') end
  if not is_module(o.model) then fail('model must be an nn module, got ' .. type(o.model)) end
  if o.loss == nil then fail('loss is required (e.g. nn.cross_entropy)') end
  if not callable(o.loss) then fail('loss must be a function (output, target) -> loss, got ' .. type(o.loss)) end
  if o.optimizer == nil then fail('optimizer is required (e.g. optim.Adam(model:parameters()))') end
  if type(o.optimizer) ~= 'table' or type(o.optimizer.step) ~= 'function' or type(o.optimizer.zero_grad) ~= 'function' then
    fail('optimizer must be an optimizer (with step and zero_grad), got ' .. type(o.optimizer))
  end
  if o.data == nil then fail('data is required (a data.loader)') end
  if not callable(o.data) and type(o.data) ~= 'table' then
    fail('data must be a data.loader or a list of batches, got ' .. type(o.data))
  end
  if o.val ~= nil and not callable(o.val) and type(o.val) ~= 'table' then
    fail('val must be a data.loader or a list of batches, got ' .. type(o.val))
  end
  if o.epochs ~= nil and (math.type(o.epochs) ~= 'integer' or o.epochs < 0) then
    fail('epochs must be a non-negative integer, got ' .. tostring(o.epochs))
  end
  if o.scheduler ~= nil and (type(o.scheduler) ~= 'table' or type(o.scheduler.step) ~= 'function') then
    fail('scheduler must be an optim.lr_scheduler scheduler, got ' .. type(o.scheduler))
  end
  if o.scheduler_step ~= nil and o.scheduler_step ~= 'epoch' and o.scheduler_step ~= 'step' then
    fail("scheduler_step must be 'epoch' or 'step', got " .. tostring(o.scheduler_step))
  end
  local clip = o.clip
  if clip ~= nil and not (type(clip) == 'number' and clip > 0)
      and not (type(clip) == 'table' and (type(clip.max_norm) == 'number' or type(clip.value) == 'number')) then
    fail('clip must be a positive number (max gradient norm), {max_norm =, norm_type =} or {value =}, got ' .. tostring(clip))
  end
  if o.forward ~= nil and not callable(o.forward) then fail('forward must be a function (model, batch...) -> output') end
  if o.callbacks ~= nil and type(o.callbacks) ~= 'table' then
    fail('callbacks must be a table {on_step_end = f, on_epoch_end = f, ...} or a list of them, got ' .. type(o.callbacks))
  end
  if o.patience ~= nil and (math.type(o.patience) ~= 'integer' or o.patience < 1) then
    fail('patience must be a positive integer, got ' .. tostring(o.patience))
  end
  if o.early_stopping ~= nil and type(o.early_stopping) ~= 'table' then
    fail('early_stopping must be a table {patience =, monitor =, mode =, min_delta =, restore_best =}, got ' .. type(o.early_stopping))
  end
  if o.log ~= nil and type(o.log) ~= 'string' and type(o.log) ~= 'table' then
    fail('log must be a file name (.csv or .jsonl) or {path =, format =}, got ' .. type(o.log))
  end
  if o.checkpoint ~= nil and type(o.checkpoint) ~= 'string' and type(o.checkpoint) ~= 'table' then
    fail('checkpoint must be a file name or {path =, every =, every_steps =, keep =}, got ' .. type(o.checkpoint))
  end
  if o.device ~= nil and o.device ~= 'cpu' and not (type(o.device) == 'string' and o.device:match('^cuda[:%d]*$')) then
    fail("device must be 'cpu' or 'cuda', got " .. tostring(o.device))
  end
  if o.device ~= nil and o.device ~= 'cpu' and not flare.cuda.is_available() then
    fail('device ' .. o.device .. ' is not available: ' .. tostring(flare.cuda.why_unavailable()))
  end
  if o.resume ~= nil and type(o.resume) ~= 'string' then
    fail('resume must be the file name of a checkpoint, got ' .. type(o.resume))
  end
end

local function callback_list(cbs)
  if cbs == nil then return {} end
  local list = {}
  if #cbs > 0 then
    for i, c in ipairs(cbs) do
      if type(c) ~= 'table' and type(c) ~= 'function' then
        fail(string.format('callbacks[%d] must be a table of on_* functions, got %s', i, type(c)))
      end
      list[i] = type(c) == 'function' and { on_epoch_end = c } or c
    end
  else
    list[1] = cbs
  end
  for i, c in ipairs(list) do
    for k, f in pairs(c) do
      if type(k) == 'string' and k:match('^on_') then
        local valid = { on_train_begin = 1, on_train_end = 1, on_epoch_begin = 1, on_epoch_end = 1, on_step_end = 1 }
        if not valid[k] then
          fail(string.format("callbacks[%d]: unknown hook '%s' (expected on_train_begin, on_epoch_begin, on_step_end, on_epoch_end, on_train_end)", i, k))
        end
        if not callable(f) then fail(string.format('callbacks[%d].%s must be a function', i, k)) end
      end
    end
  end
  return list
end

local function checkpoint_options(c)
  if c == nil then return nil end
  if type(c) == 'string' then c = { path = c } end
  if type(c.path) ~= 'string' or c.path == '' then
    fail("checkpoint.path must be a file name (may hold {epoch} and {step}), got " .. tostring(c.path))
  end
  for _, k in ipairs { 'every', 'every_steps', 'keep' } do
    if c[k] ~= nil and (math.type(c[k]) ~= 'integer' or c[k] < 1) then
      fail(string.format('checkpoint.%s must be a positive integer, got %s', k, tostring(c[k])))
    end
  end
  local every = c.every
  if every == nil and c.every_steps == nil then every = 1 end -- default: after every epoch
  return { path = c.path, every = every, every_steps = c.every_steps, keep = c.keep }
end

local function stopping_options(o, has_val)
  local es = o.early_stopping
  if es == nil and o.patience == nil then return nil end
  es = es or {}
  local s = {
    monitor = es.monitor or (has_val and 'val_loss' or 'loss'),
    patience = es.patience or o.patience or 5,
    min_delta = es.min_delta or 0,
    restore_best = es.restore_best or false,
  }
  if type(s.monitor) ~= 'string' then fail('early_stopping.monitor must be a metric name, got ' .. type(s.monitor)) end
  if math.type(s.patience) ~= 'integer' or s.patience < 1 then
    fail('early_stopping.patience must be a positive integer, got ' .. tostring(s.patience))
  end
  local mode = es.mode or 'auto'
  if mode == 'auto' then mode = s.monitor:find('loss') and 'min' or 'max' end
  if mode ~= 'min' and mode ~= 'max' then fail("early_stopping.mode must be 'min', 'max' or 'auto', got " .. tostring(mode)) end
  s.mode = mode
  return s
end

-- ---------------------------------------------------------------- pieces of a step

local function clip_grads(params, clip)
  if clip == nil then return nil end
  local optim = require 'flare.optim'
  if type(clip) == 'number' then return optim.clip_grad_norm_(params, clip) end
  if clip.value then return optim.clip_grad_value_(params, clip.value) end
  return optim.clip_grad_norm_(params, clip.max_norm, clip.norm_type or 2)
end

local function current_lr(opt)
  local g = opt.param_groups and opt.param_groups[1]
  return g and type(g.lr) == 'number' and g.lr or nil
end

local function is_plateau(s)
  local mt = getmetatable(s)
  local name = mt and mt.__name or ''
  return tostring(name):find('ReduceLROnPlateau') ~= nil
end

local function is_per_step(s)
  local mt = getmetatable(s)
  return tostring(mt and mt.__name or ''):find('OneCycleLR') ~= nil
end

--- train.evaluate(model, data, [{loss = f, forward = f, metrics = {...}, num_classes = C, device =}])
-- -> {loss =, acc =, top5 =, confusion =, precision =, recall =, samples =}
-- Runs the model over a loader in evaluation mode without gradients (restoring the mode it
-- had), summing the loss (when given) and the classification metrics. device = 'cuda'
-- moves each batch there (the model must be there already).
function M.evaluate(model, data, opts)
  if not is_module(model) then
    error("bad argument #1 to 'evaluate' (nn module expected, got " .. type(model) .. ')', 2)
  end
  if data == nil or (not callable(data) and type(data) ~= 'table') then
    error("bad argument #2 to 'evaluate' (data.loader or list of batches expected, got " .. type(data) .. ')', 2)
  end
  if opts ~= nil and type(opts) ~= 'table' then
    error("bad argument #3 to 'evaluate' (options table expected, got " .. type(opts) .. ')', 2)
  end
  opts = opts or {}
  local mo = opts.tracker_options or metric_options(opts.metrics)
  local tr = metrics.tracker { topk = mo.topk, confusion = mo.confusion, num_classes = opts.num_classes }
  local forward = opts.forward or function(m, x) return m(x) end
  local was_training = model.training
  model:eval()
  local ok, err = pcall(function()
    local _ <close> = flare.no_grad()
    for fields in batches(data)() do
      fields = on_device(fields, opts.device)
      local out = forward(model, table.unpack(fields, 1, math.max(1, fields.n - 1)))
      local target = fields[fields.n]
      local lv = 0
      if opts.loss then lv = opts.loss(out, target) end
      tr:add(lv, batch_size(fields), out, target)
    end
  end)
  model:train(was_training ~= false)
  if not ok then error(err, 0) end
  local r = tr:result()
  if not opts.loss then r.loss = nil end
  return r
end

-- ---------------------------------------------------------------- fit

local function call_hooks(list, hook, ctx)
  for _, c in ipairs(list) do
    local f = c[hook]
    if f then
      local r = f(ctx)
      if r == 'stop' or r == false then ctx.stop = true end
    end
  end
end

-- The numbers of a metrics table (tensors such as the confusion matrix left out).
local function numbers(t)
  local out = {}
  for k, v in pairs(t) do if type(v) == 'number' then out[k] = v end end
  return out
end

-- What the live figure shows: losses and accuracies (not lr or time, which would need a
-- panel of their own).
local function curves(m)
  local out = {}
  for k, v in pairs(m) do
    local base = k:gsub('^val_', '')
    if base == 'loss' or base == 'acc' or base:match('^top%d+$') then out[k] = v end
  end
  return out
end

local function fill_path(template, epoch, step)
  return (template:gsub('{epoch}', tostring(epoch)):gsub('{step}', tostring(step)))
end

--- train.fit{model, loss, optimizer, data, [val], [epochs = 1], ...} -> history
-- Trains `model` on the batches of `data` for `epochs` epochs, and returns the history:
-- history.loss, history.acc, history.val_loss, ... (one value per epoch), history.epochs
-- (a row of metrics per epoch), history.steps, history.best, history.stopped_early,
-- history.confusion (the last validation's matrix, when asked), history.figure (plot = true).
--   model, loss (output, target) -> scalar, optimizer, data (a data.loader; each batch is
--   x, y, or x1, ..., y with forward), val (a loader, run after every epoch)
--   scheduler: stepped after every epoch (ReduceLROnPlateau with val_loss, else loss);
--     scheduler_step = 'step' steps it after every batch (OneCycleLR does so by default)
--   clip: max gradient norm, or {max_norm =, norm_type =}, or {value =}
--   metrics: {'accuracy', 'top5', 'confusion', 'precision_recall'} (accuracy is counted for
--     any classification: (N, C) outputs and (N) class indices); classes: names for the table
--   early_stopping = {monitor = 'val_loss', patience = 5, mode = 'auto', min_delta = 0,
--     restore_best = false}, or patience = N alone
--   callbacks: {on_train_begin, on_epoch_begin, on_step_end, on_epoch_end, on_train_end}
--     (or a list of such tables); each gets a context {epoch, step, metrics, history, model,
--     optimizer}; setting ctx.stop = true (or returning 'stop') ends training
--   checkpoint: 'ck-{epoch}.flare' or {path, every = 1 (epochs), every_steps, keep = K}
--   resume: a checkpoint file to go on from (as written by checkpoint =)
--   log: 'run.csv' or 'run.jsonl': a row per step and per epoch
--   plot: true (or {title =, save = 'curves.png'}): live curves (plot.training_figure)
--   progress: 'auto' (a bar on a terminal, lines otherwise), 'bar', 'lines', false;
--     every = seconds between lines (default 10); out = where it prints; width = columns
--   forward: function(model, x, ...) -> output, when the model takes more than x
--   device: 'cuda' trains on the GPU: the model is moved there in place (an optimizer
--     built before keeps working) and every batch is moved there (a data.loader with
--     device = 'cuda' delivers them there already, through pinned memory)
function M.fit(o)
  check_options(o)
  local model, opt, loss_fn = o.model, o.optimizer, o.loss
  local epochs = o.epochs or 1
  local mo = metric_options(o.metrics)
  local hooks = callback_list(o.callbacks)
  local ck = checkpoint_options(o.checkpoint)
  local stopping = stopping_options(o, o.val ~= nil)
  local sched = o.scheduler
  local sched_per_step = o.scheduler_step == 'step' or (o.scheduler_step == nil and sched ~= nil and is_per_step(sched))
  local forward = o.forward or function(m, x) return m(x) end
  -- device: the model moves in place (an optimizer built before keeps its parameters) and
  -- every batch follows it
  local device = o.device ~= 'cpu' and o.device or nil
  if o.device then model:to(o.device) end
  local params = model:parameters()
  local loader_state = type(o.data) == 'table' and type(o.data.state_dict) == 'function'
                       and type(o.data.load_state_dict) == 'function'
  local classes = o.classes or class_names(o.data)
  local steps_per_epoch = count_batches(o.data)

  local history = { epochs = {}, steps = 0, stopped_early = false }
  local step, first_epoch, epoch_step = 0, 1, 0
  local best, bad_epochs, best_state = nil, 0, nil
  local train_tr = metrics.tracker { topk = mo.topk, confusion = false }
  local log_rows

  -- resuming: the objects' states, then fit's own bookkeeping from the checkpoint's extra
  if o.resume then
    local info = checkpoint.resume(o.resume, { model = model, optimizer = opt, scheduler = sched,
                                               loader = loader_state and o.data or nil })
    step = info.step or 0
    first_epoch = info.next_epoch or 1
    local st = type(info.extra) == 'table' and info.extra.fit or {}
    for i, row in ipairs(st.history or {}) do history.epochs[i] = row end
    best, bad_epochs = st.best, st.bad_epochs or 0
    log_rows = st.log_rows
    if info.in_pass then
      epoch_step = st.epoch_step or 0
      if st.tracker then train_tr:load_state_dict(st.tracker) end
    end
    history.resumed_from = info.path
  end

  local log
  if o.log then
    local lo = type(o.log) == 'table' and o.log or { path = o.log }
    log = logmod.open(lo.path, { format = lo.format, keep_rows = log_rows })
  end

  local tp
  if o.plot then
    local po = type(o.plot) == 'table' and o.plot or {}
    tp = require('flare.plot').training_figure { title = po.title or o.title or 'training', backend = po.backend }
    for i, row in ipairs(history.epochs) do tp:epoch(i, curves(row), row.step) end
    history.figure = tp
  end

  local bar = progress.new { epochs = epochs, steps = steps_per_epoch, mode = o.progress, out = o.out,
                             every = o.every, width = o.width }

  local ctx = { model = model, optimizer = opt, history = history, stop = false }

  local function save_ck(epoch, in_epoch_step)
    local path = fill_path(ck.path, epoch, step)
    local rows = {}
    for i, row in ipairs(history.epochs) do rows[i] = row end
    checkpoint.save_checkpoint(path, {
      model = model, optimizer = opt, scheduler = sched, loader = loader_state and o.data or nil,
      epoch = epoch, step = step, keep = ck.keep,
      extra = { fit = { history = rows, best = best, bad_epochs = bad_epochs, epoch_step = in_epoch_step,
                        tracker = train_tr:state_dict(), log_rows = log and log.rows or nil } },
    })
    history.checkpoint = path
  end

  local was_training = model.training
  call_hooks(hooks, 'on_train_begin', ctx)
  local pending_ck = false
  for epoch = first_epoch, epochs do
    if ctx.stop then break end
    model:train()
    if epoch ~= first_epoch or epoch_step == 0 then
      train_tr:reset()
      epoch_step = 0
    end
    ctx.epoch = epoch
    call_hooks(hooks, 'on_epoch_begin', ctx)
    bar:epoch_begin(epoch, epoch_step)
    local t_epoch = flare.clock()

    for fields in batches(o.data)() do
      fields = on_device(fields, device)
      local n = batch_size(fields)
      local target = fields[fields.n]
      opt:zero_grad()
      local out = forward(model, table.unpack(fields, 1, math.max(1, fields.n - 1)))
      local loss = loss_fn(out, target)
      if not flare.is_tensor(loss) then fail('the loss function must return a tensor, got ' .. type(loss)) end
      loss:backward()
      clip_grads(params, o.clip)
      opt:step() -- optimizers run their update through flare.uninterruptible
      step, epoch_step = step + 1, epoch_step + 1
      local lv = loss:item()
      train_tr:add(lv, n, flare.is_tensor(out) and out:detach() or nil, target)
      local sm = { loss = lv, acc = train_tr.batch_acc, lr = current_lr(opt) }
      local running = train_tr:result()
      if log then log:step(step, sm) end
      if tp then tp:step(step, { loss = sm.loss, acc = sm.acc }) end
      bar:step(epoch_step, { loss = running.loss, acc = running.acc }, n)
      if sched and sched_per_step then sched:step() end
      ctx.step, ctx.metrics = step, sm
      call_hooks(hooks, 'on_step_end', ctx)
      if ck and ck.every_steps and step % ck.every_steps == 0 then
        -- on an epoch's last batch the checkpoint waits for the epoch's end (validation and
        -- the epoch's row), so that a resume goes on with the next epoch
        local st = loader_state and o.data:state_dict()
        if st and not st.in_pass then pending_ck = true else save_ck(epoch, epoch_step) end
      end
      if ctx.stop then break end
    end
    local train_time = flare.clock() - t_epoch

    -- the epoch's metrics: training (summed over its batches), then validation
    local em = numbers(train_tr:result())
    em.samples = nil
    local t_val = flare.clock()
    if o.val then
      local v = M.evaluate(model, o.val, { loss = loss_fn, forward = o.forward, tracker_options = mo,
                                            num_classes = classes and #classes or nil, device = device })
      for k, x in pairs(v) do
        if type(x) == 'number' and k ~= 'samples' then em['val_' .. k] = x end
      end
      if v.confusion then
        history.confusion, history.precision, history.recall = v.confusion, v.precision, v.recall
      end
    end
    local val_time = flare.clock() - t_val
    em.lr = current_lr(opt)
    em.time = train_time + val_time
    em.step = step

    if sched and not sched_per_step then
      if is_plateau(sched) then
        sched:step(em.val_loss or em.loss)
      else
        sched:step()
      end
    end

    history.epochs[#history.epochs + 1] = em
    local shown = numbers(em)
    shown.step = nil
    if log then log:epoch(epoch, shown, step) end
    if tp then tp:epoch(epoch, curves(shown), step) end
    bar:epoch_end(epoch, em, val_time)

    -- early stopping
    if stopping then
      local v = em[stopping.monitor]
      if v == nil then
        fail(string.format("early stopping monitors '%s', which this run does not measure (it has: %s)",
          stopping.monitor, table.concat(require('flare.nn').keys(em), ', ')))
      end
      local better = best == nil or (stopping.mode == 'min' and v < best - stopping.min_delta)
                     or (stopping.mode == 'max' and v > best + stopping.min_delta)
      if better then
        best, bad_epochs = v, 0
        history.best_epoch = epoch
        if stopping.restore_best then
          best_state = {}
          for k, t in pairs(model:state_dict()) do best_state[k] = t:clone() end
        end
      else
        bad_epochs = bad_epochs + 1
        if bad_epochs >= stopping.patience then
          ctx.stop = true
          history.stopped_early = true
          bar:message(string.format('early stopping: %s has not improved for %d epochs (best %s at epoch %s)',
            stopping.monitor, bad_epochs, progress.num(best), tostring(history.best_epoch)))
        end
      end
    end

    ctx.epoch, ctx.step, ctx.metrics = epoch, step, em
    call_hooks(hooks, 'on_epoch_end', ctx)
    if ck and (pending_ck or (ck.every and epoch % ck.every == 0) or (ctx.stop and ck.every)) then
      save_ck(epoch, epoch_step)
      pending_ck = false
    end
    epoch_step = 0
  end
  -- the last validation's confusion matrix, as a table
  if history.confusion and mo.confusion then bar:message(metrics.format_confusion(history.confusion, classes)) end
  bar:close()

  if best_state then
    model:load_state_dict(best_state)
    history.restored_best = true
  end
  model:train(was_training ~= false)

  history.steps = step
  history.best = best
  for _, row in ipairs(history.epochs) do
    for k, v in pairs(row) do
      history[k] = history[k] or {}
      if type(history[k]) == 'table' and k ~= 'epochs' then table.insert(history[k], v) end
    end
  end
  if log then log:close() end
  if tp then
    tp:flush()
    local po = type(o.plot) == 'table' and o.plot or {}
    if po.save then
      local ok, why = tp:save(po.save)
      history.plot_saved = ok and po.save or nil
      if not ok then bar:message('curves not saved: ' .. tostring(why)) end
    end
  end
  ctx.metrics = history.epochs[#history.epochs]
  call_hooks(hooks, 'on_train_end', ctx)
  return history
end

return M
