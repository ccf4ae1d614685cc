-- flare.data.text: text corpora for character-level language models. A corpus holds the
-- text, its character vocabulary (the sorted distinct characters) and the whole text as an
-- int64 tensor of 1-based token indices; corpus:sequences(T) is a data set of (input,
-- target) pairs for data.loader, the target being the input shifted by one character.
local flare = require 'flare.core'

local M = {}

------------------------------------------------------------------------------ Vocab

local Vocab = {}
Vocab.__index = Vocab
Vocab.__name = 'data.Vocab'

--- data.Vocab(chars): a vocabulary of the given characters (strings of one character each,
-- UTF-8 allowed), in that order: vocab.itos[i] is character i, vocab.stoi[c] its index.
function M.Vocab(chars)
  if type(chars) ~= 'table' then error('Vocab: expected a list of characters, got ' .. type(chars), 2) end
  local itos, stoi, bytes = {}, {}, true
  for i, c in ipairs(chars) do
    if type(c) ~= 'string' or c == '' or (utf8.len(c) ~= 1 and #c ~= 1) then
      error(string.format('Vocab: entry %d is not one character (%s)', i, tostring(c)), 2)
    end
    if stoi[c] then error(string.format('Vocab: character %q appears twice', c), 2) end
    itos[i], stoi[c] = c, i
    bytes = bytes and #c == 1
  end
  return setmetatable({ itos = itos, stoi = stoi, bytes = bytes }, Vocab)
end

function Vocab:__len() return #self.itos end

function Vocab:__tostring()
  return string.format('data.Vocab of %d characters', #self.itos)
end

-- byte -> token index (0 for bytes not in the vocabulary), as a 256-entry int64 tensor.
function Vocab:_byte_table()
  if not self._lut then
    local lut = {}
    for b = 0, 255 do lut[b + 1] = self.stoi[string.char(b)] or 0 end
    self._lut = flare.tensor(lut, { dtype = 'int64' })
  end
  return self._lut
end

local function unknown(self, c)
  error(string.format('encode: character %q (code %d) is not in the vocabulary of %d characters', c,
    #c == 1 and c:byte() or utf8.codepoint(c), #self.itos), 3)
end

--- vocab:encode(s) -> int64 tensor of the token indices (1-based) of the characters of s.
function Vocab:encode(s)
  if type(s) ~= 'string' then error('encode: expected a string, got ' .. type(s), 2) end
  if #s == 0 then return flare.zeros(0, { dtype = 'int64' }) end
  if self.bytes and (not s:find('[\128-\255]') or not utf8.len(s)) then
    -- one byte, one character: a table lookup over all bytes at once
    local tokens = self:_byte_table():index_select(1, flare.frombuffer(s):long():add_(1))
    if tokens:min():item() == 0 then
      local at = tokens:eq(0):int():argmax():item()
      unknown(self, s:sub(at, at))
    end
    return tokens
  end
  local out, n = {}, 0
  if utf8.len(s) then
    for _, cp in utf8.codes(s) do
      local c = utf8.char(cp)
      n = n + 1
      out[n] = self.stoi[c] or unknown(self, c)
    end
  else
    for p = 1, #s do
      local c = s:sub(p, p)
      n = n + 1
      out[n] = self.stoi[c] or unknown(self, c)
    end
  end
  return flare.tensor(out, { dtype = 'int64' })
end

--- vocab:decode(tokens) -> string: the characters of token indices (a tensor or a list).
function Vocab:decode(tokens)
  if flare.is_tensor(tokens) then tokens = tokens:reshape(tokens:numel()):totable() end
  if type(tokens) ~= 'table' then error('decode: expected a tensor or a list of token indices', 2) end
  local out = {}
  for k, i in ipairs(tokens) do
    local c = self.itos[i]
    if not c then error(string.format('decode: token %s is not in 1..%d', tostring(i), #self.itos), 2) end
    out[k] = c
  end
  return table.concat(out)
end

-- The sorted distinct characters of s (by code point; bytes when s is not UTF-8).
local function distinct(s)
  local chars = {}
  if not s:find('[\128-\255]') or not utf8.len(s) then
    for b = 0, 255 do
      local c = string.char(b)
      if s:find(c, 1, true) then chars[#chars + 1] = c end
    end
    return chars
  end
  local seen = {}
  for _, cp in utf8.codes(s) do
    if not seen[cp] then
      seen[cp] = true
      chars[#chars + 1] = cp
    end
  end
  table.sort(chars)
  for k, cp in ipairs(chars) do chars[k] = utf8.char(cp) end
  return chars
end

------------------------------------------------------------------------------ sequences

local Sequences = {}
Sequences.__index = Sequences
Sequences.__name = 'data.Sequences'

function Sequences:__len() return self.n end

function Sequences:get(i)
  if math.type(i) ~= 'integer' or i < 1 or i > self.n then
    error(string.format('sequence %s is out of range 1..%d', tostring(i), self.n), 2)
  end
  local s = (i - 1) * self.stride + 1
  return { self.tokens:narrow(1, s, self.T), self.tokens:narrow(1, s + 1, self.T) }
end

-- A whole batch: one index_select each for the inputs and the targets.
function Sequences:batch(idx)
  local starts = (idx:long() - 1) * self.stride + 1
  local at = starts:unsqueeze(2) + flare.arange(0, self.T):unsqueeze(1)
  local flat = at:reshape(at:numel())
  local b = idx:numel()
  return { self.tokens:index_select(1, flat):reshape(b, self.T),
           self.tokens:index_select(1, flat + 1):reshape(b, self.T) }
end

function Sequences:split(fraction, opts) return require('flare.data').random_split(self, { fraction, 1 - fraction }, opts) end

------------------------------------------------------------------------------ Corpus

local Corpus = {}
Corpus.__index = Corpus
Corpus.__name = 'data.Corpus'

function Corpus:__len() return self.tokens:numel() end

function Corpus:__tostring()
  return string.format('data.Corpus: %d characters, a vocabulary of %d', self.tokens:numel(), #self.vocab)
end

local function corpus(tokens, vocab, text)
  return setmetatable({ tokens = tokens, vocab = vocab, text = text }, Corpus)
end

--- corpus:sequences(T, {stride = T}): a data set whose sample i is (input, target), two
-- int64 tensors of T tokens: input = tokens s .. s+T-1 and target = tokens s+1 .. s+T, for
-- s = (i - 1) * stride + 1. Batches come out as (B, T) tensors.
function Corpus:sequences(T, opts)
  opts = opts or {}
  local stride = opts.stride or T
  if math.type(T) ~= 'integer' or T < 1 then error('sequences: T must be a positive integer, got ' .. tostring(T), 2) end
  if math.type(stride) ~= 'integer' or stride < 1 then
    error('sequences: stride must be a positive integer, got ' .. tostring(stride), 2)
  end
  local n = self.tokens:numel()
  if n < T + 1 then
    error(string.format('sequences: the corpus has %d tokens, a sequence of %d needs %d', n, T, T + 1), 2)
  end
  return setmetatable({ tokens = self.tokens, T = T, stride = stride, n = (n - 1 - T) // stride + 1,
                        vocab = self.vocab }, Sequences)
end

--- corpus:split(fraction) -> two corpora: the first `fraction` of the tokens and the rest
-- (contiguous, as language models are validated on held-out text), sharing the vocabulary.
function Corpus:split(fraction)
  if type(fraction) ~= 'number' or fraction <= 0 or fraction >= 1 then
    error('split: fraction must be between 0 and 1, got ' .. tostring(fraction), 2)
  end
  local n = self.tokens:numel()
  local cut = math.floor(n * fraction + 0.5)
  return corpus(self.tokens:narrow(1, 1, cut), self.vocab), corpus(self.tokens:narrow(1, cut + 1, n - cut), self.vocab)
end

--- corpus:sample_batch(batch_size, T) -> inputs, targets: (B, T) int64 tensors from random
-- offsets drawn from flare's generator (the sampling nanoGPT-style training loops use).
function Corpus:sample_batch(batch_size, T)
  local n = self.tokens:numel()
  if math.type(batch_size) ~= 'integer' or batch_size < 1 or math.type(T) ~= 'integer' or T < 1 then
    error('sample_batch: batch_size and T must be positive integers', 2)
  end
  if n < T + 1 then error(string.format('sample_batch: the corpus has %d tokens, T = %d needs %d', n, T, T + 1), 2) end
  local starts = flare.randint(1, n - T + 1, { batch_size })
  local at = starts:unsqueeze(2) + flare.arange(0, T):unsqueeze(1)
  local flat = at:reshape(at:numel())
  return self.tokens:index_select(1, flat):reshape(batch_size, T),
         self.tokens:index_select(1, flat + 1):reshape(batch_size, T)
end

--- data.text(path or nil, {text = string, vocab = data.Vocab}): a corpus from a text file
-- (or from opts.text): corpus.text, corpus.vocab (the sorted distinct characters, unless a
-- vocab is given), corpus.tokens (int64, 1-based), #corpus, corpus:sequences(T),
-- corpus:split(fraction), corpus:sample_batch(B, T).
function M.text(path, opts)
  opts = opts or {}
  local s = opts.text
  if s == nil then
    if type(path) ~= 'string' then
      error(string.format("bad argument #1 to 'text' (file name expected, got %s)", type(path)), 2)
    end
    local ok, res = pcall(flare.read_file, path, { max_bytes = opts.max_bytes or 1 << 32 })
    if not ok then error('text: ' .. tostring(res):gsub('^read_file: ', ''), 2) end
    s = res
  elseif type(s) ~= 'string' then
    error('text: opts.text must be a string, got ' .. type(s), 2)
  end
  local vocab = opts.vocab or M.Vocab(distinct(s))
  local ok, tokens = pcall(vocab.encode, vocab, s)
  if not ok then error('text: ' .. tostring(tokens):gsub('^encode: ', ''), 2) end
  return corpus(tokens, vocab, s)
end

--- data.shakespeare(opts): the bundled tiny Shakespeare corpus (1,115,394 characters, 65
-- distinct) as data.text gives it.
function M.shakespeare(opts)
  return M.text(require('flare.data')._bundled('tinyshakespeare.txt'), opts)
end

return M
