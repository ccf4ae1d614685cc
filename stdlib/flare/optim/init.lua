-- flare.optim: optimizers (SGD, Adam, AdamW, Adagrad, RMSprop, Adadelta) with parameter
-- groups and state dicts, learning-rate schedulers (optim.lr_scheduler), and gradient
-- clipping, with torch.optim's semantics. Each step updates all parameters of a group in
-- one fused C call.
--
--   opt = optim.Adam(model:parameters(), {lr = 1e-3})
--   sched = optim.lr_scheduler.CosineAnnealingLR(opt, {T_max = 100})
--   opt:zero_grad(); loss:backward(); opt:step(); sched:step()
local flare = require 'flare.core'
local base = require 'flare.optim.optimizer'

local optim = {}

optim.Optimizer = base.Optimizer

for _, family in ipairs { 'sgd', 'adam', 'adagrad', 'rmsprop', 'adadelta' } do
  for name, cls in pairs(require('flare.optim.' .. family)) do optim[name] = cls end
end

local clip = require 'flare.optim.clip'
optim.clip_grad_norm_ = clip.clip_grad_norm_
optim.clip_grad_value_ = clip.clip_grad_value_

local lr_scheduler = require 'flare.optim.lr_scheduler'
optim.lr_scheduler = lr_scheduler
-- the schedulers also sit beside the optimizers: optim.StepLR(opt, ...)
for name, cls in pairs(lr_scheduler) do
  if type(name) == 'string' and name:match('^%u') then optim[name] = cls end
end

if flare.doc then
  flare.doc(optim, 'optim: optimizers (SGD, Adam, AdamW, Adagrad, RMSprop, Adadelta), learning-rate ' ..
    'schedulers (optim.lr_scheduler) and gradient clipping, as torch.optim.\n' ..
    'Example: opt = optim.Adam(model:parameters(), {lr = 1e-3}); ... opt:zero_grad(); loss:backward(); opt:step()')
end

return optim
