-- flare.data.cifar: CIFAR-10 from its binary batches (the "binary version" of the data
-- set: data_batch_1.bin .. data_batch_5.bin and test_batch.bin, each a run of 3073-byte
-- records: a label byte, then 1024 red, 1024 green and 1024 blue pixel bytes), read from
-- files the user has: nothing is downloaded.
local flare = require 'flare.core'

local M = {}

local RECORD = 1 + 3 * 32 * 32
local CLASSES = { 'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck' }
local FILES = {
  train = { 'data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin' },
  test = { 'test_batch.bin' },
}

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

--- data.parse_cifar(bytes, name) -> images (N, 3, 32, 32) uint8, labels (N) uint8 0..9:
-- the records of one CIFAR-10 binary batch.
function M.parse_cifar(bytes, name)
  if #bytes == 0 or #bytes % RECORD ~= 0 then
    error(string.format("'%s': %d bytes are not a whole number of %d-byte CIFAR-10 records (truncated?)", name,
      #bytes, RECORD), 0)
  end
  local n = #bytes // RECORD
  local records = flare.frombuffer(bytes, { dtype = 'uint8', shape = { n, RECORD } })
  local labels = records:select(2, 1):contiguous()
  local top = labels:max():item()
  if top > 9 then
    local at = labels:argmax():item()
    error(string.format("'%s': record %d has label %d, expected 0..9 (not a CIFAR-10 batch?)", name, at, top), 0)
  end
  return records:narrow(2, 2, RECORD - 1):reshape(n, 3, 32, 32), labels
end

--- data.cifar10(dir, {split = 'train' | 'test', raw = false}): CIFAR-10 from the binary
-- batches in dir (or in dir/cifar-10-batches-bin, as the archive unpacks), as a
-- TensorDataset of images (N, 3, 32, 32) float32 in [0, 1] (uint8 with raw = true: a
-- quarter of the memory; convert per batch with transforms.to_float) and labels (N) int64
-- holding class indices 1..10 (ds.classes names them).
function M.cifar10(dir, opts)
  opts = opts or {}
  if type(dir) ~= 'string' then
    error(string.format("bad argument #1 to 'cifar10' (directory of the CIFAR-10 batches expected, got %s)", type(dir)), 2)
  end
  local split = opts.split or 'train'
  local names = FILES[split]
  if not names then error(string.format("cifar10: split must be 'train' or 'test', got '%s'", tostring(split)), 2) end
  dir = dir:gsub('/+$', '')
  if not exists(dir .. '/' .. names[1]) and exists(dir .. '/cifar-10-batches-bin/' .. names[1]) then
    dir = dir .. '/cifar-10-batches-bin'
  end
  local images, labels = {}, {}
  for k, name in ipairs(names) do
    local path = dir .. '/' .. name
    if not exists(path) then
      error(string.format("cifar10: no '%s': put the CIFAR-10 binary batches (%s and test_batch.bin, from "
        .. 'cifar-10-binary.tar.gz) in %s', path, table.concat(FILES.train, ', '), dir), 2)
    end
    local ok, bytes = pcall(flare.read_file, path, { max_bytes = 1 << 32 })
    if not ok then error('cifar10: ' .. tostring(bytes):gsub('^read_file: ', ''), 2) end
    local ok2, x, y = pcall(M.parse_cifar, bytes, path)
    if not ok2 then error('cifar10: ' .. tostring(x), 2) end
    images[k], labels[k] = x, y
  end
  local x = #images == 1 and images[1] or flare.cat(images, 1)
  local y = #labels == 1 and labels[1] or flare.cat(labels, 1)
  if not opts.raw then x = x:float():div_(255) end
  local ds = require('flare.data').TensorDataset(x, y:long():add_(1))
  ds.classes = { table.unpack(CLASSES) }
  return ds
end

return M
