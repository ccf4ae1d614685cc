-- flare.nn.losses: the loss functions (also in nn.functional and under short names in nn)
-- and their module forms (nn.MSELoss, ...), with reduction 'mean', 'sum' or 'none' as
-- PyTorch defines them. Class targets are 1-based.
local flare = require 'flare.core'
local module = require 'flare.nn.module'

local M = {}
local L = {}          -- the functions
M.functions = L
local is_tensor = flare.is_tensor

local function reduction_of(opts, fname, allow_batchmean)
  local r = type(opts) == 'table' and opts.reduction or (type(opts) == 'string' and opts) or 'mean'
  if r == 'mean' or r == 'sum' or r == 'none' or (allow_batchmean and r == 'batchmean') then return r end
  error(string.format("%s: reduction must be 'mean', 'sum' or 'none'%s, got %s", fname,
    allow_batchmean and " (or 'batchmean')" or '', tostring(r)), 3)
end

local function reduce(x, r)
  if r == 'mean' then return x:mean() end
  if r == 'sum' then return x:sum() end
  return x
end

local function check_pair(fname, input, target)
  if not is_tensor(input) then error(fname .. ': expected a tensor input, got ' .. type(input), 3) end
  if not is_tensor(target) then error(fname .. ': expected a tensor target, got ' .. type(target), 3) end
end

local function check_same(fname, input, target)
  check_pair(fname, input, target)
  local a, b = input:size(), target:size()
  local same = #a == #b
  for i = 1, #a do if a[i] ~= b[i] then same = false end end
  if not same then
    error(string.format('%s: target of shape [%s] does not match input of shape [%s]', fname,
      table.concat(b, ', '), table.concat(a, ', ')), 3)
  end
end

--- F.mse_loss(input, target, [{reduction = 'mean'}]): the squared error, reduced.
function L.mse_loss(input, target, opts)
  check_same('mse_loss', input, target)
  return flare.mse_loss(input, target, { reduction = reduction_of(opts, 'mse_loss') })
end

--- F.l1_loss(input, target, [{reduction}]): the absolute error, reduced.
function L.l1_loss(input, target, opts)
  check_same('l1_loss', input, target)
  return reduce((input - target):abs(), reduction_of(opts, 'l1_loss'))
end

--- F.smooth_l1_loss(input, target, [{reduction, beta = 1}]): 0.5 d^2 / beta where
-- |d| < beta, else |d| - 0.5 beta.
function L.smooth_l1_loss(input, target, opts)
  check_same('smooth_l1_loss', input, target)
  local r = reduction_of(opts, 'smooth_l1_loss')
  local beta = type(opts) == 'table' and opts.beta or 1.0
  local d = (input - target):abs()
  if beta == 0 then return reduce(d, r) end
  local small = d:clamp_max(beta)    -- the quadratic branch, kept finite where it is not used
  return reduce(flare.where(d:lt(beta), small * small * (0.5 / beta), d - 0.5 * beta), r)
end

--- F.huber_loss(input, target, [{reduction, delta = 1}]): 0.5 d^2 where |d| < delta, else
-- delta * (|d| - 0.5 delta).
function L.huber_loss(input, target, opts)
  check_same('huber_loss', input, target)
  local r = reduction_of(opts, 'huber_loss')
  local delta = type(opts) == 'table' and opts.delta or 1.0
  local d = (input - target):abs()
  local small = d:clamp_max(delta)
  return reduce(flare.where(d:lt(delta), small * small * 0.5, (d - 0.5 * delta) * delta), r)
end

local function is_float(t) local d = t:dtype() return d == 'float32' or d == 'float64' end

-- (N, C, d1, ...) -> (N * d1 * ..., C), and the target likewise
local function classes_last(x)
  local nd = x:dim()
  local perm = { 1 }
  for i = 3, nd do perm[#perm + 1] = i end
  perm[#perm + 1] = 2
  return x:permute(perm):reshape(-1, x:size(2))
end

--- F.cross_entropy(input, target, [{weight, ignore_index = -100, label_smoothing = 0,
-- reduction}]): softmax cross-entropy of logits (N, C) or (N, C, d1, ...) against 1-based
-- class indices (N) / (N, d1, ...), or against class probabilities shaped like input.
function L.cross_entropy(input, target, opts)
  check_pair('cross_entropy', input, target)
  local r = reduction_of(opts, 'cross_entropy')
  opts = type(opts) == 'table' and opts or {}
  if is_float(target) then
    if target:dim() ~= input:dim() then
      error(string.format('cross_entropy: class-probability target of shape [%s] does not match input of shape [%s]',
        table.concat(target:size(), ', '), table.concat(input:size(), ', ')), 2)
    end
    local cdim = input:dim() == 1 and 1 or 2
    local C = input:size(cdim)
    local ls = opts.label_smoothing or 0
    if ls > 0 then target = target * (1 - ls) + ls / C end
    local terms = flare.log_softmax(input, cdim) * target
    if opts.weight then
      local shape = {}
      for i = 1, input:dim() do shape[i] = 1 end
      shape[cdim] = C
      terms = terms * opts.weight:reshape(shape)
    end
    local loss = -terms:sum(cdim)
    if r == 'mean' then return loss:sum() / (input:dim() == 1 and 1 or input:numel() // C) end
    return reduce(loss, r)
  end
  local fused = { reduction = r, weight = opts.weight, ignore_index = opts.ignore_index,
                  label_smoothing = opts.label_smoothing }
  return flare.cross_entropy(input, target, fused)
end

--- F.nll_loss(input, target, [{weight, ignore_index = -100, reduction}]): the negative
-- log-likelihood of 1-based class indices, input holding log-probabilities (N, C, ...).
function L.nll_loss(input, target, opts)
  check_pair('nll_loss', input, target)
  local r = reduction_of(opts, 'nll_loss')
  opts = type(opts) == 'table' and opts or {}
  if input:dim() > 2 then
    local tshape = target:size()
    local loss = flare.nll_loss(classes_last(input), target:reshape(-1),
      { reduction = r, weight = opts.weight, ignore_index = opts.ignore_index })
    if r == 'none' then return loss:reshape(tshape) end
    return loss
  end
  return flare.nll_loss(input, target, { reduction = r, weight = opts.weight, ignore_index = opts.ignore_index })
end

--- F.binary_cross_entropy(input, target, [{weight, reduction}]): -(t log p + (1 - t)
-- log(1 - p)) for probabilities p (the logs clamped at -100, as PyTorch).
function L.binary_cross_entropy(input, target, opts)
  check_same('binary_cross_entropy', input, target)
  local r = reduction_of(opts, 'binary_cross_entropy')
  local w = type(opts) == 'table' and opts.weight or nil
  local loss = -(target * input:log():clamp_min(-100) + (1 - target) * (1 - input):log():clamp_min(-100))
  if w then loss = loss * w end
  return reduce(loss, r)
end

--- F.binary_cross_entropy_with_logits(input, target, [{weight, pos_weight, reduction}]):
-- sigmoid and binary cross-entropy in one stable step.
function L.binary_cross_entropy_with_logits(input, target, opts)
  check_same('binary_cross_entropy_with_logits', input, target)
  local r = reduction_of(opts, 'binary_cross_entropy_with_logits')
  opts = type(opts) == 'table' and opts or {}
  return flare.binary_cross_entropy_with_logits(input, target,
    { reduction = r, weight = opts.weight, pos_weight = opts.pos_weight })
end

--- F.kl_div(input, target, [{reduction = 'mean', log_target = false}]): the pointwise
-- KL divergence target * (log target - input), input holding log-probabilities.
-- reduction 'batchmean' divides the sum by the batch size (the true KL divergence).
function L.kl_div(input, target, opts)
  check_same('kl_div', input, target)
  local r = reduction_of(opts, 'kl_div', true)
  local log_target = type(opts) == 'table' and opts.log_target
  local loss
  if log_target then
    loss = target:exp() * (target - input)
  else
    -- xlogy: 0 where target is 0; log of a safe value so no NaN reaches backward
    local pos = target:gt(0)
    local safe = flare.where(pos, target, 1)
    loss = target * safe:log() - target * input
  end
  if r == 'batchmean' then
    return loss:sum() / (input:dim() > 0 and input:size(1) or 1)
  end
  return reduce(loss, r)
end

--- F.cosine_embedding_loss(x1, x2, y, [{margin = 0, reduction}]): 1 - cos(x1, x2) where
-- y = 1, max(0, cos(x1, x2) - margin) where y = -1; x1, x2 are (N, D) or (D).
function L.cosine_embedding_loss(x1, x2, y, opts)
  check_same('cosine_embedding_loss', x1, x2)
  if not is_tensor(y) then error('cosine_embedding_loss: expected a tensor target, got ' .. type(y), 2) end
  local r = reduction_of(opts, 'cosine_embedding_loss')
  local margin = type(opts) == 'table' and opts.margin or 0
  local eps = 1e-12
  local dim = x1:dim()
  local prod = (x1 * x2):sum(dim)
  local m1 = (x1 * x1):sum(dim) + eps
  local m2 = (x2 * x2):sum(dim) + eps
  local cos = prod / (m1 * m2):sqrt()
  local zeros = flare.zeros_like(cos)
  local pos = flare.where(y:eq(1), 1 - cos, zeros)
  local neg = flare.where(y:eq(-1), (cos - margin):clamp_min(0), zeros)
  return reduce(pos + neg, r)
end

--- F.margin_ranking_loss(x1, x2, y, [{margin = 0, reduction}]): max(0, -y (x1 - x2) + margin).
function L.margin_ranking_loss(x1, x2, y, opts)
  check_same('margin_ranking_loss', x1, x2)
  if not is_tensor(y) then error('margin_ranking_loss: expected a tensor target, got ' .. type(y), 2) end
  local r = reduction_of(opts, 'margin_ranking_loss')
  local margin = type(opts) == 'table' and opts.margin or 0
  return reduce((-y * (x1 - x2) + margin):clamp_min(0), r)
end

-- Short names, as the issue lists them: nn.mse, nn.cross_entropy, ...
M.short = {
  mse = L.mse_loss, l1 = L.l1_loss, smooth_l1 = L.smooth_l1_loss, huber = L.huber_loss,
  cross_entropy = L.cross_entropy, nll = L.nll_loss, bce = L.binary_cross_entropy,
  bce_with_logits = L.binary_cross_entropy_with_logits, kl_div = L.kl_div,
  cosine_embedding = L.cosine_embedding_loss, margin_ranking = L.margin_ranking_loss,
  mse_loss = L.mse_loss, l1_loss = L.l1_loss, smooth_l1_loss = L.smooth_l1_loss,
  huber_loss = L.huber_loss, nll_loss = L.nll_loss, binary_cross_entropy = L.binary_cross_entropy,
  binary_cross_entropy_with_logits = L.binary_cross_entropy_with_logits,
  cosine_embedding_loss = L.cosine_embedding_loss, margin_ranking_loss = L.margin_ranking_loss,
}

-- ---------------------------------------------------------------- modules
-- nn.MSELoss([{reduction = 'mean', ...}]) etc.: m(input, target) calls the function with the
-- options given at construction. A `weight` option is a buffer (in the state dict, as PyTorch).

local function loss_module(name, fn, nargs, extra_repr_keys)
  local cls = module.class(name)
  function cls:init(opts)
    if opts ~= nil and type(opts) ~= 'table' then
      error('nn.' .. name .. ': expected an options table, got ' .. type(opts), 3)
    end
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    if opts and opts.weight ~= nil then self:register_buffer('weight', opts.weight) end
    if opts and opts.pos_weight ~= nil then self:register_buffer('pos_weight', opts.pos_weight) end
    self.reduction = reduction_of(o, 'nn.' .. name, name == 'KLDivLoss')
    rawset(self, '_opts', o)
  end
  local function options(self)
    local o = {}
    for k, v in pairs(rawget(self, '_opts')) do o[k] = v end
    o.weight, o.pos_weight, o.reduction = rawget(self, 'weight'), rawget(self, 'pos_weight'), self.reduction
    return o
  end
  if nargs == 3 then
    function cls:forward(a, b, y) return fn(a, b, y, options(self)) end
  else
    function cls:forward(input, target) return fn(input, target, options(self)) end
  end
  function cls:extra_repr()
    local parts = {}
    if self.reduction ~= 'mean' then parts[#parts + 1] = "reduction='" .. self.reduction .. "'" end
    for _, k in ipairs(extra_repr_keys or {}) do
      local v = rawget(self, '_opts')[k]
      if v ~= nil then parts[#parts + 1] = k .. '=' .. tostring(v) end
    end
    return #parts > 0 and table.concat(parts, ', ') or nil
  end
  M[name] = cls
  return cls
end

--- nn.MSELoss([{reduction = 'mean'}]): m(input, target) is F.mse_loss.
loss_module('MSELoss', L.mse_loss)
--- nn.L1Loss([{reduction}]): m(input, target) is F.l1_loss.
loss_module('L1Loss', L.l1_loss)
--- nn.SmoothL1Loss([{reduction, beta = 1}]): m(input, target) is F.smooth_l1_loss.
loss_module('SmoothL1Loss', L.smooth_l1_loss, 2, { 'beta' })
--- nn.HuberLoss([{reduction, delta = 1}]): m(input, target) is F.huber_loss.
loss_module('HuberLoss', L.huber_loss, 2, { 'delta' })
--- nn.CrossEntropyLoss([{weight, ignore_index = -100, label_smoothing = 0, reduction}]):
-- m(logits, target) is F.cross_entropy (1-based class targets, or class probabilities).
loss_module('CrossEntropyLoss', L.cross_entropy, 2, { 'ignore_index', 'label_smoothing' })
--- nn.NLLLoss([{weight, ignore_index = -100, reduction}]): m(log_probs, target) is F.nll_loss.
loss_module('NLLLoss', L.nll_loss, 2, { 'ignore_index' })
--- nn.BCELoss([{weight, reduction}]): m(probs, target) is F.binary_cross_entropy.
loss_module('BCELoss', L.binary_cross_entropy)
--- nn.BCEWithLogitsLoss([{weight, pos_weight, reduction}]): m(logits, target) is
-- F.binary_cross_entropy_with_logits.
loss_module('BCEWithLogitsLoss', L.binary_cross_entropy_with_logits)
--- nn.KLDivLoss([{reduction = 'mean' | 'batchmean' | ..., log_target = false}]):
-- m(log_probs, target) is F.kl_div.
loss_module('KLDivLoss', L.kl_div, 2, { 'log_target' })
--- nn.CosineEmbeddingLoss([{margin = 0, reduction}]): m(x1, x2, y) is F.cosine_embedding_loss.
loss_module('CosineEmbeddingLoss', L.cosine_embedding_loss, 3, { 'margin' })
--- nn.MarginRankingLoss([{margin = 0, reduction}]): m(x1, x2, y) is F.margin_ranking_loss.
loss_module('MarginRankingLoss', L.margin_ranking_loss, 3, { 'margin' })

return M
