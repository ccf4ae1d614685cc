-- flare.optim.adam: Adam (with AMSGrad and L2 weight decay) and AdamW (decoupled weight
-- decay), as torch.optim.Adam / AdamW. The update is one fused C call per group; bias
-- corrections use each parameter's own step count.
local flare = require 'flare.core'
local base = require 'flare.optim.optimizer'

local check = base.check

local function validate(cls, g)
  check.number(cls, 'lr', g.lr, 0)
  if type(g.betas) ~= 'table' or type(g.betas[1]) ~= 'number' or type(g.betas[2]) ~= 'number' then
    base.raise(string.format('%s: option betas must be a table of two numbers {beta1, beta2}, got %s', cls,
      base.fmt_value(g.betas)))
  end
  check.number(cls, 'beta1 (betas[1])', g.betas[1], 0, 1, false, true)
  check.number(cls, 'beta2 (betas[2])', g.betas[2], 0, 1, false, true)
  check.number(cls, 'eps', g.eps, 0)
  check.number(cls, 'weight_decay', g.weight_decay, 0)
  check.boolean(cls, 'amsgrad', g.amsgrad)
  check.boolean(cls, 'maximize', g.maximize)
end

local keys = { 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq' }

local function make(name, weight_decay, fused)
  local cls = base.Optimizer.extend(name, {
    defaults = { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = weight_decay, amsgrad = false,
                 maximize = false },
    order = { 'lr', 'betas', 'eps', 'weight_decay', 'amsgrad', 'maximize' },
    state_keys = keys,
    validate = validate,
  })
  function cls:update(group, params, grads)
    local steps = self:bump_steps(params)
    local lists = self:state_lists(params, keys)
    if not group.amsgrad then lists[3] = nil end
    fused(params, grads, lists[1], lists[2], lists[3], steps, group)
    self:store_lists(params, keys, lists)
  end
  return cls
end

--- optim.Adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0, amsgrad = false, maximize = false})
-- Adam, as torch.optim.Adam: steps of lr * m / (sqrt(v) + eps) from bias-corrected running
-- averages of the gradient (m) and its square (v); amsgrad uses the largest v so far;
-- weight_decay adds weight_decay * p to the gradient (L2).
-- Example: opt = optim.Adam(model:parameters(), {lr = 3e-4})
local Adam = make('Adam', 0, flare._optim_adam_step)

--- optim.AdamW(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 1e-2, amsgrad = false, maximize = false})
-- AdamW, as torch.optim.AdamW: Adam with decoupled weight decay (p = p * (1 - lr *
-- weight_decay) before the Adam step, instead of L2 through the gradient).
local AdamW = make('AdamW', 1e-2, flare._optim_adamw_step)

return { Adam = Adam, AdamW = AdamW }
