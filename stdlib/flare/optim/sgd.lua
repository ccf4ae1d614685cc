-- flare.optim.sgd: stochastic gradient descent with momentum, dampening, Nesterov momentum
-- and weight decay (L2), as torch.optim.SGD. The update is one fused C call per group.
local flare = require 'flare.core'
local base = require 'flare.optim.optimizer'

local check = base.check

local keys = { 'momentum_buffer' }

--- optim.SGD(params, {lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false})
-- Stochastic gradient descent, as torch.optim.SGD: with momentum, buf = momentum * buf +
-- (1 - dampening) * g and p = p - lr * buf (or g + momentum * buf with nesterov); weight_decay
-- adds weight_decay * p to the gradient. params: a list of tensors or of parameter groups.
-- Example: opt = optim.SGD(model:parameters(), {lr = 0.01, momentum = 0.9})
local SGD = base.Optimizer.extend('SGD', {
  defaults = { lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false },
  order = { 'lr', 'momentum', 'dampening', 'weight_decay', 'nesterov', 'maximize' },
  state_keys = keys,
})

function SGD.validate(cls, g)
  check.number(cls, 'lr', g.lr, 0)
  check.number(cls, 'momentum', g.momentum, 0)
  check.number(cls, 'dampening', g.dampening)
  check.number(cls, 'weight_decay', g.weight_decay, 0)
  check.boolean(cls, 'nesterov', g.nesterov)
  check.boolean(cls, 'maximize', g.maximize)
  if g.nesterov and (g.momentum <= 0 or g.dampening ~= 0) then
    base.raise(string.format('%s: nesterov needs momentum > 0 and dampening 0 (got momentum %g, dampening %g)', cls,
      g.momentum, g.dampening))
  end
end

function SGD:update(group, params, grads)
  if group.momentum == 0 then
    flare._optim_sgd_step(params, grads, nil, group)
    return
  end
  local lists = self:state_lists(params, keys)
  flare._optim_sgd_step(params, grads, lists[1], group)
  self:store_lists(params, keys, lists)
end

return { SGD = SGD }
