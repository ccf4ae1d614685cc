-- flare.optim.lr_scheduler: learning-rate schedules, as torch.optim.lr_scheduler (PyTorch
-- 1.13's recursive "chainable" forms, so that the sequences agree with PyTorch's to the last
-- bit and schedulers may be combined). Each scheduler sets group.lr in its optimizer's
-- parameter groups when built and on every step(); OneCycleLR also cycles the momentum.
--
--   sched = optim.lr_scheduler.StepLR(opt, {step_size = 30, gamma = 0.1})
--   for epoch = 1, 100 do train(); sched:step() end
--
-- The main argument may also come first: StepLR(opt, 30, {gamma = 0.1}).
local flare = require 'flare.core'
local base = require 'flare.optim.optimizer'

local raise, check, copy, fmt_value = base.raise, base.check, base.copy, base.fmt_value

local M = {}

local REQUIRED = setmetatable({}, { __tostring = function() return 'required' end })

-- ---------------------------------------------------------------- options

local function check_optimizer(name, opt)
  if type(opt) ~= 'table' or type(opt.param_groups) ~= 'table' then
    raise(string.format('%s: expected an optimizer (from optim.SGD, optim.Adam, ...), got %s', name,
      flare.is_tensor(opt) and 'a tensor' or type(opt)))
  end
end

-- Reads (main, opts) or (opts) into a table of options: every key must be known, every
-- REQUIRED default given.
local function read_options(name, a, b, main, defaults)
  local opts
  local is_main = main and a ~= nil and (type(a) ~= 'table' or a[1] ~= nil)
  if is_main then
    if b ~= nil and type(b) ~= 'table' then
      raise(string.format('%s: expected an options table after %s, got %s', name, main, type(b)))
    end
    opts = copy(b or {})
    opts[main] = a
  else
    if a ~= nil and type(a) ~= 'table' then
      raise(string.format('%s: expected an options table, got %s', name, type(a)))
    end
    opts = copy(a or {})
  end
  local names = {}
  for k in pairs(defaults) do names[#names + 1] = k end
  table.sort(names)
  for k in pairs(opts) do
    if defaults[k] == nil then
      raise(string.format('%s: unknown option %s (expected one of: %s)', name, tostring(k), table.concat(names, ', ')))
    end
  end
  for k, v in pairs(defaults) do
    if opts[k] == nil then
      if v == REQUIRED then raise(string.format('%s: option %s is required', name, k)) end
      opts[k] = copy(v)
    end
  end
  return opts
end

local function check_int(name, what, v, lo)
  if math.type(v) ~= 'integer' and not (type(v) == 'number' and v == math.floor(v) and v == v and math.abs(v) < 2^53) then
    raise(string.format('%s: option %s must be an integer, got %s', name, what, fmt_value(v)))
  end
  if lo and v < lo then raise(string.format('%s: invalid %s %s (expected >= %d)', name, what, fmt_value(v), lo)) end
  return math.tointeger(v)
end

local function is_scheduler(s)
  return type(s) == 'table' and type(s.step) == 'function' and type(s.optimizer) == 'table'
end

local function lrs(opt)
  local out = {}
  for i, g in ipairs(opt.param_groups) do out[i] = g.lr end
  return out
end

-- One value per group: a number for all, or a list with one per group.
local function per_group(name, what, opt, v)
  local n = #opt.param_groups
  if type(v) == 'table' then
    if #v ~= n then raise(string.format('%s: expected %d values for %s (one per group), got %d', name, n, what, #v)) end
    for i = 1, n do check.number(name, what .. '[' .. i .. ']', v[i]) end
    return copy(v)
  end
  if type(v) ~= 'number' then raise(string.format('%s: %s must be a number or a list, got %s', name, what, type(v))) end
  local out = {}
  for i = 1, n do out[i] = v end
  return out
end

-- ---------------------------------------------------------------- the base class

local LRScheduler = {}
LRScheduler.__index = LRScheduler
M.LRScheduler = LRScheduler

local function class(name, main, defaults)
  local cls = { name = name, main = main, defaults = defaults }
  cls.__index = cls
  cls.__name = 'optim.lr_scheduler.' .. name
  cls.__tostring = LRScheduler.__tostring
  return setmetatable(cls, {
    __index = LRScheduler,
    __call = function(c, ...) return c.new(...) end,
    __tostring = function() return 'optim.lr_scheduler.' .. name end,
  })
end
M.class = class

-- Builds a scheduler of class cls: reads the options into self, lets `setup` check them,
-- then does what PyTorch's _LRScheduler.__init__ does (initial_lr, base_lrs, first step).
local function build(cls, optimizer, a, b, setup)
  local name = cls.__name
  check_optimizer(name, optimizer)
  local self = setmetatable(read_options(name, a, b, cls.main, cls.defaults), cls)
  self.last_epoch = check_int(name, 'last_epoch', self.last_epoch, -1)
  if setup then setup(self, optimizer) end
  self.optimizer = optimizer
  if self.last_epoch == -1 then
    for _, g in ipairs(optimizer.param_groups) do
      if g.initial_lr == nil then g.initial_lr = g.lr end
    end
  else
    for i, g in ipairs(optimizer.param_groups) do
      if g.initial_lr == nil then
        raise(string.format("%s: parameter group %d has no initial_lr: resuming (last_epoch %d) needs the " ..
          "optimizer's state dict from the same run", name, i, self.last_epoch))
      end
    end
  end
  self.base_lrs = {}
  for i, g in ipairs(optimizer.param_groups) do self.base_lrs[i] = g.initial_lr end
  self:_initial_step()
  return self
end

function LRScheduler:_initial_step()
  self._step_count = 0
  self:step()
end

--- sched:step([epoch])
-- Advances the schedule by one step (call it after opt:step()) and sets every group's lr.
-- With an epoch, jumps there (the closed form, where the schedule has one).
function LRScheduler:step(epoch)
  self._step_count = self._step_count + 1
  local values
  if epoch == nil then
    self.last_epoch = self.last_epoch + 1
    values = self:get_lr()
  else
    self.last_epoch = check_int(self.__name, 'epoch', epoch)
    values = self.closed_form and self:closed_form() or self:get_lr()
  end
  for i, g in ipairs(self.optimizer.param_groups) do g.lr = values[i] end
  self._last_lr = lrs(self.optimizer)
end

--- sched:get_last_lr() -> {lr of group 1, ...}
function LRScheduler:get_last_lr() return copy(self._last_lr) end

local function skip_field(k, v)
  return k == 'optimizer' or type(v) == 'function'
end

--- sched:state_dict() -> a table of the scheduler's fields (not the optimizer, not
-- functions); load it into a scheduler built the same way to resume.
function LRScheduler:state_dict()
  local sd = {}
  for k, v in pairs(self) do
    if not skip_field(k, v) then
      if k == '_schedulers' then
        sd[k] = {}
        for i, s in ipairs(v) do sd[k][i] = s:state_dict() end
      else
        sd[k] = copy(v)
      end
    end
  end
  return sd
end

--- sched:load_state_dict(sd)
function LRScheduler:load_state_dict(sd)
  if type(sd) ~= 'table' then
    raise(string.format('%s:load_state_dict: expected a table from state_dict(), got %s', self.__name, type(sd)))
  end
  for k, v in pairs(sd) do
    if k == '_schedulers' then
      for i, s in ipairs(v) do
        if not self._schedulers[i] then
          raise(string.format('%s:load_state_dict: the state dict has %d schedulers, this one %d', self.__name, #v,
            #self._schedulers))
        end
        self._schedulers[i]:load_state_dict(s)
      end
    elseif k ~= 'optimizer' then
      self[k] = copy(v)
    end
  end
  if self.after_load then self:after_load() end
end

function LRScheduler:__tostring()
  return string.format('%s (last_epoch %d, lr %s)', self.__name, self.last_epoch or 0, fmt_value(self._last_lr or {}))
end

-- ---------------------------------------------------------------- schedules

--- optim.lr_scheduler.StepLR(opt, {step_size =, gamma = 0.1}): lr times gamma every step_size steps.
local StepLR = class('StepLR', 'step_size', { step_size = REQUIRED, gamma = 0.1, last_epoch = -1 })
M.StepLR = StepLR
function StepLR.new(opt, a, b)
  return build(StepLR, opt, a, b, function(self)
    self.step_size = check_int(self.__name, 'step_size', self.step_size, 1)
    check.number(self.__name, 'gamma', self.gamma)
  end)
end
function StepLR:get_lr()
  if self.last_epoch == 0 or self.last_epoch % self.step_size ~= 0 then return lrs(self.optimizer) end
  local out = {}
  for i, g in ipairs(self.optimizer.param_groups) do out[i] = g.lr * self.gamma end
  return out
end
function StepLR:closed_form()
  local out = {}
  for i, b in ipairs(self.base_lrs) do out[i] = b * self.gamma ^ (self.last_epoch // self.step_size) end
  return out
end

--- optim.lr_scheduler.MultiStepLR(opt, {milestones = {30, 80}, gamma = 0.1}): lr times gamma at each milestone.
local MultiStepLR = class('MultiStepLR', 'milestones', { milestones = REQUIRED, gamma = 0.1, last_epoch = -1 })
M.MultiStepLR = MultiStepLR
function MultiStepLR.new(opt, a, b)
  return build(MultiStepLR, opt, a, b, function(self)
    if type(self.milestones) ~= 'table' then
      raise(self.__name .. ': milestones must be a list of step numbers, got ' .. type(self.milestones))
    end
    local list = {}
    for i, m in ipairs(self.milestones) do list[i] = check_int(self.__name, 'milestones[' .. i .. ']', m) end
    table.sort(list)
    self.milestones = list
    check.number(self.__name, 'gamma', self.gamma)
  end)
end
local function count(list, v)
  local n = 0
  for _, m in ipairs(list) do if m == v then n = n + 1 end end
  return n
end
function MultiStepLR:get_lr()
  local c = count(self.milestones, self.last_epoch)
  if c == 0 then return lrs(self.optimizer) end
  local out = {}
  for i, g in ipairs(self.optimizer.param_groups) do out[i] = g.lr * self.gamma ^ c end
  return out
end
function MultiStepLR:closed_form()
  local passed = 0
  for _, m in ipairs(self.milestones) do if m <= self.last_epoch then passed = passed + 1 end end
  local out = {}
  for i, b in ipairs(self.base_lrs) do out[i] = b * self.gamma ^ passed end
  return out
end

--- optim.lr_scheduler.ConstantLR(opt, {factor = 1/3, total_iters = 5}): lr times factor for total_iters steps.
local ConstantLR = class('ConstantLR', nil, { factor = 1.0 / 3, total_iters = 5, last_epoch = -1 })
M.ConstantLR = ConstantLR
function ConstantLR.new(opt, a, b)
  return build(ConstantLR, opt, a, b, function(self)
    check.number(self.__name, 'factor', self.factor, 0, 1)
    self.total_iters = check_int(self.__name, 'total_iters', self.total_iters, 0)
  end)
end
function ConstantLR:get_lr()
  local f
  if self.last_epoch == 0 then
    f = self.factor
  elseif self.last_epoch ~= self.total_iters then
    return lrs(self.optimizer)
  else
    f = 1.0 / self.factor
  end
  local out = {}
  for i, g in ipairs(self.optimizer.param_groups) do out[i] = g.lr * f end
  return out
end
function ConstantLR:closed_form()
  local out = {}
  for i, b in ipairs(self.base_lrs) do
    out[i] = b * (self.factor + (self.last_epoch >= self.total_iters and 1 or 0) * (1 - self.factor))
  end
  return out
end

--- optim.lr_scheduler.LinearLR(opt, {start_factor = 1/3, end_factor = 1, total_iters = 5}): lr times a factor
-- going linearly from start_factor to end_factor over total_iters steps (linear warm-up).
local LinearLR = class('LinearLR', nil, { start_factor = 1.0 / 3, end_factor = 1.0, total_iters = 5, last_epoch = -1 })
M.LinearLR = LinearLR
function LinearLR.new(opt, a, b)
  return build(LinearLR, opt, a, b, function(self)
    check.number(self.__name, 'start_factor', self.start_factor, 0, 1, true)
    check.number(self.__name, 'end_factor', self.end_factor, 0, 1)
    self.total_iters = check_int(self.__name, 'total_iters', self.total_iters, 1)
  end)
end
function LinearLR:get_lr()
  if self.last_epoch == 0 then
    local out = {}
    for i, g in ipairs(self.optimizer.param_groups) do out[i] = g.lr * self.start_factor end
    return out
  end
  if self.last_epoch > self.total_iters then return lrs(self.optimizer) end
  local s, e = self.start_factor, self.end_factor
  local out = {}
  for i, g in ipairs(self.optimizer.param_groups) do
    out[i] = g.lr * (1. + (e - s) / (self.total_iters * s + (self.last_epoch - 1) * (e - s)))
  end
  return out
end
function LinearLR:closed_form()
  local out = {}
  for i, b in ipairs(self.base_lrs) do
    out[i] = b * (self.start_factor + (self.end_factor - self.start_factor) *
      math.min(self.total_iters, self.last_epoch) / self.total_iters)
  end
  return out
end

--- optim.lr_scheduler.ExponentialLR(opt, {gamma =}): lr times gamma every step.
local ExponentialLR = class('ExponentialLR', 'gamma', { gamma = REQUIRED, last_epoch = -1 })
M.ExponentialLR = ExponentialLR
function ExponentialLR.new(opt, a, b)
  return build(ExponentialLR, opt, a, b, function(self) check.number(self.__name, 'gamma', self.gamma) end)
end
function ExponentialLR:get_lr()
  if self.last_epoch == 0 then return lrs(self.optimizer) end
  local out = {}
  for i, g in ipairs(self.optimizer.param_groups) do out[i] = g.lr * self.gamma end
  return out
end
function ExponentialLR:closed_form()
  local out = {}
  for i, b in ipairs(self.base_lrs) do out[i] = b * self.gamma ^ self.last_epoch end
  return out
end

--- optim.lr_scheduler.PolynomialLR(opt, {total_iters = 5, power = 1}): lr times (1 - t / total_iters)^power.
local PolynomialLR = class('PolynomialLR', nil, { total_iters = 5, power = 1.0, last_epoch = -1 })
M.PolynomialLR = PolynomialLR
function PolynomialLR.new(opt, a, b)
  return build(PolynomialLR, opt, a, b, function(self)
    self.total_iters = check_int(self.__name, 'total_iters', self.total_iters, 1)
    check.number(self.__name, 'power', self.power)
  end)
end
function PolynomialLR:get_lr()
  if self.last_epoch == 0 or self.last_epoch > self.total_iters then return lrs(self.optimizer) end
  local f = ((1.0 - self.last_epoch / self.total_iters) / (1.0 - (self.last_epoch - 1) / self.total_iters)) ^ self.power
  local out = {}
  for i, g in ipairs(self.optimizer.param_groups) do out[i] = g.lr * f end
  return out
end
function PolynomialLR:closed_form()
  local out = {}
  for i, b in ipairs(self.base_lrs) do
    out[i] = b * (1.0 - math.min(self.total_iters, self.last_epoch) / self.total_iters) ^ self.power
  end
  return out
end

--- optim.lr_scheduler.CosineAnnealingLR(opt, {T_max =, eta_min = 0}): lr follows half a cosine from its initial
-- value down to eta_min over T_max steps (and back up over the next T_max).
local CosineAnnealingLR = class('CosineAnnealingLR', 'T_max', { T_max = REQUIRED, eta_min = 0, last_epoch = -1 })
M.CosineAnnealingLR = CosineAnnealingLR
function CosineAnnealingLR.new(opt, a, b)
  return build(CosineAnnealingLR, opt, a, b, function(self)
    self.T_max = check_int(self.__name, 'T_max', self.T_max, 1)
    check.number(self.__name, 'eta_min', self.eta_min)
  end)
end
function CosineAnnealingLR:get_lr()
  local t, T, eta = self.last_epoch, self.T_max, self.eta_min
  local out = {}
  if t == 0 then return lrs(self.optimizer) end
  for i, g in ipairs(self.optimizer.param_groups) do
    local b = self.base_lrs[i]
    if self._step_count == 1 and t > 0 then
      out[i] = eta + (b - eta) * (1 + math.cos(t * math.pi / T)) / 2
    elseif (t - 1 - T) % (2 * T) == 0 then
      out[i] = g.lr + (b - eta) * (1 - math.cos(math.pi / T)) / 2
    else
      out[i] = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (g.lr - eta) + eta
    end
  end
  return out
end
function CosineAnnealingLR:closed_form()
  local out = {}
  for i, b in ipairs(self.base_lrs) do
    out[i] = self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
  end
  return out
end

--- optim.lr_scheduler.LambdaLR(opt, fn or {fn per group}): lr = initial lr * fn(step).
local LambdaLR = class('LambdaLR', 'lr_lambda', { lr_lambda = REQUIRED, last_epoch = -1 })
M.LambdaLR = LambdaLR
function LambdaLR.new(opt, a, b)
  return build(LambdaLR, opt, a, b, function(self, o)
    local fns = self.lr_lambda
    if type(fns) == 'function' then
      fns = {}
      for i = 1, #o.param_groups do fns[i] = self.lr_lambda end
    else
      local ok = type(fns) == 'table' and #fns == #o.param_groups
      for i = 1, ok and #fns or 0 do ok = ok and type(fns[i]) == 'function' end
      if not ok then
        raise(string.format('%s: lr_lambda must be a function or a list of %d functions (one per group)', self.__name,
          #o.param_groups))
      end
    end
    self.lr_lambda = nil
    self._lambdas = fns
  end)
end
function LambdaLR:get_lr()
  local out = {}
  for i, b in ipairs(self.base_lrs) do
    local f = self._lambdas[i](self.last_epoch)
    if type(f) ~= 'number' then
      raise(string.format('%s: lr_lambda returned %s for step %d, expected a number', self.__name, type(f), self.last_epoch))
    end
    out[i] = b * f
  end
  return out
end
function LambdaLR:state_dict()
  local sd = LRScheduler.state_dict(self)
  sd._lambdas = nil      -- functions are not saved (PyTorch keeps only callable objects' fields)
  return sd
end

--- optim.lr_scheduler.SequentialLR(opt, {s1, s2, ...}, {milestones = {m1, ...}}): runs s1 until step m1, then
-- s2 (restarted) until m2, ...; e.g. a LinearLR warm-up followed by CosineAnnealingLR.
local SequentialLR = class('SequentialLR', 'schedulers', { schedulers = REQUIRED, milestones = REQUIRED, last_epoch = -1 })
M.SequentialLR = SequentialLR
function SequentialLR.new(opt, a, b)
  if type(b) == 'table' and b[1] ~= nil then b = { milestones = b } end
  local name = SequentialLR.__name
  check_optimizer(name, opt)
  local self = setmetatable(read_options(name, a, b, 'schedulers', SequentialLR.defaults), SequentialLR)
  local scheds, ms = self.schedulers, self.milestones
  self.schedulers, self.milestones = nil, nil
  if type(scheds) ~= 'table' or #scheds == 0 then raise(name .. ': expected a non-empty list of schedulers') end
  for i, s in ipairs(scheds) do
    if not is_scheduler(s) or s.optimizer ~= opt then
      raise(string.format('%s: scheduler %d does not belong to this optimizer', name, i))
    end
  end
  if type(ms) ~= 'table' or #ms ~= #scheds - 1 then
    raise(string.format('%s: expected %d milestones (one fewer than the schedulers), got %s', name, #scheds - 1,
      type(ms) == 'table' and tostring(#ms) or type(ms)))
  end
  self._schedulers = scheds
  self._milestones = copy(ms)
  self.last_epoch = check_int(name, 'last_epoch', self.last_epoch, -1) + 1
  self.optimizer = opt
  for _, g in ipairs(opt.param_groups) do g.lr = g.initial_lr end
  for _, s in ipairs(scheds) do s.last_epoch = s.last_epoch - 1 end
  scheds[1]:_initial_step()
  self._last_lr = scheds[1]:get_last_lr()
  return self
end
function SequentialLR:step()
  self.last_epoch = self.last_epoch + 1
  local idx = 0
  for _, m in ipairs(self._milestones) do if m <= self.last_epoch then idx = idx + 1 end end
  local s = self._schedulers[idx + 1]
  if idx > 0 and self._milestones[idx] == self.last_epoch then s:step(0) else s:step() end
  self._last_lr = s:get_last_lr()
end

--- optim.lr_scheduler.ChainedScheduler({s1, s2, ...}): steps every scheduler on each step() (their effects multiply).
local ChainedScheduler = class('ChainedScheduler', 'schedulers', { schedulers = REQUIRED })
M.ChainedScheduler = ChainedScheduler
function ChainedScheduler.new(scheds)
  local name = ChainedScheduler.__name
  if type(scheds) ~= 'table' or #scheds == 0 then raise(name .. ': expected a non-empty list of schedulers') end
  for i, s in ipairs(scheds) do
    if not is_scheduler(s) then raise(string.format('%s: entry %d is not a scheduler', name, i)) end
  end
  local opt = scheds[1].optimizer
  for i, s in ipairs(scheds) do
    if s.optimizer ~= opt then
      raise(string.format('%s: scheduler %d does not belong to the same optimizer as scheduler 1', name, i))
    end
  end
  local self = setmetatable({ _schedulers = scheds, optimizer = opt, last_epoch = 0 }, ChainedScheduler)
  self._last_lr = lrs(opt)
  return self
end
function ChainedScheduler:step()
  for _, s in ipairs(self._schedulers) do s:step() end
  self._last_lr = lrs(self.optimizer)
end

--- optim.lr_scheduler.OneCycleLR(opt, {max_lr =, total_steps = | epochs =, steps_per_epoch =, pct_start = 0.3,
-- anneal_strategy = 'cos', cycle_momentum = true, base_momentum = 0.85, max_momentum = 0.95,
-- div_factor = 25, final_div_factor = 1e4, three_phase = false}): the 1cycle policy, stepped
-- after every batch: lr rises from max_lr / div_factor to max_lr, then falls far below, while
-- the momentum (or Adam's beta1) moves the other way.
local OneCycleLR = class('OneCycleLR', 'max_lr', {
  max_lr = REQUIRED, total_steps = false, epochs = false, steps_per_epoch = false, pct_start = 0.3,
  anneal_strategy = 'cos', cycle_momentum = true, base_momentum = 0.85, max_momentum = 0.95, div_factor = 25.,
  final_div_factor = 1e4, three_phase = false, last_epoch = -1,
})
M.OneCycleLR = OneCycleLR
function OneCycleLR.new(opt, a, b)
  return build(OneCycleLR, opt, a, b, function(self, o)
    local name = self.__name
    if self.total_steps then
      self.total_steps = check_int(name, 'total_steps', self.total_steps, 1)
    elseif self.epochs and self.steps_per_epoch then
      local e = check_int(name, 'epochs', self.epochs, 1)
      local s = check_int(name, 'steps_per_epoch', self.steps_per_epoch, 1)
      self.total_steps = e * s
    else
      raise(name .. ': give total_steps, or epochs and steps_per_epoch')
    end
    check.number(name, 'pct_start', self.pct_start, 0, 1)
    if self.anneal_strategy ~= 'cos' and self.anneal_strategy ~= 'linear' then
      raise(string.format("%s: anneal_strategy must be 'cos' or 'linear', got %s", name, tostring(self.anneal_strategy)))
    end
    check.number(name, 'div_factor', self.div_factor, 0, nil, true)
    check.number(name, 'final_div_factor', self.final_div_factor, 0, nil, true)
    local T, p = self.total_steps, self.pct_start
    if self.three_phase then
      self._schedule_phases = {
        { end_step = p * T - 1, start_lr = 'initial_lr', end_lr = 'max_lr', start_momentum = 'max_momentum',
          end_momentum = 'base_momentum' },
        { end_step = 2 * p * T - 2, start_lr = 'max_lr', end_lr = 'initial_lr', start_momentum = 'base_momentum',
          end_momentum = 'max_momentum' },
        { end_step = T - 1, start_lr = 'initial_lr', end_lr = 'min_lr', start_momentum = 'max_momentum',
          end_momentum = 'max_momentum' },
      }
    else
      self._schedule_phases = {
        { end_step = p * T - 1, start_lr = 'initial_lr', end_lr = 'max_lr', start_momentum = 'max_momentum',
          end_momentum = 'base_momentum' },
        { end_step = T - 1, start_lr = 'max_lr', end_lr = 'min_lr', start_momentum = 'base_momentum',
          end_momentum = 'max_momentum' },
      }
    end
    local max_lrs = per_group(name, 'max_lr', o, self.max_lr)
    if self.last_epoch == -1 then
      for i, g in ipairs(o.param_groups) do
        g.initial_lr = max_lrs[i] / self.div_factor
        g.max_lr = max_lrs[i]
        g.min_lr = g.initial_lr / self.final_div_factor
      end
    end
    if self.cycle_momentum then
      local d = o.defaults or {}
      if d.momentum == nil and d.betas == nil then
        raise(name .. ': cycle_momentum needs an optimizer with momentum or betas (pass cycle_momentum = false)')
      end
      self.use_beta1 = d.betas ~= nil
      local maxm = per_group(name, 'max_momentum', o, self.max_momentum)
      local basem = per_group(name, 'base_momentum', o, self.base_momentum)
      if self.last_epoch == -1 then
        for i, g in ipairs(o.param_groups) do
          if self.use_beta1 then g.betas = { maxm[i], g.betas[2] } else g.momentum = maxm[i] end
          g.max_momentum = maxm[i]
          g.base_momentum = basem[i]
        end
      end
    end
  end)
end
local function anneal(strategy, a, b, pct)
  if strategy == 'cos' then return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1) end
  return (b - a) * pct + a
end
function OneCycleLR:get_lr()
  local t = self.last_epoch
  if t > self.total_steps then
    raise(string.format('%s: stepped %d times, but total_steps is %d', self.__name, t + 1, self.total_steps))
  end
  local out = {}
  local phases = self._schedule_phases
  for gi, g in ipairs(self.optimizer.param_groups) do
    local start, lr, mom = 0, nil, nil
    for i, ph in ipairs(phases) do
      if t <= ph.end_step or i == #phases then
        local pct = (t - start) / (ph.end_step - start)
        lr = anneal(self.anneal_strategy, g[ph.start_lr], g[ph.end_lr], pct)
        if self.cycle_momentum then
          mom = anneal(self.anneal_strategy, g[ph.start_momentum], g[ph.end_momentum], pct)
        end
        break
      end
      start = ph.end_step
    end
    out[gi] = lr
    if self.cycle_momentum then
      if self.use_beta1 then g.betas = { mom, g.betas[2] } else g.momentum = mom end
    end
  end
  return out
end

-- ---------------------------------------------------------------- ReduceLROnPlateau

--- optim.lr_scheduler.ReduceLROnPlateau(opt, {mode = 'min', factor = 0.1, patience = 10, threshold = 1e-4,
-- threshold_mode = 'rel', cooldown = 0, min_lr = 0, eps = 1e-8}): step(metric) after each
-- evaluation; when the metric has not improved for `patience` steps, lr times factor.
local ReduceLROnPlateau = class('ReduceLROnPlateau', nil, {
  mode = 'min', factor = 0.1, patience = 10, threshold = 1e-4, threshold_mode = 'rel', cooldown = 0, min_lr = 0,
  eps = 1e-8,
})
M.ReduceLROnPlateau = ReduceLROnPlateau
function ReduceLROnPlateau.new(opt, a, b)
  local name = ReduceLROnPlateau.__name
  check_optimizer(name, opt)
  local self = setmetatable(read_options(name, a, b, nil, ReduceLROnPlateau.defaults), ReduceLROnPlateau)
  check.number(name, 'factor', self.factor)
  if self.factor >= 1.0 then raise(string.format('%s: factor must be < 1, got %g', name, self.factor)) end
  self.patience = check_int(name, 'patience', self.patience, 0)
  self.cooldown = check_int(name, 'cooldown', self.cooldown, 0)
  check.number(name, 'threshold', self.threshold)
  check.number(name, 'eps', self.eps)
  self.optimizer = opt
  self.min_lrs = per_group(name, 'min_lr', opt, self.min_lr)
  self.min_lr = nil
  self.cooldown_counter = 0
  self.last_epoch = 0
  self:after_load()
  self.best = self.mode_worse
  self.num_bad_epochs = 0
  self._last_lr = lrs(opt)
  return self
end
function ReduceLROnPlateau:after_load()
  if self.mode ~= 'min' and self.mode ~= 'max' then
    raise(string.format("%s: mode must be 'min' or 'max', got %s", self.__name, tostring(self.mode)))
  end
  if self.threshold_mode ~= 'rel' and self.threshold_mode ~= 'abs' then
    raise(string.format("%s: threshold_mode must be 'rel' or 'abs', got %s", self.__name, tostring(self.threshold_mode)))
  end
  self.mode_worse = self.mode == 'min' and math.huge or -math.huge
end
function ReduceLROnPlateau:is_better(a, best)
  if self.mode == 'min' and self.threshold_mode == 'rel' then return a < best * (1. - self.threshold) end
  if self.mode == 'min' then return a < best - self.threshold end
  if self.threshold_mode == 'rel' then return a > best * (self.threshold + 1.) end
  return a > best + self.threshold
end
--- sched:step(metric): metric is a number or a one-element tensor (e.g. the validation loss).
function ReduceLROnPlateau:step(metric)
  local current = metric
  if flare.is_tensor(metric) then current = metric:item() end
  if type(current) ~= 'number' then
    raise(string.format('%s:step: expected the metric (a number or a one-element tensor), got %s', self.__name,
      type(metric)))
  end
  self.last_epoch = self.last_epoch + 1
  if self:is_better(current, self.best) then
    self.best = current
    self.num_bad_epochs = 0
  else
    self.num_bad_epochs = self.num_bad_epochs + 1
  end
  if self.cooldown_counter > 0 then
    self.cooldown_counter = self.cooldown_counter - 1
    self.num_bad_epochs = 0
  end
  if self.num_bad_epochs > self.patience then
    for i, g in ipairs(self.optimizer.param_groups) do
      local old = g.lr
      local new = math.max(old * self.factor, self.min_lrs[i])
      if old - new > self.eps then g.lr = new end
    end
    self.cooldown_counter = self.cooldown
    self.num_bad_epochs = 0
  end
  self._last_lr = lrs(self.optimizer)
end

return M
