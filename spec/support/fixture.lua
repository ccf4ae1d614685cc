-- Helpers for specs that compare against PyTorch fixtures (spec/fixtures/*.lua, written by
-- the gen_*.py scripts beside them).
local flare = require 'flare'
local assert = require 'luassert'

local M = {}

function M.load(name)
  return dofile('spec/fixtures/' .. name .. '.lua')
end

-- A fixture entry {dtype, shape, data (flat)} as a flare tensor.
function M.tensor(e)
  local n = 1
  for _, s in ipairs(e.shape) do n = n * s end
  if n == 0 then return flare.zeros(e.shape, { dtype = e.dtype }) end
  local flat = flare.tensor(e.data, { dtype = e.dtype })
  if #e.shape == 1 then return flat end
  if #e.shape == 0 then return flat[1]:clone() end
  return flat:reshape(e.shape)
end

local function flatten(t)
  if t:dim() == 0 then return { t:item() } end
  return t:contiguous():reshape(t:numel()):totable()
end

-- Asserts that tensor `actual` matches fixture entry (or tensor) `expected`: same shape,
-- same dtype (unless opts.any_dtype), values within atol + rtol * |expected|.
function M.assert_close(actual, expected, opts)
  opts = opts or {}
  local rtol, atol = opts.rtol or 1e-5, opts.atol or 1e-6
  if flare.is_tensor(expected) then
    expected = { dtype = expected:dtype(), shape = { table.unpack(expected:size()) }, data = flatten(expected) }
  end
  assert(flare.is_tensor(actual), 'expected a tensor, got ' .. type(actual))
  local shape = { table.unpack(actual:size()) }
  assert.are.same(expected.shape, shape, 'shape')
  if not opts.any_dtype then assert.equal(expected.dtype, actual:dtype(), 'dtype') end
  local got = flatten(actual)
  for i, want in ipairs(expected.data) do
    local g = got[i]
    if type(want) == 'boolean' or type(g) == 'boolean' then
      if want ~= g then error(string.format('element %d: expected %s, got %s', i, tostring(want), tostring(g)), 2) end
    elseif want ~= want then
      if g == g then error(string.format('element %d: expected nan, got %s', i, tostring(g)), 2) end
    elseif math.abs(want) == math.huge then
      if g ~= want then error(string.format('element %d: expected %s, got %s', i, tostring(want), tostring(g)), 2) end
    elseif math.abs(g - want) > atol + rtol * math.abs(want) then
      error(string.format('element %d: expected %.9g, got %.9g (|diff| %.3g)', i, want, g, math.abs(g - want)), 2)
    end
  end
end

return M
