-- flare.nn.activation: the activation modules (ReLU, LeakyReLU, ELU, GELU, SiLU, Tanh,
-- Sigmoid, Softplus, Softmax, LogSoftmax), each a thin wrapper over nn.functional.
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'

local M = {}

-- A parameterless activation: forward applies fn.
local function simple(name, fn)
  local cls = module.class(name)
  function cls:forward(x) return fn(x) end
  M[name] = cls
  return cls
end

--- nn.ReLU(), nn.SiLU(), nn.Tanh(), nn.Sigmoid(): elementwise activations.
simple('ReLU', F.relu)
simple('SiLU', F.silu)
simple('Tanh', F.tanh)
simple('Sigmoid', F.sigmoid)

--- nn.LeakyReLU([negative_slope = 0.01]): x where x > 0, else negative_slope * x.
local LeakyReLU = module.class('LeakyReLU')
M.LeakyReLU = LeakyReLU
function LeakyReLU:init(slope) self.negative_slope = F._opt(slope, 'negative_slope', 0.01) end
function LeakyReLU:forward(x) return F.leaky_relu(x, self.negative_slope) end
function LeakyReLU:extra_repr() return 'negative_slope=' .. self.negative_slope end

--- nn.ELU([alpha = 1]): x where x > 0, else alpha * (exp(x) - 1).
local ELU = module.class('ELU')
M.ELU = ELU
function ELU:init(alpha) self.alpha = F._opt(alpha, 'alpha', 1.0) end
function ELU:forward(x) return F.elu(x, self.alpha) end
function ELU:extra_repr() return 'alpha=' .. self.alpha end

--- nn.GELU([approximate = 'none' | 'tanh']): the Gaussian error linear unit.
local GELU = module.class('GELU')
M.GELU = GELU
function GELU:init(approximate) self.approximate = F._opt(approximate, 'approximate', 'none') end
function GELU:forward(x) return F.gelu(x, self.approximate) end
function GELU:extra_repr()
  return self.approximate ~= 'none' and ("approximate='" .. self.approximate .. "'") or nil
end

--- nn.Softplus([beta = 1], [threshold = 20]): log(1 + exp(beta x)) / beta (x above the threshold).
local Softplus = module.class('Softplus')
M.Softplus = Softplus
function Softplus:init(beta, threshold)
  if type(beta) == 'table' then beta, threshold = beta.beta, beta.threshold end
  self.beta, self.threshold = beta or 1, threshold or 20
end
function Softplus:forward(x) return F.softplus(x, self.beta, self.threshold) end
function Softplus:extra_repr() return 'beta=' .. self.beta .. ', threshold=' .. self.threshold end

--- nn.Softmax([dim = -1]), nn.LogSoftmax([dim = -1]): along dim (1-based, negative from the end).
for _, name in ipairs({ 'Softmax', 'LogSoftmax' }) do
  local fn = name == 'Softmax' and F.softmax or F.log_softmax
  local cls = module.class(name)
  function cls:init(dim) self.dim = F._opt(dim, 'dim', -1) end
  function cls:forward(x) return fn(x, self.dim) end
  function cls:extra_repr() return 'dim=' .. self.dim end
  M[name] = cls
end

return M
