-- flare.optim.optimizer: the Optimizer base class shared by SGD, Adam, ...: parameter
-- groups with per-group options, zero_grad, step (the update itself is one fused C call per
-- group, run so that Ctrl-C cannot stop it half-way), state_dict / load_state_dict with
-- PyTorch's layout (state by parameter index; indices are 1-based here), and printing.
local flare = require 'flare.core'

local is_tensor = flare.is_tensor

local M = {}

-- ---------------------------------------------------------------- errors

-- Raises msg at the first caller outside flare/optim, so the message points at user code.
local function raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, 'S')
    if not info or not info.source:find('flare[/\\]optim[/\\]') then break end
    level = level + 1
  end
  error(msg, level)
end
M.raise = raise

local function fmt_value(v)
  if type(v) == 'table' then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = fmt_value(x) end
    return '{' .. table.concat(parts, ', ') .. '}'
  elseif type(v) == 'number' then
    return string.format('%.10g', v)
  end
  return tostring(v)
end
M.fmt_value = fmt_value

-- Checks for option readers: each raises "optim.X: <name> ... got ...".
local check = {}
M.check = check

function check.number(cls, name, v, lo, hi, lo_open, hi_open)
  if type(v) ~= 'number' or v ~= v then
    raise(string.format('%s: option %s must be a number, got %s', cls, name, type(v) == 'number' and 'nan' or type(v)))
  end
  local bad = (lo and (v < lo or (lo_open and v == lo))) or (hi and (v > hi or (hi_open and v == hi)))
  if bad then
    local range
    if lo and hi then
      range = string.format('%s%g, %g%s', lo_open and '(' or '[', lo, hi, hi_open and ')' or ']')
      raise(string.format('%s: invalid %s %s (expected a value in %s)', cls, name, fmt_value(v), range))
    end
    raise(string.format('%s: invalid %s %s (expected %s %g)', cls, name, fmt_value(v), lo_open and '>' or '>=', lo))
  end
end

function check.boolean(cls, name, v)
  if type(v) ~= 'boolean' then raise(string.format('%s: option %s must be true or false, got %s', cls, name, type(v))) end
end

-- ---------------------------------------------------------------- classes

local Optimizer = {}
Optimizer.__index = Optimizer
Optimizer.__name = 'optim.Optimizer'
M.Optimizer = Optimizer

-- optim.Optimizer.extend(name, spec) -> a new optimizer class. spec: defaults (option ->
-- default value; nil marks none), order (option names, for messages and printing),
-- validate(cls, group) (checks one group's options), update(self, group, params, grads)
-- (the fused step over the parameters of one group that have a gradient), and state_keys
-- (the names of its per-parameter state tensors).
function Optimizer.extend(name, spec)
  local cls = {}
  for k, v in pairs(spec) do cls[k] = v end
  cls.__index = cls
  cls.__name = 'optim.' .. name
  cls.__tostring = Optimizer.__tostring
  cls.name = name
  cls.new = function(params, opts) return Optimizer.new_instance(cls, params, opts) end
  return setmetatable(cls, {
    __index = Optimizer,
    __call = function(c, params, opts) return Optimizer.new_instance(c, params, opts) end,
    __tostring = function() return 'optim.' .. name end,
  })
end

local function copy(v)
  if type(v) ~= 'table' or is_tensor(v) then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end
M.copy = copy

-- Reads the constructor's options: nil, a number (the learning rate) or a table whose keys
-- must all be options of the class (a typo is an error, not silently ignored).
local function read_options(cls, opts)
  if opts == nil then opts = {} end
  if type(opts) == 'number' then opts = { lr = opts } end
  if type(opts) ~= 'table' or is_tensor(opts) then
    raise(string.format('%s: expected an options table such as {lr = 0.01}, got %s', cls.__name, type(opts)))
  end
  local defaults = {}
  for _, k in ipairs(cls.order) do defaults[k] = copy(cls.defaults[k]) end
  for k, v in pairs(opts) do
    if cls.defaults[k] == nil then
      raise(string.format('%s: unknown option %s (expected one of: %s)', cls.__name, tostring(k),
        table.concat(cls.order, ', ')))
    end
    defaults[k] = copy(v)
  end
  return defaults
end

-- cls.new(params, opts): params is a list of tensors or a list of parameter groups
-- ({params = {...}, lr = ...}); opts the defaults for every group.
function Optimizer.new_instance(cls, params, opts)
  local self = setmetatable({}, cls)
  self.defaults = read_options(cls, opts)
  cls.validate(cls.__name, self.defaults)
  self.param_groups = {}
  self.state = {}
  self._index = {}     -- parameter -> true, to refuse one parameter in two groups
  if type(params) ~= 'table' or is_tensor(params) then
    raise(string.format('%s: expected a list of tensors or of parameter groups, got %s%s', cls.__name,
      is_tensor(params) and 'a tensor' or type(params), is_tensor(params) and ' (wrap it in a list: {p})' or ''))
  end
  if type(params.parameters) == 'function' then
    raise(string.format('%s: expected a list of tensors, got a module (pass model:parameters())', cls.__name))
  end
  if params[1] == nil then
    raise(string.format('%s: got an empty parameter list', cls.__name))
  end
  if is_tensor(params[1]) then
    self:add_param_group({ params = params })
  else
    for _, g in ipairs(params) do self:add_param_group(g) end
  end
  return self
end

local function check_param(cls, p, where)
  if not is_tensor(p) then
    raise(string.format('%s: %s is a %s, not a tensor', cls, where, type(p)))
  end
  local dt = p:dtype()
  if dt ~= 'float32' and dt ~= 'float64' then
    raise(string.format('%s: %s is %s; optimizers update floating point tensors', cls, where, dt))
  end
  -- a frozen parameter (requires_grad off) is accepted, as in PyTorch: it has no gradient,
  -- so steps leave it alone until it is unfrozen
  if not p.is_leaf then
    raise(string.format("%s: %s is not a leaf tensor (it was computed from others); optimize " ..
      "the tensors it was computed from, or use x:detach():requires_grad()", cls, where))
  end
end

--- opt:add_param_group{params = {...}, lr = ..., ...}
-- Adds a group of parameters with its own options (the others come from the defaults),
-- e.g. to unfreeze layers during fine-tuning.
function Optimizer:add_param_group(group)
  local cls = getmetatable(self).__name
  if type(group) ~= 'table' or is_tensor(group) then
    raise(string.format('%s: a parameter group must be a table {params = {...}, ...}, got %s', cls,
      is_tensor(group) and 'a tensor' or type(group)))
  end
  local list = group.params
  if is_tensor(list) then list = { list } end
  if type(list) ~= 'table' then
    raise(string.format('%s: parameter group %d has no params list', cls, #self.param_groups + 1))
  end
  local g = {}
  for k, v in pairs(group) do if k ~= 'params' then g[k] = copy(v) end end
  for _, k in ipairs(getmetatable(self).order) do
    if g[k] == nil then g[k] = copy(self.defaults[k]) end
  end
  getmetatable(self).validate(cls, g)
  local params, seen = {}, {}
  local n = #list
  for i = 1, n do
    local p = list[i]
    local where = #self.param_groups > 0 and string.format('parameter %d of group %d', i, #self.param_groups + 1)
      or string.format('parameter %d', i)
    check_param(cls, p, where)
    if self._index[p] or seen[p] then
      raise(string.format('%s: %s appears twice (in this group or in another one)', cls, where))
    end
    seen[p] = true
    params[i] = p
  end
  if n == 0 then raise(string.format('%s: parameter group %d is empty', cls, #self.param_groups + 1)) end
  for p in pairs(seen) do self._index[p] = true end
  g.params = params
  self.param_groups[#self.param_groups + 1] = g
  if self.init_state then self:init_state(g) end
  return self
end

--- opt:zero_grad([set_to_none = true])
-- Drops every parameter's gradient (p.grad becomes nil), as PyTorch's set_to_none; with
-- false (or {set_to_none = false}) zeroes the gradients in place instead.
function Optimizer:zero_grad(set_to_none)
  if type(set_to_none) == 'table' then set_to_none = set_to_none.set_to_none end
  if set_to_none == nil then set_to_none = true end
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do
      if set_to_none then p.grad = nil else p:zero_grad() end
    end
  end
end

-- Runs f(...) so that Ctrl-C cannot interrupt it (flare.uninterruptible, when the flare
-- executable provides it).
local function uninterruptible(f, ...)
  local u = flare.uninterruptible
  if u then return u(f, ...) end
  return f(...)
end

local function update_all(self)
  for _, group in ipairs(self.param_groups) do
    local params, grads = {}, {}
    local n = 0
    for _, p in ipairs(group.params) do
      local g = p.grad
      if g then
        n = n + 1
        params[n], grads[n] = p, g
      end
    end
    if n > 0 then self:update(group, params, grads) end
  end
end

--- opt:step([closure]) -> loss
-- Updates every parameter that has a gradient, in one fused C pass per group. closure, if
-- given, is called first (with gradients enabled) to recompute the loss and gradients; its
-- result is returned.
function Optimizer:step(closure)
  local loss
  if closure ~= nil then
    if type(closure) ~= 'function' then
      raise(string.format('%s:step: closure must be a function, got %s', getmetatable(self).__name, type(closure)))
    end
    loss = flare.enable_grad(closure)
  end
  uninterruptible(update_all, self)
  return loss
end

-- Gathers per-parameter state lists for the fused call: for each key, a list with the
-- state tensor or false (the step creates it, on the parameter's device). State left on
-- another device or dtype by a model moved with m:to() after some steps follows its
-- parameter first (moved in place, so state_dict() references stay valid).
function Optimizer:state_lists(params, keys)
  local lists = {}
  for k, key in ipairs(keys) do
    local list = {}
    for i, p in ipairs(params) do
      local s = self.state[p]
      local t = s and s[key] or false
      if t and (t:device() ~= p:device() or t:dtype() ~= p:dtype()) then
        t:set_(t:to { device = p:device(), dtype = p:dtype() })
      end
      list[i] = t
    end
    lists[k] = list
  end
  return lists
end

-- Stores what the fused call created back into the state (lists[k] nil: key k unused).
function Optimizer:store_lists(params, keys, lists)
  for k, key in ipairs(keys) do
    local list = lists[k]
    for i, p in ipairs(list and params or {}) do
      local s = self.state[p]
      if not s then
        s = {}
        self.state[p] = s
      end
      s[key] = list[i] or nil
    end
  end
end

-- Increments and returns the step counts of params (for the bias corrections).
function Optimizer:bump_steps(params)
  local steps = {}
  for i, p in ipairs(params) do
    local s = self.state[p]
    if not s then
      s = {}
      self.state[p] = s
    end
    s.step = (s.step or 0) + 1
    steps[i] = s.step
  end
  return steps
end

-- ---------------------------------------------------------------- state dicts

--- opt:state_dict() -> {state = {[i] = {...}}, param_groups = {{lr = ..., params = {i, ...}}}}
-- PyTorch's layout: parameters are numbered across the groups in order (from 1 here), the
-- state of parameter i is state[i] (its tensors are the live ones: save them, or clone
-- them, to keep a snapshot), and each group lists its options and its parameters' numbers.
function Optimizer:state_dict()
  local state, groups = {}, {}
  local index = 0
  for gi, group in ipairs(self.param_groups) do
    local packed = {}
    for k, v in pairs(group) do if k ~= 'params' then packed[k] = copy(v) end end
    local ids = {}
    for i, p in ipairs(group.params) do
      index = index + 1
      ids[i] = index
      local s = self.state[p]
      if s and next(s) ~= nil then
        local entry = {}
        for k, v in pairs(s) do entry[k] = v end
        state[index] = entry
      end
    end
    packed.params = ids
    groups[gi] = packed
  end
  return { state = state, param_groups = groups }
end

--- opt:load_state_dict(sd)
-- Restores the state and group options saved by state_dict() into an optimizer built over
-- the same parameter layout (same number of groups, same sizes). State tensors are copied
-- (cast to each parameter's dtype, placed on its device), so sd can go on being used elsewhere.
function Optimizer:load_state_dict(sd)
  local cls = getmetatable(self)
  local name = cls.__name .. ':load_state_dict'
  if type(sd) ~= 'table' or type(sd.param_groups) ~= 'table' then
    raise(name .. ': expected a table with fields state and param_groups (from opt:state_dict())')
  end
  local saved = sd.param_groups
  if #saved ~= #self.param_groups then
    raise(string.format('%s: the state dict has %d parameter groups, the optimizer %d', name, #saved,
      #self.param_groups))
  end
  local by_id, groups = {}, {}
  for gi, group in ipairs(self.param_groups) do
    local sg = saved[gi]
    if type(sg) ~= 'table' or type(sg.params) ~= 'table' then
      raise(string.format('%s: parameter group %d of the state dict has no params list', name, gi))
    end
    if #sg.params ~= #group.params then
      raise(string.format('%s: parameter group %d has %d parameters in the state dict, %d in the optimizer',
        name, gi, #sg.params, #group.params))
    end
    local g = {}
    for k, v in pairs(sg) do if k ~= 'params' then g[k] = copy(v) end end
    for _, k in ipairs(cls.order) do
      if g[k] == nil then g[k] = copy(group[k]) end
    end
    cls.validate(name, g)
    g.params = group.params
    for i, id in ipairs(sg.params) do by_id[id] = group.params[i] end
    groups[gi] = g
  end
  if sd.state ~= nil and type(sd.state) ~= 'table' then
    raise(string.format('%s: state must be a table, got %s', name, type(sd.state)))
  end
  local state_key = {}
  for _, k in ipairs(cls.state_keys or {}) do state_key[k] = true end
  local state = {}
  for id, entry in pairs(sd.state or {}) do
    local p = by_id[id]
    if not p then
      raise(string.format('%s: the state dict has state for parameter %s, which no group lists', name, tostring(id)))
    end
    if type(entry) ~= 'table' then
      raise(string.format('%s: state of parameter %s is a %s, expected a table', name, tostring(id), type(entry)))
    end
    local s = {}
    for k, v in pairs(entry) do
      if is_tensor(v) and k ~= 'step' then
        local want, got = p:size(), v:size()
        local same = #want == #got
        for d = 1, #want do same = same and want[d] == got[d] end
        if not same then
          raise(string.format('%s: state %s of parameter %s has shape %s, expected %s (the parameter\'s)', name,
            tostring(k), tostring(id), fmt_value({ table.unpack(got) }), fmt_value({ table.unpack(want) })))
        end
        v = v:to(p:dtype()):clone():contiguous():to(p:device())
      elseif is_tensor(v) then
        v = v:item()
      elseif k == 'step' and type(v) ~= 'number' then
        raise(string.format('%s: state step of parameter %s is a %s, expected a number', name, tostring(id), type(v)))
      elseif state_key[k] then
        raise(string.format('%s: state %s of parameter %s is a %s, expected a tensor', name, k, tostring(id), type(v)))
      else
        v = copy(v)
      end
      s[k] = v
    end
    state[p] = s
  end
  self.param_groups = groups
  self.state = state
end

-- ---------------------------------------------------------------- printing

function Optimizer:__tostring()
  local cls = getmetatable(self)
  local lines = { cls.name .. ' (' }
  for gi, group in ipairs(self.param_groups) do
    lines[#lines + 1] = string.format('Parameter Group %d', gi)
    local keys = {}
    for k in pairs(group) do if k ~= 'params' then keys[#keys + 1] = k end end
    table.sort(keys)
    local numel = 0
    for _, p in ipairs(group.params) do numel = numel + p:numel() end
    lines[#lines + 1] = string.format('    params: %d tensors, %d elements', #group.params, numel)
    for _, k in ipairs(keys) do
      lines[#lines + 1] = string.format('    %s: %s', k, fmt_value(group[k]))
    end
  end
  lines[#lines + 1] = ')'
  return table.concat(lines, '\n')
end

return M
