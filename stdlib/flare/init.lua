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

-- The prompt prints results through this.
function flare.repl_print(...)
  local n = select('#', ...)
  local parts = {}
  for i = 1, n do
    parts[i] = format.value((select(i, ...)))
  end
  print(table.concat(parts, '\t'))
end

-- Sets `flare` and the stdlib modules as globals (the executable does this at start-up).
function flare.open_globals()
  _G.flare = flare
end

return flare
