-- char_rnn.lua: an LSTM language model on the bundled tiny Shakespeare, one character at a
-- time, written as a plain training loop (flare.train supplies only the progress bar, the
-- log and the checkpoints). Prints generated text as it trains, sampled with a temperature,
-- then saves the model, loads it back and checks it computes the same.
--
--   flare scripts/char_rnn.lua [--epochs 1] [--lr 2e-3] [--batch-size 32] [--seq-len 64]
--        [--hidden 256] [--layers 1] [--max-steps N] [--sample-every 100] [--temperature 0.8]
--        [--text FILE] [--checkpoint ck.flare] [--resume ck.flare] [--out char_rnn.flare]
--        [--device cpu|cuda]
--
-- An epoch is one pass over 90% of the text in windows of seq-len characters (the last
-- 10% is held out to validate). On 2 cores one epoch (about 490 steps) takes about a
-- minute with the defaults and brings the validation loss to about 1.8 nats per
-- character (see the README's training section): samples by then are word-shaped with speaker names; a few
-- epochs more make them read like (bad) verse.
local here = (arg and arg[0] or ''):match('^(.*)/[^/]*$') or '.'
package.path = here .. '/?.lua;' .. package.path

local flare = require 'flare'
local nn, optim, data = require 'flare.nn', require 'flare.optim', require 'flare.data'
local train = require 'flare.train'
local args = require 'args'

local opt = args.parse(arg, {
  usage = 'flare scripts/char_rnn.lua [options]',
  about = 'Trains a character-level LSTM on tiny Shakespeare and prints samples as it goes.',
  { 'epochs', 1, 'passes over the training text' },
  { 'lr', 2e-3, 'learning rate (Adam)' },
  { 'batch-size', 32, 'sequences per batch' },
  { 'seq-len', 64, 'characters per sequence (steps of backpropagation through time)' },
  { 'embed', 64, 'size of the character embedding' },
  { 'hidden', 256, 'LSTM hidden size' },
  { 'layers', 1, 'LSTM layers' },
  { 'max-steps', 0, 'stop after this many steps (0: no limit)' },
  { 'sample-every', 100, 'print generated text every N steps (0: only at the end)' },
  { 'sample-length', 200, 'characters per sample' },
  { 'temperature', 0.8, 'sampling temperature: lower is more conservative' },
  { 'prime', 'ROMEO:', 'text the samples start from' },
  { 'text', '', 'train on this text file instead of tiny Shakespeare' },
  { 'out', 'char_rnn.flare', 'where the trained model is saved' },
  { 'log', '', 'a CSV (or .jsonl) log of every step and validation' },
  { 'checkpoint', '', 'a checkpoint written every --checkpoint-every steps (the last 2 kept)' },
  { 'checkpoint-every', 200, 'steps between checkpoints' },
  { 'resume', '', 'a checkpoint to go on from' },
  { 'progress', 'auto', 'progress display: auto, bar, lines or none' },
})

local t_start = flare.clock()
flare.manual_seed(opt.seed)

-- ---------------------------------------------------------------- data
local corpus = opt.text ~= '' and data.text(opt.text) or data.shakespeare()
local vocab = corpus.vocab
local train_text, val_text = corpus:split(0.9)
local seqs = train_text:sequences(opt.seq_len)
-- with --device cuda, batches arrive on the GPU and the model lives there
local dev = opt.device ~= 'cpu' and opt.device or nil
local loader = data.loader(seqs, { batch_size = opt.batch_size, shuffle = true, drop_last = true, device = dev })
print(string.format('%d characters, %d distinct; %d training sequences of %d, %d batches an epoch',
  #corpus, #vocab, #seqs, opt.seq_len, #loader))

-- ---------------------------------------------------------------- model
-- A registered class, so that flare.save stores it by name and flare.load rebuilds it.
local CharRNN = nn.Module:extend('CharRNN')

function CharRNN:init(vocab_size, embed, hidden, layers)
  self.embed = nn.Embedding(vocab_size, embed)
  self.rnn = nn.LSTM(embed, hidden, { num_layers = layers, batch_first = true })
  self.head = nn.Linear(hidden, vocab_size)
end

-- tokens (B, T) int64 -> logits (B, T, V), and the LSTM state {h, c} to carry on with
function CharRNN:forward(tokens, state)
  local out, new_state = self.rnn(self.embed(tokens), state)
  return self.head(out), new_state
end

local model = CharRNN(#vocab, opt.embed, opt.hidden, opt.layers):to(opt.device)
print(model)
local optimizer = optim.Adam(model:parameters(), { lr = opt.lr })

local function loss_of(m, x, y)
  local logits = m(x)
  return nn.cross_entropy(logits:reshape(-1, #vocab), y:reshape(-1))
end

-- The prime, without characters the text does not have (else its first character).
local prime = opt.prime:gsub('.', function(c) return vocab.stoi[c] and c or '' end)
if prime == '' then prime = vocab.itos[corpus.tokens[1]:item()] end

-- Generated text: the prime, then `n` characters each drawn from softmax(logits / temperature).
local function sample(m, n, temperature)
  local was_training = m.training
  m:eval()
  local _ <close> = flare.no_grad()
  local logits, state = m(vocab:encode(prime):reshape(1, -1):to(opt.device))
  local out = {}
  for i = 1, n do
    local last = logits:select(2, logits:size(2)):reshape(-1)        -- (V)
    local p = (last / temperature):softmax(1)
    local u = flare.rand(1):item()
    -- the first index whose cumulative probability passes u
    local k = math.min(p:cumsum(1):lt(u):sum():item() + 1, #vocab)
    out[i] = vocab.itos[k]
    logits, state = m(flare.tensor({ { k } }):to(opt.device), state)
  end
  m:train(was_training)
  return prime .. table.concat(out)
end

-- Validation loss on (up to) 20 batches of 64 sequences of held-out text.
local val_seqs = val_text:sequences(opt.seq_len)
val_seqs = data.Subset(val_seqs, flare.arange(1, math.min(#val_seqs, 20 * 64) + 1))
local val_loader = data.loader(val_seqs, { batch_size = 64, device = dev })
local function validate()
  return train.evaluate(model, val_loader, { loss = function(logits, y)
    return nn.cross_entropy(logits:reshape(-1, #vocab), y:reshape(-1))
  end }).loss
end

-- ---------------------------------------------------------------- the loop
local step, first = 0, 1
if opt.resume ~= '' then
  local info = train.resume(opt.resume, { model = model, optimizer = optimizer, loader = loader })
  step, first = info.step, info.next_epoch
  print(string.format('resumed from %s at step %d (epoch %d)', opt.resume, step, first))
end
local bar = train.progress.new { epochs = opt.epochs, steps = #loader, mode = opt.progress }
local log = opt.log ~= '' and train.log(opt.log) or nil
-- a line above the bar (printed even with --progress none)
local function say(text)
  if bar.mode == 'none' then print(text) else bar:message(text) end
end
local done = false
for epoch = first, opt.epochs do
  local tracker = train.metrics.tracker()
  bar:epoch_begin(epoch, loader.position > 0 and loader:state_dict().in_pass and loader.position // opt.batch_size or 0)
  local in_epoch = bar.first_step
  for x, y in loader do
    optimizer:zero_grad()
    local loss = loss_of(model, x, y)
    loss:backward()
    optim.clip_grad_norm_(model:parameters(), 5)
    optimizer:step()
    step, in_epoch = step + 1, in_epoch + 1
    tracker:add(loss, x:size(1))
    if log then log:step(step, { loss = loss:item() }) end
    bar:step(in_epoch, { loss = tracker:result().loss }, x:size(1))
    if opt.sample_every > 0 and step % opt.sample_every == 0 then
      say(string.format('--- step %d, validation loss %.3f, a sample at temperature %.2f:\n%s\n---', step,
        validate(), opt.temperature, sample(model, opt.sample_length, opt.temperature)))
    end
    if opt.checkpoint ~= '' and step % opt.checkpoint_every == 0 then
      train.save_checkpoint(opt.checkpoint:gsub('{step}', tostring(step)),
        { model = model, optimizer = optimizer, loader = loader, epoch = epoch, step = step, keep = 2 })
    end
    if opt.max_steps > 0 and step >= opt.max_steps then
      done = true
      break
    end
  end
  local val = validate()
  if log then log:epoch(epoch, { loss = tracker:result().loss, val_loss = val }, step) end
  bar:epoch_end(epoch, { loss = tracker:result().loss, val_loss = val })
  if done then break end
end
bar:close()
if log then log:close() end

-- ---------------------------------------------------------------- save, reload, sample
local val = validate()
print(string.format('\nvalidation loss %.4f nats per character after %d steps (%.0f s)', val, step,
  flare.clock() - t_start))
for _, t in ipairs { 0.5, 1.0 } do
  print(string.format('--- temperature %.1f:\n%s\n---', t, sample(model, opt.sample_length, t)))
end
local save, load = flare.save, flare.load
save(opt.out, model)
local reloaded = load(opt.out, { device = opt.device })
local x = val_text.tokens:narrow(1, 1, opt.seq_len):reshape(1, -1):to(opt.device)
model:eval()
reloaded:eval()
local same = flare.no_grad(function() return model(x):eq(reloaded(x)):all():item() end)
print(string.format('saved to %s; the reloaded model %s', opt.out,
  same and 'computes the same logits' or 'DIFFERS from the trained one'))
if not same then os.exit(1) end
