-- flare.autograd: gradient checking by finite differences, a functional gradient in the
-- spirit of torch-autograd, and anomaly detection.
local flare = require 'flare.core'

local M = {}

local function as_list(inputs)
  if flare.is_tensor(inputs) then return { inputs }, true end
  return inputs, false
end

local function flat(t) return t:reshape(t:numel()) end

-- Reads and writes element k (1-based, row-major) of x in place, whatever its strides.
local function element(x, k)
  local size = x:size()
  if #size == 0 then return x, nil end
  local idx, rem = {}, k - 1
  for d = #size, 1, -1 do
    idx[d] = rem % size[d] + 1
    rem = rem // size[d]
  end
  local e = x
  for d = 1, #size - 1 do e = e[idx[d]] end
  return e, idx[#size]
end

local function get(x, k)
  local e, i = element(x, k)
  return i and e[i]:item() or e:item()
end

local function set(x, k, v)
  local e, i = element(x, k)
  if i then e[i] = v else e:fill_(v) end
end

-- Calls f and returns its output as one flat float64 tensor (f may return a tensor or a
-- table of tensors).
local function evaluate(f, inputs)
  local out = f(table.unpack(inputs))
  if flare.is_tensor(out) then return out end
  error('gradcheck: f must return a tensor, got ' .. type(out), 3)
end

--- flare.autograd.gradcheck(f, inputs, {eps = 1e-6, atol = 1e-5, rtol = 1e-3, raise = true})
-- Compares the gradients computed by backward with central finite differences. Inputs must
-- be float64 tensors that require grad. Returns true, or false and a report of the worst
-- element (or raises it when raise is true, the default).
function M.gradcheck(f, inputs, opts)
  if type(f) ~= 'function' then
    error('gradcheck: expected a function as argument 1, got ' .. type(f), 2)
  end
  if not flare.is_tensor(inputs) and type(inputs) ~= 'table' then
    error('gradcheck: expected a tensor or a table of tensors as argument 2, got ' .. type(inputs), 2)
  end
  if opts ~= nil and type(opts) ~= 'table' then
    error('gradcheck: expected an options table as argument 3, got ' .. type(opts), 2)
  end
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-6, opts.atol or 1e-5, opts.rtol or 1e-3
  inputs = as_list(inputs)
  for i, x in ipairs(inputs) do
    if flare.is_tensor(x) and x:wants_grad() and x:dtype() ~= 'float64' then
      error(string.format('gradcheck: input %d is %s; use float64 inputs for finite differences', i, x:dtype()), 2)
    end
  end
  local out = evaluate(f, inputs)
  local m = out:numel()
  -- analytical Jacobian: one backward per output element
  local analytical = {}
  for i, x in ipairs(inputs) do
    if flare.is_tensor(x) and x:wants_grad() then analytical[i] = {} end
  end
  for j = 1, m do
    for i in pairs(analytical) do inputs[i].grad = nil end
    local g = flare.zeros_like(out)
    set(g, j, 1)
    out:backward(g, { retain_graph = true })
    for i, rows in pairs(analytical) do
      local gi = inputs[i].grad
      rows[j] = gi and flat(gi):totable() or false
    end
  end
  -- numerical Jacobian, column by column, and the worst mismatch
  local worst
  for i, rows in pairs(analytical) do
    local x = inputs[i]
    for k = 1, x:numel() do
      local orig = get(x, k)
      local plus, minus
      flare.no_grad(function()
        set(x, k, orig + eps)
        plus = flat(evaluate(f, inputs)):totable()
        set(x, k, orig - eps)
        minus = flat(evaluate(f, inputs)):totable()
        set(x, k, orig)
      end)
      for j = 1, m do
        local num = (plus[j] - minus[j]) / (2 * eps)
        local ana = rows[j] and rows[j][k] or 0
        local excess = math.abs(ana - num) - (atol + rtol * math.abs(num))
        if excess ~= excess then excess = math.huge end
        if excess > 0 and (not worst or excess > worst.excess) then
          worst = { input = i, element = k, output = j, analytical = ana, numerical = num, excess = excess }
        end
      end
    end
  end
  for i in pairs(analytical) do inputs[i].grad = nil end
  if not worst then return true end
  local msg = string.format(
    'gradcheck failed: input %d, element %d, output element %d: analytical %.10g, numerical %.10g ' ..
    '(|diff| %.3g > atol %g + rtol %g * |numerical|)', worst.input, worst.element, worst.output,
    worst.analytical, worst.numerical, math.abs(worst.analytical - worst.numerical), atol, rtol)
  if opts.raise == false then return false, msg end
  error(msg, 2)
end

--- flare.autograd.grad(f) returns a function g(x, ...) giving f's value and the gradient
-- with respect to x (a tensor, or a table of tensors: then a table of gradients).
function M.grad(f)
  if type(f) ~= 'function' then error('autograd.grad: expected a function, got ' .. type(f), 2) end
  return function(x, ...)
    local list, single = as_list(x)
    local leaves = {}
    for k, t in pairs(list) do leaves[k] = t:detach():requires_grad() end
    local value = f(single and leaves[1] or leaves, ...)
    if not flare.is_tensor(value) then
      error('autograd.grad: f must return a tensor, got ' .. type(value), 2)
    end
    value:backward()
    local grads = {}
    for k, t in pairs(leaves) do grads[k] = t.grad or flare.zeros_like(t) end
    return value:detach(), single and grads[1] or grads
  end
end

--- flare.autograd.detect_anomaly(on): when on, a NaN or Inf produced in backward raises an
-- error naming the op and the Lua line where its forward ran.
function M.detect_anomaly(on)
  flare._detect_anomaly(on and true or false)
end

return M
