-- flare.nn: neural-network modules (nn.Linear, nn.Sequential, nn.LSTM, ...), their
-- functional forms (nn.functional, also nn.F), losses, initialisers (nn.init) and
-- utilities (nn.utils). Torch7's shape, PyTorch's semantics: modules are Lua objects,
-- calling one runs its forward, state dicts use PyTorch's names.
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'

local nn = {}

nn.Module = module.Module
nn.registry = module.registry
nn.build = module.build
nn.is_module = module.is_module
nn.keys = module.keys

local families = {
  'flare.nn.containers', 'flare.nn.linear', 'flare.nn.activation', 'flare.nn.dropout',
  'flare.nn.embedding', 'flare.nn.norm', 'flare.nn.conv', 'flare.nn.rnn', 'flare.nn.attention',
  'flare.nn.losses',
}
for _, name in ipairs(families) do
  for k, v in pairs(require(name)) do
    if type(k) == 'string' and k:sub(1, 1) ~= '_' and k ~= 'functions' and k ~= 'short' and k ~= 'param'
       and k ~= 'options' and k ~= 'check_size' then
      nn[k] = v
    end
  end
end

-- the losses as functions: in nn.functional under PyTorch's names, and in nn under the
-- short names (nn.cross_entropy, nn.mse, ...)
local losses = require 'flare.nn.losses'
for k, v in pairs(losses.functions) do F[k] = v end
for k, v in pairs(losses.short) do nn[k] = v end

nn.functional = F
nn.F = F
nn.init = require 'flare.nn.weight_init'
nn.utils = require 'flare.nn.utils'

--- nn.class(name, [parent = nn.Module]): a new module class registered under name, the
-- same as parent:extend(name).
function nn.class(name, parent)
  if parent ~= nil and not (type(parent) == 'table' and rawget(parent, '_is_module_class')) then
    error('nn.class: expected a module class as the parent, got ' .. type(parent), 2)
  end
  if type(name) ~= 'string' then error('nn.class: expected a class name (string), got ' .. type(name), 2) end
  return (parent or module.Module):extend(name)
end

return nn
