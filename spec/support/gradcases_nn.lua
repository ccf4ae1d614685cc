-- Gradcheck cases for convolution and pooling (merged by gradcheck_spec.lua): input, weight
-- and bias gradients with stride, padding, dilation and groups, non-contiguous and
-- unbatched inputs, and empty batches.
local flare = require 'flare'
local util = require 'support.gradcheck_util'
local gradcheck = flare.autograd.gradcheck
local randn = util.randn

-- A non-contiguous float64 leaf of the given shape: its last two dims are transposed.
local function strided(...)
  local shape = { ... }
  local n = #shape
  shape[n - 1], shape[n] = shape[n], shape[n - 1]
  local t = flare.randn(shape, { dtype = 'float64' }):transpose(n - 1, n)
  assert(not t:is_contiguous())
  return t:requires_grad()
end

local cases = {}

cases.conv2d = function()
  gradcheck(function(x, w, b) return flare.conv2d(x, w, b, { stride = 2, padding = 1 }) end,
            { randn(2, 2, 4, 3), randn(3, 2, 2, 2), randn(3) })
  gradcheck(function(x, w) return flare.conv2d(x, w, { groups = 2, dilation = { 1, 2 }, padding = 'same' }) end,
            { strided(1, 4, 3, 4), randn(2, 2, 2, 2) })
  gradcheck(function(x, w, b) return flare.conv2d(x, w, b, { stride = { 1, 2 } }) end,
            { randn(2, 3, 4), strided(2, 2, 2, 2), randn(2) })
  gradcheck(function(x, w, b) return flare.conv2d(x, w, b) end, { randn(0, 2, 3, 3), randn(2, 2, 2, 2), randn(2) })
end

cases.conv1d = function()
  gradcheck(function(x, w, b) return flare.conv1d(x, w, b, { stride = 2, padding = 1, dilation = 2 }) end,
            { randn(2, 2, 7), randn(3, 2, 2), randn(3) })
  gradcheck(function(x, w) return flare.conv1d(x, w, { groups = 2, padding = 'same' }) end,
            { strided(2, 5), randn(4, 1, 4) })
end

cases.conv_transpose2d = function()
  gradcheck(function(x, w, b) return flare.conv_transpose2d(x, w, b, { stride = 2, padding = 1, output_padding = 1 }) end,
            { randn(2, 2, 2, 2), randn(2, 1, 3, 2), randn(1) })
  gradcheck(function(x, w, b) return flare.conv_transpose2d(x, w, b, { groups = 2, dilation = { 2, 1 }, stride = { 1, 2 } }) end,
            { strided(4, 2, 2), randn(4, 1, 2, 2), randn(2) })
end

cases.max_pool2d = function()
  gradcheck(function(x) return flare.max_pool2d(x, 2) end, { randn(2, 2, 4, 4) })
  gradcheck(function(x) return flare.max_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true }) end,
            { strided(1, 2, 5, 4) })
  gradcheck(function(x) return flare.max_pool2d(x, { 2, 2 }, { dilation = 2, stride = 1 }) end, { randn(1, 4, 4) })
end

cases.max_pool1d = function()
  gradcheck(function(x) return flare.max_pool1d(x, 3, { stride = 2, padding = 1 }) end, { randn(2, 2, 7) })
  gradcheck(function(x) return flare.max_pool1d(x, 2, { ceil_mode = true }) end, { strided(3, 5) })
end

cases.avg_pool2d = function()
  gradcheck(function(x) return flare.avg_pool2d(x, 3, { stride = 2, padding = 1 }) end, { randn(2, 2, 5, 4) })
  gradcheck(function(x) return flare.avg_pool2d(x, 2, { ceil_mode = true, count_include_pad = false, padding = 1 }) end,
            { strided(1, 2, 5, 4) })
  gradcheck(function(x) return flare.avg_pool2d(x, { 2, 3 }, { divisor_override = 3, stride = 1 }) end, { randn(1, 3, 4) })
end

cases.adaptive_avg_pool2d = function()
  gradcheck(function(x) return flare.adaptive_avg_pool2d(x, { 2, 3 }) end, { randn(2, 2, 5, 4) })
  gradcheck(function(x) return flare.adaptive_avg_pool2d(x, { 4, 5 }) end, { strided(1, 3, 3) })
end

-- The fused recurrent ops (vm/rnn.c): every output (h and c of a cell; the outputs, h_n and
-- c_n of a layer) feeds the checked value, so every gradient path is exercised.
local function flat(...)
  local parts = {}
  for i, t in ipairs { ... } do parts[i] = t:reshape(-1) * i end
  return flare.cat(parts, 1)
end

cases.fused_lstm_cell = function()
  gradcheck(function(gi, gh, c) return flat(flare.fused_lstm_cell(gi, gh, c)) end,
            { randn(2, 8), randn(2, 8), randn(2, 2) })
  gradcheck(function(gi, gh, c) return flat(flare.fused_lstm_cell(gi, gh, c)) end,
            { strided(3, 8), randn(3, 8), strided(3, 2) })
  gradcheck(function(gi, gh, c) return flat(flare.fused_lstm_cell(gi, gh, c)) end,
            { randn(0, 4), randn(0, 4), randn(0, 1) })
end

cases.fused_gru_cell = function()
  gradcheck(function(gi, gh, h) return flare.fused_gru_cell(gi, gh, h) end, { randn(2, 6), randn(2, 6), randn(2, 2) })
  gradcheck(function(gi, gh, h) return flare.fused_gru_cell(gi, gh, h) end, { randn(3, 6), strided(3, 6), strided(3, 2) })
  gradcheck(function(gi, gh, h) return flare.fused_gru_cell(gi, gh, h) end, { randn(0, 6), randn(0, 6), randn(0, 2) })
end

cases.fused_rnn_layer = function()
  local function layer(mode, reverse)
    return function(gi, hh, s0) return flat(flare.fused_rnn_layer(mode, gi, hh, s0, reverse)) end
  end
  -- hh with the bias column (G, H + 1) and without (G, H); forward and reverse
  gradcheck(layer('lstm'), { randn(3, 2, 8), randn(8, 3), randn(2, 2, 2) })
  gradcheck(layer('lstm', true), { randn(2, 1, 8), randn(8, 2), randn(2, 1, 2) })
  gradcheck(layer('gru'), { randn(3, 2, 6), randn(6, 3), randn(2, 2) })
  gradcheck(layer('gru', true), { randn(2, 2, 6), strided(6, 2), randn(2, 2) })
  gradcheck(layer('tanh', true), { randn(3, 2, 2), randn(2, 3), randn(2, 2) })
  gradcheck(layer('relu'), { util.away({ 2, 2, 2 }, 0.5, 2), util.positive({ 2, 2 }, 0.1, 0.3), util.positive({ 2, 2 }) })
  gradcheck(layer('lstm'), { randn(1, 0, 4), randn(4, 2), randn(2, 0, 1) })
end

return cases
