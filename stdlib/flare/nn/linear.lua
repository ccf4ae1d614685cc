-- flare.nn.linear: Identity, Linear, Bilinear, Flatten and Unflatten.
local flare = require 'flare.core'
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'
local init = require 'flare.nn.weight_init'

local M = {}

-- A new parameter of the given shape (uninitialised: reset_parameters fills it).
local function param(shape, opts)
  return flare.empty(shape, { dtype = opts and opts.dtype or 'float32' }):requires_grad()
end
M.param = param

-- Options: a table, or a boolean for `bias` (nn.Linear(3, 4, false)).
local function options(opts, fname)
  if opts == nil then return {} end
  if type(opts) == 'boolean' then return { bias = opts } end
  if type(opts) ~= 'table' then error(fname .. ': expected an options table, got ' .. type(opts), 4) end
  return opts
end
M.options = options

local function check_size(v, fname, what)
  if math.type(v) ~= 'integer' or v < 0 then
    error(string.format('%s: %s must be a non-negative integer, got %s', fname, what, tostring(v)), 4)
  end
end
M.check_size = check_size

--- nn.Identity(): returns its input.
local Identity = module.class('Identity')
M.Identity = Identity
function Identity:forward(x, ...) return x, ... end

--- nn.Linear(in_features, out_features, [{bias = true, dtype = 'float32'}]): y = x·Wᵀ + b,
-- weight (out, in) and bias (out) initialised as PyTorch: uniform(-1/sqrt(in), 1/sqrt(in)).
local Linear = module.class('Linear')
M.Linear = Linear

function Linear:init(in_features, out_features, opts)
  opts = options(opts, 'nn.Linear')
  check_size(in_features, 'nn.Linear', 'in_features')
  check_size(out_features, 'nn.Linear', 'out_features')
  self.in_features, self.out_features = in_features, out_features
  self.weight = param({ out_features, in_features }, opts)
  self:register_parameter('bias', opts.bias ~= false and param({ out_features }, opts) or nil)
  self:reset_parameters()
end

--- m:reset_parameters(): PyTorch's default initialisation (kaiming_uniform with a = sqrt(5)).
function Linear:reset_parameters()
  init.kaiming_uniform_(self.weight, math.sqrt(5))
  if self.bias then
    local bound = self.in_features > 0 and 1 / math.sqrt(self.in_features) or 0
    init.uniform_(self.bias, -bound, bound)
  end
end

function Linear:forward(x) return F.linear(x, self.weight, self.bias) end

function Linear:extra_repr()
  return string.format('%d -> %d%s', self.in_features, self.out_features, self.bias and '' or ', bias=false')
end

--- nn.Bilinear(in1_features, in2_features, out_features, [{bias = true, dtype}]):
-- y_k = x1ᵀ·W_k·x2 + b_k; m(x1, x2).
local Bilinear = module.class('Bilinear')
M.Bilinear = Bilinear

function Bilinear:init(in1, in2, out, opts)
  opts = options(opts, 'nn.Bilinear')
  check_size(in1, 'nn.Bilinear', 'in1_features')
  check_size(in2, 'nn.Bilinear', 'in2_features')
  check_size(out, 'nn.Bilinear', 'out_features')
  self.in1_features, self.in2_features, self.out_features = in1, in2, out
  self.weight = param({ out, in1, in2 }, opts)
  self:register_parameter('bias', opts.bias ~= false and param({ out }, opts) or nil)
  self:reset_parameters()
end

function Bilinear:reset_parameters()
  local bound = 1 / math.sqrt(self.weight:size(2))
  init.uniform_(self.weight, -bound, bound)
  if self.bias then init.uniform_(self.bias, -bound, bound) end
end

function Bilinear:forward(x1, x2) return F.bilinear(x1, x2, self.weight, self.bias) end

function Bilinear:extra_repr()
  return string.format('%d x %d -> %d%s', self.in1_features, self.in2_features, self.out_features,
    self.bias and '' or ', bias=false')
end

--- nn.Flatten([start_dim = 2], [end_dim = -1]): merges dims start..end (1-based; the
-- default keeps the batch dim, as PyTorch's Flatten(1, -1)).
local Flatten = module.class('Flatten')
M.Flatten = Flatten

function Flatten:init(start_dim, end_dim)
  self.start_dim, self.end_dim = start_dim or 2, end_dim or -1
end

function Flatten:forward(x) return F.flatten(x, self.start_dim, self.end_dim) end

function Flatten:extra_repr()
  if self.start_dim == 2 and self.end_dim == -1 then return nil end
  return string.format('%d, %d', self.start_dim, self.end_dim)
end

--- nn.Unflatten(dim, sizes): splits dim (1-based) into sizes, e.g. nn.Unflatten(2, {1, 28, 28}).
local Unflatten = module.class('Unflatten')
M.Unflatten = Unflatten

function Unflatten:init(dim, sizes)
  if math.type(dim) ~= 'integer' then error('nn.Unflatten: dim must be an integer, got ' .. tostring(dim), 3) end
  if type(sizes) ~= 'table' or #sizes == 0 then
    error('nn.Unflatten: expected a non-empty table of sizes, got ' .. type(sizes), 3)
  end
  self.dim, self.sizes = dim, sizes
end

function Unflatten:forward(x)
  F._check_tensor(x, 'nn.Unflatten')
  local shape = x:size()
  local n = #shape
  local d = self.dim < 0 and n + self.dim + 1 or self.dim
  if d < 1 or d > n then
    error(string.format('nn.Unflatten: dim %d out of range for input of shape [%s]', self.dim, table.concat(shape, ', ')), 2)
  end
  local new = {}
  for i = 1, d - 1 do new[#new + 1] = shape[i] end
  for _, s in ipairs(self.sizes) do new[#new + 1] = s end
  for i = d + 1, n do new[#new + 1] = shape[i] end
  return x:reshape(new)
end

function Unflatten:extra_repr()
  return string.format('%d, {%s}', self.dim, table.concat(self.sizes, ', '))
end

return M
