-- flare.nn.init (this file; nn/init.lua is the package itself): in-place initialisers for
-- weights, as torch.nn.init. Each runs under flare.no_grad and returns its tensor.
local flare = require 'flare.core'

local I = {}
local is_tensor = flare.is_tensor

local function check(t, fname)
  if not is_tensor(t) then error(fname .. ': expected a tensor, got ' .. type(t), 3) end
  local d = t:dtype()
  if d ~= 'float32' and d ~= 'float64' then error(fname .. ': expected a float tensor, got ' .. d, 3) end
end

local function nograd(f, ...) return flare.no_grad(f, ...) end

--- nn.init.calculate_gain(nonlinearity, [param]): the recommended gain: 1 for linear,
-- conv and sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu
-- (slope = param or 0.01), 3/4 for selu.
function I.calculate_gain(nonlinearity, param)
  local linear = { linear = 1, conv1d = 1, conv2d = 1, conv3d = 1, conv_transpose1d = 1,
                   conv_transpose2d = 1, conv_transpose3d = 1, sigmoid = 1 }
  if linear[nonlinearity] then return 1 end
  if nonlinearity == 'tanh' then return 5 / 3 end
  if nonlinearity == 'relu' then return math.sqrt(2) end
  if nonlinearity == 'leaky_relu' then
    local slope = param or 0.01
    if type(slope) ~= 'number' then error('calculate_gain: expected a number for negative_slope, got ' .. type(slope), 2) end
    return math.sqrt(2 / (1 + slope * slope))
  end
  if nonlinearity == 'selu' then return 3 / 4 end
  error('calculate_gain: unsupported nonlinearity ' .. tostring(nonlinearity), 2)
end

--- nn.init.calculate_fan_in_and_fan_out(t) -> fan_in, fan_out: for a weight of shape
-- (out, in, k...): in * prod(k) and out * prod(k).
function I.calculate_fan_in_and_fan_out(t)
  check(t, 'calculate_fan_in_and_fan_out')
  local s = t:size()
  if #s < 2 then
    error('calculate_fan_in_and_fan_out: expected a tensor of at least 2 dims (fan in and fan out), got ' .. #s, 2)
  end
  local receptive = 1
  for i = 3, #s do receptive = receptive * s[i] end
  return s[2] * receptive, s[1] * receptive
end

--- nn.init.uniform_(t, [a = 0], [b = 1]): fills t with values uniform in [a, b).
function I.uniform_(t, a, b)
  check(t, 'uniform_')
  if type(a) == 'table' then a, b = a.a, a.b end
  return nograd(function() return t:uniform_(a or 0, b or 1) end)
end

--- nn.init.normal_(t, [mean = 0], [std = 1]): fills t with normal values.
function I.normal_(t, mean, std)
  check(t, 'normal_')
  if type(mean) == 'table' then mean, std = mean.mean, mean.std end
  return nograd(function() return t:normal_(mean or 0, std or 1) end)
end

--- nn.init.constant_(t, value): fills t with value.
function I.constant_(t, v)
  check(t, 'constant_')
  return nograd(function() return t:fill_(v) end)
end

--- nn.init.zeros_(t): fills t with 0.
function I.zeros_(t) check(t, 'zeros_') return nograd(function() return t:zero_() end) end

--- nn.init.ones_(t): fills t with 1.
function I.ones_(t) check(t, 'ones_') return nograd(function() return t:fill_(1) end) end

--- nn.init.eye_(t): the identity matrix (2-D tensors).
function I.eye_(t)
  check(t, 'eye_')
  if t:dim() ~= 2 then error('eye_: expected a 2-D tensor, got ' .. t:dim() .. ' dims', 2) end
  return nograd(function() return t:copy_(flare.eye(t:size(1), t:size(2), { dtype = t:dtype() })) end)
end

local function gain_of(g, fname)
  if type(g) == 'table' then g = g.gain end
  if g ~= nil and type(g) ~= 'number' then error(fname .. ': expected a number for gain, got ' .. type(g), 3) end
  return g or 1
end

--- nn.init.xavier_uniform_(t, [gain = 1]): uniform in [-a, a], a = gain * sqrt(6 / (fan_in + fan_out)).
function I.xavier_uniform_(t, gain)
  check(t, 'xavier_uniform_')
  local fan_in, fan_out = I.calculate_fan_in_and_fan_out(t)
  local a = gain_of(gain, 'xavier_uniform_') * math.sqrt(2 / (fan_in + fan_out)) * math.sqrt(3)
  return I.uniform_(t, -a, a)
end

--- nn.init.xavier_normal_(t, [gain = 1]): normal with std = gain * sqrt(2 / (fan_in + fan_out)).
function I.xavier_normal_(t, gain)
  check(t, 'xavier_normal_')
  local fan_in, fan_out = I.calculate_fan_in_and_fan_out(t)
  return I.normal_(t, 0, gain_of(gain, 'xavier_normal_') * math.sqrt(2 / (fan_in + fan_out)))
end

-- kaiming options positionally (a, mode, nonlinearity) or as a table
local function kaiming_std(t, a, mode, nonlinearity, fname)
  if type(a) == 'table' then a, mode, nonlinearity = a.a, a.mode, a.nonlinearity end
  a, mode, nonlinearity = a or 0, mode or 'fan_in', nonlinearity or 'leaky_relu'
  if type(a) ~= 'number' then error(fname .. ': expected a number for a (the negative slope), got ' .. type(a), 3) end
  local fan_in, fan_out = I.calculate_fan_in_and_fan_out(t)
  local fan
  if mode == 'fan_in' then fan = fan_in
  elseif mode == 'fan_out' then fan = fan_out
  else error(fname .. ": mode must be 'fan_in' or 'fan_out', got " .. tostring(mode), 3) end
  if fan == 0 then error(fname .. ': cannot initialise a tensor with zero elements', 3) end
  return I.calculate_gain(nonlinearity, a) / math.sqrt(fan)
end

--- nn.init.kaiming_uniform_(t, [a = 0], [mode = 'fan_in'], [nonlinearity = 'leaky_relu'])
-- (or an options table {a, mode, nonlinearity}): uniform in [-b, b], b = gain * sqrt(3 / fan).
function I.kaiming_uniform_(t, a, mode, nonlinearity)
  check(t, 'kaiming_uniform_')
  local bound = math.sqrt(3) * kaiming_std(t, a, mode, nonlinearity, 'kaiming_uniform_')
  return I.uniform_(t, -bound, bound)
end

--- nn.init.kaiming_normal_(t, [a = 0], [mode = 'fan_in'], [nonlinearity = 'leaky_relu']):
-- normal with std = gain / sqrt(fan).
function I.kaiming_normal_(t, a, mode, nonlinearity)
  check(t, 'kaiming_normal_')
  return I.normal_(t, 0, kaiming_std(t, a, mode, nonlinearity, 'kaiming_normal_'))
end

--- nn.init.trunc_normal_(t, [mean = 0], [std = 1], [a = -2], [b = 2]): normal values
-- redrawn until they fall in [a, b].
function I.trunc_normal_(t, mean, std, a, b)
  check(t, 'trunc_normal_')
  if type(mean) == 'table' then mean, std, a, b = mean.mean, mean.std, mean.a, mean.b end
  mean, std, a, b = mean or 0, std or 1, a or -2, b or 2
  return nograd(function()
    t:normal_(mean, std)
    for _ = 1, 100 do
      local bad = t:lt(a):logical_or(t:gt(b))
      if not bad:any():item() then break end
      t:copy_(flare.where(bad, flare.empty_like(t):normal_(mean, std), t))
    end
    return t:clamp_(a, b)
  end)
end

--- nn.init.orthogonal_(t, [gain = 1]): a (semi-)orthogonal matrix (the trailing dims
-- flattened), as PyTorch: the Q factor of a normal matrix with R's diagonal made positive.
function I.orthogonal_(t, gain)
  check(t, 'orthogonal_')
  if t:dim() < 2 then error('orthogonal_: expected a tensor of at least 2 dims, got ' .. t:dim(), 2) end
  gain = gain_of(gain, 'orthogonal_')
  local rows = t:size(1)
  local cols = t:numel() // rows
  return nograd(function()
    local a = flare.randn(rows, cols, { dtype = 'float64' })
    if rows < cols then a = a:t():contiguous() end
    -- Gram-Schmidt on the columns, twice per column for stability; R's diagonal (the
    -- norms) comes out positive, which is PyTorch's sign convention
    local m, n = a:size(1), a:size(2)
    local q = flare.zeros(m, n, { dtype = 'float64' })
    for j = 1, n do
      local v = a:select(2, j):clone()
      if j > 1 then
        local prev = q:narrow(2, 1, j - 1)
        for _ = 1, 2 do v = v - flare.mv(prev, flare.mv(prev:t(), v)) end
      end
      q:select(2, j):copy_(v / v:norm())
    end
    if rows < cols then q = q:t() end
    return t:copy_((q * gain):reshape(t:size()))
  end)
end

-- The names without the trailing underscore (older PyTorch), for convenience.
for _, name in ipairs({ 'uniform', 'normal', 'constant', 'zeros', 'ones', 'eye', 'xavier_uniform',
                        'xavier_normal', 'kaiming_uniform', 'kaiming_normal', 'orthogonal', 'trunc_normal' }) do
  I[name] = I[name .. '_']
end

return I
