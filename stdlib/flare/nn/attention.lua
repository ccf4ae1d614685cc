-- flare.nn.attention: MultiheadAttention, TransformerEncoderLayer and TransformerEncoder,
-- with PyTorch's parameter names (in_proj_weight, out_proj.weight, linear1, norm1, ...)
-- and mask conventions (a bool mask is true where attention is NOT allowed; a float mask
-- is added to the scores).
local flare = require 'flare.core'
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'
local init = require 'flare.nn.weight_init'
local linear = require 'flare.nn.linear'
local containers = require 'flare.nn.containers'
local norm = require 'flare.nn.norm'
local dropout = require 'flare.nn.dropout'

local M = {}

local function shape_text(t) return '[' .. table.concat(t:size(), ', ') .. ']' end

-- A mask as an additive float mask of dtype on `device` (the scores'): bool -> -inf where true.
local function additive(mask, dtype, fname, what, device)
  if mask == nil then return nil end
  if not flare.is_tensor(mask) then error(fname .. ': ' .. what .. ' must be a tensor, got ' .. type(mask), 4) end
  mask = mask:to(device)
  if mask:dtype() == 'bool' then
    return flare.zeros(mask:size(), { dtype = dtype, device = device }):masked_fill(mask, -math.huge)
  end
  if mask:dtype() ~= dtype then return mask:to(dtype) end
  return mask
end

--- nn.generate_square_subsequent_mask(n, [{dtype, device}]): an (n, n) float mask, 0 on and
-- below the diagonal, -inf above (a causal mask: position i attends to positions <= i).
function M.generate_square_subsequent_mask(n, opts)
  opts = F._check_options(opts, 'generate_square_subsequent_mask')
  if math.type(n) ~= 'integer' or n < 0 or n >= 1 << 30 then
    error('generate_square_subsequent_mask: expected a size (an integer from 0 to 2^30), got ' .. tostring(n), 2)
  end
  local dtype = opts.dtype or 'float32'
  local r = flare.arange(n):unsqueeze(2)
  local c = flare.arange(n):unsqueeze(1)
  local mask = flare.zeros({ n, n }, { dtype = dtype }):masked_fill(c:gt(r), -math.huge)
  return opts.device and mask:to(opts.device) or mask
end

--- F.scaled_dot_product_attention(q, k, v, [{attn_mask, dropout_p = 0, is_causal = false}]):
-- softmax(q·kᵀ / sqrt(d) + mask)·v over (..., L, d) and (..., S, d); returns the output and
-- the attention weights (after dropout, as PyTorch 1.13's multi-head attention returns them).
function F.scaled_dot_product_attention(q, k, v, opts)
  opts = F._check_options(opts, 'scaled_dot_product_attention')
  F._check_float(q, 'scaled_dot_product_attention', 'q')
  F._check_float(k, 'scaled_dot_product_attention', 'k')
  F._check_float(v, 'scaled_dot_product_attention', 'v')
  local d = q:size(-1)
  local scores = flare.matmul(q * (1 / math.sqrt(d)), k:transpose(-2, -1))
  local mask = additive(opts.attn_mask, scores:dtype(), 'scaled_dot_product_attention', 'attn_mask', scores:device())
  if opts.is_causal then
    local causal = M.generate_square_subsequent_mask(q:size(-2), { dtype = scores:dtype(), device = scores:device() })
    if k:size(-2) ~= q:size(-2) then causal = causal:narrow(2, 1, k:size(-2)) end
    mask = mask and (mask + causal) or causal
  end
  if mask ~= nil then scores = scores + mask end
  local w = flare.softmax(scores, -1)
  if (opts.dropout_p or 0) > 0 then w = F.dropout(w, opts.dropout_p, true) end
  return flare.matmul(w, v), w
end

-- ---------------------------------------------------------------- multi-head attention

--- nn.MultiheadAttention(embed_dim, num_heads, [{dropout = 0, bias = true, batch_first =
-- false, kdim, vdim, dtype}]): m(query, key, value, [{key_padding_mask, need_weights = true,
-- attn_mask, average_attn_weights = true, is_causal}]) -> output, weights. Inputs are
-- (L, N, E) ((N, L, E) with batch_first, or (L, E) unbatched); key_padding_mask (N, S) is
-- true (or -inf) at the keys to ignore; attn_mask (L, S) or (N * num_heads, L, S).
-- weights are (N, L, S), averaged over heads (or (N, heads, L, S)); nil without need_weights.
local MHA = module.class('MultiheadAttention')
M.MultiheadAttention = MHA

function MHA:init(embed_dim, num_heads, opts)
  opts = linear.options(opts, 'nn.MultiheadAttention')
  linear.check_size(embed_dim, 'nn.MultiheadAttention', 'embed_dim')
  if math.type(num_heads) ~= 'integer' or num_heads < 1 or embed_dim % num_heads ~= 0 then
    error(string.format('nn.MultiheadAttention: embed_dim (%d) must be divisible by num_heads (%s)',
      embed_dim, tostring(num_heads)), 3)
  end
  self.embed_dim, self.num_heads = embed_dim, num_heads
  self.head_dim = embed_dim // num_heads
  self.kdim, self.vdim = opts.kdim or embed_dim, opts.vdim or embed_dim
  self.dropout, self.batch_first = opts.dropout or 0, opts.batch_first and true or false
  self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
  if self._qkv_same_embed_dim then
    self.in_proj_weight = linear.param({ 3 * embed_dim, embed_dim }, opts)
  else
    self.q_proj_weight = linear.param({ embed_dim, embed_dim }, opts)
    self.k_proj_weight = linear.param({ embed_dim, self.kdim }, opts)
    self.v_proj_weight = linear.param({ embed_dim, self.vdim }, opts)
  end
  self:register_parameter('in_proj_bias', opts.bias ~= false and linear.param({ 3 * embed_dim }, opts) or nil)
  self.out_proj = linear.Linear(embed_dim, embed_dim, { bias = opts.bias ~= false, dtype = opts.dtype })
  self:reset_parameters()
end

--- m:reset_parameters(): xavier_uniform projections, zero biases (as PyTorch).
function MHA:reset_parameters()
  if self._qkv_same_embed_dim then
    init.xavier_uniform_(self.in_proj_weight)
  else
    init.xavier_uniform_(self.q_proj_weight)
    init.xavier_uniform_(self.k_proj_weight)
    init.xavier_uniform_(self.v_proj_weight)
  end
  if self.in_proj_bias then
    init.zeros_(self.in_proj_bias)
    init.zeros_(self.out_proj.bias)
  end
end

function MHA:extra_repr()
  local s = string.format('%d, %d', self.embed_dim, self.num_heads)
  if self.dropout ~= 0 then s = s .. ', dropout=' .. self.dropout end
  if self.batch_first then s = s .. ', batch_first=true' end
  if not self._qkv_same_embed_dim then s = s .. ', kdim=' .. self.kdim .. ', vdim=' .. self.vdim end
  return s
end

function MHA:forward(query, key, value, opts)
  local fname = 'nn.MultiheadAttention'
  opts = F._check_options(opts, fname)
  key, value = key or query, value or key or query
  F._check_float(query, fname, 'query')
  F._check_float(key, fname, 'key')
  F._check_float(value, fname, 'value')
  if key:dim() ~= query:dim() or value:dim() ~= query:dim() then
    error(string.format('%s: query %s, key %s and value %s must have the same number of dims', fname,
      shape_text(query), shape_text(key), shape_text(value)), 2)
  end
  local batched = query:dim() == 3
  if not batched and query:dim() ~= 2 then
    error(fname .. ': expected query of 3 dims (or 2 unbatched), got shape ' .. shape_text(query), 2)
  end
  local q, k, v = query, key, value
  if not batched then
    q, k, v = q:unsqueeze(2), k:unsqueeze(2), v:unsqueeze(2)
  elseif self.batch_first then
    q, k, v = q:transpose(1, 2), k:transpose(1, 2), v:transpose(1, 2)
  end
  local L, N, E = q:size(1), q:size(2), q:size(3)
  local S = k:size(1)
  if E ~= self.embed_dim then
    error(string.format('%s: expected query with embedding size %d, got shape %s', fname, self.embed_dim, shape_text(query)), 2)
  end
  if k:size(1) ~= v:size(1) or k:size(2) ~= N or v:size(2) ~= N then
    error(string.format('%s: key %s and value %s do not match query %s', fname, shape_text(key),
      shape_text(value), shape_text(query)), 2)
  end
  local H, hd = self.num_heads, self.head_dim
  -- projections
  local wq, wk, wv
  if self._qkv_same_embed_dim then
    local w = self.in_proj_weight
    wq, wk, wv = w:narrow(1, 1, E), w:narrow(1, E + 1, E), w:narrow(1, 2 * E + 1, E)
  else
    wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
  end
  local bq, bk, bv
  if self.in_proj_bias then
    local b = self.in_proj_bias
    bq, bk, bv = b:narrow(1, 1, E), b:narrow(1, E + 1, E), b:narrow(1, 2 * E + 1, E)
  end
  q, k, v = F.linear(q, wq, bq), F.linear(k, wk, bk), F.linear(v, wv, bv)
  -- (L, N, E) -> (N * H, L, hd)
  q = q:reshape(L, N * H, hd):transpose(1, 2)
  k = k:reshape(S, N * H, hd):transpose(1, 2)
  v = v:reshape(S, N * H, hd):transpose(1, 2)
  -- masks, merged into one additive (N * H, L, S) or broadcastable mask
  local dtype = q:dtype()
  local mask = additive(opts.attn_mask, dtype, fname, 'attn_mask', q:device())
  if mask ~= nil then
    local ok = (mask:dim() == 2 and mask:size(1) == L and mask:size(2) == S)
            or (mask:dim() == 3 and mask:size(1) == N * H and mask:size(2) == L and mask:size(3) == S)
    if not ok then
      error(string.format('%s: expected attn_mask of shape [%d, %d] or [%d, %d, %d], got %s', fname, L, S,
        N * H, L, S, shape_text(mask)), 2)
    end
  end
  if opts.is_causal and mask == nil then
    mask = M.generate_square_subsequent_mask(L, { dtype = dtype, device = q:device() })
    if S ~= L then mask = mask:narrow(2, 1, S) end
  end
  local kpm = additive(opts.key_padding_mask, dtype, fname, 'key_padding_mask', q:device())
  if kpm ~= nil then
    if not batched then kpm = kpm:unsqueeze(1) end
    if kpm:dim() ~= 2 or kpm:size(1) ~= N or kpm:size(2) ~= S then
      error(string.format('%s: expected key_padding_mask of shape [%d, %d], got %s', fname, N, S,
        shape_text(opts.key_padding_mask)), 2)
    end
    kpm = kpm:reshape(N, 1, 1, S):expand(N, H, 1, S):reshape(N * H, 1, S)
    mask = mask and (mask + kpm) or kpm
  end
  local p = self.training and self.dropout or 0
  local out, w = F.scaled_dot_product_attention(q, k, v, { attn_mask = mask, dropout_p = p })
  -- (N * H, L, hd) -> (L, N, E)
  out = out:transpose(1, 2):reshape(L, N, E)
  out = self.out_proj(out)
  if not batched then out = out:squeeze(2)
  elseif self.batch_first then out = out:transpose(1, 2) end
  if opts.need_weights == false then return out, nil end
  w = w:reshape(N, H, L, S)
  if opts.average_attn_weights ~= false then w = w:mean(2) end
  if not batched then w = w:squeeze(1) end
  return out, w
end

-- ---------------------------------------------------------------- transformer encoder

--- nn.TransformerEncoderLayer(d_model, nhead, [{dim_feedforward = 2048, dropout = 0.1,
-- activation = 'relu' | 'gelu', layer_norm_eps = 1e-5, batch_first = false, norm_first =
-- false, dtype}]): self-attention and a feed-forward block, each with a residual connection
-- and layer norm (after the block, or before it with norm_first).
-- m(src, [{src_mask, src_key_padding_mask, is_causal}]) -> output shaped like src.
local EncoderLayer = module.class('TransformerEncoderLayer')
M.TransformerEncoderLayer = EncoderLayer

function EncoderLayer:init(d_model, nhead, opts)
  opts = linear.options(opts, 'nn.TransformerEncoderLayer')
  local ff, p = opts.dim_feedforward or 2048, opts.dropout or 0.1
  local act = opts.activation or 'relu'
  if act ~= 'relu' and act ~= 'gelu' then
    error("nn.TransformerEncoderLayer: activation must be 'relu' or 'gelu', got " .. tostring(act), 3)
  end
  local eps = opts.layer_norm_eps or 1e-5
  local o = { dtype = opts.dtype }
  self.self_attn = MHA(d_model, nhead, { dropout = p, batch_first = opts.batch_first, dtype = opts.dtype })
  self.linear1 = linear.Linear(d_model, ff, o)
  self.dropout = dropout.Dropout(p)
  self.linear2 = linear.Linear(ff, d_model, o)
  self.norm_first = opts.norm_first and true or false
  self.norm1 = norm.LayerNorm(d_model, { eps = eps, dtype = opts.dtype })
  self.norm2 = norm.LayerNorm(d_model, { eps = eps, dtype = opts.dtype })
  self.dropout1 = dropout.Dropout(p)
  self.dropout2 = dropout.Dropout(p)
  self.activation = act
end

function EncoderLayer:_sa(x, opts)
  local y = self.self_attn(x, x, x, { attn_mask = opts.src_mask, key_padding_mask = opts.src_key_padding_mask,
                                      is_causal = opts.is_causal, need_weights = false })
  return self.dropout1(y)
end

function EncoderLayer:_ff(x)
  local h = self.linear1(x)
  h = self.activation == 'gelu' and F.gelu(h) or F.relu(h)
  return self.dropout2(self.linear2(self.dropout(h)))
end

function EncoderLayer:forward(src, opts)
  opts = F._check_options(opts, 'nn.TransformerEncoderLayer')
  F._check_float(src, 'nn.TransformerEncoderLayer', 'src')
  local x = src
  if self.norm_first then
    x = x + self:_sa(self.norm1(x), opts)
    x = x + self:_ff(self.norm2(x))
  else
    x = self.norm1(x + self:_sa(x, opts))
    x = self.norm2(x + self:_ff(x))
  end
  return x
end

function EncoderLayer:extra_repr()
  local s = self.activation ~= 'relu' and ("activation='" .. self.activation .. "'") or ''
  if self.norm_first then s = s .. (s ~= '' and ', ' or '') .. 'norm_first=true' end
  return s ~= '' and s or nil
end

--- nn.TransformerEncoder(encoder_layer, num_layers, [{norm = module}]): num_layers copies of
-- encoder_layer (each with its own weights, starting equal), then the optional norm.
-- m(src, [{mask, src_key_padding_mask, is_causal}]).
local Encoder = module.class('TransformerEncoder')
M.TransformerEncoder = Encoder

function Encoder:init(layer, num_layers, opts)
  if not module.is_module(layer) then
    error('nn.TransformerEncoder: expected an encoder layer module, got ' .. type(layer), 3)
  end
  if math.type(num_layers) ~= 'integer' or num_layers < 1 then
    error('nn.TransformerEncoder: num_layers must be a positive integer, got ' .. tostring(num_layers), 3)
  end
  local layers = {}
  for i = 1, num_layers do layers[i] = layer:clone() end
  self.layers = containers.ModuleList(layers)
  self.num_layers = num_layers
  if opts and opts.norm then self.norm = opts.norm end
end

function Encoder:forward(src, opts)
  opts = F._check_options(opts, 'nn.TransformerEncoder')
  local o = { src_mask = opts.mask or opts.src_mask, src_key_padding_mask = opts.src_key_padding_mask,
              is_causal = opts.is_causal }
  local x = src
  for _, l in ipairs(self.layers) do x = l(x, o) end
  if self.norm then x = self.norm(x) end
  return x
end

return M
