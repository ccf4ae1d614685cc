-- mnist_epoch.lua: one training epoch (BENCHMARKS.md): 60,000 synthetic samples of 784
-- floats (uniform in [-1, 1]) with labels, the mlp_train model, batch 128, shuffled, SGD
-- lr 0.01 momentum 0.9. Each batch is gathered from a fresh permutation. A few batches warm
-- up, then one epoch per timed run (EPOCHS runs, default 1: an epoch takes seconds). Prints
-- seconds per epoch.
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'
local nn = require 'flare.nn'
local optim = require 'flare.optim'

local SAMPLES, BATCH = 60000, 128
flare.manual_seed(0)
local X = flare.rand(SAMPLES, 784) * 2 - 1   -- uniform: quicker to make than normal
local Y = flare.randint(1, 11, { SAMPLES })
local model = nn.Sequential { nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10) }
local opt = optim.SGD(model:parameters(), { lr = 0.01, momentum = 0.9 })

-- trains on the first `batches` batches of a shuffled pass (all of them when nil)
local function epoch(batches)
  local perm = flare.randperm(SAMPLES) + 1   -- randperm counts from 0; indices from 1
  local loss
  for k = 0, (batches or math.huge) - 1 do
    local from = k * BATCH
    if from >= SAMPLES then break end
    local idx = perm:narrow(1, from + 1, math.min(BATCH, SAMPLES - from))
    opt:zero_grad()
    loss = nn.cross_entropy(model(X:index_select(1, idx)), Y:index_select(1, idx))
    loss:backward()
    opt:step()
  end
  assert(loss:item() == loss:item(), 'loss is NaN')
end

epoch(20)
local runs = {}
for r = 1, tonumber(os.getenv('EPOCHS')) or 1 do
  local t0 = bench.clock()
  epoch()
  runs[r] = bench.clock() - t0
end
bench.report('mnist_epoch', bench.median(runs), 's')
