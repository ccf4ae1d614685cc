-- flare.nn.rnn: RNN, LSTM and GRU (multi-layer, bidirectional, batch_first, dropout between
-- layers) and RNNCell, LSTMCell, GRUCell, with PyTorch's parameter names, gate order and
-- initialisation. The input projection of all time steps is one matrix product; the
-- recurrence of a layer is one fused op (flare.fused_rnn_layer), the cells' time step one
-- fused kernel (flare.fused_lstm_cell, flare.fused_gru_cell).
local flare = require 'flare.core'
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'
local init = require 'flare.nn.weight_init'
local linear = require 'flare.nn.linear'

local M = {}

local function shape_text(s) return '[' .. table.concat(s, ', ') .. ']' end

-- ---------------------------------------------------------------- step functions
-- gi is the input projection x·W_ihᵀ + b_ih of one step (N, G*H); h, c are (N, H).

local function hidden_proj(h, w_hh, b_hh)
  F._check_tensor(h, 'recurrent step', 'the state h', 4)
  F._check_tensor(w_hh, 'recurrent step', 'weight_hh', 4)
  if b_hh ~= nil then F._check_tensor(b_hh, 'recurrent step', 'bias_hh', 4) end
  if b_hh ~= nil then return flare.addmm(b_hh, h, w_hh:t()) end
  return flare.mm(h, w_hh:t())
end

--- F.rnn_step(gi, h, w_hh, [b_hh], [nonlinearity = 'tanh']) -> h'
function F.rnn_step(gi, h, w_hh, b_hh, nonlinearity)
  F._check_tensor(gi, 'rnn_step', 'the input projection gi')
  local a = gi + hidden_proj(h, w_hh, b_hh)
  if nonlinearity == 'relu' then return flare.relu(a) end
  return flare.tanh(a)
end

--- F.lstm_step(gi, h, c, w_hh, [b_hh]) -> h', c': gates in PyTorch's order i, f, g, o;
-- c' = σ(f)·c + σ(i)·tanh(g), h' = σ(o)·tanh(c'). The gate math is one fused kernel
-- (flare.fused_lstm_cell); h and c are (N, H).
function F.lstm_step(gi, h, c, w_hh, b_hh)
  F._check_tensor(gi, 'lstm_step', 'the input projection gi')
  F._check_tensor(c, 'lstm_step', 'the cell state c')
  return flare.fused_lstm_cell(gi, hidden_proj(h, w_hh, b_hh), c)
end

--- F.gru_step(gi, h, w_hh, [b_hh]) -> h': gates r, z, n; n = tanh(gi_n + r·(W_hn·h + b_hn)),
-- h' = (1 - z)·n + z·h. The gate math is one fused kernel (flare.fused_gru_cell).
function F.gru_step(gi, h, w_hh, b_hh)
  F._check_tensor(gi, 'gru_step', 'the input projection gi')
  return flare.fused_gru_cell(gi, hidden_proj(h, w_hh, b_hh), h)
end

--- F.rnn_cell(x, h, w_ih, w_hh, [b_ih], [b_hh], [nonlinearity]) -> h'
function F.rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity)
  return F.rnn_step(F.linear(x, w_ih, b_ih), h, w_hh, b_hh, nonlinearity)
end
--- F.lstm_cell(x, h, c, w_ih, w_hh, [b_ih], [b_hh]) -> h', c'
function F.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
  return F.lstm_step(F.linear(x, w_ih, b_ih), h, c, w_hh, b_hh)
end
--- F.gru_cell(x, h, w_ih, w_hh, [b_ih], [b_hh]) -> h'
function F.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh)
  return F.gru_step(F.linear(x, w_ih, b_ih), h, w_hh, b_hh)
end

local gate_count = { RNN_TANH = 1, RNN_RELU = 1, LSTM = 4, GRU = 3 }

-- ---------------------------------------------------------------- RNN, LSTM, GRU

local Base = module.class('_RNNBase')
rawset(Base, '_abstract', true)
M._RNNBase = Base

function Base:_setup(mode, input_size, hidden_size, opts)
  local fname = self.__typename
  opts = linear.options(opts, fname)
  linear.check_size(input_size, fname, 'input_size')
  linear.check_size(hidden_size, fname, 'hidden_size')
  local layers = opts.num_layers or 1
  if math.type(layers) ~= 'integer' or layers < 1 then
    error(fname .. ': num_layers must be a positive integer, got ' .. tostring(layers), 4)
  end
  local dropout = opts.dropout or 0
  if type(dropout) ~= 'number' or dropout < 0 or dropout > 1 then
    error(fname .. ': dropout must be between 0 and 1, got ' .. tostring(dropout), 4)
  end
  if mode == 'RNN' then
    local nl = opts.nonlinearity or 'tanh'
    if nl ~= 'tanh' and nl ~= 'relu' then
      error(fname .. ": nonlinearity must be 'tanh' or 'relu', got " .. tostring(nl), 4)
    end
    self.nonlinearity = nl
    mode = nl == 'tanh' and 'RNN_TANH' or 'RNN_RELU'
  end
  self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
  self.num_layers, self.dropout = layers, dropout
  self.bias = opts.bias ~= false
  self.batch_first = opts.batch_first and true or false
  self.bidirectional = opts.bidirectional and true or false
  local dirs = self.bidirectional and 2 or 1
  local G = gate_count[mode] * hidden_size
  for l = 0, layers - 1 do
    local in_l = l == 0 and input_size or hidden_size * dirs
    for d = 0, dirs - 1 do
      local sfx = 'l' .. l .. (d == 1 and '_reverse' or '')
      self['weight_ih_' .. sfx] = linear.param({ G, in_l }, opts)
      self['weight_hh_' .. sfx] = linear.param({ G, hidden_size }, opts)
      if self.bias then
        self['bias_ih_' .. sfx] = linear.param({ G }, opts)
        self['bias_hh_' .. sfx] = linear.param({ G }, opts)
      end
    end
  end
  self:reset_parameters()
end

--- m:reset_parameters(): every weight and bias uniform(-1/sqrt(hidden), 1/sqrt(hidden)).
function Base:reset_parameters()
  local bound = self.hidden_size > 0 and 1 / math.sqrt(self.hidden_size) or 0
  for _, p in ipairs(self:parameters()) do init.uniform_(p, -bound, bound) end
end

function Base:extra_repr()
  local s = string.format('%d, %d', self.input_size, self.hidden_size)
  if self.num_layers ~= 1 then s = s .. ', num_layers=' .. self.num_layers end
  if self.nonlinearity and self.nonlinearity ~= 'tanh' then s = s .. ", nonlinearity='" .. self.nonlinearity .. "'" end
  if not self.bias then s = s .. ', bias=false' end
  if self.batch_first then s = s .. ', batch_first=true' end
  if self.dropout ~= 0 then s = s .. ', dropout=' .. self.dropout end
  if self.bidirectional then s = s .. ', bidirectional=true' end
  return s
end

function Base:_check_state(h, want, what)
  if not flare.is_tensor(h) then
    error(string.format('%s: expected %s as a tensor of shape %s, got %s', self.__typename, what,
      shape_text(want), type(h)), 4)
  end
  local s = h:size()
  local ok = #s == #want
  for i = 1, #want do if s[i] ~= want[i] then ok = false end end
  if not ok then
    error(string.format('%s: expected %s of shape %s, got %s', self.__typename, what, shape_text(want), shape_text(s)), 4)
  end
end

local fused_mode = { LSTM = 'lstm', GRU = 'gru', RNN_TANH = 'tanh', RNN_RELU = 'relu' }

-- Runs one layer in one direction over the whole sequence x (T, N, in); returns the
-- outputs (T, N, H) and the final state. One GEMM gives the input projection of every
-- step; the recurrence (and its backward through time) is one fused op in C.
function Base:_run_direction(x, sfx, h, c)
  local T, N = x:size(1), x:size(2)
  local w_ih, w_hh = self['weight_ih_' .. sfx], self['weight_hh_' .. sfx]
  local b_ih, b_hh = self['bias_ih_' .. sfx], self['bias_hh_' .. sfx]
  local G = w_ih:size(1)
  local flat = x:reshape(T * N, x:size(3))
  local gi = (b_ih ~= nil and flare.addmm(b_ih, flat, w_ih:t()) or flare.mm(flat, w_ih:t())):reshape(T, N, G)
  -- the hidden bias travels as an extra last column of W_hh
  local hh = b_hh ~= nil and flare.cat({ w_hh, b_hh:view(G, 1) }, 2) or w_hh
  local state = c ~= nil and flare.stack({ h, c }, 1) or h
  return flare.fused_rnn_layer(fused_mode[self.mode], gi, hh, state, sfx:find('_reverse', 1, true) ~= nil)
end

function Base:forward(input, hx)
  local fname = self.__typename
  if not flare.is_tensor(input) then error(fname .. ': expected a tensor input, got ' .. type(input), 2) end
  local batched = input:dim() == 3
  if not batched and input:dim() ~= 2 then
    error(string.format('%s: expected input of 3 dims (%s) or 2 dims (L, input_size), got shape %s', fname,
      self.batch_first and 'N, L, input_size' or 'L, N, input_size', shape_text(input:size())), 2)
  end
  if input:size(-1) ~= self.input_size then
    error(string.format('%s: expected input with last size %d (input_size), got shape %s', fname,
      self.input_size, shape_text(input:size())), 2)
  end
  local x = input
  if not batched then x = x:unsqueeze(2)
  elseif self.batch_first then x = x:transpose(1, 2) end
  local T, N = x:size(1), x:size(2)
  local dirs = self.bidirectional and 2 or 1
  local H = self.hidden_size
  local want = batched and { self.num_layers * dirs, N, H } or { self.num_layers * dirs, H }
  local h0, c0
  local is_lstm = self.mode == 'LSTM'
  if hx ~= nil then
    if is_lstm then
      if type(hx) ~= 'table' or flare.is_tensor(hx) then
        error(fname .. ': expected the initial state as a table {h0, c0}, got ' .. (flare.is_tensor(hx) and 'a tensor' or type(hx)), 2)
      end
      h0, c0 = hx[1], hx[2]
      self:_check_state(h0, want, 'h0')
      self:_check_state(c0, want, 'c0')
    else
      h0 = hx
      self:_check_state(h0, want, 'h0')
    end
    if not batched then
      h0 = h0:unsqueeze(2)
      if c0 then c0 = c0:unsqueeze(2) end
    end
  else
    h0 = flare.zeros({ self.num_layers * dirs, N, H }, { dtype = x:dtype(), device = x:device() })
    if is_lstm then c0 = h0 end
  end
  local hn, cn = {}, {}
  local layer_in = x
  for l = 0, self.num_layers - 1 do
    local outs = {}
    for d = 0, dirs - 1 do
      local idx = l * dirs + d + 1
      local sfx = 'l' .. l .. (d == 1 and '_reverse' or '')
      local out, h, c = self:_run_direction(layer_in, sfx, h0[idx], c0 and c0[idx])
      outs[#outs + 1] = out
      hn[idx], cn[idx] = h, c
    end
    layer_in = dirs == 2 and flare.cat(outs, 3) or outs[1]
    if self.dropout > 0 and self.training and l < self.num_layers - 1 then
      layer_in = F.dropout(layer_in, self.dropout, true)
    end
  end
  local output = layer_in
  local h_n = flare.stack(hn, 1)
  local c_n = is_lstm and flare.stack(cn, 1) or nil
  if not batched then
    output = output:squeeze(2)
    h_n = h_n:squeeze(2)
    if c_n then c_n = c_n:squeeze(2) end
  elseif self.batch_first then
    output = output:transpose(1, 2)
  end
  if is_lstm then return output, { h_n, c_n } end
  return output, h_n
end

--- nn.RNN(input_size, hidden_size, [{num_layers = 1, nonlinearity = 'tanh', bias = true,
-- batch_first = false, dropout = 0, bidirectional = false, dtype}]): an Elman RNN.
-- m(input, [h0]) -> output, h_n. input is (L, N, input_size) ((N, L, input_size) with
-- batch_first, or (L, input_size) unbatched); output (L, N, D * hidden), h_n
-- (D * num_layers, N, hidden), D = 2 when bidirectional.
local RNN = module.class('RNN', Base)
M.RNN = RNN
function RNN:init(i, h, opts) self:_setup('RNN', i, h, opts) end

--- nn.LSTM(input_size, hidden_size, [opts as nn.RNN]): m(input, [{h0, c0}]) ->
-- output, {h_n, c_n}.
local LSTM = module.class('LSTM', Base)
M.LSTM = LSTM
function LSTM:init(i, h, opts) self:_setup('LSTM', i, h, opts) end

--- nn.GRU(input_size, hidden_size, [opts as nn.RNN]): m(input, [h0]) -> output, h_n.
local GRU = module.class('GRU', Base)
M.GRU = GRU
function GRU:init(i, h, opts) self:_setup('GRU', i, h, opts) end

-- ---------------------------------------------------------------- cells

local Cell = module.class('_RNNCellBase')
rawset(Cell, '_abstract', true)

function Cell:_setup(gates, input_size, hidden_size, opts)
  local fname = self.__typename
  opts = linear.options(opts, fname)
  linear.check_size(input_size, fname, 'input_size')
  linear.check_size(hidden_size, fname, 'hidden_size')
  self.input_size, self.hidden_size = input_size, hidden_size
  self.bias = opts.bias ~= false
  self.weight_ih = linear.param({ gates * hidden_size, input_size }, opts)
  self.weight_hh = linear.param({ gates * hidden_size, hidden_size }, opts)
  if self.bias then
    self.bias_ih = linear.param({ gates * hidden_size }, opts)
    self.bias_hh = linear.param({ gates * hidden_size }, opts)
  else
    self:register_parameter('bias_ih', nil)
    self:register_parameter('bias_hh', nil)
  end
  Base.reset_parameters(self)
end
Cell.reset_parameters = Base.reset_parameters

function Cell:extra_repr()
  local s = string.format('%d, %d', self.input_size, self.hidden_size)
  if not self.bias then s = s .. ', bias=false' end
  if self.nonlinearity and self.nonlinearity ~= 'tanh' then s = s .. ", nonlinearity='" .. self.nonlinearity .. "'" end
  return s
end

-- input (N, in) or (in); a state (N, H) or (H), zeros when nil. Returns the batched input,
-- whether it was batched, and a function giving a state (batched) from an argument.
function Cell:_prepare(x)
  local fname = self.__typename
  if not flare.is_tensor(x) then error(fname .. ': expected a tensor input, got ' .. type(x), 3) end
  if (x:dim() ~= 1 and x:dim() ~= 2) or x:size(-1) ~= self.input_size then
    error(string.format('%s: expected input (N, %d) or (%d), got shape %s', fname, self.input_size,
      self.input_size, shape_text(x:size())), 3)
  end
  local batched = x:dim() == 2
  local bx = batched and x or x:unsqueeze(1)
  local N = bx:size(1)
  local function state(h, what)
    if h == nil then return flare.zeros({ N, self.hidden_size }, { dtype = x:dtype(), device = x:device() }) end
    self:_check_state(h, batched and { N, self.hidden_size } or { self.hidden_size }, what)
    return batched and h or h:unsqueeze(1)
  end
  return bx, batched, state
end
Cell._check_state = Base._check_state

local function unbatch(batched, t) return batched and t or t:squeeze(1) end

--- nn.RNNCell(input_size, hidden_size, [{bias = true, nonlinearity = 'tanh', dtype}]):
-- m(x, [h]) -> h'.
local RNNCell = module.class('RNNCell', Cell)
M.RNNCell = RNNCell
function RNNCell:init(i, h, opts)
  local nl = type(opts) == 'table' and opts.nonlinearity or 'tanh'
  if nl ~= 'tanh' and nl ~= 'relu' then
    error("nn.RNNCell: nonlinearity must be 'tanh' or 'relu', got " .. tostring(nl), 3)
  end
  self.nonlinearity = nl
  self:_setup(1, i, h, opts)
end
function RNNCell:forward(x, h)
  local bx, batched, state = self:_prepare(x)
  return unbatch(batched, F.rnn_cell(bx, state(h, 'h'), self.weight_ih, self.weight_hh, self.bias_ih,
    self.bias_hh, self.nonlinearity))
end

--- nn.LSTMCell(input_size, hidden_size, [{bias = true, dtype}]): m(x, [{h, c}]) -> h', c'.
local LSTMCell = module.class('LSTMCell', Cell)
M.LSTMCell = LSTMCell
function LSTMCell:init(i, h, opts) self:_setup(4, i, h, opts) end
function LSTMCell:forward(x, hc)
  local bx, batched, state = self:_prepare(x)
  if hc ~= nil and (type(hc) ~= 'table' or flare.is_tensor(hc)) then
    error('nn.LSTMCell: expected the state as a table {h, c}, got ' .. (flare.is_tensor(hc) and 'a tensor' or type(hc)), 2)
  end
  local h, c = state(hc and hc[1], 'h'), state(hc and hc[2], 'c')
  h, c = F.lstm_cell(bx, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
  return unbatch(batched, h), unbatch(batched, c)
end

--- nn.GRUCell(input_size, hidden_size, [{bias = true, dtype}]): m(x, [h]) -> h'.
local GRUCell = module.class('GRUCell', Cell)
M.GRUCell = GRUCell
function GRUCell:init(i, h, opts) self:_setup(3, i, h, opts) end
function GRUCell:forward(x, h)
  local bx, batched, state = self:_prepare(x)
  return unbatch(batched, F.gru_cell(bx, state(h, 'h'), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh))
end

return M
