-- demo.lua: what `make demo` runs. Trains a small two-layer network on the bundled
-- handwritten digits with flare's autograd, watching the loss live (a window, the terminal
-- or nothing, whatever this machine offers), then reports the test accuracy and saves the
-- curves to demo.png.
--
--   flare scripts/demo.lua [--epochs 60] [--lr 0.1] [--hidden 64] [--seed 1] [--plot auto|none]
local flare = require 'flare'
local data = require 'flare.data'
local plot = require 'flare.plot'

local opts = { epochs = 60, lr = 0.1, hidden = 64, seed = 1, batch = 64, plot = 'auto', out = 'demo.png' }
local i = 1
while arg and arg[i] do
  local k, v = arg[i]:match('^%-%-([%w_]+)$'), arg[i + 1]
  if not k or opts[k] == nil or v == nil then
    io.stderr:write('usage: flare scripts/demo.lua [--epochs N] [--lr X] [--hidden N] [--seed N] [--plot auto|none] [--out FILE]\n')
    os.exit(1)
  end
  opts[k] = tonumber(v) or v
  i = i + 2
end
if opts.plot == 'none' then plot.backend('none') end

flare.manual_seed(opts.seed)
local ds = data.digits()
local train, test = ds:split(0.8, { seed = opts.seed })
print(string.format('digits: %d training and %d test images of 8x8 pixels, 10 classes', #train, #test))

-- parameters of a 64 -> hidden -> 10 network, initialised as PyTorch's nn.Linear does
local function linear(n_in, n_out)
  local bound = 1 / math.sqrt(n_in)
  local w = (flare.rand(n_in, n_out) * 2 - 1) * bound
  local b = (flare.rand(n_out) * 2 - 1) * bound
  return w:requires_grad(), b:requires_grad()
end
local w1, b1 = linear(64, opts.hidden)
local w2, b2 = linear(opts.hidden, 10)
local params = { w1, b1, w2, b2 }

local function forward(x)
  local h = (x:reshape(x:size(1), 64):matmul(w1) + b1):relu()
  return h:matmul(w2) + b2
end

local function accuracy(loader)
  local correct, total = 0, 0
  local _ <close> = flare.no_grad()
  for x, y in loader do
    correct = correct + forward(x):argmax(2):eq(y):sum():item()
    total = total + y:numel()
  end
  return correct / total
end

local train_loader = data.loader(train, { batch_size = opts.batch, shuffle = true, seed = opts.seed })
local test_loader = data.loader(test, { batch_size = 256 })
local fig = plot.training_figure { title = 'flare demo: digits, 2-layer network' }
local step, t0 = 0, flare.clock()
for epoch = 1, opts.epochs do
  local sum, n = 0, 0
  for x, y in train_loader do
    local loss = flare.cross_entropy(forward(x), y)
    for _, p in ipairs(params) do p.grad = nil end
    loss:backward()
    flare.no_grad(function()
      for _, p in ipairs(params) do p:sub_(p.grad * opts.lr) end
    end)
    step = step + 1
    sum, n = sum + loss:item(), n + 1
    fig:step(step, { loss = loss:item() })
  end
  local acc = accuracy(test_loader)
  fig:epoch(epoch, { loss = sum / n, val_acc = acc }, step)
  print(string.format('epoch %2d/%d  loss %.4f  test accuracy %.3f  (%.1fs)', epoch, opts.epochs, sum / n,
                      acc, flare.clock() - t0))
end
local saved, why = fig:save(opts.out)
fig:close()
print(saved and ('curves saved to ' .. opts.out) or ('curves not saved: ' .. tostring(why)))
