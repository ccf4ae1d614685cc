-- mnist_cnn.lua: the classic two-convolution CNN on MNIST, read from the IDX files in a
-- directory you give (nothing is downloaded):
--
--   flare scripts/mnist_cnn.lua --data ~/data/mnist [--epochs 12] [--lr 1.0] [--batch-size 128]
--        [--optimizer adadelta|adam] [--limit N] [--plot] [--log mnist.csv]
--        [--checkpoint ck-{epoch}.flare] [--resume ck-3.flare] [--out mnist_cnn.flare]
--        [--device cpu|cuda]
--
-- The directory holds train-images-idx3-ubyte, train-labels-idx1-ubyte,
-- t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz, as distributed).
--
-- The network and the training set-up are those of Keras's examples/mnist_cnn.py (conv 32,
-- conv 64, max-pool, dropout 0.25, dense 128, dropout 0.5; Adadelta with lr 1.0, rho 0.95;
-- batches of 128), whose documentation states it "gets to 99.25% test accuracy after 12
-- epochs". That figure is the reference, not a measurement of this script: MNIST is not on
-- the machine this was written on. Here (2 cores) an epoch of 60,000 images takes about
-- 3 minutes; --limit 6000 trains on a tenth for a quick run.
local here = (arg and arg[0] or ''):match('^(.*)/[^/]*$') or '.'
package.path = here .. '/?.lua;' .. package.path

local flare = require 'flare'
local nn, optim, data = require 'flare.nn', require 'flare.optim', require 'flare.data'
local train = require 'flare.train'
local args = require 'args'

local opt = args.parse(arg, {
  usage = 'flare scripts/mnist_cnn.lua --data DIR [options]',
  about = 'Trains the classic two-convolution CNN on MNIST (IDX files in DIR), saves it, reloads it, tests it.',
  { 'data', os.getenv('MNIST_DIR') or '', 'directory of the four MNIST IDX files (or $MNIST_DIR)' },
  { 'epochs', 12, 'passes over the training set' },
  { 'lr', 1.0, 'learning rate (1.0 for Adadelta, try 1e-3 for Adam)' },
  { 'batch-size', 128, 'samples per batch' },
  { 'optimizer', 'adadelta', 'adadelta (as the Keras reference) or adam' },
  { 'limit', 0, 'train on the first N images only (0: all 60,000)' },
  { 'plot', false, 'show the curves live and save them as a PNG' },
  { 'png', 'mnist_curves.png', 'where --plot saves the curves' },
  { 'out', 'mnist_cnn.flare', 'where the trained model is saved' },
  { 'log', '', 'a CSV (or .jsonl) log of every step and epoch' },
  { 'checkpoint', '', 'a checkpoint written after every epoch (may hold {epoch})' },
  { 'resume', '', 'a checkpoint to go on from' },
  { 'progress', 'auto', 'progress display: auto, bar, lines or none' },
})
if opt.data == '' then
  io.stderr:write('mnist_cnn: give the directory of the MNIST files: --data DIR (or set MNIST_DIR)\n')
  os.exit(2)
end

local t_start = flare.clock()
flare.manual_seed(opt.seed)

-- ---------------------------------------------------------------- data
local mnist = data.mnist or require('flare.data.mnist').mnist
local ok, trainset = pcall(mnist, opt.data, { split = 'train' })
if not ok then
  io.stderr:write(tostring(trainset), '\n')
  os.exit(1)
end
local testset = mnist(opt.data, { split = 'test' })
local classes = trainset.classes
if opt.limit > 0 and opt.limit < #trainset then trainset = data.Subset(trainset, flare.arange(1, opt.limit + 1)) end
print(string.format('MNIST: %d training and %d test images of 28x28 pixels', #trainset, #testset))

-- with --device cuda the loaders deliver batches on the GPU (through pinned memory)
local dev = opt.device ~= 'cpu' and opt.device or nil
local train_loader = data.loader(trainset, { batch_size = opt.batch_size, shuffle = true, device = dev })
local test_loader = data.loader(testset, { batch_size = 500, device = dev })

-- ---------------------------------------------------------------- model
local model = nn.Sequential {
  nn.Conv2d(1, 32, 3), nn.ReLU(),
  nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),   -- 64 x 12 x 12
  nn.Flatten(), nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5),
  nn.Linear(128, 10),
}
print(model)

local optimizer
if opt.optimizer == 'adadelta' then
  optimizer = optim.Adadelta(model:parameters(), { lr = opt.lr, rho = 0.95, eps = 1e-7 })
elseif opt.optimizer == 'adam' then
  optimizer = optim.Adam(model:parameters(), { lr = opt.lr })
else
  io.stderr:write("mnist_cnn: --optimizer must be 'adadelta' or 'adam'\n")
  os.exit(2)
end

-- ---------------------------------------------------------------- training
-- The test set is the validation set, as in the Keras reference.
local history = train.fit {
  model = model, loss = nn.cross_entropy, optimizer = optimizer,
  data = train_loader, val = test_loader, epochs = opt.epochs,
  log = opt.log ~= '' and opt.log or nil,
  checkpoint = opt.checkpoint ~= '' and opt.checkpoint or nil,
  resume = opt.resume ~= '' and opt.resume or nil,
  plot = opt.plot and { title = 'MNIST: two-conv CNN', save = opt.png } or nil,
  progress = opt.progress == 'none' and false or opt.progress,
  metrics = { 'confusion' }, classes = classes, device = opt.device,
}

-- ---------------------------------------------------------------- save, reload, test
local result = train.evaluate(model, test_loader)
print(string.format('\ntest accuracy %.4f (%d images) after %d epochs, %.0f s', result.acc, result.samples,
  #history.epochs, flare.clock() - t_start))
local save, load = flare.save, flare.load
save(opt.out, model)
local again = train.evaluate(load(opt.out, { device = opt.device }), test_loader)
print(string.format('saved to %s; reloaded: test accuracy %.4f', opt.out, again.acc))
if again.acc ~= result.acc then
  io.stderr:write('error: the reloaded model does not reproduce the trained one\n')
  os.exit(1)
end
