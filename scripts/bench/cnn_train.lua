-- cnn_train.lua: a training step of a small convolutional network (BENCHMARKS.md): input
-- (64, 1, 28, 28); Conv2d(1,32,3,pad 1)-ReLU-MaxPool2d(2)-Conv2d(32,64,3,pad 1)-ReLU-
-- MaxPool2d(2)-Flatten-Linear(3136,128)-ReLU-Linear(128,10); one fixed random batch;
-- cross-entropy; Adam lr 1e-3. Prints steps/s.
--
--   cnn_train.lua         the CPU workload (batch 64): cnn_train
--   cnn_train.lua gpu     the GPU variant (batch 512, everything on cuda): cnn_train_gpu, or
--                         "cnn_train_gpu unavailable" when there is no usable GPU
package.path = arg[0]:match('^(.*)/') .. '/?.lua;' .. package.path
local bench = require 'benchlib'
local flare = require 'flare'
local nn = require 'flare.nn'
local optim = require 'flare.optim'

local gpu = arg[1] == 'gpu'
local case = gpu and 'cnn_train_gpu' or 'cnn_train'
if gpu and (not flare.cuda.is_available() or flare.cuda.is_emulated()) then
  print(case .. ' unavailable')
  io.stderr:write('cnn_train: no GPU: ', tostring(flare.cuda.why_unavailable() or 'CPU emulation only'), '\n')
  return
end
local device = gpu and 'cuda' or 'cpu'
local batch = gpu and 512 or 64

flare.manual_seed(0)
local model = nn.Sequential {
  nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
}:to(device)
local X = flare.randn(batch, 1, 28, 28):to(device)
local y = flare.randint(1, 11, { batch }):to(device)
local opt = optim.Adam(model:parameters(), { lr = 1e-3 })
local loss
local s = bench.time(function(n)
  for _ = 1, n do
    opt:zero_grad()
    loss = nn.cross_entropy(model(X), y)
    loss:backward()
    opt:step()
  end
  if gpu then flare.cuda.synchronize() end   -- the GPU runs behind: time finished work
end, { iters = gpu and 20 or 5, repeats = 5 })
assert(loss:item() == loss:item(), 'loss is NaN')
bench.report(case, 1 / s, 'steps/s')
