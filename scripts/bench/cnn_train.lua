-- cnn_train.lua: a training step of a small convolutional network (BENCHMARKS.md): input
-- (64, 1, 28, 28); Conv2d(1,32,3,pad 1)-ReLU-MaxPool2d(2)-Conv2d(32,64,3,pad 1)-ReLU-
-- MaxPool2d(2)-Flatten-Linear(3136,128)-ReLU-Linear(128,10); one fixed random batch;
-- cross-entropy; Adam lr 1e-3. Prints steps/s.
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'
local nn = require 'flare.nn'
local optim = require 'flare.optim'

flare.manual_seed(0)
local model = nn.Sequential {
  nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
}
local X = flare.randn(64, 1, 28, 28)
local y = flare.randint(1, 11, { 64 })
local opt = optim.Adam(model:parameters(), { lr = 1e-3 })
local loss
local s = bench.time(function(n)
  for _ = 1, n do
    opt:zero_grad()
    loss = nn.cross_entropy(model(X), y)
    loss:backward()
    opt:step()
  end
end, { iters = 5, repeats = 5 })
assert(loss:item() == loss:item(), 'loss is NaN')
bench.report('cnn_train', 1 / s, 'steps/s')
