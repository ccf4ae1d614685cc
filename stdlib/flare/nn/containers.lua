-- flare.nn.containers: Sequential, ModuleList and ModuleDict. Sequential and ModuleList
-- hold their children at integer keys (m[1], #m, ipairs(m)) and name them '0', '1', ... as
-- PyTorch does, so state dicts interoperate (m[1] is the child named '0').
local module = require 'flare.nn.module'

local Module, is_module = module.Module, module.is_module
local M = {}

-- ---------------------------------------------------------------- lists of modules

--- nn.ModuleList([{m1, m2, ...}]): a list of modules whose parameters belong to the module
-- holding it; l[i] (1-based), #l, ipairs(l), l:append(m), l:insert(i, m), l:remove(i).
local List = module.class('ModuleList')

local function check_module(m, where, i)
  if not is_module(m) then
    error(string.format('%s: expected a module%s, got %s', where, i and (' at position ' .. i) or '',
      type(m) == 'table' and 'a table that is not a module' or type(m)), 3)
  end
end

-- Accepts {m1, m2, ...} or m1, m2, ... (and nothing).
local function module_list(where, ...)
  local first = ...
  local list
  if select('#', ...) == 1 and type(first) == 'table' and not is_module(first) then
    list = first
  else
    list = { ... }
  end
  for i = 1, #list do check_module(list[i], where, i) end
  return list
end

function List:init(...)
  for _, m in ipairs(module_list(self.__typename, ...)) do rawset(self, #self + 1, m) end
end

function List:named_children()
  local list = {}
  for i = 1, #self do list[i] = { tostring(i - 1), rawget(self, i) } end
  return list
end

-- Integer keys hold children: keep them out of the name-based registration.
function List.__newindex(self, k, v)
  if math.type(k) == 'integer' then
    if v == nil then error('use :remove(i) to take a module out of a ' .. self.__typename, 2) end
    check_module(v, self.__typename, k)
    if k < 1 or k > #self + 1 then
      error(string.format('%s: index %d out of range (1..%d)', self.__typename, k, #self + 1), 2)
    end
    return rawset(self, k, v)
  end
  return Module.__newindex(self, k, v)
end

function List:_describe_args()
  local list = {}
  for i = 1, #self do list[i] = rawget(self, i) end
  return { list, n = 1 }
end

--- l:append(m): adds m at the end; returns l.
function List:append(m)
  check_module(m, 'append')
  rawset(self, #self + 1, m)
  return self
end

--- l:extend({m, ...}): appends several modules; returns l. (On the class itself,
-- nn.ModuleList:extend('Name') derives a new class, as for every module class.)
function List:extend(list, ...)
  if rawget(self, '_is_module_class') then return Module.extend(self, list, ...) end
  if type(list) ~= 'table' or is_module(list) then
    error('extend: expected a list of modules, got ' .. (is_module(list) and 'a module' or type(list)), 2)
  end
  for i, m in ipairs(list) do check_module(m, 'extend', i) end
  for _, m in ipairs(list) do rawset(self, #self + 1, m) end
  return self
end

--- l:insert(i, m): inserts m at position i (1-based); returns l.
function List:insert(i, m)
  check_module(m, 'insert')
  if math.type(i) ~= 'integer' or i < 1 or i > #self + 1 then
    error(string.format('insert: position %s out of range (1..%d)', tostring(i), #self + 1), 2)
  end
  for j = #self, i, -1 do rawset(self, j + 1, rawget(self, j)) end
  rawset(self, i, m)
  return self
end

--- l:remove([i]): takes the module at i (the last by default) out and returns it.
function List:remove(i)
  local n = #self
  i = i or n
  if math.type(i) ~= 'integer' or i < 1 or i > n then
    error(string.format('remove: position %s out of range (1..%d)', tostring(i), n), 2)
  end
  local m = rawget(self, i)
  for j = i, n - 1 do rawset(self, j, rawget(self, j + 1)) end
  rawset(self, n, nil)
  return m
end

--- l:get(i): the module at position i (1-based), as Torch7's get.
function List:get(i) return rawget(self, i) end

--- l:size(): the number of modules (also #l).
function List:size() return #self end

function List:forward()
  error('nn.ModuleList has no forward: index it (l[i](x)) in the forward of a module that holds it', 2)
end

M.ModuleList = List

--- nn.Sequential {m1, m2, ...} (or nn.Sequential(m1, m2, ...)): runs its modules one after
-- the other, each on the previous one's output. seq:add(m) appends (Torch7).
local Sequential = module.class('Sequential', List)
M.Sequential = Sequential

--- seq:add(m): appends m; returns seq.
function Sequential:add(m)
  check_module(m, 'add')
  rawset(self, #self + 1, m)
  return self
end

function Sequential:forward(x, ...)
  local n = #self
  if n == 0 then return x, ... end
  x = rawget(self, 1)(x, ...)
  for i = 2, n do x = rawget(self, i)(x) end
  return x
end

-- ---------------------------------------------------------------- dictionaries

--- nn.ModuleDict([{name = m, ...} | {{name, m}, ...}]): modules by name. From a map the
-- names are taken in sorted order; from a list of pairs, in the list's order. d.name or
-- d['name'] reads a module, d.name = m adds one.
local Dict = module.class('ModuleDict')
M.ModuleDict = Dict

function Dict:init(entries)
  if entries == nil then return end
  if type(entries) ~= 'table' or is_module(entries) then
    error('nn.ModuleDict: expected a table of modules, got ' .. type(entries), 3)
  end
  if #entries > 0 then
    for i, e in ipairs(entries) do
      if type(e) ~= 'table' or type(e[1]) ~= 'string' then
        error('nn.ModuleDict: expected {name, module} pairs, entry ' .. i .. ' is not one', 3)
      end
      check_module(e[2], 'nn.ModuleDict', i)
      self:add_module(e[1], e[2])
    end
  else
    local keys = {}
    for k in pairs(entries) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      check_module(entries[k], 'nn.ModuleDict')
      self:add_module(k, entries[k])
    end
  end
end

--- d:keys(): the names, in order.
function Dict:keys()
  local list = {}
  for _, e in ipairs(self:named_children()) do list[#list + 1] = e[1] end
  return list
end

--- d:items(): the {name, module} pairs, in order.
function Dict:items() return self:named_children() end

function Dict:_describe_args()
  return { self:named_children(), n = 1 }
end

function Dict:forward()
  error('nn.ModuleDict has no forward: index it (d.name(x)) in the forward of a module that holds it', 2)
end

return M
