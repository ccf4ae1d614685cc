-- cifar10_cnn.lua: a simple deep CNN on CIFAR-10, read from the binary batches in a
-- directory you give (nothing is downloaded):
--
--   flare scripts/cifar10_cnn.lua --data ~/data/cifar-10-batches-bin [--epochs 50] [--lr 1e-4]
--        [--batch-size 32] [--optimizer rmsprop|adam] [--no-augment] [--limit N] [--plot]
--        [--log cifar.csv] [--checkpoint ck-{epoch}.flare] [--resume ck-9.flare]
--        [--device cpu|cuda]
--
-- The directory holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin (the
-- "binary version" of CIFAR-10), or the cifar-10-batches-bin folder the archive unpacks to.
--
-- The network and the set-up are those of Keras's examples/cifar10_cnn.py: two blocks of
-- conv-conv-max-pool-dropout (32 then 64 channels), dense 512, dropout 0.5; RMSprop with
-- lr 1e-4 and a 1e-6 per-step decay; batches of 32; random shifts of up to 10% (here: a
-- random 32x32 crop of the image padded by 3) and horizontal flips. Its documentation
-- states it "gets to 75% validation accuracy in 25 epochs, and 79% after 50 epochs". Those
-- are the reference, not a measurement of this script: CIFAR-10 is not on the machine this
-- was written on. --optimizer adam --lr 1e-3 converges in fewer epochs.
local here = (arg and arg[0] or ''):match('^(.*)/[^/]*$') or '.'
package.path = here .. '/?.lua;' .. package.path

local flare = require 'flare'
local nn, optim, data = require 'flare.nn', require 'flare.optim', require 'flare.data'
local train = require 'flare.train'
local args = require 'args'

local opt = args.parse(arg, {
  usage = 'flare scripts/cifar10_cnn.lua --data DIR [options]',
  about = 'Trains a simple deep CNN on CIFAR-10 (binary batches in DIR), saves it, reloads it, tests it.',
  { 'data', os.getenv('CIFAR10_DIR') or '', 'directory of the CIFAR-10 binary batches (or $CIFAR10_DIR)' },
  { 'epochs', 50, 'passes over the training set' },
  { 'lr', 1e-4, 'learning rate (1e-4 for RMSprop as the Keras reference, try 1e-3 for Adam)' },
  { 'batch-size', 32, 'samples per batch' },
  { 'optimizer', 'rmsprop', 'rmsprop (as the Keras reference) or adam' },
  { 'augment', true, 'random crops (shifts) and horizontal flips; --no-augment turns them off' },
  { 'limit', 0, 'train on the first N images only (0: all 50,000)' },
  { 'plot', false, 'show the curves live and save them as a PNG' },
  { 'png', 'cifar10_curves.png', 'where --plot saves the curves' },
  { 'out', 'cifar10_cnn.flare', 'where the trained model is saved' },
  { 'log', '', 'a CSV (or .jsonl) log of every step and epoch' },
  { 'checkpoint', '', 'a checkpoint written after every epoch (may hold {epoch})' },
  { 'resume', '', 'a checkpoint to go on from' },
  { 'progress', 'auto', 'progress display: auto, bar, lines or none' },
})
if opt.data == '' then
  io.stderr:write('cifar10_cnn: give the directory of the CIFAR-10 batches: --data DIR (or set CIFAR10_DIR)\n')
  os.exit(2)
end

local t_start = flare.clock()
flare.manual_seed(opt.seed)

-- ---------------------------------------------------------------- data
local ok, trainset = pcall(data.cifar10, opt.data, { split = 'train' })
if not ok then
  io.stderr:write(tostring(trainset), '\n')
  os.exit(1)
end
local testset = data.cifar10(opt.data, { split = 'test' })
local classes = trainset.classes
if opt.limit > 0 and opt.limit < #trainset then trainset = data.Subset(trainset, flare.arange(1, opt.limit + 1)) end
print(string.format('CIFAR-10: %d training and %d test images of 32x32 pixels, 10 classes', #trainset, #testset))

local T = data.transforms
local augment = opt.augment and T.compose { T.random_crop(32, { padding = 3 }), T.hflip() } or nil
-- with --device cuda the loaders deliver batches on the GPU (augmented on the CPU first)
local dev = opt.device ~= 'cpu' and opt.device or nil
local train_loader = data.loader(trainset, { batch_size = opt.batch_size, shuffle = true, transform = augment,
                                             device = dev })
local test_loader = data.loader(testset, { batch_size = 500, device = dev })

-- ---------------------------------------------------------------- model
local model = nn.Sequential {
  nn.Conv2d(3, 32, 3, { padding = 1 }), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(),   -- 32 x 30 x 30
  nn.MaxPool2d(2), nn.Dropout(0.25),                                                  -- 32 x 15 x 15
  nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(),  -- 64 x 13 x 13
  nn.MaxPool2d(2), nn.Dropout(0.25),                                                  -- 64 x 6 x 6
  nn.Flatten(), nn.Linear(64 * 6 * 6, 512), nn.ReLU(), nn.Dropout(0.5),
  nn.Linear(512, 10),
}
print(model)

local optimizer, scheduler
if opt.optimizer == 'rmsprop' then
  -- Keras's RMSprop: rho 0.9, and `decay`: lr / (1 + decay * iterations), stepped per batch
  optimizer = optim.RMSprop(model:parameters(), { lr = opt.lr, alpha = 0.9, eps = 1e-7 })
  scheduler = optim.lr_scheduler.LambdaLR(optimizer, function(step) return 1 / (1 + 1e-6 * step) end)
elseif opt.optimizer == 'adam' then
  optimizer = optim.Adam(model:parameters(), { lr = opt.lr })
else
  io.stderr:write("cifar10_cnn: --optimizer must be 'rmsprop' or 'adam'\n")
  os.exit(2)
end

-- ---------------------------------------------------------------- training
local history = train.fit {
  model = model, loss = nn.cross_entropy, optimizer = optimizer,
  scheduler = scheduler, scheduler_step = 'step',
  data = train_loader, val = test_loader, epochs = opt.epochs,
  log = opt.log ~= '' and opt.log or nil,
  checkpoint = opt.checkpoint ~= '' and opt.checkpoint or nil,
  resume = opt.resume ~= '' and opt.resume or nil,
  plot = opt.plot and { title = 'CIFAR-10: simple deep CNN', save = opt.png } or nil,
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
