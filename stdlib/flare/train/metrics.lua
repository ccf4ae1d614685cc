-- flare.train.metrics: classification metrics — accuracy, top-k accuracy, the confusion
-- matrix (and its printed table), per-class precision/recall/F1 — and a tracker that sums
-- them over the batches of an epoch. Class indices are 1-based, as everywhere in flare.
local flare = require 'flare.core'

local M = {}

local function shape_text(t)
  local s = t:size()
  return #s == 0 and 'scalar' or table.concat(s, 'x')
end

-- Checks (output, target) and returns the number of samples. output: (N, C) scores or (N)
-- predicted classes; target: (N) class indices (an integer tensor).
local function check_pair(fname, output, target)
  if not flare.is_tensor(output) then
    error(string.format('%s: expected the model output as a tensor, got %s', fname, type(output)), 3)
  end
  if not flare.is_tensor(target) then
    error(string.format('%s: expected the targets as a tensor, got %s', fname, type(target)), 3)
  end
  local dt = target:dtype()
  if dt ~= 'int64' and dt ~= 'int32' and dt ~= 'uint8' then
    error(string.format('%s: expected targets holding class indices (int64), got a %s tensor', fname, dt), 3)
  end
  if target:dim() ~= 1 or (output:dim() ~= 1 and output:dim() ~= 2) or output:size(1) ~= target:size(1) then
    error(string.format('%s: expected output (N, C) or (N) and target (N), got output %s and target %s', fname,
      shape_text(output), shape_text(target)), 3)
  end
  return target:size(1)
end

-- The predicted classes (N) int64 of (N, C) scores, or the given (N) predictions.
local function predictions(output)
  if output:dim() == 2 then return output:argmax(2) end
  return output:to('int64')
end

--- metrics.correct(output, target) -> number of samples whose highest score is the target.
function M.correct(output, target)
  check_pair('correct', output, target)
  return predictions(output):eq(target:to('int64')):sum():item()
end

--- metrics.accuracy(output, target) -> fraction of samples classified right.
-- output: (N, C) scores (logits or probabilities) or (N) predicted classes; target: (N).
function M.accuracy(output, target)
  local n = check_pair('accuracy', output, target)
  if n == 0 then return 0 end
  return predictions(output):eq(target:to('int64')):sum():item() / n
end

--- metrics.topk_correct(output, target, k) -> number of samples whose target is among the
-- k highest scores.
function M.topk_correct(output, target, k)
  check_pair('topk_correct', output, target)
  if output:dim() ~= 2 then
    error('topk_correct: expected output (N, C) scores, got ' .. shape_text(output), 2)
  end
  if math.type(k) ~= 'integer' or k < 1 then
    error('topk_correct: k must be a positive integer, got ' .. tostring(k), 2)
  end
  if output:size(1) == 0 then return 0 end
  k = math.min(k, output:size(2))
  local _, idx = output:topk(k, 2)
  local n = target:size(1)
  return idx:eq(target:to('int64'):reshape(n, 1):expand(n, k)):any(2):sum():item()
end

--- metrics.topk_accuracy(output, target, k) -> fraction of samples whose target is among
-- the k highest scores (top-5 accuracy: k = 5).
function M.topk_accuracy(output, target, k)
  local n = check_pair('topk_accuracy', output, target)
  if math.type(k) ~= 'integer' or k < 1 then
    error('topk_accuracy: k must be a positive integer, got ' .. tostring(k), 2)
  end
  if n == 0 then return 0 end
  return M.topk_correct(output, target, k) / n
end

--- metrics.confusion_matrix(output, target, num_classes) -> (C, C) int64 tensor
-- Entry [i][j] counts the samples of class i predicted as class j (rows: truth).
function M.confusion_matrix(output, target, num_classes)
  local n = check_pair('confusion_matrix', output, target)
  if math.type(num_classes) ~= 'integer' or num_classes < 1 then
    error('confusion_matrix: num_classes must be a positive integer, got ' .. tostring(num_classes), 2)
  end
  local c = num_classes
  local cm = flare.zeros(c * c, { dtype = 'int64' })
  if n == 0 then return cm:reshape(c, c) end
  -- counted on the host (n small integers): the matrix lives there, wherever the model ran
  local pred, truth = predictions(output):cpu(), target:to('int64'):cpu()
  for _, t in ipairs { { pred, 'predicted' }, { truth, 'target' } } do
    local lo, hi = t[1]:min():item(), t[1]:max():item()
    if lo < 1 or hi > c then
      error(string.format('confusion_matrix: %s class %d is outside 1..%d', t[2], lo < 1 and lo or hi, c), 2)
    end
  end
  local cell = (truth - 1) * c + pred -- 1-based cell number, row-major
  cm:scatter_add_(1, cell, flare.ones(n, { dtype = 'int64' }))
  return cm:reshape(c, c)
end

--- metrics.precision_recall(cm) -> {precision, recall, f1, support} (tensors of C values)
-- Per class, from a confusion matrix: precision = TP / predicted, recall = TP / actual
-- (0 where the class is never predicted / never present), support = the class's samples.
function M.precision_recall(cm)
  if not flare.is_tensor(cm) or cm:dim() ~= 2 or cm:size(1) ~= cm:size(2) then
    error('precision_recall: expected a square confusion matrix (C, C), got ' ..
      (flare.is_tensor(cm) and shape_text(cm) or type(cm)), 2)
  end
  local f = cm:to('float64')
  local c = cm:size(1)
  local tp = f:mul(flare.eye(c, { dtype = 'float64' })):sum(2)
  local predicted, actual = f:sum(1), f:sum(2)
  local function ratio(a, b) return a / b:clamp(1, math.huge) end
  local precision, recall = ratio(tp, predicted), ratio(tp, actual)
  local denom = (precision + recall)
  local f1 = (precision * recall * 2) / denom:masked_fill(denom:eq(0), 1)
  return { precision = precision, recall = recall, f1 = f1, support = actual:to('int64') }
end

--- metrics.format_confusion(cm, [classes]) -> string
-- The matrix as a table (rows: true class, columns: predicted), with per-class precision,
-- recall and support on the right. classes: names of the classes (default 1..C).
function M.format_confusion(cm, classes)
  local pr = M.precision_recall(cm)
  local c = cm:size(1)
  local names = {}
  for i = 1, c do names[i] = tostring(classes and classes[i] or i) end
  local counts = cm:totable()
  local width = 4
  for i = 1, c do
    width = math.max(width, #names[i])
    for j = 1, c do width = math.max(width, #tostring(counts[i][j])) end
  end
  local label = math.max(#'true\\pred', width)
  local function cell(s, w) return string.rep(' ', w - #s) .. s end
  local lines = {}
  local head = { cell('true\\pred', label) }
  for j = 1, c do head[#head + 1] = cell(names[j], width) end
  lines[1] = table.concat(head, ' ') .. '   precision  recall  support'
  local p, r, s = pr.precision:totable(), pr.recall:totable(), pr.support:totable()
  for i = 1, c do
    local row = { cell(names[i], label) }
    for j = 1, c do row[#row + 1] = cell(tostring(counts[i][j]), width) end
    lines[#lines + 1] = table.concat(row, ' ') .. string.format('   %9.3f  %6.3f  %7d', p[i], r[i], s[i])
  end
  return table.concat(lines, '\n')
end

-- ---------------------------------------------------------------- tracker

local Tracker = {}
Tracker.__index = Tracker
Tracker.__name = 'flare.train.Tracker'

--- metrics.tracker([{topk = {5}, num_classes = C, confusion = false}]) -> tracker
-- Sums loss and metrics over the batches of an epoch:
--   tr:add(loss, n, [output, target])   loss: the batch's mean loss (number or tensor),
--                                       n: its number of samples
--   tr:result() -> {loss =, acc =, top5 =, confusion = (C, C) tensor, precision =, recall =}
--   tr:reset()
-- Accuracy is counted when output is (N, C) scores and target (N) class indices.
function M.tracker(opts)
  if opts ~= nil and type(opts) ~= 'table' then
    error('tracker: expected an options table, got ' .. type(opts), 2)
  end
  opts = opts or {}
  for _, k in ipairs(opts.topk or {}) do
    if math.type(k) ~= 'integer' or k < 1 then
      error('tracker: topk must list positive integers, got ' .. tostring(k), 2)
    end
  end
  if opts.num_classes ~= nil and (math.type(opts.num_classes) ~= 'integer' or opts.num_classes < 1) then
    error('tracker: num_classes must be a positive integer, got ' .. tostring(opts.num_classes), 2)
  end
  local tr = setmetatable({ topk = opts.topk or {}, num_classes = opts.num_classes,
                            want_confusion = opts.confusion or false }, Tracker)
  tr:reset()
  return tr
end

function Tracker:reset()
  self.loss_sum, self.samples, self.scored, self.right = 0, 0, 0, 0
  self.topk_right = {}
  self.cm = nil
  return self
end

-- Whether (output, target) look like classification: (N, C) scores, (N) class indices.
function M.is_classification(output, target)
  if not (flare.is_tensor(output) and flare.is_tensor(target)) then return false end
  local dt = target:dtype()
  return output:dim() == 2 and target:dim() == 1 and output:size(1) == target:size(1)
         and (dt == 'int64' or dt == 'int32') and (output:dtype() == 'float32' or output:dtype() == 'float64')
end

-- tr.batch_acc: the accuracy of the latest batch added (nil when it was no classification).
function Tracker:add(loss, n, output, target)
  if flare.is_tensor(loss) then loss = loss:item() end
  if type(loss) ~= 'number' then
    error('tracker:add: expected the loss as a number or a 1-element tensor, got ' .. type(loss), 2)
  end
  if math.type(n) ~= 'integer' or n < 0 then
    error('tracker:add: expected the batch size as a non-negative integer, got ' .. tostring(n), 2)
  end
  self.loss_sum = self.loss_sum + loss * n
  self.samples = self.samples + n
  self.batch_acc = nil
  if output ~= nil and M.is_classification(output, target) then
    local pred = output:argmax(2)
    local truth = target:to('int64')
    local right = pred:eq(truth):sum():item()
    self.right = self.right + right
    self.scored = self.scored + target:size(1)
    self.batch_acc = target:size(1) > 0 and right / target:size(1) or nil
    for _, k in ipairs(self.topk) do
      self.topk_right[k] = (self.topk_right[k] or 0) + M.topk_correct(output, target, k)
    end
    if self.want_confusion then
      local c = self.num_classes or output:size(2)
      local cm = M.confusion_matrix(pred, truth, c)
      self.cm = self.cm and self.cm + cm or cm
    end
  end
  return self
end

function Tracker:result()
  local r = {}
  if self.samples > 0 then r.loss = self.loss_sum / self.samples end
  if self.scored > 0 then
    r.acc = self.right / self.scored
    for _, k in ipairs(self.topk) do r['top' .. k] = self.topk_right[k] / self.scored end
  end
  if self.cm then
    r.confusion = self.cm
    local pr = M.precision_recall(self.cm)
    r.precision, r.recall, r.f1 = pr.precision, pr.recall, pr.f1
  end
  r.samples = self.samples
  return r
end

-- The sums, as plain numbers, so that a checkpoint can carry an epoch half done.
function Tracker:state_dict()
  local topk = {}
  for _, k in ipairs(self.topk) do topk[#topk + 1] = self.topk_right[k] or 0 end
  return { loss_sum = self.loss_sum, samples = self.samples, scored = self.scored, right = self.right,
           topk_right = topk, confusion = self.cm }
end

function Tracker:load_state_dict(sd)
  self.loss_sum, self.samples = sd.loss_sum or 0, sd.samples or 0
  self.scored, self.right = sd.scored or 0, sd.right or 0
  self.topk_right = {}
  for i, k in ipairs(self.topk) do self.topk_right[k] = (sd.topk_right or {})[i] end
  self.cm = sd.confusion and sd.confusion:to('int64'):clone()
  return self
end

return M
