-- flare.nn.dropout: Dropout and Dropout2d (active in training mode only).
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'

local M = {}

local function make(name, fn)
  local cls = module.class(name)
  function cls:init(p)
    p = F._opt(p, 'p', 0.5)
    if type(p) ~= 'number' or p < 0 or p > 1 then
      error('nn.' .. name .. ': probability must be between 0 and 1, got ' .. tostring(p), 3)
    end
    self.p = p
  end
  function cls:forward(x) return fn(x, self.p, self.training) end
  function cls:extra_repr() return 'p=' .. self.p end
  M[name] = cls
end

--- nn.Dropout([p = 0.5]): in training, zeroes each element with probability p and scales
-- the rest by 1 / (1 - p); in eval mode, the identity.
make('Dropout', F.dropout)
--- nn.Dropout2d([p = 0.5]): zeroes whole channels of (N, C, H, W) inputs.
make('Dropout2d', F.dropout2d)

return M
