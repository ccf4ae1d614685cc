-- flare: the library's entry point. Loads the C core and the Lua parts of the library,
-- and returns the `flare` table. `require 'flare'` works from any Lua 5.4.
local core = require 'flare.core'

local flare = core

-- Printing of tensors and values lives in Lua (flare.format).
local format = require 'flare.format'
flare.format = format
debug.getregistry()['flare.format'] = format.tensor
debug.getregistry()['flare.Size'] = format.Size

flare.autograd = require 'flare.autograd'

-- Docstrings of Lua-defined functions and tables, kept beside their definitions:
-- flare.doc(f, 'signature\n\ntext') registers one (and returns f); help(f) shows it. The
-- C functions are documented in stdlib/flare/help.lua.
local docstrings = setmetatable({}, { __mode = 'k' })
flare._docstrings = docstrings
function flare.doc(obj, text)
  if type(obj) ~= 'function' and type(obj) ~= 'table' then
    error("bad argument #1 to 'doc' (function or table expected, got " .. type(obj) .. ')', 2)
  end
  if type(text) ~= 'string' then
    error("bad argument #2 to 'doc' (string expected, got " .. type(text) .. ')', 2)
  end
  docstrings[obj] = text
  return obj
end

-- The library's larger parts load on first use (flare.nn, the global `nn`, ...), so that
-- start-up stays a few milliseconds: nn, optim, data, train, plot (live plots through gnuplot).
local lazy = { nn = 'flare.nn', optim = 'flare.optim', data = 'flare.data', plot = 'flare.plot',
               train = 'flare.train', serialize = 'flare.serialize' }
flare._lazy_modules = lazy

setmetatable(flare, {
  __index = function(t, key)
    local name = lazy[key]
    if not name then return nil end
    local mod = require(name)
    rawset(t, key, mod)
    return mod
  end,
})

-- Saving and loading: safetensors files (flare.serialize, loaded on first use).
flare.save = flare.doc(function(...) return require('flare.serialize').save(...) end,
  'flare.save(path, value)\n\nSaves a tensor, a state dict, a model, or a nested table of tensors, ' ..
  'numbers, strings and booleans as a safetensors file (PyTorch reads its tensors). The write is ' ..
  'atomic: a crash mid-save leaves the previous file intact. GPU tensors are copied to the host: the ' ..
  'file is the same as from the CPU.')
flare.load = flare.doc(function(...) return require('flare.serialize').load(...) end,
  'flare.load(path, [{device = \'cuda\'}])\n\nLoads what flare.save wrote (a model is rebuilt from its ' ..
  'description; no code is stored or run), or any safetensors file as a table of tensors. Every size ' ..
  'and offset is checked before it is trusted. Tensors load on the CPU (files do not record a device, ' ..
  'so GPU-saved files load anywhere); device = \'cuda\' moves them, and models, to the GPU.')

flare.save_npy = flare.doc(function(path, t) return require('flare.data.npy').save_npy(path, t) end,
  "flare.save_npy(path, t)\n\nWrites t as NumPy's .npy file (little-endian, C order), atomically; numpy.load reads it.")
flare.save_npz = flare.doc(function(path, arrays) return require('flare.data.npy').save_npz(path, arrays) end,
  "flare.save_npz(path, {name = t, ...})\n\nWrites several tensors as a NumPy .npz archive (stored entries), atomically.")

-- ---------------------------------------------------------------- devices

-- flare has one random generator (counter-based Philox) for every device: a GPU kernel draws
-- from the same stream, by counter, as the CPU would, so one seed makes a run reproducible
-- wherever its tensors live. flare.cuda.manual_seed is therefore flare.manual_seed.
flare.cuda.manual_seed = flare.doc(function(seed) return flare.manual_seed(seed) end,
  'flare.cuda.manual_seed(seed)\n\nThe same as flare.manual_seed(seed): flare has one (Philox) random ' ..
  'generator for all devices, so one seed makes CPU and GPU runs reproducible.')
flare.cuda.manual_seed_all = flare.cuda.manual_seed

-- Autocast scopes on top of the engine's switch flare._set_autocast(name | nil). The mode
-- in force is tracked here so that scopes nest and restore what was there before.
local autocast_mode = nil

-- The engine's names for the modes ('bf16' is PyTorch's short name).
local autocast_names = { bf16 = 'bfloat16', bfloat16 = 'bfloat16' }

-- Sets the mode (a name or nil); returns the one before, as the engine reports it.
local function set_autocast(mode)
  local set = rawget(flare, '_set_autocast')
  if not set then error('autocast: this build of flare has no autocast support', 3) end
  local before = set(mode)
  autocast_mode = mode
  return before
end

local Autocast = { __name = 'flare.autocast' }
Autocast.__index = Autocast
function Autocast.__close(scope)
  if not scope.closed then
    scope.closed = true
    set_autocast(scope.previous)
  end
end
Autocast.close = Autocast.__close

flare.autocast = flare.doc(function(dtype, fn, ...)
  local mode = dtype and autocast_names[dtype] or nil
  if dtype and not mode then
    error("bad argument #1 to 'autocast' ('bf16' (or 'bfloat16'), or false, expected, got " ..
          (type(dtype) == 'string' and "'" .. dtype .. "'" or type(dtype)) .. ')', 2)
  end
  if fn ~= nil and type(fn) ~= 'function' then
    error("bad argument #2 to 'autocast' (function expected, got " .. type(fn) .. ')', 2)
  end
  local previous = set_autocast(mode)
  if fn == nil then return setmetatable({ previous = previous, closed = false }, Autocast) end
  local results = table.pack(pcall(fn, ...))
  set_autocast(previous)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end,
  "flare.autocast(dtype, [f, ...])\n\nMixed precision: matrix products and convolutions of float32 tensors " ..
  "on the GPU compute in dtype ('bf16' or 'bfloat16': bfloat16 operands, float32 accumulation and results; " ..
  "gradients follow). CPU ops are unchanged. With f, runs " ..
  "f(...) in that mode and returns its results; without, returns a scope to close: " ..
  "`local _ <close> = flare.autocast('bf16')`. Scopes nest; false (or nil) turns autocast off inside one.")

flare.get_autocast = flare.doc(function() return autocast_mode end,
  "flare.get_autocast() -> 'bfloat16' | nil\n\nThe autocast mode in force (set by flare.autocast), or nil.")

-- flare.cuda.set_allow_tf32(on): on top of the engine's switch.
if rawget(flare, '_cuda_set_allow_tf32') then
  flare.cuda.set_allow_tf32 = function(on)
    if type(on) ~= 'boolean' then
      error("bad argument #1 to 'set_allow_tf32' (boolean expected, got " .. type(on) .. ')', 2)
    end
    return flare._cuda_set_allow_tf32(on)
  end
end

-- The prompt prints results through this (and sets `_`: see flare.repl).
function flare.repl_print(...)
  return require('flare.repl').print(...)
end

-- Calls f(...) so that Ctrl-C cannot stop it half-way: at the prompt, an interrupt that
-- arrives meanwhile takes effect when f returns. Optimizer steps and file writes use it.
-- Outside the flare executable (e.g. under lua5.4) it is a plain call.
function flare.uninterruptible(f, ...)
  local mt = getmetatable(f)
  if type(f) ~= 'function' and not (type(mt) == 'table' and mt.__call) then
    error("bad argument #1 to 'uninterruptible' (function expected, got " .. type(f) .. ')', 2)
  end
  local begin = debug.getregistry()['flare.defer']
  if not begin then return f(...) end
  local guard <close> = begin()
  return f(...)
end

-- Benchmarks f: see flare.repl.timeit.
function flare.timeit(f, n, opts)
  return require('flare.repl').timeit(f, n, opts)
end

-- Sets `flare` and the stdlib modules as globals (the executable does this at start-up),
-- and the prompt's help() and who().
function flare.open_globals()
  _G.flare = flare
  -- nn, optim, data, train and plot as globals, loaded when first named
  local mt = getmetatable(_G) or {}
  local previous = mt.__index
  mt.__index = function(g, key)
    if lazy[key] then
      local mod = flare[key]
      rawset(g, key, mod)
      return mod
    end
    if type(previous) == 'function' then return previous(g, key) end
    if type(previous) == 'table' then return previous[key] end
    return nil
  end
  setmetatable(_G, mt)
  _G.help = function(...) return require('flare.help').help(...) end
  _G.who = function(...) return require('flare.help').who(...) end
end

return flare
