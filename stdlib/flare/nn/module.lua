-- flare.nn.module: nn.Module, the base of every layer and model: classes and their
-- registry, parameters/buffers/children bookkeeping, train/eval, state dicts, dtype
-- conversion, printing, and the declarative description a saved model is rebuilt from.
local flare = require 'flare.core'

local M = {}

local is_tensor = flare.is_tensor

-- ---------------------------------------------------------------- ordered maps
-- named_parameters() and state_dict() return a table name -> tensor whose pairs() runs in
-- registration order (PyTorch's order), so iterating a state dict is reproducible.

local Ordered = {}
Ordered.__name = 'flare.nn.OrderedDict'
local order_of = setmetatable({}, { __mode = 'k' })

function Ordered.__pairs(t)
  local keys, i = order_of[t], 0
  return function()
    repeat
      i = i + 1
      local k = keys[i]
      if k == nil then return nil end
      local v = rawget(t, k)
      if v ~= nil then return k, v end
    until false
  end, t, nil
end

local function ordered()
  local t = setmetatable({}, Ordered)
  order_of[t] = {}
  return t
end

local function ordered_set(t, k, v)
  if rawget(t, k) == nil then table.insert(order_of[t], k) end
  rawset(t, k, v)
end

--- nn.keys(map): the keys of a state dict or named_parameters() table, in order
-- (of another table: sorted).
function M.keys(t)
  local list = {}
  if order_of[t] then
    for k in Ordered.__pairs(t) do list[#list + 1] = k end
  else
    for k in pairs(t) do list[#list + 1] = k end
    table.sort(list, function(a, b) return tostring(a) < tostring(b) end)
  end
  return list
end
M.ordered = ordered
M.ordered_set = ordered_set

-- ---------------------------------------------------------------- helpers

local function shape_text(t)
  local s = t:size()
  if #s == 0 then return 'scalar' end
  return table.concat(s, 'x')
end
M.shape_text = shape_text

local function same_shape(a, b)
  local sa, sb = a:size(), b:size()
  if #sa ~= #sb then return false end
  for i = 1, #sa do if sa[i] ~= sb[i] then return false end end
  return true
end

local function is_float(t)
  local d = t:dtype()
  return d == 'float32' or d == 'float64'
end

-- An options table or nil (-> {}); anything else is an error naming the method.
local function options(o, fname)
  if o == nil then return {} end
  if type(o) ~= 'table' or is_tensor(o) then
    error(string.format('%s: expected an options table, got %s', fname, is_tensor(o) and 'a tensor' or type(o)), 3)
  end
  return o
end

-- The registry of module classes by name ('Linear', 'MLP', ...).
local registry = {}
M.registry = registry

-- The metamethods each class carries (Lua does not look metamethods up through __index).
local metamethods = { '__newindex', '__call', '__tostring', '__len', '__close' }

--- nn.Module: the base class of every layer and model. Subclass it with
-- nn.Module:extend('Name') (see Module.extend); m(...) runs m:forward(...).
local Module = {}
Module.__index = Module
Module.__typename = 'nn.Module'
Module.__name = 'nn.Module'
Module._class_name = 'Module'
M.Module = Module

--- nn.is_module(v): whether v is a module (an instance of an nn.Module class).
local function is_module(v)
  return type(v) == 'table' and getmetatable(v) ~= nil and type(getmetatable(v)) == 'table'
         and rawget(getmetatable(v), '_is_module_class') == true
end
M.is_module = is_module
Module._is_module_class = true

-- ---------------------------------------------------------------- classes

-- Deep copy of the plain tables in constructor arguments (so a later change to an options
-- table does not change the recorded description); modules and tensors are kept as is.
local function copy_args(v, seen)
  if type(v) ~= 'table' or is_module(v) or getmetatable(v) then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local c = {}
  seen[v] = c
  for k, x in pairs(v) do c[k] = copy_args(x, seen) end
  return c
end

local function construct(cls, ...)
  if rawget(cls, '_abstract') then
    error(cls.__typename .. ' is a base class: construct one of its subclasses', 2)
  end
  local self = setmetatable({}, cls)
  rawset(self, 'training', true)
  rawset(self, '_params', {})
  rawset(self, '_buffers', {})
  rawset(self, '_children', {})
  rawset(self, '_kind', {})
  rawset(self, '_args', copy_args(table.pack(...)))
  self:init(...)
  return self
end

--- Class:extend([name], [typename]) -> Class
-- A new module class deriving from this one. With a name, the class is registered under it
-- (nn.registry[name]) so that a model using it can be described and rebuilt (nn.build).
-- The constructor Class(...) calls Class:init(...) and records its arguments.
--
--   local MLP = nn.Module:extend('MLP')
--   function MLP:init(n_in, n_hidden, n_out)
--     self.fc1 = nn.Linear(n_in, n_hidden)      -- modules and parameters register themselves
--     self.fc2 = nn.Linear(n_hidden, n_out)
--   end
--   function MLP:forward(x) return self.fc2(nn.F.relu(self.fc1(x))) end
--   model = MLP(784, 128, 10)
function Module.extend(parent, name, typename)
  if name ~= nil and type(name) ~= 'string' then
    error('extend: expected a class name (string), got ' .. type(name), 2)
  end
  local cls = {}
  for _, k in ipairs(metamethods) do cls[k] = rawget(parent, k) end
  cls.__index = cls
  cls._is_module_class = true
  cls._class_name = name
  cls._parent = parent
  cls.__typename = typename or name or ('anonymous ' .. (parent.__typename or 'module'))
  cls.__name = cls.__typename
  setmetatable(cls, { __index = parent, __call = construct })
  if name then
    local old = registry[name]
    if old and rawget(old, '_builtin') and not rawget(cls, '_builtin') and typename == nil then
      error('extend: ' .. name .. ' is a built-in module class; choose another name', 2)
    end
    registry[name] = cls
  end
  return cls
end
setmetatable(Module, { __call = construct })

-- A built-in class, printed as nn.<name> (used by flare's own layers).
function M.class(name, parent)
  local cls = Module.extend(parent or Module, name, 'nn.' .. name)
  rawset(cls, '_builtin', true)
  return cls
end

function Module:init() end

--- m:forward(...) computes the module's output; calling m(...) runs it.
function Module:forward()
  error(self.__typename .. ' has no forward method', 2)
end

function Module.__call(self, ...)
  return self:forward(...)
end

function Module.__tostring(self)
  return require('flare.format').module(self)
end

-- ---------------------------------------------------------------- registration

local lists = { param = '_params', buffer = '_buffers', child = '_children' }

local function register(self, kind, name, value)
  if type(name) ~= 'string' or name == '' or name:find('.', 1, true) then
    error(string.format('bad %s name %s (expected a non-empty string without dots)', kind, tostring(name)), 3)
  end
  local kinds = rawget(self, '_kind')
  local old = kinds[name]
  if old ~= kind then
    if old then
      local list = rawget(self, lists[old])
      for i, n in ipairs(list) do if n == name then table.remove(list, i) break end end
    end
    table.insert(rawget(self, lists[kind]), name)
    kinds[name] = kind
  end
  rawset(self, name, value)
end

-- Assigning a module or a leaf tensor that requires grad to a field registers it as a child
-- or a parameter (as PyTorch's __setattr__); anything else is a plain field.
function Module.__newindex(self, k, v)
  if type(k) == 'string' and rawget(self, '_kind') then
    local kind = rawget(self, '_kind')[k]
    if is_module(v) then
      return register(self, 'child', k, v)
    elseif is_tensor(v) and v:wants_grad() and v.is_leaf then
      return register(self, 'param', k, v)
    elseif kind and v == nil then
      return rawset(self, k, nil)       -- stays registered: a parameter set to nil (bias = nil)
    elseif kind == 'buffer' and is_tensor(v) then
      return rawset(self, k, v)
    end
  end
  rawset(self, k, v)
end

--- m:register_parameter(name, tensor | nil): a parameter (made a leaf requiring grad).
function Module:register_parameter(name, t)
  if t ~= nil then
    if not is_tensor(t) then error('register_parameter: expected a tensor or nil for ' .. tostring(name) .. ', got ' .. type(t), 2) end
    if not is_float(t) then error('register_parameter: parameter ' .. tostring(name) .. ' must be a float tensor, got ' .. t:dtype(), 2) end
    if not t.is_leaf then t = t:detach() end
    if not t:wants_grad() then t:requires_grad() end
  end
  register(self, 'param', name, t)
  return t
end

--- m:register_buffer(name, tensor | nil, [persistent = true]): state that is not trained
-- (running statistics, ...): in the state dict (unless not persistent), converted by to().
function Module:register_buffer(name, t, persistent)
  if t ~= nil and not is_tensor(t) then
    error('register_buffer: expected a tensor or nil for ' .. tostring(name) .. ', got ' .. type(t), 2)
  end
  register(self, 'buffer', name, t)
  if persistent == false then
    rawset(self, '_nonpersistent', rawget(self, '_nonpersistent') or {})
    rawget(self, '_nonpersistent')[name] = true
  end
  return t
end

--- m:add_module(name, module): a named child (also: self.name = module).
function Module:add_module(name, m)
  if m ~= nil and not is_module(m) then
    error('add_module: expected a module for ' .. tostring(name) .. ', got ' .. type(m), 2)
  end
  register(self, 'child', name, m)
  return self
end
Module.register_module = Module.add_module

-- ---------------------------------------------------------------- traversal

--- m:named_children(): the direct sub-modules as {name, child} pairs, in registration order.
function Module:named_children()
  local list = {}
  for _, name in ipairs(rawget(self, '_children')) do
    local c = rawget(self, name)
    if c ~= nil then list[#list + 1] = { name, c } end
  end
  return list
end

--- m:children(): the direct sub-modules, as a list.
function Module:children()
  local list = {}
  for _, e in ipairs(self:named_children()) do list[#list + 1] = e[2] end
  return list
end

local function own(self, listname)
  local list = {}
  for _, name in ipairs(rawget(self, listname)) do
    local t = rawget(self, name)
    if t ~= nil then list[#list + 1] = { name, t } end
  end
  return list
end

--- m:named_modules(): {name, module} pairs for m itself (name '') and every descendant,
-- depth first, each once.
local function collect_modules(m, prefix, out, seen)
  if seen[m] then return end
  seen[m] = true
  out[#out + 1] = { prefix, m }
  for _, e in ipairs(m:named_children()) do
    collect_modules(e[2], prefix == '' and e[1] or (prefix .. '.' .. e[1]), out, seen)
  end
end

function Module:named_modules()
  local out = {}
  collect_modules(self, '', out, {})
  return out
end

--- m:modules(): m and all its descendants, as a list.
function Module:modules()
  local list = {}
  for _, e in ipairs(self:named_modules()) do list[#list + 1] = e[2] end
  return list
end

local function named_tensors(self, listname, opts)
  opts = options(opts, listname == '_params' and 'named_parameters' or 'named_buffers')
  local out, seen = ordered(), {}
  local mods = opts.recurse == false and { { '', self } } or self:named_modules()
  for _, e in ipairs(mods) do
    for _, p in ipairs(own(e[2], listname)) do
      if not seen[p[2]] then
        seen[p[2]] = true
        ordered_set(out, e[1] == '' and p[1] or (e[1] .. '.' .. p[1]), p[2])
      end
    end
  end
  return out
end

--- m:named_parameters([{recurse = true}]): the parameters by PyTorch's names
-- ('features.0.weight'), a table name -> tensor whose pairs() runs in order. A parameter
-- shared by two modules appears once.
function Module:named_parameters(opts) return named_tensors(self, '_params', opts) end

--- m:named_buffers(): the buffers (running statistics, ...) by name.
function Module:named_buffers(opts) return named_tensors(self, '_buffers', opts) end

local function values(map)
  local list = {}
  for _, v in pairs(map) do list[#list + 1] = v end
  return list
end

--- m:parameters(): the trainable tensors, as a list (for an optimizer).
function Module:parameters(opts) return values(self:named_parameters(opts)) end

--- m:buffers(): the buffers, as a list.
function Module:buffers(opts) return values(self:named_buffers(opts)) end

--- m:num_parameters([{trainable = false}]): the number of parameter elements.
function Module:num_parameters(opts)
  opts = options(opts, 'num_parameters')
  local n = 0
  for _, p in ipairs(self:parameters()) do
    if not opts.trainable or p:wants_grad() then n = n + p:numel() end
  end
  return n
end

--- m:apply(fn) calls fn(module) on every descendant and then m; returns m.
function Module:apply(fn)
  if type(fn) ~= 'function' then error('apply: expected a function, got ' .. type(fn), 2) end
  for _, c in ipairs(self:children()) do c:apply(fn) end
  fn(self)
  return self
end

-- ---------------------------------------------------------------- modes and gradients

--- m:train([mode = true]) sets training mode on m and its descendants (dropout active,
-- batch norm using batch statistics); returns m.
function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, 'training', mode and true or false) end
  return self
end

--- m:eval() sets evaluation mode (m:train(false)); returns m.
function Module:eval() return self:train(false) end

--- m:zero_grad() clears the gradients of all parameters (sets them to nil, as PyTorch).
function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p.grad = nil end
  return self
end

--- m:requires_grad_([on = true]) turns gradient tracking of all parameters on or off
-- (freezing a part of a model).
function Module:requires_grad_(on)
  if on == nil then on = true end
  for _, p in ipairs(self:parameters()) do p:requires_grad(on) end
  return self
end

-- ---------------------------------------------------------------- conversion

-- Applies fn to every parameter and buffer (each once, however many modules share it) and
-- moves the result into the same tensor object with x:set_(y), so references taken before
-- (an optimizer's, a user's) follow, as in PyTorch; requires_grad stays, and a gradient
-- is converted with its parameter.
local function convert(self, fn)
  local done = {}
  for _, m in ipairs(self:modules()) do
    for _, listname in ipairs({ '_params', '_buffers' }) do
      for _, e in ipairs(own(m, listname)) do
        local t = e[2]
        if not done[t] then
          done[t] = true
          local g = t.grad
          if g then
            local ng = fn(g)
            if ng ~= g then g:set_(ng) end
          end
          local nt = fn(t)
          if nt ~= t then t:set_(nt) end
        end
      end
    end
  end
  return self
end

-- 'cpu', 'cuda', 'cuda:0'?
local function is_device(s)
  return s == 'cpu' or (type(s) == 'string' and s:match('^cuda[:%d]*$') ~= nil)
end

--- m:to(dtype | device | {dtype=, device=}) moves and/or converts the parameters and
-- buffers in place (floats only change dtype) and returns m. The tensors stay the same
-- objects (x:set_), so an optimizer built before the move keeps working, as in PyTorch;
-- gradients move with their parameters. m:to('cuda'), m:to('float64'), m:to{device = 'cpu'}.
function Module:to(spec)
  local dtype, device
  if type(spec) == 'table' and not is_tensor(spec) then dtype, device = spec.dtype, spec.device
  elseif is_device(spec) then device = spec
  else dtype = spec end
  if dtype ~= nil and dtype ~= 'float32' and dtype ~= 'float64' then
    error("to: expected a float dtype ('float32' or 'float64') or a device ('cpu', 'cuda'), got " .. tostring(dtype), 2)
  end
  if device ~= nil and not is_device(device) then
    error("to: expected a device ('cpu' or 'cuda'), got " .. tostring(device), 2)
  end
  if device ~= nil and device ~= 'cpu' and not flare.cuda.is_available() then
    -- checked before anything moves, so a module is never left half on each device
    error('to: cannot move the module to ' .. device .. ': CUDA is not available (' ..
          tostring(flare.cuda.why_unavailable()) .. ')', 2)
  end
  return flare.no_grad(function()
    return convert(self, function(t)
      local r = t
      if device then r = r:to(device) end
      if dtype and is_float(r) then r = r:to(dtype) end
      return r
    end)
  end)
end

--- m:cuda(): m:to('cuda'), in place (parameters stay the same tensor objects).
function Module:cuda() return self:to('cuda') end

--- m:cpu(): m:to('cpu'), in place.
function Module:cpu() return self:to('cpu') end

--- m:device(): the device of m's first parameter (or buffer): 'cpu' or 'cuda:0'; nil when
-- it has none.
function Module:device()
  for _, listname in ipairs({ '_params', '_buffers' }) do
    for _, e in ipairs(self:named_modules()) do
      local l = own(e[2], listname)
      if l[1] then return l[1][2]:device() end
    end
  end
  return nil
end

--- m:float() / m:double(): m:to('float32') / m:to('float64').
function Module:float() return self:to('float32') end
function Module:double() return self:to('float64') end

-- ---------------------------------------------------------------- state dicts

local function state_entries(self)
  local out = ordered()
  for _, e in ipairs(self:named_modules()) do
    local prefix, m = e[1], e[2]
    local np = rawget(m, '_nonpersistent') or {}
    for _, listname in ipairs({ '_params', '_buffers' }) do
      for _, p in ipairs(own(m, listname)) do
        if not (listname == '_buffers' and np[p[1]]) then
          ordered_set(out, prefix == '' and p[1] or (prefix .. '.' .. p[1]), p[2])
        end
      end
    end
  end
  return out
end

--- m:state_dict(): every parameter and persistent buffer under PyTorch's names (a table
-- name -> tensor whose pairs() runs in order), detached (the tensors share memory with the module).
function Module:state_dict()
  local out = ordered()
  for k, t in pairs(state_entries(self)) do ordered_set(out, k, t:detach()) end
  return out
end

--- m:load_state_dict(sd, [{strict = true}]) copies the tensors of sd into the module's
-- parameters and buffers (converting dtype). Checks everything before copying anything:
-- a size mismatch is always an error; with strict, so are missing and unexpected keys.
-- Returns {missing_keys = {...}, unexpected_keys = {...}}.
function Module:load_state_dict(sd, opts)
  if type(sd) ~= 'table' then error('load_state_dict: expected a table name -> tensor, got ' .. type(sd), 2) end
  opts = options(opts, 'load_state_dict')
  local strict = opts.strict ~= false
  local own_state = state_entries(self)
  local missing, unexpected, mismatched = {}, {}, {}
  for name, t in pairs(own_state) do
    local v = sd[name]
    if v == nil then
      missing[#missing + 1] = name
    elseif not is_tensor(v) then
      error(string.format('load_state_dict: entry %s: expected a tensor, got %s', name, type(v)), 2)
    elseif not same_shape(t, v) then
      mismatched[#mismatched + 1] = string.format('%s: expected %s, got %s', name, shape_text(t), shape_text(v))
    end
  end
  for _, k in ipairs(M.keys(sd)) do
    if own_state[k] == nil then unexpected[#unexpected + 1] = tostring(k) end
  end
  local problems = {}
  if #mismatched > 0 then problems[#problems + 1] = 'size mismatch for ' .. table.concat(mismatched, '; ') end
  if strict and #missing > 0 then problems[#problems + 1] = 'missing keys: ' .. table.concat(missing, ', ') end
  if strict and #unexpected > 0 then problems[#problems + 1] = 'unexpected keys: ' .. table.concat(unexpected, ', ') end
  if #problems > 0 then
    error('load_state_dict: the state dict does not match ' .. self.__typename .. ': ' .. table.concat(problems, '; '), 2)
  end
  flare.no_grad(function()
    for name, t in pairs(own_state) do
      local v = sd[name]
      if v ~= nil then t:copy_(v) end
    end
  end)
  return { missing_keys = missing, unexpected_keys = unexpected }
end

-- ---------------------------------------------------------------- copies

--- m:clone(): a deep copy of m, with its own parameters (same values) and buffers.
function Module:clone()
  local map = {}
  local function copy(v)
    if is_tensor(v) then
      if map[v] then return map[v] end
      local c = flare.no_grad(function() return v:detach():clone() end)
      if v:wants_grad() then c:requires_grad() end
      map[v] = c
      return c
    end
    if type(v) ~= 'table' then return v end
    if map[v] then return map[v] end
    local mt = getmetatable(v)
    if mt and not is_module(v) and mt ~= Ordered then return v end   -- classes and other objects: shared
    local c = {}
    map[v] = c
    for k, x in next, v do rawset(c, copy(k), copy(x)) end
    if order_of[v] then order_of[c] = copy(order_of[v]) end
    return setmetatable(c, mt)
  end
  return copy(self)
end

-- ---------------------------------------------------------------- descriptions

--- m:describe(): a declarative description {type = 'Linear', args = {...}} of m's
-- architecture (no weights, no code): the class name in nn.registry and the arguments it
-- was built with, where sub-modules are themselves descriptions. nn.build(desc) rebuilds.
function Module:describe()
  local cls = getmetatable(self)
  local name = rawget(cls, '_class_name')
  if not name or registry[name] ~= cls then
    error('describe: ' .. tostring(self.__typename) .. ' is not a registered module class ' ..
          "(create it with nn.Module:extend('Name'))", 2)
  end
  local args = self:_describe_args()
  local function encode(v, where)
    if is_module(v) then return { module = v:describe() } end
    if is_tensor(v) then
      local t = v:detach():contiguous()
      return { tensor = { dtype = t:dtype(), shape = t:size(), data = t:reshape(t:numel()):totable() } }
    end
    local tv = type(v)
    if tv == 'number' or tv == 'string' or tv == 'boolean' then return v end
    if tv == 'table' and getmetatable(v) == nil then
      local c = {}
      for k, x in pairs(v) do
        if type(k) ~= 'string' and math.type(k) ~= 'integer' then
          error('describe: ' .. name .. ': argument ' .. where .. ' has a key of type ' .. type(k), 0)
        end
        c[k] = encode(x, where)
      end
      return { value = c }
    end
    error('describe: ' .. name .. ': argument ' .. where .. ' is a ' .. tv .. ', which cannot be saved', 0)
  end
  local out = { n = args.n or #args }
  for i = 1, out.n do
    if args[i] ~= nil then out[i] = encode(args[i], tostring(i)) end
  end
  return { type = name, args = out }
end

-- The constructor arguments to describe m with (containers override: their children).
function Module:_describe_args()
  return rawget(self, '_args') or { n = 0 }
end

--- nn.build(desc): rebuilds a module from m:describe()'s description (the classes
-- must be registered: built-in ones are; user classes once their file has run).
function M.build(desc)
  if type(desc) ~= 'table' or type(desc.type) ~= 'string' then
    error('nn.build: expected a description {type = name, args = {...}}, got ' .. type(desc), 2)
  end
  local cls = registry[desc.type]
  if not cls then error('nn.build: unknown module class ' .. desc.type .. ' (is the file defining it loaded?)', 2) end
  local function decode(v)
    if type(v) ~= 'table' then return v end
    if v.module then return M.build(v.module) end
    if v.tensor then
      local e = v.tensor
      local n = 1
      for _, s in ipairs(e.shape) do n = n * s end
      if #e.shape == 0 then return flare.tensor(e.data[1] or e.data, { dtype = e.dtype }) end
      if n == 0 then return flare.zeros(e.shape, { dtype = e.dtype }) end
      return flare.tensor(e.data, { dtype = e.dtype }):reshape(e.shape)
    end
    local c = {}
    for k, x in pairs(v.value or {}) do c[k] = decode(x) end
    return c
  end
  local args = desc.args or {}
  local n = args.n or #args
  local list = {}
  for i = 1, n do list[i] = decode(args[i]) end
  return cls(table.unpack(list, 1, n))
end

return M
