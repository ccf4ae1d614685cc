-- flare.nn.embedding: Embedding, a lookup table of vectors by 1-based token index.
local module = require 'flare.nn.module'
local F = require 'flare.nn.functional'
local init = require 'flare.nn.weight_init'
local linear = require 'flare.nn.linear'

local M = {}

--- nn.Embedding(num_embeddings, embedding_dim, [{padding_idx, dtype}]): m(indices) looks
-- up rows of weight (num_embeddings, embedding_dim) at 1-based int64 indices of any shape.
-- Weights start normal(0, 1); the padding_idx row (1-based, negative from the end) starts at
-- zero and gets no gradient.
local Embedding = module.class('Embedding')
M.Embedding = Embedding

function Embedding:init(num, dim, opts)
  opts = linear.options(opts, 'nn.Embedding')
  linear.check_size(num, 'nn.Embedding', 'num_embeddings')
  linear.check_size(dim, 'nn.Embedding', 'embedding_dim')
  local pad = opts.padding_idx
  if pad ~= nil then
    if math.type(pad) ~= 'integer' or pad == 0 or pad > num or pad < -num then
      error(string.format('nn.Embedding: padding_idx must be an index in 1..%d (or -%d..-1), got %s', num, num, tostring(pad)), 3)
    end
    if pad < 0 then pad = num + pad + 1 end
  end
  self.num_embeddings, self.embedding_dim, self.padding_idx = num, dim, pad
  self.weight = linear.param({ num, dim }, opts)
  self:reset_parameters()
end

function Embedding:reset_parameters()
  init.normal_(self.weight)
  if self.padding_idx then init.zeros_(self.weight[self.padding_idx]) end
end

function Embedding:forward(idx) return F.embedding(idx, self.weight, self.padding_idx) end

function Embedding:extra_repr()
  return string.format('%d, %d%s', self.num_embeddings, self.embedding_dim,
    self.padding_idx and (', padding_idx=' .. self.padding_idx) or '')
end

--- nn.Embedding.from_pretrained(weight, [{freeze = true, padding_idx}])
function Embedding.from_pretrained(weight, opts)
  opts = opts or {}
  local m = Embedding(weight:size(1), weight:size(2), { padding_idx = opts.padding_idx, dtype = weight:dtype() })
  m:load_state_dict({ weight = weight })
  if opts.freeze ~= false then m.weight:requires_grad(false) end
  return m
end

return M
