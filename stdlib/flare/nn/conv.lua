-- flare.nn.conv: Conv1d, Conv2d, ConvTranspose2d and the pooling modules, thin wrappers
-- over the engine's kernels (flare.conv2d, flare.max_pool2d, ...) through nn.functional.
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'
local init = require 'flare.nn.weight_init'
local linear = require 'flare.nn.linear'

local M = {}

local function pair(v, n, fname, what)
  if type(v) == 'string' then return v end
  local l = F._size_list(v, n, fname, what)
  if #l ~= n then
    error(string.format('%s: %s must be a number or %d numbers, got %d', fname, what, n, #l), 4)
  end
  return l
end

local function text(v)
  if type(v) == 'table' then
    local same = true
    for i = 2, #v do if v[i] ~= v[1] then same = false end end
    return same and tostring(v[1]) or table.concat(v, 'x')
  end
  return tostring(v)
end

local function is_default(v, d)
  if type(v) == 'table' then
    for _, x in ipairs(v) do if x ~= d then return false end end
    return true
  end
  return v == d
end

local Conv = module.class('_ConvNd')
rawset(Conv, '_abstract', true)

-- Shared constructor: n spatial dims; transposed weights are (in, out / groups, k...).
function Conv:_setup(n, transposed, in_ch, out_ch, kernel, opts)
  local fname = self.__typename
  opts = linear.options(opts, fname)
  linear.check_size(in_ch, fname, 'in_channels')
  linear.check_size(out_ch, fname, 'out_channels')
  local groups = opts.groups or 1
  if math.type(groups) ~= 'integer' or groups < 1 or in_ch % groups ~= 0 or out_ch % groups ~= 0 then
    error(string.format('%s: in_channels (%d) and out_channels (%d) must be divisible by groups (%s)',
      fname, in_ch, out_ch, tostring(groups)), 4)
  end
  self.in_channels, self.out_channels, self.groups = in_ch, out_ch, groups
  self.kernel_size = pair(kernel, n, fname, 'kernel_size')
  self.stride = pair(opts.stride or 1, n, fname, 'stride')
  self.padding = pair(opts.padding or 0, n, fname, 'padding')
  self.dilation = pair(opts.dilation or 1, n, fname, 'dilation')
  if transposed then self.output_padding = pair(opts.output_padding or 0, n, fname, 'output_padding') end
  local shape = transposed and { in_ch, out_ch // groups } or { out_ch, in_ch // groups }
  for i = 1, n do shape[#shape + 1] = self.kernel_size[i] end
  self.weight = linear.param(shape, opts)
  self:register_parameter('bias', opts.bias ~= false and linear.param({ out_ch }, opts) or nil)
  self:reset_parameters()
end

--- m:reset_parameters(): PyTorch's default: kaiming_uniform(a = sqrt(5)) weights, bias
-- uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)).
function Conv:reset_parameters()
  init.kaiming_uniform_(self.weight, math.sqrt(5))
  if self.bias then
    local fan_in = init.calculate_fan_in_and_fan_out(self.weight)
    local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
    init.uniform_(self.bias, -bound, bound)
  end
end

function Conv:_options()
  local o = { stride = self.stride, padding = self.padding, dilation = self.dilation, groups = self.groups }
  if self.output_padding then o.output_padding = self.output_padding end
  return o
end

function Conv:extra_repr()
  local s = string.format('%d -> %d, %s', self.in_channels, self.out_channels, text(self.kernel_size))
  if not is_default(self.stride, 1) then s = s .. ', stride=' .. text(self.stride) end
  if not is_default(self.padding, 0) then
    s = s .. ', padding=' .. (type(self.padding) == 'string' and ("'" .. self.padding .. "'") or text(self.padding))
  end
  if not is_default(self.dilation, 1) then s = s .. ', dilation=' .. text(self.dilation) end
  if self.output_padding and not is_default(self.output_padding, 0) then
    s = s .. ', output_padding=' .. text(self.output_padding)
  end
  if self.groups ~= 1 then s = s .. ', groups=' .. self.groups end
  if not self.bias then s = s .. ', bias=false' end
  return s
end

--- nn.Conv1d(in_channels, out_channels, kernel_size, [{stride = 1, padding = 0,
-- dilation = 1, groups = 1, bias = true, dtype}]): over (N, C, L) inputs.
local Conv1d = module.class('Conv1d', Conv)
M.Conv1d = Conv1d
function Conv1d:init(i, o, k, opts) self:_setup(1, false, i, o, k, opts) end
function Conv1d:forward(x) return F.conv1d(x, self.weight, self.bias, self:_options()) end

--- nn.Conv2d(in_channels, out_channels, kernel_size, [{stride = 1, padding = 0 (a number,
-- a pair, 'same' or 'valid'), dilation = 1, groups = 1, bias = true, dtype}]): over
-- (N, C, H, W) inputs; weight (out, in / groups, kh, kw).
local Conv2d = module.class('Conv2d', Conv)
M.Conv2d = Conv2d
function Conv2d:init(i, o, k, opts) self:_setup(2, false, i, o, k, opts) end
function Conv2d:forward(x) return F.conv2d(x, self.weight, self.bias, self:_options()) end

--- nn.ConvTranspose2d(in_channels, out_channels, kernel_size, [{stride = 1, padding = 0,
-- output_padding = 0, groups = 1, dilation = 1, bias = true, dtype}]): the transpose
-- (gradient) of Conv2d, upsampling (N, C, H, W) inputs; weight (in, out / groups, kh, kw).
local ConvTranspose2d = module.class('ConvTranspose2d', Conv)
M.ConvTranspose2d = ConvTranspose2d
function ConvTranspose2d:init(i, o, k, opts) self:_setup(2, true, i, o, k, opts) end
function ConvTranspose2d:forward(x) return F.conv_transpose2d(x, self.weight, self.bias, self:_options()) end

-- ---------------------------------------------------------------- pooling

local function pool(name, fn, keys)
  local cls = module.class(name)
  function cls:init(kernel, opts)
    if opts ~= nil and type(opts) ~= 'table' then
      error('nn.' .. name .. ': expected an options table, got ' .. type(opts), 3)
    end
    if kernel == nil then error('nn.' .. name .. ': kernel_size is required', 3) end
    self.kernel_size = kernel
    local o = {}
    for _, k in ipairs(keys) do
      if opts and opts[k] ~= nil then o[k] = opts[k] end
    end
    rawset(self, '_opts', o)
  end
  function cls:forward(x) return fn(x, self.kernel_size, rawget(self, '_opts')) end
  function cls:extra_repr()
    local s = text(self.kernel_size)
    for _, k in ipairs(keys) do
      local v = rawget(self, '_opts')[k]
      if v ~= nil then s = s .. ', ' .. k .. '=' .. text(v) end
    end
    return s
  end
  M[name] = cls
end

--- nn.MaxPool1d(kernel_size, [{stride = kernel_size, padding = 0, dilation = 1, ceil_mode = false}]):
-- the largest value of each window of (N, C, L) inputs.
pool('MaxPool1d', F.max_pool1d, { 'stride', 'padding', 'dilation', 'ceil_mode' })
--- nn.MaxPool2d(kernel_size, [{stride = kernel_size, padding = 0, dilation = 1, ceil_mode = false}]):
-- the largest value of each window of (N, C, H, W) inputs.
pool('MaxPool2d', F.max_pool2d, { 'stride', 'padding', 'dilation', 'ceil_mode' })
--- nn.AvgPool2d(kernel_size, [{stride = kernel_size, padding = 0, ceil_mode = false, count_include_pad = true}]):
-- the mean of each window of (N, C, H, W) inputs.
pool('AvgPool2d', F.avg_pool2d, { 'stride', 'padding', 'ceil_mode', 'count_include_pad' })

--- nn.AdaptiveAvgPool2d(output_size): averages to a fixed (h, w) whatever the input size.
local Adaptive = module.class('AdaptiveAvgPool2d')
M.AdaptiveAvgPool2d = Adaptive
function Adaptive:init(size)
  if size == nil then error('nn.AdaptiveAvgPool2d: output_size is required', 3) end
  self.output_size = size
end
function Adaptive:forward(x) return F.adaptive_avg_pool2d(x, self.output_size) end
function Adaptive:extra_repr() return text(self.output_size) end

return M
