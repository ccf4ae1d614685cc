-- Inputs for gradcheck cases: float64 leaves, kept away from points where an op is not
-- differentiable, and non-contiguous variants. Shared by spec/gradcheck_spec.lua and the
-- per-area case files (support/gradcases_*.lua).
local flare = require 'flare'

local M = {}

function M.randn(...) return flare.randn({ ... }, { dtype = 'float64' }):requires_grad() end
-- values kept away from 0 (for abs, sign, log, ...) and inside (-1, 1) when asked
function M.away(t, lo, hi)
  lo, hi = lo or 0.2, hi or 2
  local r = flare.rand(t, { dtype = 'float64' }) * (hi - lo) + lo
  local s = flare.randint(0, 2, t):double() * 2 - 1
  return (r * s):detach():requires_grad()
end
function M.positive(t, lo, hi)
  lo, hi = lo or 0.2, hi or 2
  return (flare.rand(t, { dtype = 'float64' }) * (hi - lo) + lo):detach():requires_grad()
end
-- a non-contiguous float64 leaf of shape {a, b}: the transpose of a {b, a} tensor
function M.strided(a, b, make)
  local base = (make or M.away)({ b, a })
  local t = base:detach():t()
  assert(not t:is_contiguous())
  return t:requires_grad()
end

return M
