-- flare.train: training a model — fit (the common loop in one call), evaluate,
-- checkpoints (save_checkpoint / resume, exact across processes), classification metrics,
-- the progress display and the run log. The plain Lua loop stays first-class: every piece
-- here is usable on its own inside one (see the README's training section).
local fit = require 'flare.train.fit'
local checkpoint = require 'flare.train.checkpoint'

local M = {}

M.fit = fit.fit
M.evaluate = fit.evaluate
M.save_checkpoint = checkpoint.save_checkpoint
M.load_checkpoint = checkpoint.load_checkpoint
M.resume = checkpoint.resume
M.metrics = require 'flare.train.metrics'
M.progress = require 'flare.train.progress'
M.log = require('flare.train.log').open

-- help(flare.train); the functions' own comments are their help texts.
local core = require 'flare.core'
if type(core.doc) == 'function' then
  core.doc(M, 'flare.train: fit{model, loss, optimizer, data, val, epochs, ...}, evaluate(model, loader),\n'
    .. 'save_checkpoint(path, {model, optimizer, scheduler, loader, epoch, step, keep}), resume(path, {...}),\n'
    .. 'load_checkpoint(path), metrics (accuracy, topk_accuracy, confusion_matrix, precision_recall, tracker),\n'
    .. 'progress (the progress bar), log(path) (a CSV or JSON-lines run log). See the training section of the README.')
end

return M
