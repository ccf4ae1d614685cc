-- flare.nn.utils: gradient clipping and parameter/vector conversions, as torch.nn.utils.
-- Clipping calls the engine's fused helpers (flare._clip_grad_norm, _clip_grad_value)
-- where the build has them, and otherwise runs the same arithmetic from tensor ops.
local flare = require 'flare.core'

local U = {}
local is_tensor = flare.is_tensor

-- A tensor, a list of tensors, or a module (its parameters).
local function param_list(params, fname)
  if is_tensor(params) then return { params } end
  if type(params) == 'table' and type(params.parameters) == 'function' and not is_tensor(params) then
    return params:parameters()
  end
  if type(params) ~= 'table' then
    error(fname .. ': expected a tensor, a list of tensors or a module, got ' .. type(params), 3)
  end
  for i, p in ipairs(params) do
    if not is_tensor(p) then error(string.format('%s: entry %d is a %s, not a tensor', fname, i, type(p)), 3) end
  end
  return params
end

--- nn.utils.clip_grad_norm_(parameters, max_norm, [norm_type = 2], [{error_if_nonfinite = false}])
-- -> total_norm: scales the gradients in place so that their joint norm (as if concatenated)
-- is at most max_norm; returns the norm before clipping (a 0-dim tensor). norm_type may be
-- math.huge for the largest absolute value.
function U.clip_grad_norm_(params, max_norm, norm_type, opts)
  if type(norm_type) == 'table' then norm_type, opts = norm_type.norm_type, norm_type end
  norm_type = norm_type or 2
  if opts ~= nil and type(opts) ~= 'table' then error('clip_grad_norm_: expected an options table, got ' .. type(opts), 2) end
  if type(max_norm) ~= 'number' then error('clip_grad_norm_: max_norm must be a number, got ' .. type(max_norm), 2) end
  local grads = {}
  for _, p in ipairs(param_list(params, 'clip_grad_norm_')) do
    local g = p.grad
    if g then grads[#grads + 1] = g end
  end
  if #grads == 0 then return flare.tensor(0.0) end
  local fused = rawget(flare, '_clip_grad_norm')
  if fused and not (opts and opts.fused == false) then     -- fused = false: the Lua oracle
    if norm_type == 'inf' then norm_type = math.huge end
    local ok, r = pcall(fused, grads, max_norm, norm_type, opts and opts.error_if_nonfinite or false)
    if not ok then error(r, 2) end
    return r
  end
  -- the same in Lua from the engine's ops (without the fused helper)
  return flare.no_grad(function()
    local norms = {}
    for i, g in ipairs(grads) do
      norms[i] = norm_type == math.huge and g:abs():amax():double() or g:norm(norm_type):double()
    end
    local stacked = flare.stack(norms)
    local total = norm_type == math.huge and stacked:amax() or stacked:norm(norm_type)
    local value = total:item()
    if opts and opts.error_if_nonfinite and (value ~= value or value == math.huge) then
      error('clip_grad_norm_: the total norm of the gradients is ' .. tostring(value) ..
            ' (set error_if_nonfinite = false to clip anyway)', 3)
    end
    local coef = max_norm / (value + 1e-6)
    if coef < 1 then
      for _, g in ipairs(grads) do g:mul_(coef) end
    end
    return total:to(grads[1]:dtype())
  end)
end

--- nn.utils.clip_grad_value_(parameters, clip_value): clamps every gradient element to
-- [-clip_value, clip_value] in place.
function U.clip_grad_value_(params, clip_value, opts)
  if type(clip_value) ~= 'number' then error('clip_grad_value_: clip_value must be a number, got ' .. type(clip_value), 2) end
  if opts ~= nil and type(opts) ~= 'table' then error('clip_grad_value_: expected an options table, got ' .. type(opts), 2) end
  local list = param_list(params, 'clip_grad_value_')
  local fused = rawget(flare, '_clip_grad_value')
  if fused and not (opts and opts.fused == false) then
    local grads = {}
    for _, p in ipairs(list) do grads[#grads + 1] = p.grad end
    fused(grads, clip_value)
    return
  end
  flare.no_grad(function()
    for _, p in ipairs(list) do
      local g = p.grad
      if g then g:clamp_(-clip_value, clip_value) end
    end
  end)
end

--- nn.utils.parameters_to_vector(parameters): one 1-D tensor of all their values.
function U.parameters_to_vector(params)
  local flat = {}
  for i, p in ipairs(param_list(params, 'parameters_to_vector')) do flat[i] = p:reshape(-1) end
  return flare.cat(flat, 1)
end

--- nn.utils.vector_to_parameters(vec, parameters): copies consecutive pieces of vec into
-- the parameters (in place).
function U.vector_to_parameters(vec, params)
  local list = param_list(params, 'vector_to_parameters')
  local total = 0
  for _, p in ipairs(list) do total = total + p:numel() end
  if not is_tensor(vec) or vec:dim() ~= 1 or vec:numel() ~= total then
    error(string.format('vector_to_parameters: expected a 1-D tensor of %d elements, got %s', total,
      is_tensor(vec) and ('shape [' .. table.concat(vec:size(), ', ') .. ']') or type(vec)), 2)
  end
  flare.no_grad(function()
    local at = 1
    for _, p in ipairs(list) do
      local n = p:numel()
      p:copy_(vec:narrow(1, at, n):reshape(p:size()))
      at = at + n
    end
  end)
end

return U
