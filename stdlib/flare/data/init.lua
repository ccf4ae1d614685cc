-- flare.data: data sets and batch loaders.
--
-- A data set is any Lua object with a length (#ds) and a way to get sample i (1-based):
-- ds[i] or ds:get(i), giving one value or a table of values. Data sets of tensors
-- (TensorDataset, and subsets of it) also hand out whole batches at once, which is what
-- makes a loader fast.
local flare = require 'flare.core'

local M = {}

local function here()
  -- the directory of this file: stdlib/flare/data/ in the tree, share/lua/5.4/flare/data/ installed
  local src = debug.getinfo(1, 'S').source:sub(2)
  return src:match('^(.*)/') or '.'
end

-- Bundled data sets are looked up beside the library: <tree>/data or <prefix>/share/flare/data.
local function bundled(name)
  local dir = here()
  for _, candidate in ipairs { dir .. '/../../../data/' .. name, dir .. '/../../../../flare/data/' .. name } do
    local f = io.open(candidate, 'rb')
    if f then f:close() return candidate end
  end
  error(string.format("bundled data file '%s' not found (looked beside %s); reinstall flare", name, dir), 3)
end

-- A data set's own method, looked up without calling an __index function (a data set
-- whose __index is a function takes sample numbers, not method names).
local function method(ds, name)
  local own = type(ds) == 'table' and rawget(ds, name)
  if type(own) == 'function' then return own end
  local mt = getmetatable(ds)
  local idx = mt and mt.__index
  if type(idx) == 'table' and type(idx[name]) == 'function' then return idx[name] end
  return nil
end

------------------------------------------------------------------------------ TensorDataset

local TensorDataset = {}
TensorDataset.__index = TensorDataset
TensorDataset.__name = 'data.TensorDataset'

--- data.TensorDataset(x, y, ...): sample i is {x[i], y[i], ...}; all share the first dim.
function M.TensorDataset(...)
  local tensors = { ... }
  if #tensors == 0 then error('TensorDataset: expected at least one tensor', 2) end
  local n
  for k, t in ipairs(tensors) do
    if not flare.is_tensor(t) then
      error(string.format('TensorDataset: argument %d is a %s, expected a tensor', k, type(t)), 2)
    end
    if t:dim() == 0 then error(string.format('TensorDataset: tensor %d is 0-dim', k), 2) end
    n = n or t:size(1)
    if t:size(1) ~= n then
      error(string.format('TensorDataset: tensor %d has %d samples, tensor 1 has %d', k, t:size(1), n), 2)
    end
  end
  return setmetatable({ tensors = tensors, n = n }, TensorDataset)
end

function TensorDataset:__len() return self.n end

function TensorDataset:get(i)
  local out = {}
  for k, t in ipairs(self.tensors) do out[k] = t[i] end
  return out
end

-- A batch of samples: one index_select per tensor. idx holds 1-based sample numbers.
function TensorDataset:batch(idx)
  local out = {}
  -- a data set held on the GPU gathers there (the indices follow it: a few bytes)
  for k, t in ipairs(self.tensors) do out[k] = t:index_select(1, idx:to(t:device())) end
  return out
end

------------------------------------------------------------------------------ Subset, split

local Subset = {}
Subset.__index = Subset
Subset.__name = 'data.Subset'

--- data.Subset(ds, indices): the samples of ds at indices (a Lua list or int64 tensor).
function M.Subset(ds, indices)
  if not flare.is_tensor(indices) then indices = flare.tensor(indices, { dtype = 'int64' }) end
  return setmetatable({ dataset = ds, indices = indices }, Subset)
end

function Subset:__len() return self.indices:numel() end

function Subset:get(i) return M.sample(self.dataset, self.indices[i]:item()) end

function Subset:batch(idx)
  local inner = self.indices:index_select(1, idx)
  local batch = method(self.dataset, 'batch')
  if batch then return batch(self.dataset, inner) end
  return M.collate(M.samples(self.dataset, inner))
end

--- data.random_split(ds, fractions_or_counts, {seed}): disjoint random subsets, e.g.
-- data.random_split(ds, {0.8, 0.2}, {seed = 1}). The same seed gives the same split.
function M.random_split(ds, parts, opts)
  opts = opts or {}
  local n = #ds
  local counts, total, fractions = {}, 0, true
  for k, p in ipairs(parts) do
    if type(p) ~= 'number' or p < 0 then error(string.format('random_split: part %d must be a non-negative number', k), 2) end
    fractions = fractions and p <= 1 and math.type(p) == 'float'
  end
  for k, p in ipairs(parts) do
    counts[k] = fractions and math.floor(p * n + 0.5) or math.tointeger(p)
    if not counts[k] then error(string.format('random_split: part %d (%s) is neither a fraction nor a count', k, p), 2) end
    total = total + counts[k]
  end
  if fractions and math.abs(total - n) <= #parts then
    counts[#counts] = counts[#counts] + (n - total)   -- rounding remainder to the last part
    total = n
  end
  if total ~= n then
    error(string.format('random_split: parts add up to %d samples, the data set has %d', total, n), 2)
  end
  local saved = flare.get_rng_state()
  if opts.seed then flare.manual_seed(opts.seed) end
  local perm = flare.randperm(n) + 1
  if opts.seed then flare.set_rng_state(saved) end
  local out, start = {}, 1
  for k, c in ipairs(counts) do
    out[k] = M.Subset(ds, perm:narrow(1, start, c))
    start = start + c
  end
  return table.unpack(out)
end

--- ds:split(fraction, {seed}) on the data sets here: two subsets (train, test).
function TensorDataset:split(fraction, opts) return M.random_split(self, { fraction, 1 - fraction }, opts) end
Subset.split = TensorDataset.split

------------------------------------------------------------------------------ samples, collate

function M.sample(ds, i)
  local get = method(ds, 'get')
  if get then return get(ds, i) end
  return ds[i]
end

function M.samples(ds, idx)
  local list = {}
  for k, i in ipairs(idx:totable()) do list[k] = M.sample(ds, i) end
  return list
end

--- data.collate(samples): stacks a list of samples (tensors, numbers, or tables of them) into
-- batch tensors, field by field.
function M.collate(samples)
  local first = samples[1]
  if flare.is_tensor(first) then return flare.stack(samples, 1) end
  if type(first) == 'number' then
    return flare.tensor(samples, { dtype = math.type(first) == 'integer' and 'int64' or 'float32' })
  end
  if type(first) == 'table' then
    local out = {}
    for k in pairs(first) do
      local column = {}
      for j, s in ipairs(samples) do column[j] = s[k] end
      out[k] = M.collate(column)
    end
    return out
  end
  error('collate: cannot batch samples of type ' .. type(first), 2)
end

------------------------------------------------------------------------------ loader

local Loader = {}
Loader.__index = Loader
Loader.__name = 'data.Loader'

--- data.loader(ds, {batch_size = 1, shuffle = false, drop_last = false, seed, collate,
-- transform, prefetch = false}): iterate with `for x, y in loader do ... end` (each field of
-- a sample is one loop variable). With shuffle, each pass draws a new order from flare's
-- generator (or from its own, seeded, generator when `seed` is given). transform(batch_fields)
-- may rewrite a batch (e.g. augmentation) and returns the fields. prefetch (opt-in): over a
-- TensorDataset or a Subset of one (CPU tensors, no collate), the next batch's rows are
-- copied on a background thread while the current batch is in use; the batches are the
-- same. Other data sets ignore it. See README "Background loading" for when it pays.
-- device = 'cuda': batches arrive on the GPU (after transform, which runs where the data
-- set's tensors are); they go through a page-locked staging buffer per field, reused from
-- batch to batch, which copies faster than ordinary memory (pin_memory = false skips it).
function M.loader(ds, opts)
  opts = opts or {}
  local bs = opts.batch_size or 1
  if math.type(bs) ~= 'integer' or bs < 1 then
    error('loader: batch_size must be a positive integer, got ' .. tostring(opts.batch_size), 2)
  end
  if #ds == 0 then error('loader: the data set is empty', 2) end
  local device = opts.device
  if device == 'cpu' then device = nil end
  if device ~= nil then
    if type(device) ~= 'string' or not device:match('^cuda[:%d]*$') then
      error("loader: device must be 'cpu' or 'cuda', got " .. tostring(device), 2)
    end
    if not flare.cuda.is_available() then
      error('loader: device ' .. device .. ' is not available: ' .. tostring(flare.cuda.why_unavailable()), 2)
    end
  end
  return setmetatable({ dataset = ds, batch_size = bs, shuffle = opts.shuffle or false,
                        drop_last = opts.drop_last or false, collate = opts.collate,
                        transform = opts.transform, seed = opts.seed, epoch = 0, position = 0,
                        prefetch = opts.prefetch == true and not opts.collate, device = device,
                        pin_memory = device ~= nil and opts.pin_memory ~= false, _staging = {} }, Loader)
end

function Loader:__len()
  local n = #self.dataset
  return self.drop_last and n // self.batch_size or (n + self.batch_size - 1) // self.batch_size
end

function Loader:_order()
  local n = #self.dataset
  if not self.shuffle then return flare.arange(1, n + 1) end
  if self.seed then
    local saved = flare.get_rng_state()
    flare.manual_seed(self.seed + self.epoch)
    local p = flare.randperm(n) + 1
    flare.set_rng_state(saved)
    return p
  end
  return flare.randperm(n) + 1
end

function Loader:_batch(idx, start)
  local ds = self.dataset
  local fields
  local batch = method(ds, 'batch')
  if self.prefetch then fields = self:_prefetched(start, idx:numel()) end
  if fields then -- gathered in the background
  elseif self.collate then
    fields = self.collate(M.samples(ds, idx))
  elseif batch then
    fields = batch(ds, idx)
  else
    fields = M.collate(M.samples(ds, idx))
  end
  if flare.is_tensor(fields) then fields = { fields } end
  if self.transform then fields = self.transform(fields) or fields end
  if self.device then fields = self:_to_device(fields) end
  return fields
end

-- A CPU tensor's copy on the device, through the field's pinned staging buffer: the copy to
-- the GPU is synchronous, so the buffer is free again when :to returns.
function Loader:_stage(key, t)
  if not self.pin_memory or not t:is_contiguous() or t:dim() == 0 then return t:to(self.device) end
  local buf = self._staging[key]
  local rows = t:size(1)
  local fits = buf and buf:dtype() == t:dtype() and buf:dim() == t:dim() and buf:size(1) >= rows
  if fits then
    for d = 2, t:dim() do fits = fits and buf:size(d) == t:size(d) end
  end
  if not fits then
    buf = t:pin_memory()
    self._staging[key] = buf
  else
    buf = buf:narrow(1, 1, rows)
    buf:copy_(t)
  end
  return buf:to(self.device)
end

-- Moves a batch's tensors (nested tables too) to the loader's device.
function Loader:_to_device(fields)
  local function move(v, key)
    if flare.is_tensor(v) then
      if v:device() ~= 'cpu' then return v:to(self.device) end
      return self:_stage(key, v)
    end
    if type(v) == 'table' then
      local out = {}
      for k, x in pairs(v) do out[k] = move(x, key .. '.' .. tostring(k)) end
      return out
    end
    return v
  end
  local out = {}
  for k, v in pairs(fields) do out[k] = move(v, tostring(k)) end
  return out
end

-- The generic-for protocol: a call with a nil control value starts a new pass.
function Loader:__call(_, control)
  if control == nil then
    if self._resume then
      self._resume = nil -- restored by load_state_dict: finish the pass that was under way
    else
      self.epoch = self.epoch + 1
      self.order = self:_order()
      self.position = 0
    end
  end
  local n = self.order:numel()
  local start = self.position + 1
  if start > n then return nil end
  local count = math.min(self.batch_size, n - start + 1)
  if count < self.batch_size and self.drop_last then return nil end
  self.position = start + count - 1
  return table.unpack(self:_batch(self.order:narrow(1, start, count), start))
end

-- prefetch: the tensors whose rows a loader over ds gathers and the map from sample numbers
-- to rows (a Subset's indices), or false when ds is not backed by such tensors.
local function prefetch_source(ds)
  local map
  if getmetatable(ds) == Subset then map, ds = ds.indices, ds.dataset end
  if getmetatable(ds) ~= TensorDataset then return false end
  for _, t in ipairs(ds.tensors) do
    -- the worker copies whole rows of CPU memory; gradients would need index_select's graph
    if t:device() ~= 'cpu' or t:wants_grad() or not t:select(1, 1):is_contiguous() then return false end
  end
  return { tensors = ds.tensors, map = map }
end

-- Drops a pending background gather (joining its thread).
function Loader:_drop_pending()
  if self._pending then self._pending.handle:close() end
  self._pending = nil
end

-- With prefetch: takes the batch at start if it was gathered in the background (for this
-- very order), then starts gathering the one after it; nil when the data set does not allow it.
function Loader:_prefetched(start, count)
  if self._prefetch_src == nil then self._prefetch_src = prefetch_source(self.dataset) end
  local src = self._prefetch_src
  if not src then return nil end
  local p, fields = self._pending, nil
  if p and p.order == self.order and p.start == start and p.count == count then
    self._pending = nil
    fields = p.handle:wait()
  else
    self:_drop_pending() -- a pass abandoned, restarted or restored: that gather is stale
  end
  local n, next = self.order:numel(), start + count
  local next_count = math.min(self.batch_size, n - next + 1)
  if next_count > 0 and (next_count == self.batch_size or not self.drop_last) then
    local idx = self.order:narrow(1, next, next_count)
    if src.map then idx = src.map:index_select(1, idx) end
    self._pending = { order = self.order, start = next, count = next_count,
                      handle = flare._prefetch_start(src.tensors, idx) }
  end
  return fields
end

--- loader:state_dict() -> {epoch, position, order, in_pass, size, batch_size}: where the
-- loader stands (checkpoints store it). in_pass: a pass is under way with batches left.
function Loader:state_dict()
  local left = self.order and self.order:numel() - self.position or 0
  return { epoch = self.epoch, position = self.position, order = self.order, size = #self.dataset,
           batch_size = self.batch_size,
           in_pass = left > 0 and (not self.drop_last or left >= self.batch_size) }
end

--- loader:load_state_dict(sd): restores a state_dict(); if a pass was under way, the next
-- `for ... in loader` finishes it (same order, from the next batch), else starts the next one.
function Loader:load_state_dict(sd)
  if type(sd) ~= 'table' or math.type(sd.epoch) ~= 'integer' or math.type(sd.position) ~= 'integer' then
    error('loader:load_state_dict: expected a table from loader:state_dict(), got ' .. type(sd), 2)
  end
  if sd.size ~= #self.dataset or sd.batch_size ~= self.batch_size then
    error(string.format('loader:load_state_dict: the state is of a loader over %s samples in batches of %s, '
      .. 'this one has %d samples in batches of %d', tostring(sd.size), tostring(sd.batch_size), #self.dataset,
      self.batch_size), 2)
  end
  if sd.order ~= nil and not (flare.is_tensor(sd.order) and sd.order:numel() == #self.dataset) then
    error('loader:load_state_dict: order must be a tensor of ' .. #self.dataset .. ' sample numbers', 2)
  end
  if sd.position < 0 or sd.position > #self.dataset then
    error(string.format('loader:load_state_dict: position %d is outside 0..%d', sd.position, #self.dataset), 2)
  end
  self:_drop_pending()
  self.epoch, self.position = sd.epoch, sd.position
  self.order = sd.order and sd.order:to { dtype = 'int64', device = 'cpu' }:clone()
  self._resume = sd.order ~= nil and sd.in_pass == true or nil
end

------------------------------------------------------------------------------ bundled sets

--- data.digits(): the bundled handwritten digits (1797 images of 8x8 pixels, UCI), as a
-- TensorDataset of images (N, 1, 8, 8) float32 scaled to [0, 1] and labels (N) int64 holding
-- the class index 1..10 for the digits 0..9 (class indices are 1-based in flare).
function M.digits(opts)
  opts = opts or {}
  local path = opts.path or bundled('digits.csv.gz')
  local text = flare.read_file(path)
  local rows, labels = {}, {}
  local n = 0
  for line in text:gmatch('[^\n]+') do
    local values = {}
    for v in line:gmatch('[^,]+') do values[#values + 1] = tonumber(v) end
    if #values ~= 65 then
      error(string.format("digits: line %d of '%s' has %d values, expected 65", n + 1, path, #values), 2)
    end
    n = n + 1
    labels[n] = math.tointeger(values[65]) + 1
    values[65] = nil
    rows[n] = values
  end
  local x = (flare.tensor(rows, { dtype = 'float32' }) / 16):reshape(n, 1, 8, 8)
  local ds = M.TensorDataset(x, flare.tensor(labels))
  ds.classes = { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9' }
  return ds
end

------------------------------------------------------------------------------ formats, text, transforms

-- File formats, text corpora and transforms live in files of their own beside this one,
-- loaded on first use: data.mnist, data.idx (flare/data/mnist.lua), data.cifar10 (cifar.lua),
-- data.csv (csv.lua), data.npy, data.npz, data.save_npy, data.save_npz (npy.lua), data.text,
-- data.shakespeare, data.Vocab (text.lua), data.transforms (transforms.lua).
M._bundled = bundled
local parts = {
  mnist = 'mnist', idx = 'mnist', parse_idx = 'mnist', cifar10 = 'cifar', parse_cifar = 'cifar', csv = 'csv',
  npy = 'npy', npz = 'npy', save_npy = 'npy', save_npz = 'npy', parse_npy = 'npy', read_zip = 'npy',
  text = 'text', shakespeare = 'text', Vocab = 'text',
}
setmetatable(M, {
  __index = function(t, key)
    if key == 'transforms' then
      local mod = require 'flare.data.transforms'
      rawset(t, key, mod)
      return mod
    end
    local file = parts[key]
    if not file then return nil end
    local fn = require('flare.data.' .. file)[key]
    rawset(t, key, fn)
    return fn
  end,
})

return M
