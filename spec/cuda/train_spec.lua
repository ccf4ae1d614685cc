-- Training on the device against the CPU: the digits CNN of scripts/train_digits.lua and a
-- small character LSTM (scripts/char_rnn.lua's shape) take a few optimizer steps on each
-- side from the same weights and batches; the losses go down and agree step by step.
-- train.fit{device = 'cuda'} and train.evaluate with a device loader do the same.
local flare = require 'flare'
local cuda = require 'support.cuda'
if not cuda.enabled('train_spec.lua', pending) then return end

local nn, optim, data, train = flare.nn, flare.optim, flare.data, flare.train

-- scripts/train_digits.lua's model; dropout is off (p = 0) so that both sides compute the
-- same function whatever their random streams do.
local function digits_cnn()
  flare.manual_seed(1)
  return nn.Sequential {
    nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU(),
    nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Dropout(0),
    nn.Linear(128, 10),
  }
end

local CharRNN = nn.Module:extend('SpecCudaCharRNN')
function CharRNN:init(vocab, embed, hidden)
  self.embed = nn.Embedding(vocab, embed)
  self.rnn = nn.LSTM(embed, hidden, { batch_first = true })
  self.head = nn.Linear(hidden, vocab)
end
function CharRNN:forward(tokens)
  local out = self.rnn(self.embed(tokens))
  return self.head(out)
end

-- Runs `steps` steps of model/optimizer on the batches, on dev; returns the losses.
local function losses_of(make_model, make_opt, batches, dev, loss_fn)
  local m = make_model():to(dev)
  local opt = make_opt(m)
  local out = {}
  for i, b in ipairs(batches) do
    opt:zero_grad()
    local loss = loss_fn(m(b[1]:to(dev)), b[2]:to(dev))
    loss:backward()
    opt:step()
    out[i] = loss:item()
  end
  return out, m
end

local function assert_agree(want, got, tol, what)
  for i = 1, #want do
    assert(math.abs(want[i] - got[i]) <= tol * math.max(1, math.abs(want[i])),
      string.format('%s: step %d: CPU loss %.6f, device loss %.6f', what, i, want[i], got[i]))
  end
end

describe('cuda training', function()
  it('trains the digits CNN as the CPU does', function()
    local digits = data.digits()
    local loader = data.loader(digits, { batch_size = 32, shuffle = true, seed = 3 })
    -- three steps on one batch (the emulator runs a step of this CNN in about 2 s), so that
    -- the loss goes down for sure
    local batches = {}
    for x, y in loader do
      for i = 1, 3 do batches[i] = { x, y } end
      break
    end
    local make_opt = function(m) return optim.Adam(m:parameters(), { lr = 2e-3 }) end
    local want, cpu_model = losses_of(digits_cnn, make_opt, batches, 'cpu', nn.cross_entropy)
    local got, gpu_model = losses_of(digits_cnn, make_opt, batches, 'cuda', nn.cross_entropy)
    assert_agree(want, got, 2e-3, 'digits CNN')
    assert.is_true(got[#got] < got[1])
    for k, t in pairs(cpu_model:state_dict()) do
      cuda.assert_close(gpu_model:state_dict()[k], t, 1e-2, 1e-3)
    end
  end)

  it('trains a character LSTM as the CPU does', function()
    local V, B, T = 17, 8, 12
    flare.manual_seed(2)
    local tokens = flare.randint(1, V + 1, { B, T + 1 })
    local x, y = tokens:narrow(2, 1, T), tokens:narrow(2, 2, T)
    local batches = {}
    for i = 1, 8 do batches[i] = { x, y } end
    local make_model = function()
      flare.manual_seed(5)
      return CharRNN(V, 8, 24)
    end
    local make_opt = function(m) return optim.Adam(m:parameters(), { lr = 1e-2 }) end
    local loss_fn = function(logits, target) return nn.cross_entropy(logits:reshape(-1, V), target:reshape(-1)) end
    local want = losses_of(make_model, make_opt, batches, 'cpu', loss_fn)
    local got = losses_of(make_model, make_opt, batches, 'cuda', loss_fn)
    assert_agree(want, got, 1e-3, 'char LSTM')
    assert.is_true(got[#got] < got[1] - 0.05)
  end)

  it('fits with device = "cuda", and evaluates from a device loader', function()
    flare.manual_seed(6)
    local X = flare.randn(40, 5)
    local Y = X:narrow(2, 1, 2):sum(2):gt(0):to('int64') + 1
    local ds = data.TensorDataset(X, Y)
    local function fit(dev)
      flare.manual_seed(7)
      local m = nn.Sequential { nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2) }
      local opt = optim.SGD(m:parameters(), { lr = 0.2, momentum = 0.5 })   -- built before the move
      local h = train.fit { model = m, loss = nn.cross_entropy, optimizer = opt, epochs = 3, progress = false,
                            data = data.loader(ds, { batch_size = 10 }), val = data.loader(ds, { batch_size = 20 }),
                            device = dev }
      return h, m
    end
    local hc = fit('cpu')
    local hg, m = fit('cuda')
    assert.are.equal('cuda:0', m:device())
    assert_agree(hc.loss, hg.loss, 1e-4, 'fit loss')
    assert_agree(hc.val_loss, hg.val_loss, 1e-4, 'fit val_loss')
    assert.are.same(hc.val_acc, hg.val_acc)
    local r = train.evaluate(m, data.loader(ds, { batch_size = 16, device = 'cuda' }),
                             { loss = nn.cross_entropy, metrics = { 'confusion' }, num_classes = 2 })
    assert.is_true(math.abs(r.loss - hg.val_loss[3]) < 1e-5)
    assert.are.equal(40, r.confusion:sum():item())
    assert.has_error(function()
      train.fit { model = m, loss = nn.cross_entropy, optimizer = optim.SGD(m:parameters(), 0.1), data = {},
                  device = 'gpu' }
    end)
  end)
end)
