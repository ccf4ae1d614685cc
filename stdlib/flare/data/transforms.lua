-- flare.data.transforms: batch transforms for data.loader's `transform` option, such as
-- augmentation of images (random crops, flips, rotations and affine maps) and
-- normalisation. A transform works on whole batches: given the loader's list of fields
-- ({images, labels}) it rewrites its field (images by default, labels for one_hot) and
-- returns the list; given a tensor, it returns the transformed tensor. Random choices are
-- drawn per sample from flare's generator, so flare.manual_seed makes them repeatable.
--
--   local T = data.transforms
--   local augment = T.compose { T.random_crop(32, { padding = 4 }), T.hflip(),
--                               T.normalize({ 0.49, 0.48, 0.45 }, { 0.25, 0.24, 0.26 }) }
--   for x, y in data.loader(train, { batch_size = 128, shuffle = true, transform = augment }) do
local flare = require 'flare.core'

local M = {}

local Transform = {}
Transform.__index = Transform
Transform.__name = 'data.Transform'

function Transform:__call(input)
  if flare.is_tensor(input) then return self.fn(input) end
  if type(input) ~= 'table' then
    error(string.format('%s: expected a tensor or a list of batch fields, got %s', self.name, type(input)), 2)
  end
  local x = input[self.field]
  if not flare.is_tensor(x) then
    error(string.format('%s: field %d of the batch is %s, expected a tensor', self.name, self.field, type(x)), 2)
  end
  local out = { table.unpack(input, 1, math.max(#input, self.field)) }
  out[self.field] = self.fn(x)
  return out
end

function Transform:__tostring() return 'data.transforms.' .. self.name end

local function transform(name, field, fn)
  return setmetatable({ name = name, field = field, fn = fn }, Transform)
end

local function field_of(opts, default)
  local f = opts.field or default
  if math.type(f) ~= 'integer' or f < 1 then error('transforms: field must be a positive integer', 3) end
  return f
end

local function images(x, name)
  if x:dim() ~= 4 then
    error(string.format('%s: expected a batch of images (N, C, H, W), got shape %s', name,
      table.concat(x:size(), 'x')), 3)
  end
  if x:dtype() ~= 'float32' and x:dtype() ~= 'float64' then
    error(string.format('%s: expected float32 or float64 images, got %s (convert with transforms.to_float)', name,
      x:dtype()), 3)
  end
end

--- transforms.compose{t1, t2, ...}: applies the transforms (or functions of the list of
-- fields) in order.
function M.compose(list)
  if type(list) ~= 'table' then error('compose: expected a list of transforms, got ' .. type(list), 2) end
  for k, t in ipairs(list) do
    local mt = getmetatable(t)
    if type(t) ~= 'function' and not (mt and mt.__call) then
      error(string.format('compose: entry %d is a %s, expected a transform', k, type(t)), 2)
    end
  end
  return setmetatable({ name = 'compose', list = list }, {
    __call = function(self, input)
      for _, t in ipairs(self.list) do input = t(input) or input end
      return input
    end,
    __tostring = function() return 'data.transforms.compose of ' .. #list end,
  })
end

--- transforms.to_float(scale = 1/255 for uint8, else 1, {field = 1}): converts to float32
-- and multiplies by scale (uint8 images to [0, 1]).
function M.to_float(scale, opts)
  opts = opts or {}
  return transform('to_float', field_of(opts, 1), function(x)
    local s = scale or (x:dtype() == 'uint8' and 1 / 255 or 1)
    local y = x:to(opts.dtype or 'float32')
    if s ~= 1 then y = y * s end
    return y
  end)
end

-- A per-channel constant of shape (1, C, 1, ...) for x, from a number or a list.
local function per_channel(v, x, what)
  if type(v) == 'number' then return v end
  if type(v) ~= 'table' and not flare.is_tensor(v) then
    error(string.format('normalize: %s must be a number or a list per channel, got %s', what, type(v)), 3)
  end
  local t = flare.is_tensor(v) and v:to(x:dtype()) or flare.tensor(v, { dtype = x:dtype() })
  if x:dim() < 2 or t:numel() ~= x:size(2) then
    error(string.format('normalize: %s has %d values, the batch of shape %s has %s channels (dim 2)', what,
      t:numel(), table.concat(x:size(), 'x'), x:dim() >= 2 and tostring(x:size(2)) or 'no'), 3)
  end
  local shape = { 1, t:numel() }
  for d = 3, x:dim() do shape[d] = 1 end
  return t:reshape(shape)
end

--- transforms.normalize(mean, std, {field = 1}): (x - mean) / std per channel (dim 2 of a
-- batch); mean and std are numbers or lists of one value per channel.
function M.normalize(mean, std, opts)
  opts = opts or {}
  if mean == nil or std == nil then error('normalize: expected mean and std', 2) end
  return transform('normalize', field_of(opts, 1), function(x)
    if x:dtype() ~= 'float32' and x:dtype() ~= 'float64' then
      error('normalize: expected a float batch, got ' .. x:dtype(), 3)
    end
    return (x - per_channel(mean, x, 'mean')) / per_channel(std, x, 'std')
  end)
end

--- transforms.one_hot(num_classes, {field = 2, dtype = 'float32'}): class indices (1-based)
-- to one-hot rows: (N) -> (N, num_classes).
function M.one_hot(num_classes, opts)
  opts = opts or {}
  if math.type(num_classes) ~= 'integer' or num_classes < 1 then
    error('one_hot: num_classes must be a positive integer, got ' .. tostring(num_classes), 2)
  end
  return transform('one_hot', field_of(opts, 2), function(y)
    if y:dtype() ~= 'int64' and y:dtype() ~= 'int32' then
      error('one_hot: expected int64 class indices, got ' .. y:dtype(), 3)
    end
    if y:numel() > 0 then
      local lo, hi = y:min():item(), y:max():item()
      if lo < 1 or hi > num_classes then
        error(string.format('one_hot: class index %d is outside 1..%d', lo < 1 and lo or hi, num_classes), 3)
      end
    end
    local flat = y:reshape(y:numel(), 1):long()
    local out = flare.zeros(y:numel(), num_classes, { dtype = opts.dtype or 'float32' }):scatter_(2, flat, 1)
    local shape = { table.unpack(y:size()) }
    shape[#shape + 1] = num_classes
    return out:reshape(shape)
  end)
end

-- (N, 2, 3) float64 from a Lua list of six numbers per image.
local function thetas(list, n)
  return flare.tensor(list, { dtype = 'float64' }):reshape(n, 2, 3)
end

--- transforms.random_crop(size, {padding = 0, fill = 0, field = 1}): pads each image by
-- `padding` pixels on every side (with fill) and cuts a random size x size window (size may
-- be {h, w}), a new position per image.
function M.random_crop(size, opts)
  opts = opts or {}
  local oh, ow
  if math.type(size) == 'integer' then oh, ow = size, size
  elseif type(size) == 'table' then oh, ow = size[1], size[2] end
  if math.type(oh) ~= 'integer' or math.type(ow) ~= 'integer' or oh < 1 or ow < 1 then
    error('random_crop: size must be a positive integer or {height, width}', 2)
  end
  local pad = opts.padding or 0
  if math.type(pad) ~= 'integer' or pad < 0 then error('random_crop: padding must be a non-negative integer', 2) end
  return transform('random_crop', field_of(opts, 1), function(x)
    images(x, 'random_crop')
    local n, _, h, w = table.unpack(x:size())
    if oh > h + 2 * pad or ow > w + 2 * pad then
      error(string.format('random_crop: a %dx%d crop does not fit in %dx%d images padded by %d', oh, ow, h, w, pad), 3)
    end
    -- the window's top-left corner in padded coordinates, and the shift that puts it there
    local ty = flare.randint(0, h + 2 * pad - oh + 1, { n }):totable()
    local tx = flare.randint(0, w + 2 * pad - ow + 1, { n }):totable()
    local list = {}
    for i = 1, n do
      local sx = tx[i] - pad + (ow - 1) / 2 - (w - 1) / 2
      local sy = ty[i] - pad + (oh - 1) / 2 - (h - 1) / 2
      list[#list + 1] = { { 1, 0, sx }, { 0, 1, sy } }
    end
    return flare.warp_affine(x, thetas(list, n), { mode = 'nearest', fill = opts.fill or 0, size = { oh, ow } })
  end)
end

--- transforms.hflip({p = 0.5, field = 1}): mirrors each image left-right with probability p.
function M.hflip(opts)
  opts = opts or {}
  local p = opts.p or 0.5
  if type(p) ~= 'number' or p < 0 or p > 1 then error('hflip: p must be a probability', 2) end
  return transform('hflip', field_of(opts, 1), function(x)
    images(x, 'hflip')
    local n = x:size(1)
    local flip = flare.rand(n):totable()
    local list = {}
    for i = 1, n do list[i] = { { flip[i] < p and -1 or 1, 0, 0 }, { 0, 1, 0 } } end
    return flare.warp_affine(x, thetas(list, n), { mode = 'nearest' })
  end)
end

local function range(v, what, default)
  if v == nil then return default[1], default[2] end
  if type(v) == 'number' then return -v, v end
  if type(v) == 'table' and type(v[1]) == 'number' and type(v[2]) == 'number' and v[1] <= v[2] then
    return v[1], v[2]
  end
  error(string.format('random_affine: %s must be a number or {min, max}', what), 3)
end

--- transforms.random_affine({degrees = 0, translate = {0, 0}, scale = {1, 1}, shear = 0,
-- mode = 'bilinear' | 'nearest', fill = 0, field = 1}): a random affine map per image about
-- its centre: a rotation by an angle in [-degrees, degrees] (or {min, max}), a shear in
-- [-shear, shear] degrees along x, a zoom by a factor in scale = {min, max}, and a shift by
-- up to translate = {fx, fy} of the width and height.
function M.random_affine(opts)
  opts = opts or {}
  local dlo, dhi = range(opts.degrees, 'degrees', { 0, 0 })
  local slo, shi = range(opts.scale, 'scale', { 1, 1 })
  local hlo, hhi = range(opts.shear, 'shear', { 0, 0 })
  if slo <= 0 then error('random_affine: scale must be positive', 2) end
  local tr = opts.translate or { 0, 0 }
  if type(tr) == 'number' then tr = { tr, tr } end
  if type(tr) ~= 'table' or type(tr[1]) ~= 'number' or type(tr[2]) ~= 'number' then
    error('random_affine: translate must be {fraction of width, fraction of height}', 2)
  end
  local mode = opts.mode or 'bilinear'
  return transform('random_affine', field_of(opts, 1), function(x)
    images(x, 'random_affine')
    local n, _, h, w = table.unpack(x:size())
    local u = flare.rand(n, 5, { dtype = 'float64' }):totable()
    local list = {}
    for i = 1, n do
      local r = u[i]
      local a = math.rad(dlo + (dhi - dlo) * r[1])
      local sh = math.rad(hlo + (hhi - hlo) * r[2])
      local s = slo + (shi - slo) * r[3]
      local dx = (2 * r[4] - 1) * tr[1] * w
      local dy = (2 * r[5] - 1) * tr[2] * h
      -- forward map F = rotate(a) . shear(sh) . scale(s), then shift (dx, dy); warp_affine
      -- wants the inverse (output pixel -> input point): F^-1 (p - d)
      local c, sn, k = math.cos(a), math.sin(a), math.tan(sh)
      local f11, f12, f21, f22 = c * s, (c * k - sn) * s, sn * s, (sn * k + c) * s
      local det = f11 * f22 - f12 * f21
      local i11, i12, i21, i22 = f22 / det, -f12 / det, -f21 / det, f11 / det
      list[i] = { { i11, i12, -(i11 * dx + i12 * dy) }, { i21, i22, -(i21 * dx + i22 * dy) } }
    end
    return flare.warp_affine(x, thetas(list, n), { mode = mode, fill = opts.fill or 0 })
  end)
end

--- transforms.random_rotation(degrees, opts): random_affine with only a rotation in
-- [-degrees, degrees] (or {min, max}).
function M.random_rotation(degrees, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.degrees = degrees
  return M.random_affine(o)
end

return M
