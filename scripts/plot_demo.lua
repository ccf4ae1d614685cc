-- plot_demo.lua: watches a small classifier learn, live, and saves its curves as a PNG.
--
--   flare scripts/plot_demo.lua [--epochs 15] [--out .] [--backend dumb|sixel|window|file|none]
--
-- The model is logistic regression on quadratic features of two noisy 2-D classes (a ring
-- around a blob), trained by mini-batch SGD written out in Lua, so the demo needs nothing
-- but the plot module. The loss and accuracy appear per step and per epoch in whatever the
-- machine offers (a window, the terminal, or nothing), then go to <out>/plot_demo.png,
-- with the decision surface in <out>/plot_demo_surface.png and the run's log in
-- <out>/plot_demo.csv (replot it with plot.log).
local flare = require 'flare'
local plot = require 'flare.plot'

local opts = { epochs = 15, out = '.', backend = nil, batch = 48, lr = 0.5 }
local i = 1
while arg and arg[i] do
  local k, v = arg[i]:match('^%-%-(%w+)$'), arg[i + 1]
  if not k or v == nil or opts[k] == nil and k ~= 'backend' then
    io.stderr:write('usage: flare scripts/plot_demo.lua [--epochs N] [--out DIR] [--backend NAME]\n')
    os.exit(1)
  end
  opts[k] = tonumber(v) or v
  i = i + 2
end
if opts.backend then plot.backend(opts.backend) end

-- ---------------------------------------------------------------- data

flare.manual_seed(7)
local function make_data(n)
  local noise = flare.randn(n, 2):totable()
  local angle = flare.rand(n):totable()
  local xs, ys = {}, {}
  for k = 1, n do
    local label = k % 2
    local r = label == 1 and 2.0 or 0.5
    local a = angle[k] * 2 * math.pi
    xs[k] = { r * math.cos(a) + 0.45 * noise[k][1], r * math.sin(a) + 0.45 * noise[k][2] }
    ys[k] = label
  end
  return xs, ys
end
local train_x, train_y = make_data(1200)
local val_x, val_y = make_data(400)

local function features(p)
  local a, b = p[1], p[2]
  return { 1, a, b, a * a, b * b, a * b }
end

-- ---------------------------------------------------------------- model

local w = flare.randn(6):totable()
for k = 1, #w do w[k] = w[k] * 0.1 end

local function predict(p)
  local f, z = features(p), 0
  for k = 1, #w do z = z + w[k] * f[k] end
  return 1 / (1 + math.exp(-z)), f
end

-- loss and accuracy over a set; with `grad`, also the gradient of the mean loss
local function evaluate(xs, ys, first, last, grad)
  local loss, correct = 0, 0
  for k = first, last do
    local p, f = predict(xs[k])
    local y = ys[k]
    loss = loss - (y == 1 and math.log(p + 1e-12) or math.log(1 - p + 1e-12))
    if (p > 0.5) == (y == 1) then correct = correct + 1 end
    if grad then
      for j = 1, #w do grad[j] = grad[j] + (p - y) * f[j] end
    end
  end
  local n = last - first + 1
  return loss / n, correct / n
end

-- ---------------------------------------------------------------- training, watched live

local tp = plot.training_figure { title = 'plot_demo: logistic regression',
                                  log = opts.out .. '/plot_demo.csv' }
local step = 0
for epoch = 1, opts.epochs do
  local eloss, eacc, batches = 0, 0, 0
  for first = 1, #train_x, opts.batch do
    local last = math.min(first + opts.batch - 1, #train_x)
    local grad = { 0, 0, 0, 0, 0, 0 }
    local loss, acc = evaluate(train_x, train_y, first, last, grad)
    for j = 1, #w do w[j] = w[j] - opts.lr * grad[j] / (last - first + 1) end
    step = step + 1
    tp:step(step, { loss = loss, acc = acc })
    eloss, eacc, batches = eloss + loss, eacc + acc, batches + 1
  end
  local vloss, vacc = evaluate(val_x, val_y, 1, #val_x)
  tp:epoch(epoch, { loss = eloss / batches, acc = eacc / batches, val_loss = vloss, val_acc = vacc })
  print(string.format('epoch %2d  loss %.3f  acc %.3f  val_loss %.3f  val_acc %.3f', epoch,
                      eloss / batches, eacc / batches, vloss, vacc))
end

local curves = opts.out .. '/plot_demo.png'
tp:flush() -- the last points may still wait for the redraw interval
assert(tp:save(curves, { size = { 720, 450 } }))
tp:close()
print('curves: ' .. curves .. ', log: ' .. opts.out .. '/plot_demo.csv')

-- ---------------------------------------------------------------- the decision surface

local n = 60
local surface = {}
for r = 1, n do
  local row = {}
  for c = 1, n do
    -- row 1 at the top: y runs from 3 down to -3
    row[c] = predict { -3 + 6 * (c - 1) / (n - 1), 3 - 6 * (r - 1) / (n - 1) }
  end
  surface[r] = row
end
local fig = plot.figure { title = 'P(ring) over the plane' }
fig:imagesc(surface, { palette = 'coolwarm', range = { 0, 1 } })
local path = opts.out .. '/plot_demo_surface.png'
assert(fig:save(path, { size = { 420, 380 } }))
fig:close()
print('surface: ' .. path)
