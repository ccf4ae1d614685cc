-- rnn_train.lua: lstm_train and gru_train (BENCHMARKS.md): a character model, Embedding(65,64)
-- → one-layer LSTM or GRU (64→256, batch-first) → Linear(256,65) on every step, batch 32,
-- sequence 64, one fixed batch of random tokens, cross-entropy over all 2048 positions, Adam
-- lr 1e-3. Prints steps/s and tokens/s for each cell type named on the command line (default
-- lstm gru).
--
-- `rnn_train.lua gpu [lstm ...]`: the GPU variant (batch 256, everything on cuda; default
-- lstm), reported as lstm_train_gpu, or "lstm_train_gpu unavailable" without a usable GPU.
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'
local nn = require 'flare.nn'
local optim = require 'flare.optim'

local gpu = arg[1] == 'gpu'
local device = gpu and 'cuda' or 'cpu'
local V, E, H, N, T = 65, 64, 256, gpu and 256 or 32, 64

local function run(kind)
  local case = kind .. '_train' .. (gpu and '_gpu' or '')
  if gpu and (not flare.cuda.is_available() or flare.cuda.is_emulated()) then
    print(case .. ' unavailable')
    io.stderr:write('rnn_train: no GPU: ', tostring(flare.cuda.why_unavailable() or 'CPU emulation only'), '\n')
    return
  end
  flare.manual_seed(0)
  local emb = nn.Embedding(V, E):to(device)
  local rnn = (kind == 'lstm' and nn.LSTM or nn.GRU)(E, H, { batch_first = true }):to(device)
  local head = nn.Linear(H, V):to(device)
  local params = {}
  for _, m in ipairs { emb, rnn, head } do
    for _, p in ipairs(m:parameters()) do params[#params + 1] = p end
  end
  local tokens = flare.randint(1, V + 1, { N, T + 1 }):to(device)
  local inputs, targets = tokens:narrow(2, 1, T), tokens:narrow(2, 2, T):reshape(N * T)
  local opt = optim.Adam(params, { lr = 1e-3 })
  local loss
  local s = bench.time(function(iters)
    for _ = 1, iters do
      opt:zero_grad()
      local out = rnn(emb(inputs))   -- zero initial state
      loss = nn.cross_entropy(head(out):reshape(N * T, V), targets)
      loss:backward()
      opt:step()
    end
    if gpu then flare.cuda.synchronize() end   -- the GPU runs behind: time finished work
  end, { iters = tonumber(os.getenv('BENCH_RNN_ITERS')) or (gpu and 10 or 3), repeats = 5 })
  assert(loss:item() == loss:item(), 'loss is NaN')
  bench.report(case, 1 / s, 'steps/s')
  bench.report(case .. ':tokens', N * T / s, 'tokens/s')
end

local kinds = {}
for i = gpu and 2 or 1, #arg do kinds[#kinds + 1] = arg[i] end
if #kinds == 0 then kinds = gpu and { 'lstm' } or { 'lstm', 'gru' } end
for _, kind in ipairs(kinds) do run(kind) end
