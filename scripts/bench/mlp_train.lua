-- mlp_train.lua: a training step of a multi-layer perceptron (BENCHMARKS.md):
-- Linear(784,512)-ReLU-Linear(512,256)-ReLU-Linear(256,10) on one fixed batch X (128, 784),
-- cross-entropy, SGD lr 0.01 momentum 0.9; a step is zero_grad, forward, loss, backward,
-- step. Prints steps/s and the peak resident memory of the process (MiB).
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'
local nn = require 'flare.nn'
local optim = require 'flare.optim'

-- VmHWM of /proc/self/status: the peak resident set, in MiB
local function peak_rss_mib()
  local f = io.open('/proc/self/status')
  if not f then return nil end
  local kb = f:read('a'):match('VmHWM:%s*(%d+)')
  f:close()
  return kb and tonumber(kb) / 1024
end

flare.manual_seed(0)
local model = nn.Sequential { nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10) }
local X = flare.randn(128, 784)
local y = flare.randint(1, 11, { 128 })
local opt = optim.SGD(model:parameters(), { lr = 0.01, momentum = 0.9 })
local loss
local s = bench.time(function(n)
  for _ = 1, n do
    opt:zero_grad()
    loss = nn.cross_entropy(model(X), y)
    loss:backward()
    opt:step()
  end
end, { repeats = 5, min_s = 0.3 })
assert(loss:item() == loss:item(), 'loss is NaN')
bench.report('mlp_train', 1 / s, 'steps/s')
local rss = peak_rss_mib()
if rss then bench.report('mlp_train:rss', rss, 'MiB') end
