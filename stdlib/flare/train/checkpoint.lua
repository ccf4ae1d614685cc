-- flare.train.checkpoint: saving a training run and resuming it exactly. A checkpoint is one
-- flare.save file (safetensors, written atomically) holding the model's and the optimizer's
-- (and scheduler's) state dicts, the random generator's state, the data loader's position
-- and the epoch and step, so that k steps + save + a new process + resume + (N - k) steps
-- end with the same parameters, to the bit, as N steps straight.
local flare = require 'flare.core'

local M = {}

local FORMAT, VERSION = 'flare.checkpoint', 1

-- flare.save / flare.load: from the core table once flare's init has put them there, else
-- from flare.serialize directly (this file loads while flare's init is still running).
local function serializer()
  if type(flare.save) == 'function' and type(flare.load) == 'function' then return flare.save, flare.load end
  local ok, s = pcall(require, 'flare.serialize')
  if ok and type(s) == 'table' and s.save and s.load then return s.save, s.load end
  error('checkpoints need flare.save and flare.load (flare.serialize), which this build lacks', 3)
end

local function is_module(v)
  return type(v) == 'table' and type(v.state_dict) == 'function' and type(v.load_state_dict) == 'function'
end

local function dirname(path)
  return path:match('^(.*)/[^/]*$') or '.'
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

-- Creates the checkpoint's directory when it does not exist yet ('ck/run-{epoch}.flare').
local function ensure_dir(dir)
  if os.rename(dir, dir) then return end
  local q = "'" .. dir:gsub("'", "'\\''") .. "'"
  if not os.execute('mkdir -p -- ' .. q) then
    error(string.format("save_checkpoint: cannot create the directory '%s'", dir), 3)
  end
end

-- The checkpoints kept per group (a directory, or opts.group), oldest first: those saved
-- by this process, or listed by the checkpoint a run resumed from.
local kept = {}

local function remember(group, path, keep)
  local list = kept[group] or {}
  for i = #list, 1, -1 do
    if list[i] == path then table.remove(list, i) end
  end
  list[#list + 1] = path
  kept[group] = list
  local removed = {}
  while keep and #list > keep do
    local old = table.remove(list, 1)
    if old ~= path then
      os.remove(old)
      removed[#removed + 1] = old
    end
  end
  return list, removed
end

-- The fields save_checkpoint knows; anything else goes into the checkpoint's `extra`.
local known = { model = true, optimizer = true, scheduler = true, loader = true, epoch = true, step = true,
                keep = true, group = true, extra = true }

-- A copy of plain data (numbers, strings, booleans, tensors, tables of them) for `extra`.
local function plain(v, where, seen)
  local t = type(v)
  if t == 'number' or t == 'string' or t == 'boolean' or flare.is_tensor(v) then return v end
  if t ~= 'table' then
    error(string.format('save_checkpoint: %s is a %s; a checkpoint holds numbers, strings, booleans, tensors and tables of them',
      where, t), 4)
  end
  seen = seen or {}
  if seen[v] then error('save_checkpoint: ' .. where .. ' holds a cycle', 4) end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do out[k] = plain(x, where .. '.' .. tostring(k), seen) end
  seen[v] = nil
  return out
end

--- train.save_checkpoint(path, {model, optimizer, scheduler, loader, epoch, step, keep = K,
-- extra = {...}}) -> path
-- Writes everything a run needs to go on exactly: the state dicts of model, optimizer and
-- scheduler, the loader's position (order of the pass under way and batches done), the
-- random generator's state, epoch and step, and `extra` (plain data: numbers, strings,
-- tensors, tables). The write is atomic: a crash leaves the previous file intact. With
-- keep = K, only the K latest checkpoints of the same directory (or `group`) saved this way
-- remain; older ones are deleted once the new one is on disk.
function M.save_checkpoint(path, opts)
  if type(path) ~= 'string' or path == '' then
    error("bad argument #1 to 'save_checkpoint' (file name expected, got " .. (path == '' and 'an empty string' or type(path)) .. ')', 2)
  end
  if type(opts) ~= 'table' then
    error("bad argument #2 to 'save_checkpoint' (table {model, optimizer, ...} expected, got " .. type(opts) .. ')', 2)
  end
  for k in pairs(opts) do
    if not known[k] then
      error(string.format("save_checkpoint: unknown field '%s' (expected model, optimizer, scheduler, loader, epoch, step, keep, group, extra)", tostring(k)), 2)
    end
  end
  for _, k in ipairs { 'model', 'optimizer', 'scheduler', 'loader' } do
    if opts[k] ~= nil and not is_module(opts[k]) then
      error(string.format('save_checkpoint: %s must be an object with state_dict/load_state_dict, got %s', k, type(opts[k])), 2)
    end
  end
  for _, k in ipairs { 'epoch', 'step' } do
    if opts[k] ~= nil and math.type(opts[k]) ~= 'integer' then
      error(string.format('save_checkpoint: %s must be an integer, got %s', k, tostring(opts[k])), 2)
    end
  end
  if opts.keep ~= nil and (math.type(opts.keep) ~= 'integer' or opts.keep < 1) then
    error('save_checkpoint: keep must be a positive integer, got ' .. tostring(opts.keep), 2)
  end
  local save = serializer()
  local rng = flare.get_rng_state()
  local ck = {
    format = FORMAT, version = VERSION,
    epoch = opts.epoch, step = opts.step,
    -- as int64 tensors: the generator's state is two 64-bit words, exact whatever the file
    -- does with plain numbers
    rng = flare.tensor({ rng.seed, rng.offset }, { dtype = 'int64' }),
  }
  if opts.model then ck.model = opts.model:state_dict() end
  if opts.optimizer then ck.optimizer = opts.optimizer:state_dict() end
  if opts.scheduler then ck.scheduler = opts.scheduler:state_dict() end
  if opts.loader then ck.loader = opts.loader:state_dict() end
  if opts.extra ~= nil then ck.extra = plain(opts.extra, 'extra') end
  local group = opts.group or dirname(path)
  if opts.keep then
    -- the list this file will carry: the kept ones and itself
    local list = {}
    for _, p in ipairs(kept[group] or {}) do if p ~= path then list[#list + 1] = p end end
    list[#list + 1] = path
    while #list > opts.keep do table.remove(list, 1) end
    ck.checkpoints = list
    ck.group = group
  end
  ensure_dir(dirname(path))
  save(path, ck)
  if opts.keep then remember(group, path, opts.keep) end
  return path
end

local function load_checkpoint(path, fname)
  if type(path) ~= 'string' or path == '' then
    error(string.format("bad argument #1 to '%s' (file name expected, got %s)", fname,
      path == '' and 'an empty string' or type(path)), 3)
  end
  if not exists(path) then
    error(string.format("%s: no checkpoint at '%s'", fname, path), 3)
  end
  local _, load = serializer()
  local ck = load(path)
  if type(ck) ~= 'table' or ck.format ~= FORMAT then
    error(string.format("%s: '%s' is not a checkpoint (a file from flare.train.save_checkpoint)", fname, path), 3)
  end
  if ck.version ~= VERSION then
    error(string.format("%s: '%s' is a version %s checkpoint, this flare reads version %d", fname, path,
      tostring(ck.version), VERSION), 3)
  end
  return ck
end

--- train.load_checkpoint(path) -> table
-- Reads a checkpoint without restoring anything: its model, optimizer, scheduler and loader
-- state dicts, rng, epoch, step, extra and the list of kept checkpoints.
function M.load_checkpoint(path)
  return load_checkpoint(path, 'load_checkpoint')
end

--- train.resume(path, {model, optimizer, scheduler, loader}) -> info
-- Restores what the checkpoint holds into the objects given (built the same way as when it
-- was saved), and the random generator. info: {epoch, step, next_epoch, extra, path}.
-- next_epoch is the epoch the training loop goes on with: the saved epoch when the loader
-- was in the middle of a pass (the next `for ... in loader` finishes it), else the one after.
--
--   local first = 1
--   if resuming then first = flare.train.resume(path, {model = m, optimizer = opt, loader = ld}).next_epoch end
--   for epoch = first, epochs do for x, y in ld do ... end end
function M.resume(path, opts)
  if opts ~= nil and type(opts) ~= 'table' then
    error("bad argument #2 to 'resume' (table {model, optimizer, scheduler, loader} expected, got " .. type(opts) .. ')', 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= 'model' and k ~= 'optimizer' and k ~= 'scheduler' and k ~= 'loader' then
      error(string.format("resume: unknown field '%s' (expected model, optimizer, scheduler, loader)", tostring(k)), 2)
    end
    if not is_module(opts[k]) then
      error(string.format('resume: %s must be an object with state_dict/load_state_dict, got %s', k, type(opts[k])), 2)
    end
  end
  local ck = load_checkpoint(path, 'resume')
  for _, k in ipairs { 'model', 'optimizer', 'scheduler', 'loader' } do
    if opts[k] and ck[k] == nil then
      error(string.format("resume: '%s' holds no %s state (it was saved without a %s)", path, k, k), 2)
    end
  end
  -- check everything that can be checked before changing anything
  if opts.loader then
    local sd = ck.loader
    if sd.size ~= #opts.loader.dataset or sd.batch_size ~= opts.loader.batch_size then
      error(string.format("resume: '%s' was saved with a loader over %s samples in batches of %s, this one has %d in batches of %d",
        path, tostring(sd.size), tostring(sd.batch_size), #opts.loader.dataset, opts.loader.batch_size), 2)
    end
  end
  if opts.model then opts.model:load_state_dict(ck.model) end
  if opts.optimizer then opts.optimizer:load_state_dict(ck.optimizer) end
  if opts.scheduler then opts.scheduler:load_state_dict(ck.scheduler) end
  if opts.loader then opts.loader:load_state_dict(ck.loader) end
  if flare.is_tensor(ck.rng) then
    local r = ck.rng:totable()
    flare.set_rng_state { seed = math.tointeger(r[1]), offset = math.tointeger(r[2]) }
  end
  if ck.checkpoints then
    local list = {}
    for _, p in ipairs(ck.checkpoints) do if exists(p) then list[#list + 1] = p end end
    kept[type(ck.group) == 'string' and ck.group or dirname(path)] = list
  end
  local in_pass = type(ck.loader) == 'table' and ck.loader.in_pass == true
  local epoch = ck.epoch
  return {
    path = path, epoch = epoch, step = ck.step, extra = ck.extra,
    next_epoch = epoch and (in_pass and epoch or epoch + 1) or nil,
    in_pass = in_pass,
  }
end

-- For the specs: forgets the checkpoints kept by this process.
function M._forget()
  kept = {}
end

return M
