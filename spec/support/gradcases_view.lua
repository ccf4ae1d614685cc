-- Gradcheck cases for the views, movement and indexing ops (merged by gradcheck_spec.lua).
-- Each case runs a plain input, a non-contiguous one (util.strided) and, where it applies, a
-- zero-size one; index ops repeat indices (adds accumulate, the last write wins).
local flare = require 'flare'
local util = require 'support.gradcheck_util'
local gradcheck = flare.autograd.gradcheck
local randn, strided = util.randn, util.strided

local function idx(t) return flare.tensor(t) end                      -- int64, 1-based
local function none() return flare.zeros(0, { dtype = 'int64' }) end
local function scalar(v) return flare.tensor(v, { dtype = 'float64' }):requires_grad() end
local T, F = true, false

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
-- x[{...}], x[mask] and x[idx]
cases.index = function()
  gradcheck(function(x) return x[{ 2, { 1, 4, 2 } }] end, { randn(3, 4) })
  gradcheck(function(x) return x[{ {}, { 2, -1 } }] end, { strided(3, 4) })
  gradcheck(function(x) return x[{ { 2, 1 } }] end, { randn(3, 4) })
  gradcheck(function(x) return x[{ {}, {}, 2 }] end, { randn(2, 0, 3) })
  local m = idx { { T, F, T, T }, { F, F, F, F }, { T, T, F, T } }
  gradcheck(function(x) return x[m] end, { randn(3, 4) })
  gradcheck(function(x) return x[idx { T, F, T }] end, { strided(3, 4) })
  gradcheck(function(x) return x[flare.zeros(0, { dtype = 'bool' })] end, { randn(0, 3) })
  gradcheck(function(x) return x[idx { 3, 1, 3, 3 }] end, { randn(3, 4) })
  gradcheck(function(x) return x[idx { { 2, 2 }, { 1, 4 } }] end, { strided(4, 3) })
  gradcheck(function(x) return x[none()] end, { randn(3, 4) })
end

cases.view = function()
  gradcheck(function(x) return x:view(2, 6) end, { randn(3, 4) })
  gradcheck(function(x) return x:view(3, 2, 2) end, { strided(3, 4) })
  gradcheck(function(x) return x:view(3, 0) end, { randn(0, 3) })
  gradcheck(function(x) return x:view_as(flare.zeros(4, 3)) end, { randn(3, 4) })
end
cases.reshape = function()
  gradcheck(function(x) return x:reshape(4, 3) end, { randn(3, 4) })
  gradcheck(function(x) return x:reshape(12) end, { strided(3, 4) })   -- the copying path
  gradcheck(function(x) return flare.reshape(x, { 3, 0, 2 }) end, { randn(0, 6) })
  gradcheck(function(x) return x:reshape_as(flare.zeros(2, 6)) end, { strided(3, 4) })
end
cases.flatten = function()
  gradcheck(function(x) return x:flatten() end, { randn(2, 3, 2) })
  gradcheck(function(x) return x:flatten() end, { strided(3, 4) })
  gradcheck(function(x) return x:flatten(2, 3) end, { randn(2, 0, 3) })
end
cases.squeeze = function()
  gradcheck(function(x) return x:squeeze() end, { randn(3, 1, 4, 1) })
  gradcheck(function(x) return x:unsqueeze(1):squeeze(1) end, { strided(3, 4) })
  gradcheck(function(x) return x:squeeze(2) end, { randn(0, 1, 3) })
end
cases.unsqueeze = function()
  gradcheck(function(x) return x:unsqueeze(2) end, { randn(3, 4) })
  gradcheck(function(x) return x:unsqueeze(-1) end, { strided(3, 4) })
  gradcheck(function(x) return x:unsqueeze(1) end, { randn(0, 3) })
end
cases.transpose = function()
  gradcheck(function(x) return x:transpose(1, 3) end, { randn(2, 3, 4) })
  gradcheck(function(x) return x:transpose(1, 2) end, { strided(3, 4) })
  gradcheck(function(x) return x:transpose(1, 2) end, { randn(0, 3) })
end
cases.t = function()
  gradcheck(function(x) return x:t() end, { randn(3, 4) })
  gradcheck(function(x) return x:t() end, { strided(3, 4) })
  gradcheck(function(x) return x:t() end, { randn(5) })
  gradcheck(function(x) return x:t() end, { randn(0, 3) })
end
cases.permute = function()
  gradcheck(function(x) return x:permute(3, 1, 2) end, { randn(2, 3, 4) })
  gradcheck(function(x) return x:unsqueeze(1):permute(3, 1, 2) end, { strided(3, 4) })
  gradcheck(function(x) return x:permute({ 2, 3, 1 }) end, { randn(0, 2, 3) })
end
cases.expand = function()
  gradcheck(function(x) return x:expand(2, 3, 4) end, { randn(3, 1) })
  gradcheck(function(x) return x:expand(2, -1, -1) end, { strided(3, 4) })
  gradcheck(function(x) return x:expand(0, 3) end, { randn(1, 3) })
  gradcheck(function(x) return x:expand_as(flare.zeros(2, 3)) end, { randn(3) })
end
cases.unfold = function()
  gradcheck(function(x) return x:unfold(1, 3, 2) end, { randn(7) })            -- windows overlap
  gradcheck(function(x) return x:unfold(2, 3, 1) end, { strided(3, 5) })
  gradcheck(function(x) return x:unfold(1, 2, 3) end, { randn(6, 2) })         -- gaps
  gradcheck(function(x) return x:unfold(2, 2, 1) end, { randn(0, 4) })
  gradcheck(function(x) return x:unfold(1, 0, 1) end, { randn(3) })
end

-- split, chunk and unbind are made of narrow and select: every piece passes its gradient on
cases.split = function()
  gradcheck(function(x) local p = x:split(2, 2); return flare.cat({ p[2], p[1] * 3 }, 2) end, { randn(3, 4) })
  gradcheck(function(x) local p = x:split({ 1, 2 }, 1); return p[2] * 2 + p[1] end, { strided(3, 4) })
  gradcheck(function(x) return x:split(2, 2)[1] end, { randn(0, 4) })
end
cases.chunk = function()
  gradcheck(function(x) local p = x:chunk(3, 2); return flare.cat({ p[3], p[1] * 2, p[2] }, 2) end, { randn(2, 5) })
  gradcheck(function(x) local p = x:chunk(2); return p[1] - p[2] end, { strided(4, 3) })
  gradcheck(function(x) return x:chunk(2, 2)[2] end, { randn(0, 4) })
end
cases.unbind = function()
  gradcheck(function(x) local u = x:unbind(2); return flare.stack({ u[3], u[1] * 2, u[4] }) end, { randn(3, 4) })
  gradcheck(function(x) local u = x:unbind(); return u[2] * u[3] end, { strided(3, 4) })
  gradcheck(function(x) return x:unbind(2)[1] end, { randn(0, 2) })
end

cases.cat = function()
  gradcheck(function(a, b, c) return flare.cat({ a, b, c }, 2) end, { randn(3, 2), strided(3, 4), randn(3, 0) })
  -- more inputs than a node holds (a chain of nodes), one input twice, a constant
  local k = flare.ones(1, 3, { dtype = 'float64' })
  gradcheck(function(a, b, c) return flare.cat({ a, k, b, a, c, k, b }) end, { randn(2, 3), strided(2, 3), randn(0, 3) })
  -- 1-d empty tensors are skipped (and get an empty gradient)
  gradcheck(function(a, b) return flare.cat({ a, b, a }) end, { randn(0), randn(2, 3) })
end
cases.stack = function()
  gradcheck(function(a, b) return flare.stack({ a, b, a }, 2) end, { randn(3, 4), strided(3, 4) })
  gradcheck(function(a, b, c) return flare.stack({ a, b, c, b, a }, 3) end, { randn(2, 2), strided(2, 2), randn(2, 2) })
  gradcheck(function(a, b) return flare.stack({ a, b }) end, { randn(0, 3), randn(0, 3) })
end

cases.index_select = function()
  gradcheck(function(x) return x:index_select(1, idx { 3, 1, 3 }) end, { randn(3, 4) })
  gradcheck(function(x) return x:index_select(2, idx { 2, 2, 4, 2 }) end, { strided(3, 4) })
  gradcheck(function(x) return x:index_select(2, idx { 1, 1 }) end, { randn(0, 3) })
  gradcheck(function(x) return x:index_select(1, none()) end, { randn(3, 4) })
end
cases.gather = function()
  local i = idx { { 1, 1, 4 }, { 3, 2, 3 }, { 4, 4, 4 } }
  gradcheck(function(x) return x:gather(2, i) end, { randn(3, 4) })
  gradcheck(function(x) return x:gather(1, idx { { 2, 2, 1, 3 }, { 1, 3, 3, 3 } }) end, { strided(3, 4) })
  gradcheck(function(x) return x:gather(2, flare.zeros(3, 0, { dtype = 'int64' })) end, { randn(3, 4) })
end
cases.scatter = function()
  -- repeated indices: the last write wins, earlier ones get no gradient
  local i = idx { { 1, 1, 4 }, { 3, 2, 3 } }
  gradcheck(function(x, s) return x:scatter(2, i, s) end, { randn(3, 4), randn(2, 3) })
  gradcheck(function(x, s) return x:scatter(1, idx { { 3, 1, 3 } }, s) end, { strided(3, 4), strided(2, 4) })   -- src larger
  gradcheck(function(x, v) return x:scatter(2, i, v) end, { randn(3, 4), scalar(0.5) })
  gradcheck(function(x) return x:scatter(2, i, 7) end, { randn(2, 4) })
  gradcheck(function(x, s) return x:scatter(2, flare.zeros(3, 0, { dtype = 'int64' }), s) end, { randn(3, 4), randn(3, 2) })
end
cases.scatter_add = function()
  local i = idx { { 1, 1, 4 }, { 3, 2, 3 } }
  gradcheck(function(x, s) return x:scatter_add(2, i, s) end, { randn(3, 4), randn(2, 3) })
  gradcheck(function(x, s) return flare.scatter_add(x, 1, idx { { 3, 1, 3 } }, s) end, { strided(3, 4), strided(2, 4) })
  gradcheck(function(x, s) return x:scatter_add(1, flare.zeros(0, 4, { dtype = 'int64' }), s) end, { randn(3, 4), randn(0, 4) })
end
cases.index_copy = function()
  gradcheck(function(x, s) return x:index_copy(1, idx { 3, 1, 3 }, s) end, { randn(3, 4), randn(3, 4) })
  gradcheck(function(x, s) return x:index_copy(2, idx { 2, 4 }, s) end, { strided(3, 4), strided(3, 2) })
  gradcheck(function(x, s) return x:index_copy(2, idx { 1 }, s) end, { randn(0, 3), randn(0, 1) })
end
cases.index_add = function()
  gradcheck(function(x, s) return x:index_add(1, idx { 3, 1, 3 }, s) end, { randn(3, 4), randn(3, 4) })
  gradcheck(function(x, s) return x:index_add(2, idx { 2, 2 }, s, 0.5) end, { strided(3, 4), strided(3, 2) })
  gradcheck(function(x, s) return x:index_add(1, none(), s) end, { randn(3, 4), randn(0, 4) })
end
cases.index_fill = function()
  gradcheck(function(x) return x:index_fill(2, idx { 1, 3, 1 }, 2) end, { randn(3, 4) })
  gradcheck(function(x, v) return x:index_fill(1, idx { 2, 2, 3 }, v) end, { strided(3, 4), scalar(0.25) })
  gradcheck(function(x) return x:index_fill(2, idx { 2 }, 0) end, { randn(0, 3) })
end
cases.masked_fill = function()
  local m = idx { { T, F, T, T }, { F, F, F, F }, { T, T, F, T } }
  gradcheck(function(x) return x:masked_fill(m, 0.5) end, { randn(3, 4) })
  gradcheck(function(x, v) return x:masked_fill(m, v) end, { strided(3, 4), scalar(-1) })
  gradcheck(function(x, v) return x:masked_fill(m, v) end, { randn(4), scalar(2) })   -- the mask broadcasts x
  gradcheck(function(x) return x:masked_fill(flare.zeros(0, 3, { dtype = 'bool' }), 1) end, { randn(0, 3) })
end
cases.masked_select = function()
  local m = idx { { T, F, T, T }, { F, F, F, F }, { T, T, F, T } }
  gradcheck(function(x) return x:masked_select(m) end, { randn(3, 4) })
  gradcheck(function(x) return x:masked_select(m) end, { strided(3, 4) })
  gradcheck(function(x) return x:masked_select(m) end, { randn(1, 4) })   -- x broadcast to the mask
  gradcheck(function(x) return x:masked_select(flare.zeros(0, 3, { dtype = 'bool' })) end, { randn(0, 3) })
end
cases.masked_scatter = function()
  local m = idx { { T, F, T, T }, { F, F, F, F }, { T, T, F, T } }
  gradcheck(function(x, s) return x:masked_scatter(m, s) end, { randn(3, 4), randn(8) })
  gradcheck(function(x, s) return x:masked_scatter(m, s) end, { strided(3, 4), strided(2, 4) })
  gradcheck(function(x, s) return x:masked_scatter(flare.zeros(0, 3, { dtype = 'bool' }), s) end, { randn(0, 3), randn(2) })
end

return cases
