-- The fused recurrent ops (flare.fused_lstm_cell, fused_gru_cell, fused_rnn_layer; vm/rnn.c)
-- against the composed versions they replaced, which stay here as the oracle: the same
-- values and the same gradients for every input, float32 and float64, every mode, forward
-- and reverse, with and without biases; and their argument errors.
local flare = require 'flare'
local nn = require 'flare.nn'

local F = nn.functional

-- ---------------------------------------------------------------- the composed oracle

local function hidden_proj(h, w_hh, b_hh)
  if b_hh ~= nil then return flare.addmm(b_hh, h, w_hh:t()) end
  return flare.mm(h, w_hh:t())
end

local function lstm_step_ref(gi, h, c, w_hh, b_hh)
  local g = (gi + hidden_proj(h, w_hh, b_hh)):chunk(4, 2)
  local c2 = flare.sigmoid(g[2]) * c + flare.sigmoid(g[1]) * flare.tanh(g[3])
  return flare.sigmoid(g[4]) * flare.tanh(c2), c2
end

local function gru_step_ref(gi, h, w_hh, b_hh)
  local gh = hidden_proj(h, w_hh, b_hh):chunk(3, 2)
  local gx = gi:chunk(3, 2)
  local r = flare.sigmoid(gx[1] + gh[1])
  local z = flare.sigmoid(gx[2] + gh[2])
  local n = flare.tanh(gx[3] + r * gh[3])
  return n + z * (h - n)
end

local function elman_step_ref(gi, h, w_hh, b_hh, relu)
  local a = gi + hidden_proj(h, w_hh, b_hh)
  return relu and flare.relu(a) or flare.tanh(a)
end

-- One layer over gi (T, N, G), step by step: returns out (T, N, H), h_n, c_n.
local function layer_ref(mode, gi, w_hh, b_hh, h, c, reverse)
  local T = gi:size(1)
  local steps, outs = gi:unbind(1), {}
  for k = 1, T do
    local t = reverse and T - k + 1 or k
    if mode == 'lstm' then h, c = lstm_step_ref(steps[t], h, c, w_hh, b_hh)
    elseif mode == 'gru' then h = gru_step_ref(steps[t], h, w_hh, b_hh)
    else h = elman_step_ref(steps[t], h, w_hh, b_hh, mode == 'relu') end
    outs[t] = h
  end
  return flare.stack(outs, 1), h, c
end

-- ---------------------------------------------------------------- helpers

local function leaves(dtype, shapes, scale)
  local t = {}
  for i, s in ipairs(shapes) do
    t[i] = s and (flare.randn(s, { dtype = dtype }) * (scale or 1)):detach():requires_grad() or false
  end
  return t
end

local function copies(ts)
  local t = {}
  for i, x in ipairs(ts) do t[i] = x and x:detach():requires_grad() or false end
  return t
end

-- Runs fn on its own copy of the inputs, back-propagates a fixed random weighting of every
-- output; returns the outputs and the gradient of each input.
local function run(fn, inputs, weights_seed)
  local xs = copies(inputs)
  local args = {}
  for i, x in ipairs(xs) do if x then args[i] = x end end
  local outs = table.pack(fn(table.unpack(args, 1, #inputs)))
  while outs.n > 0 and outs[outs.n] == nil do outs.n = outs.n - 1 end   -- no c_n but for LSTM
  flare.manual_seed(weights_seed or 99)
  local loss
  for i = 1, outs.n do
    local term = (outs[i] * flare.randn(outs[i]:size(), { dtype = outs[i]:dtype() })):sum()
    loss = loss and loss + term or term
  end
  loss:backward()
  local grads = {}
  for i, x in ipairs(xs) do grads[i] = x and x.grad or false end
  return outs, grads
end

local function assert_close(a, b, tol, what)
  assert.are.same(b:size(), a:size(), what .. ': shapes differ')
  local diff = (a:double() - b:double()):abs():max():item()
  local scale = b:double():abs():max():item()
  assert(diff <= tol * math.max(1, scale), string.format('%s: max difference %.3g (tolerance %.3g)', what, diff, tol))
end

-- fused and composed agree on every output and every gradient
local function agree(fused, composed, inputs, tol)
  local o1, g1 = run(fused, inputs)
  local o2, g2 = run(composed, inputs)
  assert.are.equal(o2.n, o1.n)
  for i = 1, o1.n do assert_close(o1[i], o2[i], tol, 'output ' .. i) end
  for i = 1, #inputs do
    if inputs[i] then
      assert(g1[i] and g2[i], 'gradient ' .. i .. ' missing')
      assert_close(g1[i], g2[i], tol, 'gradient of input ' .. i)
    end
  end
end

local TOL = { float32 = 2e-5, float64 = 1e-12 }

-- ---------------------------------------------------------------- specs

describe('fused recurrent cells', function()
  before_each(function() flare.manual_seed(5) end)

  for _, dt in ipairs { 'float32', 'float64' } do
    it('F.lstm_step matches the composed step (' .. dt .. ')', function()
      local N, H = 3, 5
      local inputs = leaves(dt, { { N, 4 * H }, { N, H }, { N, H }, { 4 * H, H }, { 4 * H } })
      agree(F.lstm_step, lstm_step_ref, inputs, TOL[dt])
      inputs[5] = false   -- no bias
      agree(F.lstm_step, lstm_step_ref, inputs, TOL[dt])
    end)

    it('F.gru_step matches the composed step (' .. dt .. ')', function()
      local N, H = 4, 3
      local inputs = leaves(dt, { { N, 3 * H }, { N, H }, { 3 * H, H }, { 3 * H } })
      agree(F.gru_step, gru_step_ref, inputs, TOL[dt])
      inputs[4] = false
      agree(F.gru_step, gru_step_ref, inputs, TOL[dt])
    end)
  end

  it('saturates without NaN on large pre-activations', function()
    local gi = flare.tensor({ { 80, -80, 80, -80, 1e4, -1e4, 0, 30 } }, { dtype = 'float32' })
    local h, c = flare.fused_lstm_cell(gi, flare.zeros(1, 8), flare.tensor({ { 2, -3 } }, { dtype = 'float32' }))
    local rh, rc = lstm_step_ref(gi, flare.zeros(1, 2), flare.tensor({ { 2, -3 } }, { dtype = 'float32' }), flare.zeros(8, 2))
    assert_close(h, rh, 1e-6, 'h')
    assert_close(c, rc, 1e-6, 'c')
    assert.is_true(h:isfinite():all():item())
  end)

  it('LSTMCell and GRUCell modules run on the fused cells', function()
    local cell = nn.LSTMCell(3, 4)
    local x, h, c = flare.randn(2, 3), flare.randn(2, 4), flare.randn(2, 4)
    local h2, c2 = cell(x, { h, c })
    local rh, rc = lstm_step_ref(F.linear(x, cell.weight_ih, cell.bias_ih), h, c, cell.weight_hh, cell.bias_hh)
    assert_close(h2, rh, 1e-6, 'LSTMCell h')
    assert_close(c2, rc, 1e-6, 'LSTMCell c')
    local gcell = nn.GRUCell(3, 4)
    local g = gcell(x, h)
    assert_close(g, gru_step_ref(F.linear(x, gcell.weight_ih, gcell.bias_ih), h, gcell.weight_hh, gcell.bias_hh), 1e-6, 'GRUCell')
  end)

  it('rejects mismatched shapes and dtypes, naming what it expected', function()
    local gi, gh = flare.randn(2, 8), flare.randn(2, 8)
    assert.has_error(function() flare.fused_lstm_cell(gi, gh, flare.randn(2, 3)) end,
      'fused_lstm_cell: expected the input projection gi of shape [2, 12], got [2, 8]')
    assert.has_error(function() flare.fused_lstm_cell(gi, flare.randn(2, 4), flare.randn(2, 2)) end,
      'fused_lstm_cell: expected the hidden projection gh of shape [2, 8], got [2, 4]')
    assert.has_error(function() flare.fused_lstm_cell(gi, gh:double(), flare.randn(2, 2)) end,
      'fused_lstm_cell: expected the hidden projection gh of dtype float32 (as the input projection), got float64')
    assert.has_error(function() flare.fused_gru_cell(gi, gh, flare.randn(2)) end,
      'fused_gru_cell: expected the state h of shape (N, H), got [2]')
    assert.has_error(function() flare.fused_gru_cell(flare.randint(0, 2, { 2, 6 }), gh, flare.randn(2, 2)) end,
      'fused_gru_cell: expected the input projection gi of dtype float32 or float64, got int64')
    assert.has_error(function() flare.fused_gru_cell(gi) end)
  end)
end)

describe('fused recurrent layers', function()
  before_each(function() flare.manual_seed(6) end)

  local gates = { lstm = 4, gru = 3, tanh = 1, relu = 1 }

  local function layer_case(mode, dt, reverse, bias)
    local T, N, H = 4, 3, 5
    local G = gates[mode] * H
    local inputs = leaves(dt, { { T, N, G }, { G, H }, bias and { G } or false, { N, H },
      mode == 'lstm' and { N, H } or false }, 0.7)
    -- absent inputs arrive as nil in their place
    local function fused(gi, w_hh, b_hh, h0, c0)
      local hh = b_hh and flare.cat({ w_hh, b_hh:view(G, 1) }, 2) or w_hh
      local state = c0 and flare.stack({ h0, c0 }, 1) or h0
      return flare.fused_rnn_layer(mode, gi, hh, state, reverse)
    end
    local function composed(gi, w_hh, b_hh, h0, c0)
      return layer_ref(mode, gi, w_hh, b_hh, h0, c0, reverse)
    end
    agree(fused, composed, inputs, TOL[dt])
  end

  for _, mode in ipairs { 'lstm', 'gru', 'tanh', 'relu' } do
    for _, dt in ipairs { 'float32', 'float64' } do
      it(mode .. ' matches the step-by-step loop (' .. dt .. ', forward and reverse, with and without bias)', function()
        layer_case(mode, dt, false, true)
        layer_case(mode, dt, true, true)
        layer_case(mode, dt, false, false)
        layer_case(mode, dt, true, false)
      end)
    end
  end

  it('nn.LSTM and nn.GRU match the composed loop, final states included', function()
    for _, kind in ipairs { 'LSTM', 'GRU' } do
      local m = nn[kind](3, 4, { batch_first = true })
      local x = flare.randn(2, 5, 3)
      local h0 = flare.randn(1, 2, 4)
      local c0 = flare.randn(1, 2, 4)
      local out, state = m(x, kind == 'LSTM' and { h0, c0 } or h0)
      local gi = F.linear(x:transpose(1, 2), m.weight_ih_l0, m.bias_ih_l0)
      local rout, rh, rc = layer_ref(kind:lower(), gi, m.weight_hh_l0, m.bias_hh_l0, h0[1], c0[1], false)
      assert_close(out, rout:transpose(1, 2), 1e-5, kind .. ' output')
      assert_close(kind == 'LSTM' and state[1][1] or state[1], rh, 1e-5, kind .. ' h_n')
      if kind == 'LSTM' then assert_close(state[2][1], rc, 1e-5, 'LSTM c_n') end
    end
  end)

  it('runs without recording under no_grad, with the same values', function()
    local gi, hh, s0 = flare.randn(6, 2, 12), flare.randn(12, 4), flare.randn(2, 2, 3)
    local out1 = flare.fused_rnn_layer('lstm', gi, hh, s0)
    gi:requires_grad()
    local out2, h2, c2 = flare.fused_rnn_layer('lstm', gi, hh, s0)
    assert.is_true(out2:wants_grad() and h2:wants_grad() and c2:wants_grad())
    local _ <close> = flare.no_grad()
    local out3, h3, c3 = flare.fused_rnn_layer('lstm', gi, hh, s0)
    assert.is_false(out3:wants_grad())
    assert_close(out3, out1, 0, 'no_grad output')
    assert_close(out3, out2, 0, 'output with grad')
    assert_close(h3, out3[6], 0, 'h_n')
    assert_close(c3, c2, 0, 'c_n')
  end)

  it('rejects bad arguments, naming what it expected', function()
    local gi, hh, h0 = flare.randn(3, 2, 6), flare.randn(6, 2), flare.randn(2, 2)
    assert.has_error(function() flare.fused_rnn_layer('lstm', gi, hh, h0) end,
      'fused_rnn_layer: expected the initial state of shape (2, N, H): h0 and c0, got [2, 2]')
    assert.has_error(function() flare.fused_rnn_layer('gru', gi, flare.randn(6, 4), h0) end,
      'fused_rnn_layer: expected the hidden weights hh of shape (6, 2), or (6, 3) with the bias as last column, got [6, 4]')
    assert.has_error(function() flare.fused_rnn_layer('gru', flare.randn(3, 2, 5), hh, h0) end,
      'fused_rnn_layer: expected the input projection gi of shape (T, 2, 6), got [3, 2, 5]')
    assert.has_error(function() flare.fused_rnn_layer('gru', flare.randn(0, 2, 6), hh, h0) end,
      'fused_rnn_layer: expected a sequence of at least one step, got length 0')
    assert.has_error(function() flare.fused_rnn_layer('gru', gi, hh:double(), h0) end,
      'fused_rnn_layer: expected the hidden weights hh of dtype float32 (as the input projection), got float64')
    assert.has_error(function() flare.fused_rnn_layer('lstmx', gi, hh, h0) end)
    assert.has_error(function() flare.fused_rnn_layer('gru', gi, hh, h0, 1) end)
  end)
end)
