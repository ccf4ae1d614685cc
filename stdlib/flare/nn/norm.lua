-- flare.nn.norm: LayerNorm, GroupNorm, BatchNorm1d and BatchNorm2d. The arithmetic is in
-- nn.functional (layer_norm, group_norm, batch_norm), where a fused kernel can replace it.
local flare = require 'flare.core'
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'
local init = require 'flare.nn.weight_init'
local linear = require 'flare.nn.linear'

local M = {}

--- nn.LayerNorm(normalized_shape, [{eps = 1e-5, elementwise_affine = true, bias = true,
-- dtype}]): normalises over the last dims (a size or a table of sizes), then scales by
-- weight (ones) and shifts by bias (zeros).
local LayerNorm = module.class('LayerNorm')
M.LayerNorm = LayerNorm

function LayerNorm:init(shape, opts)
  opts = linear.options(opts, 'nn.LayerNorm')
  shape = F._size_list(shape, 1, 'nn.LayerNorm', 'normalized_shape')
  self.normalized_shape, self.eps = shape, opts.eps or 1e-5
  self.elementwise_affine = opts.elementwise_affine ~= false
  if self.elementwise_affine then
    self.weight = linear.param(shape, opts)
    self:register_parameter('bias', opts.bias ~= false and linear.param(shape, opts) or nil)
  else
    self:register_parameter('weight', nil)
    self:register_parameter('bias', nil)
  end
  self:reset_parameters()
end

function LayerNorm:reset_parameters()
  if self.weight then init.ones_(self.weight) end
  if self.bias then init.zeros_(self.bias) end
end

function LayerNorm:forward(x)
  F._check_float(x, 'nn.LayerNorm')
  return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
end

function LayerNorm:extra_repr()
  return string.format('{%s}, eps=%g%s', table.concat(self.normalized_shape, ', '), self.eps,
    self.elementwise_affine and '' or ', elementwise_affine=false')
end

--- nn.GroupNorm(num_groups, num_channels, [{eps = 1e-5, affine = true, dtype}]): normalises
-- each group of channels of (N, C, ...) inputs, then scales and shifts per channel.
local GroupNorm = module.class('GroupNorm')
M.GroupNorm = GroupNorm

function GroupNorm:init(groups, channels, opts)
  opts = linear.options(opts, 'nn.GroupNorm')
  linear.check_size(groups, 'nn.GroupNorm', 'num_groups')
  linear.check_size(channels, 'nn.GroupNorm', 'num_channels')
  if groups == 0 or channels % groups ~= 0 then
    error(string.format('nn.GroupNorm: num_channels (%d) must be divisible by num_groups (%d)', channels, groups), 3)
  end
  self.num_groups, self.num_channels, self.eps = groups, channels, opts.eps or 1e-5
  self.affine = opts.affine ~= false
  if self.affine then
    self.weight = linear.param({ channels }, opts)
    self.bias = linear.param({ channels }, opts)
  end
  self:reset_parameters()
end

function GroupNorm:reset_parameters()
  if self.weight then init.ones_(self.weight) end
  if self.bias then init.zeros_(self.bias) end
end

function GroupNorm:forward(x)
  F._check_float(x, 'nn.GroupNorm')
  if x:dim() < 2 or x:size(2) ~= self.num_channels then
    error(string.format('nn.GroupNorm: expected input (N, %d, ...), got shape [%s]', self.num_channels,
      table.concat(x:size(), ', ')), 2)
  end
  return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
end

function GroupNorm:extra_repr()
  return string.format('%d, %d, eps=%g%s', self.num_groups, self.num_channels, self.eps,
    self.affine and '' or ', affine=false')
end

-- ---------------------------------------------------------------- batch norm

local BatchNorm = module.class('_BatchNorm')
rawset(BatchNorm, '_abstract', true)
M._BatchNorm = BatchNorm

function BatchNorm:init(features, opts)
  opts = linear.options(opts, self.__typename)
  linear.check_size(features, self.__typename, 'num_features')
  self.num_features, self.eps = features, opts.eps or 1e-5
  -- momentum = false (PyTorch's None): a cumulative average over all batches
  if opts.momentum == false then self.momentum = false else self.momentum = opts.momentum or 0.1 end
  self.affine = opts.affine ~= false
  self.track_running_stats = opts.track_running_stats ~= false
  local dtype = opts.dtype or 'float32'
  if self.affine then
    self.weight = linear.param({ features }, opts)
    self.bias = linear.param({ features }, opts)
  end
  if self.track_running_stats then
    self:register_buffer('running_mean', flare.zeros(features, { dtype = dtype }))
    self:register_buffer('running_var', flare.ones(features, { dtype = dtype }))
    self:register_buffer('num_batches_tracked', flare.tensor(0, { dtype = 'int64' }))
  end
  self:reset_parameters()
end

--- m:reset_running_stats(): running mean 0, variance 1, no batches seen.
function BatchNorm:reset_running_stats()
  if self.track_running_stats then
    flare.no_grad(function()
      self.running_mean:zero_()
      self.running_var:fill_(1)
      self.num_batches_tracked:zero_()
    end)
  end
end

function BatchNorm:reset_parameters()
  self:reset_running_stats()
  if self.affine then
    init.ones_(self.weight)
    init.zeros_(self.bias)
  end
end

function BatchNorm:forward(x)
  F._check_float(x, self.__typename)
  self:_check_input(x)
  local momentum = self.momentum or 0
  local use_batch = self.training or not self.track_running_stats
  if self.training and self.track_running_stats then
    flare.no_grad(function() self.num_batches_tracked:add_(1) end)
    if self.momentum == false then momentum = 1 / self.num_batches_tracked:item() end
  end
  local track = self.track_running_stats and (self.training or not use_batch)
  return F.batch_norm(x, track and self.running_mean or nil, track and self.running_var or nil,
    self.weight, self.bias, use_batch, momentum, self.eps)
end

function BatchNorm:extra_repr()
  local s = string.format('%d, eps=%g, momentum=%s', self.num_features, self.eps, tostring(self.momentum))
  if not self.affine then s = s .. ', affine=false' end
  if not self.track_running_stats then s = s .. ', track_running_stats=false' end
  return s
end

--- nn.BatchNorm1d(num_features, [{eps = 1e-5, momentum = 0.1, affine = true,
-- track_running_stats = true, dtype}]): over (N, C) or (N, C, L) inputs. In training mode
-- it normalises with the batch's statistics and updates running_mean / running_var
-- (new = (1 - momentum) * old + momentum * batch; momentum = false for a cumulative
-- average); in eval mode it uses the running statistics.
local BatchNorm1d = module.class('BatchNorm1d', BatchNorm)
M.BatchNorm1d = BatchNorm1d
function BatchNorm1d:_check_input(x)
  if (x:dim() ~= 2 and x:dim() ~= 3) or x:size(2) ~= self.num_features then
    error(string.format('nn.BatchNorm1d: expected input (N, %d) or (N, %d, L), got shape [%s]',
      self.num_features, self.num_features, table.concat(x:size(), ', ')), 3)
  end
end

--- nn.BatchNorm2d(num_features, [opts]): as BatchNorm1d, over (N, C, H, W) inputs.
local BatchNorm2d = module.class('BatchNorm2d', BatchNorm)
M.BatchNorm2d = BatchNorm2d
function BatchNorm2d:_check_input(x)
  if x:dim() ~= 4 or x:size(2) ~= self.num_features then
    error(string.format('nn.BatchNorm2d: expected input (N, %d, H, W), got shape [%s]',
      self.num_features, table.concat(x:size(), ', ')), 3)
  end
end

return M
