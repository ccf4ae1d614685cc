-- The fused recurrent ops on the GPU against the CPU: fused_lstm_cell and fused_gru_cell
-- (forward and backward, float32 and float64, odd hidden sizes, batch 1 and more,
-- non-contiguous inputs), fused_rnn_layer in every mode, both directions, with and without
-- the bias column (outputs and the gradients of gi, hh and the initial state), nn.LSTM,
-- nn.GRU, nn.RNN and the cells moved to the device (with an optimizer step), and the errors
-- of mixing devices and of bad shapes.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('rnn_spec.lua', pending) then return end

local tol = { float32 = { 2e-5, 2e-5 }, float64 = { 1e-11, 1e-11 } }

local function close(got, want, dtype)
  cuda.assert_close(got, want, tol[dtype][1], tol[dtype][2])
end

-- A CPU leaf and its device twin, both requiring grad.
local function pair(dtype, ...)
  local x = (flare.randn(...) * 0.8):to(dtype)
  return x:detach():requires_grad(), x:detach():cuda():requires_grad()
end

describe('cuda fused cells', function()
  for _, dtype in ipairs({ 'float32', 'float64' }) do
    for _, N in ipairs({ 1, 5 }) do
      for _, H in ipairs({ 1, 7, 33 }) do
        it(string.format('LSTM cell %s N=%d H=%d: values and gradients match the CPU', dtype, N, H), function()
          flare.manual_seed(N * 100 + H)
          local gi, dgi = pair(dtype, N, 4 * H)
          local gh, dgh = pair(dtype, N, 4 * H)
          local c, dc = pair(dtype, N, H)
          local h1, c1 = flare.fused_lstm_cell(gi, gh, c)
          local h2, c2 = flare.fused_lstm_cell(dgi, dgh, dc)
          close(h2, h1, dtype)
          close(c2, c1, dtype)
          local r = flare.randn(2, N, H):to(dtype)
          flare.stack({ h1, c1 }):backward(r)
          flare.stack({ h2, c2 }):backward(r:cuda())
          close(dgi.grad, gi.grad, dtype)
          close(dgh.grad, gh.grad, dtype)
          close(dc.grad, c.grad, dtype)
        end)

        it(string.format('GRU cell %s N=%d H=%d: values and gradients match the CPU', dtype, N, H), function()
          flare.manual_seed(N * 100 + H + 1)
          local gi, dgi = pair(dtype, N, 3 * H)
          local gh, dgh = pair(dtype, N, 3 * H)
          local h, dh = pair(dtype, N, H)
          local y1 = flare.fused_gru_cell(gi, gh, h)
          local y2 = flare.fused_gru_cell(dgi, dgh, dh)
          close(y2, y1, dtype)
          local r = flare.randn(N, H):to(dtype)
          y1:backward(r)
          y2:backward(r:cuda())
          close(dgi.grad, gi.grad, dtype)
          close(dgh.grad, gh.grad, dtype)
          close(dh.grad, h.grad, dtype)
        end)
      end
    end
  end

  it('takes non-contiguous inputs', function()
    flare.manual_seed(3)
    local H, N = 9, 4
    local gi = flare.randn(4 * H, N)
    local gh = flare.randn(N, 8 * H)
    local c = flare.randn(H, N)
    local h1, c1 = flare.fused_lstm_cell(gi:t(), gh[{ {}, { 1, 8 * H, 2 } }], c:t())
    local dgi, dgh, dc = gi:cuda():t(), gh:cuda()[{ {}, { 1, 8 * H, 2 } }], c:cuda():t()
    assert.is_false(dgi:is_contiguous())
    assert.is_false(dgh:is_contiguous())
    local h2, c2 = flare.fused_lstm_cell(dgi, dgh, dc)
    close(h2, h1, 'float32')
    close(c2, c1, 'float32')
    local g3 = flare.randn(3 * H, N)
    close(flare.fused_gru_cell(g3:cuda():t(), g3:cuda():t(), c:cuda():t()), flare.fused_gru_cell(g3:t(), g3:t(), c:t()),
          'float32')
  end)

  it('handles a batch of 1000 rows (several blocks of the grid)', function()
    flare.manual_seed(4)
    local N, H = 1000, 3
    local gi, dgi = pair('float32', N, 4 * H)
    local gh, dgh = pair('float32', N, 4 * H)
    local c, dc = pair('float32', N, H)
    local h1 = flare.fused_lstm_cell(gi, gh, c)
    local h2 = flare.fused_lstm_cell(dgi, dgh, dc)
    close(h2, h1, 'float32')
    local r = flare.randn(N, H)
    h1:backward(r)
    h2:backward(r:cuda())
    close(dgi.grad, gi.grad, 'float32')
    close(dc.grad, c.grad, 'float32')
  end)

  it('refuses mixed devices and bad shapes', function()
    local gi, gh, c = flare.randn(2, 8), flare.randn(2, 8), flare.randn(2, 2)
    assert.has_error(function() flare.fused_lstm_cell(gi:cuda(), gh, c:cuda()) end,
      'fused_lstm_cell: expected all tensors on the same device, got cuda and cpu')
    assert.has_error(function() flare.fused_gru_cell(gi:cuda(), gh:cuda(), c) end)
    assert.has_error(function() flare.fused_lstm_cell(gi:cuda(), gh:cuda():narrow(2, 1, 4), c:cuda()) end)
    assert.has_error(function() flare.fused_rnn_layer('gru', flare.randn(2, 2, 6):cuda(), flare.randn(6, 2),
      flare.randn(2, 2):cuda()) end)
  end)
end)

describe('cuda fused_rnn_layer', function()
  local gates = { lstm = 4, gru = 3, tanh = 1, relu = 1 }
  local cases = {
    { 'lstm', 'float32', 3, 1, 7, false, true }, { 'lstm', 'float64', 4, 3, 33, true, false },
    { 'lstm', 'float32', 2, 2, 1, true, true }, { 'gru', 'float32', 3, 1, 7, true, true },
    { 'gru', 'float64', 4, 3, 33, false, false }, { 'gru', 'float64', 2, 2, 1, false, true },
    { 'tanh', 'float32', 3, 2, 7, false, true }, { 'tanh', 'float64', 3, 1, 33, true, false },
    { 'relu', 'float64', 4, 3, 7, true, true }, { 'relu', 'float32', 2, 1, 1, false, false },
  }
  for _, case in ipairs(cases) do
    local mode, dtype, T, N, H, reverse, bias = table.unpack(case)
    it(string.format('%s %s T=%d N=%d H=%d reverse=%s bias=%s: outputs and gradients match the CPU', mode, dtype, T,
      N, H, tostring(reverse), tostring(bias)), function()
      flare.manual_seed(T * 1000 + N * 100 + H)
      local G = gates[mode] * H
      local gi, dgi = pair(dtype, T, N, G)
      local hh, dhh = pair(dtype, G, bias and H + 1 or H)
      local s0, ds0
      if mode == 'lstm' then s0, ds0 = pair(dtype, 2, N, H) else s0, ds0 = pair(dtype, N, H) end
      local o1, hn1, cn1 = flare.fused_rnn_layer(mode, gi, hh, s0, reverse)
      local o2, hn2, cn2 = flare.fused_rnn_layer(mode, dgi, dhh, ds0, reverse)
      close(o2, o1, dtype)
      close(hn2, hn1, dtype)
      if mode == 'lstm' then close(cn2, cn1, dtype) end
      local y1 = mode == 'lstm' and flare.cat({ o1, cn1:unsqueeze(1) }, 1) or o1
      local y2 = mode == 'lstm' and flare.cat({ o2, cn2:unsqueeze(1) }, 1) or o2
      local r = flare.randn(y1:size()):to(dtype)
      y1:backward(r)
      y2:backward(r:cuda())
      close(dgi.grad, gi.grad, dtype)
      close(dhh.grad, hh.grad, dtype)
      close(ds0.grad, s0.grad, dtype)
    end)
  end

  it('runs without autograd (two workspace steps in turn)', function()
    flare.manual_seed(9)
    local gi, hh, s0 = flare.randn(5, 2, 12), flare.randn(12, 4), flare.randn(2, 2, 3)
    local o1 = flare.fused_rnn_layer('lstm', gi, hh, s0)
    local o2 = flare.fused_rnn_layer('lstm', gi:cuda(), hh:cuda(), s0:cuda())
    close(o2, o1, 'float32')
  end)
end)

describe('cuda recurrent modules', function()
  local nn = require 'flare.nn'
  local optim = require 'flare.optim'

  -- The same module twice (same seed), the second moved to the device.
  local function twins(make)
    flare.manual_seed(21)
    local m1 = make()
    flare.manual_seed(21)
    return m1, make():cuda()
  end

  for _, spec in ipairs({
    { 'LSTM', function() return nn.LSTM(5, 7, { num_layers = 2, bidirectional = true }) end },
    { 'GRU', function() return nn.GRU(5, 7, { num_layers = 2, bidirectional = true }) end },
    { 'RNN', function() return nn.RNN(5, 7, { nonlinearity = 'relu', bias = false }) end },
  }) do
    local name, make = spec[1], spec[2]
    it(name .. ': output, parameter gradients and an Adam step match the CPU', function()
      local m1, m2 = twins(make)
      flare.manual_seed(22)
      local x = flare.randn(4, 3, 5)
      local layers = (m1.num_layers or 1) * (m1.bidirectional and 2 or 1)
      local h0 = flare.randn(layers, 3, 7)
      local hx1, hx2 = h0, h0:cuda()
      if name == 'LSTM' then
        local c0 = flare.randn(layers, 3, 7)
        hx1, hx2 = { h0, c0 }, { h0:cuda(), c0:cuda() }
      end
      close(m2(x:cuda()), m1(x), 'float32')   -- the zero initial state is made on the device
      local y1 = m1(x, hx1)
      local y2 = m2(x:cuda(), hx2)
      close(y2, y1, 'float32')
      local r = flare.randn(y1:size())
      y1:backward(r)
      y2:backward(r:cuda())
      local p1, p2 = m1:parameters(), m2:parameters()
      for i = 1, #p1 do close(p2[i].grad, p1[i].grad, 'float32') end
      local o1, o2 = optim.Adam(p1, { lr = 0.01 }), optim.Adam(p2, { lr = 0.01 })
      o1:step()
      o2:step()
      for i = 1, #p1 do close(p2[i]:detach(), p1[i]:detach(), 'float32') end
    end)
  end

  it('LSTMCell and GRUCell match the CPU', function()
    for lstm, make in pairs({ [true] = function() return nn.LSTMCell(6, 9) end,
                              [false] = function() return nn.GRUCell(6, 9) end }) do
      local m1, m2 = twins(make)
      local x, h = flare.randn(2, 6), flare.randn(2, 9)
      local y1 = lstm and m1(x, { h, h * 0.5 }) or m1(x, h)   -- LSTMCell's h (its c is not used)
      local y2 = lstm and m2(x:cuda(), { h:cuda(), h:cuda() * 0.5 }) or m2(x:cuda(), h:cuda())
      close(y2, y1, 'float32')
      y1:backward(flare.ones(2, 9))
      y2:backward(flare.ones(2, 9):cuda())
      local p1, p2 = m1:parameters(), m2:parameters()
      for i = 1, #p1 do close(p2[i].grad, p1[i].grad, 'float32') end
    end
  end)
end)
