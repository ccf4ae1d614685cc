-- flare.optim.clip: gradient clipping over many parameters in one C call
-- (flare._clip_grad_norm / _clip_grad_value), with PyTorch's definitions.
local flare = require 'flare.core'
local base = require 'flare.optim.optimizer'

local is_tensor = flare.is_tensor

local M = {}

-- The gradients of a tensor, a list of tensors, or a module's parameters.
local function grads_of(params, fname)
  if is_tensor(params) then params = { params } end
  if type(params) == 'table' and type(params.parameters) == 'function' then params = params:parameters() end
  if type(params) ~= 'table' then
    base.raise(string.format('%s: expected a tensor, a list of tensors or a module, got %s', fname, type(params)))
  end
  local grads = {}
  for i, p in ipairs(params) do
    if not is_tensor(p) then base.raise(string.format('%s: entry %d is a %s, not a tensor', fname, i, type(p))) end
    local g = p.grad
    if g then grads[#grads + 1] = g end
  end
  return grads
end

--- optim.clip_grad_norm_(params, max_norm, [norm_type = 2], [{error_if_nonfinite = false}]) -> total
-- Scales the gradients in place so that their joint norm (as if concatenated into one
-- vector) is at most max_norm; returns the norm before clipping as a 0-dim tensor.
-- norm_type may be math.huge or 'inf' for the largest absolute value.
function M.clip_grad_norm_(params, max_norm, norm_type, opts)
  if type(norm_type) == 'table' then norm_type, opts = norm_type.norm_type, norm_type end
  if type(max_norm) ~= 'number' then
    base.raise('clip_grad_norm_: max_norm must be a number, got ' .. type(max_norm))
  end
  norm_type = norm_type or 2
  if type(norm_type) ~= 'number' and norm_type ~= 'inf' and norm_type ~= '-inf' then
    base.raise("clip_grad_norm_: norm_type must be a number, 'inf' or '-inf', got " .. base.fmt_value(norm_type))
  end
  if opts ~= nil and type(opts) ~= 'table' then
    base.raise('clip_grad_norm_: expected an options table {error_if_nonfinite = ...}, got ' .. type(opts))
  end
  local grads = grads_of(params, 'clip_grad_norm_')
  return flare._clip_grad_norm(grads, max_norm, norm_type, opts and opts.error_if_nonfinite or false)
end

--- optim.clip_grad_value_(params, clip_value)
-- Clamps every gradient element to [-clip_value, clip_value] in place.
function M.clip_grad_value_(params, clip_value)
  if type(clip_value) ~= 'number' then
    base.raise('clip_grad_value_: clip_value must be a number, got ' .. type(clip_value))
  end
  flare._clip_grad_value(grads_of(params, 'clip_grad_value_'), clip_value)
end

return M
