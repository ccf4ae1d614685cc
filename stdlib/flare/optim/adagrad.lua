-- flare.optim.adagrad: Adagrad (learning-rate decay, weight decay, an initial accumulator
-- value), as torch.optim.Adagrad. Its state is created with the optimizer, as PyTorch does.
local flare = require 'flare.core'
local base = require 'flare.optim.optimizer'

local check = base.check

local keys = { 'sum' }

--- optim.Adagrad(params, {lr = 1e-2, lr_decay = 0, weight_decay = 0, initial_accumulator_value = 0, eps = 1e-10, maximize = false})
-- Adagrad, as torch.optim.Adagrad: each element's step shrinks with the sum of its squared
-- gradients (state: sum, step).
local Adagrad = base.Optimizer.extend('Adagrad', {
  defaults = { lr = 1e-2, lr_decay = 0, weight_decay = 0, initial_accumulator_value = 0, eps = 1e-10,
               maximize = false },
  order = { 'lr', 'lr_decay', 'weight_decay', 'initial_accumulator_value', 'eps', 'maximize' },
  state_keys = keys,
})

function Adagrad.validate(cls, g)
  check.number(cls, 'lr', g.lr, 0)
  check.number(cls, 'lr_decay', g.lr_decay, 0)
  check.number(cls, 'weight_decay', g.weight_decay, 0)
  check.number(cls, 'initial_accumulator_value', g.initial_accumulator_value, 0)
  check.number(cls, 'eps', g.eps, 0)
  check.boolean(cls, 'maximize', g.maximize)
end

function Adagrad:init_state(group)
  for _, p in ipairs(group.params) do
    self.state[p] = { step = 0, sum = flare.full_like(p, group.initial_accumulator_value) }
  end
end

function Adagrad:update(group, params, grads)
  local steps = self:bump_steps(params)
  local lists = self:state_lists(params, keys)
  flare._optim_adagrad_step(params, grads, lists[1], steps, group)
  self:store_lists(params, keys, lists)
end

return { Adagrad = Adagrad }
