-- flare.optim.rmsprop: RMSprop (momentum, centered, weight decay), as torch.optim.RMSprop.
local flare = require 'flare.core'
local base = require 'flare.optim.optimizer'

local check = base.check

local keys = { 'square_avg', 'grad_avg', 'momentum_buffer' }

--- optim.RMSprop(params, {lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0, centered = false, maximize = false})
-- RMSprop, as torch.optim.RMSprop: divides the gradient by a running root mean square
-- (centered: by the running standard deviation), optionally with momentum.
local RMSprop = base.Optimizer.extend('RMSprop', {
  defaults = { lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0, centered = false,
               maximize = false },
  order = { 'lr', 'alpha', 'eps', 'weight_decay', 'momentum', 'centered', 'maximize' },
  state_keys = keys,
})

function RMSprop.validate(cls, g)
  check.number(cls, 'lr', g.lr, 0)
  check.number(cls, 'alpha', g.alpha, 0)
  check.number(cls, 'eps', g.eps, 0)
  check.number(cls, 'weight_decay', g.weight_decay, 0)
  check.number(cls, 'momentum', g.momentum, 0)
  check.boolean(cls, 'centered', g.centered)
  check.boolean(cls, 'maximize', g.maximize)
end

function RMSprop:update(group, params, grads)
  self:bump_steps(params)
  local lists = self:state_lists(params, keys)
  if not group.centered then lists[2] = nil end
  if not (group.momentum > 0) then lists[3] = nil end
  flare._optim_rmsprop_step(params, grads, lists[1], lists[2], lists[3], group)
  self:store_lists(params, keys, lists)
end

return { RMSprop = RMSprop }
