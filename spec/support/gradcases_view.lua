-- Gradcheck cases for the views, movement and indexing ops (merged by gradcheck_spec.lua).
local flare = require 'flare'
local util = require 'support.gradcheck_util'
local gradcheck = flare.autograd.gradcheck
local randn, strided = util.randn, util.strided

local cases = {}

cases.select = function()
  gradcheck(function(x) return x[2] end, { randn(3, 4) })
  gradcheck(function(x) return x:select(2, 3) end, { strided(3, 4) })
  gradcheck(function(x) return x:select(1, 1) end, { randn(2, 0) })
end
cases.narrow = function()
  gradcheck(function(x) return x:narrow(2, 2, 2) end, { randn(3, 4) })
  gradcheck(function(x) return x:narrow(1, 2, 2) end, { strided(3, 4) })
  gradcheck(function(x) return x:narrow(1, 1, 0) end, { randn(3, 4) })
end

return cases
