-- flare.optim.adadelta: Adadelta (with weight decay), as torch.optim.Adadelta.
local flare = require 'flare.core'
local base = require 'flare.optim.optimizer'

local check = base.check

local keys = { 'square_avg', 'acc_delta' }

--- optim.Adadelta(params, {lr = 1.0, rho = 0.9, eps = 1e-6, weight_decay = 0, maximize = false})
-- Adadelta, as torch.optim.Adadelta: steps scaled by running averages of squared gradients
-- and squared updates.
local Adadelta = base.Optimizer.extend('Adadelta', {
  defaults = { lr = 1.0, rho = 0.9, eps = 1e-6, weight_decay = 0, maximize = false },
  order = { 'lr', 'rho', 'eps', 'weight_decay', 'maximize' },
  state_keys = keys,
})

function Adadelta.validate(cls, g)
  check.number(cls, 'lr', g.lr, 0)
  check.number(cls, 'rho', g.rho, 0, 1)
  check.number(cls, 'eps', g.eps, 0)
  check.number(cls, 'weight_decay', g.weight_decay, 0)
  check.boolean(cls, 'maximize', g.maximize)
end

function Adadelta:update(group, params, grads)
  self:bump_steps(params)
  local lists = self:state_lists(params, keys)
  flare._optim_adadelta_step(params, grads, lists[1], lists[2], group)
  self:store_lists(params, keys, lists)
end

return { Adadelta = Adadelta }
