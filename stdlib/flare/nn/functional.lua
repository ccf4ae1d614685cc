-- flare.nn.functional (also nn.F): the layers as functions of their inputs and weights,
-- written from the engine's differentiable ops. Each normalisation and recurrent step is
-- one function here, so that a fused C kernel can replace it without touching the modules.
-- Dims are 1-based (negative from the end); token and class indices are 1-based.
local flare = require 'flare.core'

local F = {}
local is_tensor = flare.is_tensor

-- An option given positionally or in an options table: opt(arg, 'name', default).
local function opt(arg, name, default)
  if type(arg) == 'table' and not is_tensor(arg) then arg = arg[name] end
  if arg == nil then return default end
  return arg
end
F._opt = opt

local function check_tensor(x, fname, what, level)
  if not is_tensor(x) then
    error(string.format('%s: expected a tensor for %s, got %s', fname, what or 'the input', type(x)), level or 3)
  end
end
F._check_tensor = check_tensor

-- An options table (or nil): anything else is an error naming what was given.
local function check_options(o, fname, level)
  if o ~= nil and (type(o) ~= 'table' or is_tensor(o)) then
    error(string.format('%s: expected an options table, got %s', fname, is_tensor(o) and 'a tensor' or type(o)), level or 3)
  end
  return o or {}
end
F._check_options = check_options

-- A float tensor (the layers compute in float32 or float64).
local function check_float(x, fname, what, level)
  check_tensor(x, fname, what, (level or 3) + 1)
  local d = x:dtype()
  if d ~= 'float32' and d ~= 'float64' then
    error(string.format('%s: expected a float32 or float64 tensor for %s, got %s', fname, what or 'the input', d), level or 3)
  end
end
F._check_float = check_float

local function shape_text(t) return '[' .. table.concat(t:size(), ', ') .. ']' end
F._shape_text = shape_text

-- A number or table of sizes as a list.
local function size_list(s, n, fname, what)
  if math.type(s) == 'integer' then
    local l = {}
    for i = 1, n or 1 do l[i] = s end
    return l
  end
  if type(s) == 'table' and not is_tensor(s) then
    local l = {}
    for i, v in ipairs(s) do
      if math.type(v) ~= 'integer' then
        error(string.format('%s: expected integer sizes for %s, entry %d is %s', fname, what, i, tostring(v)), 3)
      end
      l[i] = v
    end
    return l
  end
  error(string.format('%s: expected an integer or a table of sizes for %s, got %s', fname, what, tostring(s)), 3)
end
F._size_list = size_list

-- ---------------------------------------------------------------- activations

--- F.relu(x): max(x, 0).
function F.relu(x) check_tensor(x, 'relu') return flare.relu(x) end

--- F.leaky_relu(x, [negative_slope = 0.01]): x where x > 0, else negative_slope * x.
function F.leaky_relu(x, slope)
  check_tensor(x, 'leaky_relu')
  slope = opt(slope, 'negative_slope', 0.01)
  if type(slope) ~= 'number' then error('leaky_relu: expected a number for negative_slope, got ' .. type(slope), 2) end
  return flare.where(x:gt(0), x, x * slope)
end

--- F.elu(x, [alpha = 1]): x where x > 0, else alpha * (exp(x) - 1).
function F.elu(x, alpha)
  check_tensor(x, 'elu')
  alpha = opt(alpha, 'alpha', 1.0)
  if type(alpha) ~= 'number' then error('elu: expected a number for alpha, got ' .. type(alpha), 2) end
  -- expm1 of min(x, 0): the branch that where() discards stays finite (no 0 * inf in backward)
  return flare.where(x:gt(0), x, x:clamp_max(0):expm1() * alpha)
end

--- F.gelu(x, [approximate = 'none' | 'tanh']): the Gaussian error linear unit.
function F.gelu(x, approximate)
  check_tensor(x, 'gelu')
  approximate = opt(approximate, 'approximate', 'none')
  if approximate == 'none' then return flare.gelu(x) end
  if approximate ~= 'tanh' then
    error("gelu: approximate must be 'none' or 'tanh', got " .. tostring(approximate), 2)
  end
  local k = math.sqrt(2 / math.pi)
  return x * 0.5 * ((x + x * x * x * 0.044715) * k):tanh():add(1)
end

--- F.silu(x): x * sigmoid(x) (also called swish).
function F.silu(x) check_tensor(x, 'silu') return flare.silu(x) end

--- F.tanh(x), F.sigmoid(x).
function F.tanh(x) check_tensor(x, 'tanh') return flare.tanh(x) end
function F.sigmoid(x) check_tensor(x, 'sigmoid') return flare.sigmoid(x) end

--- F.softplus(x, [beta = 1], [threshold = 20]): log(1 + exp(beta * x)) / beta, and x
-- itself where beta * x > threshold (as PyTorch).
function F.softplus(x, beta, threshold)
  if type(beta) == 'table' then beta, threshold = beta.beta, beta.threshold end
  beta, threshold = beta or 1, threshold or 20
  check_tensor(x, 'softplus')
  if type(beta) ~= 'number' or type(threshold) ~= 'number' then
    error(string.format('softplus: expected numbers for beta and threshold, got %s and %s', type(beta), type(threshold)), 2)
  end
  local bx = beta == 1 and x or x * beta
  local sp = flare.softplus(bx)
  if beta ~= 1 then sp = sp / beta end
  return flare.where(bx:gt(threshold), x, sp)
end

--- F.softmax(x, [dim = -1]), F.log_softmax(x, [dim = -1]).
function F.softmax(x, dim) check_tensor(x, 'softmax') return flare.softmax(x, opt(dim, 'dim', -1)) end
function F.log_softmax(x, dim) check_tensor(x, 'log_softmax') return flare.log_softmax(x, opt(dim, 'dim', -1)) end

-- ---------------------------------------------------------------- linear maps

--- F.linear(x, weight, [bias]): x · weightᵀ + bias; x is (..., in), weight (out, in).
function F.linear(x, w, b)
  check_tensor(x, 'linear')
  check_tensor(w, 'linear', 'the weight')
  if b ~= nil then check_tensor(b, 'linear', 'the bias') end
  if w:dim() ~= 2 then error('linear: expected a 2-D weight, got shape ' .. shape_text(w), 2) end
  if x:dim() == 0 or x:size(-1) ~= w:size(2) then
    error(string.format('linear: input of shape %s does not match weight of shape %s (expected last size %d)',
      shape_text(x), shape_text(w), w:size(2)), 2)
  end
  if b ~= nil and x:dim() == 2 then return flare.addmm(b, x, w:t()) end
  local y = flare.matmul(x, w:t())
  if b ~= nil then y = y + b end
  return y
end

--- F.bilinear(x1, x2, weight, [bias]): y_k = x1ᵀ · weight_k · x2 + bias_k; x1 is
-- (..., in1), x2 (..., in2), weight (out, in1, in2).
function F.bilinear(x1, x2, w, b)
  check_tensor(x1, 'bilinear', 'input1')
  check_tensor(x2, 'bilinear', 'input2')
  check_tensor(w, 'bilinear', 'the weight')
  if w:dim() ~= 3 then error('bilinear: expected a 3-D weight (out, in1, in2), got shape ' .. shape_text(w), 2) end
  local out, in1, in2 = w:size(1), w:size(2), w:size(3)
  if x1:size(-1) ~= in1 or x2:size(-1) ~= in2 then
    error(string.format('bilinear: inputs of shapes %s and %s do not match weight of shape %s',
      shape_text(x1), shape_text(x2), shape_text(w)), 2)
  end
  local lead = x1:size()
  lead[#lead] = nil
  local a = x1:reshape(-1, in1)
  local c = x2:reshape(-1, in2)
  local t = flare.matmul(a, w:permute(2, 1, 3):reshape(in1, out * in2))    -- (N, out * in2)
  local y = (t:reshape(-1, out, in2) * c:unsqueeze(2)):sum(3)              -- (N, out)
  if b ~= nil then y = y + b end
  lead[#lead + 1] = out
  return y:reshape(lead)
end

-- ---------------------------------------------------------------- dropout

--- F.dropout(x, [p = 0.5], [training = true]): zeroes each element with probability p
-- and scales the rest by 1 / (1 - p); the identity when not training.
function F.dropout(x, p, training)
  if type(p) == 'table' then p, training = p.p, p.training end
  p = p or 0.5
  if training == nil then training = true end
  check_tensor(x, 'dropout')
  if type(p) ~= 'number' or p < 0 or p > 1 then
    error('dropout: probability must be between 0 and 1, got ' .. tostring(p), 2)
  end
  if not training or p == 0 then return x end
  if p == 1 then return x * 0 end
  local mask = flare.no_grad(function() return flare.empty_like(x):bernoulli_(1 - p):div_(1 - p) end)
  return x * mask
end

--- F.dropout2d(x, [p = 0.5], [training = true]): zeroes whole channels: x is (N, C, H, W)
-- or (C, H, W).
function F.dropout2d(x, p, training)
  if type(p) == 'table' then p, training = p.p, p.training end
  p = p or 0.5
  if training == nil then training = true end
  if type(p) ~= 'number' or p < 0 or p > 1 then
    error('dropout2d: probability must be between 0 and 1, got ' .. tostring(p), 2)
  end
  check_tensor(x, 'dropout2d')
  if x:dim() ~= 3 and x:dim() ~= 4 then
    error('dropout2d: expected a 3-D or 4-D input, got shape ' .. shape_text(x), 2)
  end
  if not training or p == 0 then return x end
  if p == 1 then return x * 0 end
  local shape = x:size()
  for i = 3, #shape do shape[i] = 1 end
  local mask = flare.no_grad(function()
    return flare.empty(shape, { dtype = x:dtype(), device = x:device() }):bernoulli_(1 - p):div_(1 - p)
  end)
  return x * mask
end

-- ---------------------------------------------------------------- embedding

--- F.embedding(indices, weight, [padding_idx]): the rows of weight (num, dim) at the
-- 1-based indices (an int64 tensor of any shape): a tensor of shape indices.shape .. {dim}.
-- No gradient flows into the row padding_idx.
function F.embedding(idx, w, padding_idx)
  padding_idx = opt(padding_idx, 'padding_idx', nil)
  check_tensor(idx, 'embedding', 'indices')
  check_tensor(w, 'embedding', 'the weight')
  if w:dim() ~= 2 then error('embedding: expected a 2-D weight, got shape ' .. shape_text(w), 2) end
  if padding_idx ~= nil and math.type(padding_idx) ~= 'integer' then
    error('embedding: expected an integer padding_idx, got ' .. tostring(padding_idx), 2)
  end
  local d = idx:dtype()
  if d ~= 'int64' and d ~= 'int32' then
    error('embedding: expected int64 indices, got ' .. d, 2)
  end
  local shape = idx:size()
  shape[#shape + 1] = w:size(2)
  local out = w:index_select(1, idx:reshape(idx:numel())):reshape(shape)
  if padding_idx ~= nil then
    if padding_idx < 0 then padding_idx = w:size(1) + padding_idx + 1 end
    local pad = idx:eq(padding_idx):unsqueeze(-1)
    out = flare.where(pad, out:detach(), out)
  end
  return out
end

-- ---------------------------------------------------------------- normalisation

--- F.layer_norm(x, normalized_shape, [weight], [bias], [eps = 1e-5]): normalises over the
-- last #normalized_shape dims (biased variance), then scales and shifts.
function F.layer_norm(x, normalized_shape, w, b, eps)
  eps = eps or 1e-5
  check_float(x, 'layer_norm')
  if w ~= nil then check_tensor(w, 'layer_norm', 'the weight') end
  if b ~= nil then check_tensor(b, 'layer_norm', 'the bias') end
  local ns = size_list(normalized_shape, 1, 'layer_norm', 'normalized_shape')
  local shape = x:size()
  local k, n = #ns, 1
  local ok = #shape >= k
  for i = 1, k do
    n = n * ns[i]
    if shape[#shape - k + i] ~= ns[i] then ok = false end
  end
  if not ok then
    error(string.format('layer_norm: expected an input whose last dims are normalized_shape {%s}, got shape %s',
      table.concat(ns, ', '), shape_text(x)), 2)
  end
  local y
  if k == 1 then
    local mean = x:mean(-1, true)
    local d = x - mean
    y = d * ((d * d):mean(-1, true) + eps):rsqrt()
  else
    local flat = x:reshape(-1, n)
    local mean = flat:mean(2, true)
    local d = flat - mean
    y = (d * ((d * d):mean(2, true) + eps):rsqrt()):reshape(shape)
  end
  if w ~= nil then y = y * w end
  if b ~= nil then y = y + b end
  return y
end

-- weight or bias of size C as shape (1, C, 1, ...) to broadcast over (N, C, ...)
local function per_channel(t, ndim)
  local shape = { 1, t:numel() }
  for i = 3, ndim do shape[i] = 1 end
  return t:reshape(shape)
end
F._per_channel = per_channel

--- F.group_norm(x, num_groups, [weight], [bias], [eps = 1e-5]): x is (N, C, ...); the
-- channels are split into num_groups groups, each normalised over its channels and positions.
function F.group_norm(x, groups, w, b, eps)
  eps = eps or 1e-5
  check_float(x, 'group_norm')
  if w ~= nil then check_tensor(w, 'group_norm', 'the weight') end
  if b ~= nil then check_tensor(b, 'group_norm', 'the bias') end
  if math.type(groups) ~= 'integer' or groups < 1 then
    error('group_norm: expected a positive integer number of groups, got ' .. tostring(groups), 2)
  end
  local shape = x:size()
  if #shape < 2 or shape[2] % groups ~= 0 then
    error(string.format('group_norm: expected input (N, C, ...) with C divisible by %d groups, got shape %s',
      groups, shape_text(x)), 2)
  end
  local per_group = shape[2] // groups
  for i = 3, #shape do per_group = per_group * shape[i] end
  local g = x:reshape(shape[1], groups, per_group)
  local d = g - g:mean(3, true)
  local y = (d * ((d * d):mean(3, true) + eps):rsqrt()):reshape(shape)
  if w ~= nil then y = y * per_channel(w, #shape) end
  if b ~= nil then y = y + per_channel(b, #shape) end
  return y
end

--- F.batch_norm(x, running_mean, running_var, [weight], [bias], [training = false],
-- [momentum = 0.1], [eps = 1e-5]): x is (N, C, ...). Training uses the batch's statistics
-- and updates the running ones in place (momentum: new = (1 - m) * old + m * batch, the
-- variance unbiased); otherwise the running statistics normalise.
function F.batch_norm(x, running_mean, running_var, w, b, training, momentum, eps)
  momentum, eps = momentum or 0.1, eps or 1e-5
  check_float(x, 'batch_norm')
  for _, e in ipairs({ { running_mean, 'running_mean' }, { running_var, 'running_var' }, { w, 'the weight' },
                       { b, 'the bias' } }) do
    if e[1] ~= nil then check_tensor(e[1], 'batch_norm', e[2]) end
  end
  if (running_mean == nil) ~= (running_var == nil) then
    error('batch_norm: expected both running_mean and running_var, or neither', 2)
  end
  if type(momentum) ~= 'number' or type(eps) ~= 'number' then
    error(string.format('batch_norm: expected numbers for momentum and eps, got %s and %s', type(momentum), type(eps)), 2)
  end
  local shape = x:size()
  local nd = #shape
  if nd < 2 or shape[2] == 0 then
    error('batch_norm: expected input (N, C, ...) with C > 0, got shape ' .. shape_text(x), 2)
  end
  local C = shape[2]
  local dims = { 1 }
  for i = 3, nd do dims[#dims + 1] = i end
  local y
  if training or running_mean == nil then
    local count = x:numel() // C
    if training and count <= 1 then
      error('batch_norm: expected more than 1 value per channel when training, got input of shape ' .. shape_text(x), 2)
    end
    local mean = x:mean(dims, true)
    local d = x - mean
    local var = (d * d):mean(dims, true)
    y = d * (var + eps):rsqrt()
    if training and running_mean ~= nil then
      flare.no_grad(function()
        running_mean:mul_(1 - momentum):add_(mean:detach():reshape(C) * momentum)
        running_var:mul_(1 - momentum):add_(var:detach():reshape(C) * (momentum * count / math.max(count - 1, 1)))
      end)
    end
  else
    y = (x - per_channel(running_mean, nd)) * (per_channel(running_var, nd) + eps):rsqrt()
  end
  if w ~= nil then y = y * per_channel(w, nd) end
  if b ~= nil then y = y + per_channel(b, nd) end
  return y
end

-- ---------------------------------------------------------------- convolution and pooling
-- Thin wrappers over the engine's kernels (flare.conv2d, ...): NCHW, options tables.

local function kernel(name)
  return function(...)
    local f = rawget(flare, name)
    if not f then
      error('nn.functional.' .. name .. ' needs flare.' .. name .. ', which this build of the engine does not have', 2)
    end
    return f(...)
  end
end

--- F.conv1d(x, weight, [bias], [{stride, padding, dilation, groups}])
F.conv1d = kernel('conv1d')
--- F.conv2d(x, weight, [bias], [{stride, padding (number, pair, 'same', 'valid'), dilation, groups}])
F.conv2d = kernel('conv2d')
--- F.conv_transpose2d(x, weight, [bias], [{stride, padding, output_padding, groups, dilation}])
F.conv_transpose2d = kernel('conv_transpose2d')
--- F.max_pool1d(x, kernel_size, [{stride, padding, dilation, ceil_mode}])
F.max_pool1d = kernel('max_pool1d')
--- F.max_pool2d(x, kernel_size, [{stride, padding, dilation, ceil_mode}])
F.max_pool2d = kernel('max_pool2d')
--- F.avg_pool2d(x, kernel_size, [{stride, padding, ceil_mode, count_include_pad}])
F.avg_pool2d = kernel('avg_pool2d')
--- F.adaptive_avg_pool2d(x, output_size)
F.adaptive_avg_pool2d = kernel('adaptive_avg_pool2d')

-- ---------------------------------------------------------------- shapes

--- F.flatten(x, [start_dim = 2], [end_dim = -1]): merges dims start..end (nn.Flatten's
-- defaults keep the batch dim).
function F.flatten(x, start_dim, end_dim)
  check_tensor(x, 'flatten')
  return x:flatten(start_dim or 2, end_dim or -1)
end

--- F.pad(x, pads, [value = 0]): pads the last dims with a constant: pads = {left, right,
-- [top, bottom, ...]} as PyTorch (the last dim first).
function F.pad(x, pads, value)
  check_tensor(x, 'pad')
  value = value or 0
  if type(pads) ~= 'table' or #pads % 2 ~= 0 or #pads // 2 > x:dim() then
    error(string.format('pad: expected an even number of pads, at most 2 per dim (%d dims), got %s', x:dim(),
      type(pads) == 'table' and (#pads .. ' values') or type(pads)), 2)
  end
  for i, p in ipairs(pads) do
    if math.type(p) ~= 'integer' or p < 0 then
      error('pad: expected non-negative integer pads, pad ' .. i .. ' is ' .. tostring(p), 2)
    end
  end
  local y = x
  for i = 1, #pads // 2 do
    local dim = x:dim() - i + 1
    local lo, hi = pads[2 * i - 1], pads[2 * i]
    local parts = {}
    if lo > 0 then
      local s = y:size(); s[dim] = lo
      parts[#parts + 1] = flare.full(s, value, { dtype = x:dtype(), device = x:device() })
    end
    parts[#parts + 1] = y
    if hi > 0 then
      local s = y:size(); s[dim] = hi
      parts[#parts + 1] = flare.full(s, value, { dtype = x:dtype(), device = x:device() })
    end
    if #parts > 1 then y = flare.cat(parts, dim) end
  end
  return y
end

return F
