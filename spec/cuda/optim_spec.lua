-- Optimizer steps and gradient clipping on the GPU against the CPU: every optimizer with
-- every option, several steps from the same start (parameters and every state tensor
-- compared after each step), float32 and float64, sizes that cross block and batch
-- boundaries, non-contiguous parameters; clip_grad_norm_ for every norm order and
-- clip_grad_value_; and the errors of mixing devices.
local flare = require 'flare'
local optim = require 'flare.optim'
local cuda = require 'support.cuda'
if not cuda.enabled('optim_spec.lua', pending) then return end

local tol = { float32 = { 1e-5, 1e-6 }, float64 = { 1e-12, 1e-13 } }

local function close(got, want)
  local t = tol[want:dtype()]
  cuda.assert_close(got, want, t[1], t[2])
end

-- Parameter shapes: one element, a few, a matrix, more than a block of 256 threads.
local shapes = { { 1 }, { 7 }, { 33, 5 }, { 1300 } }

local function make_params(dtype)
  local cpu, dev = {}, {}
  for i, s in ipairs(shapes) do
    local x = flare.randn(s):to(dtype)
    cpu[i] = x:clone():requires_grad()
    dev[i] = x:cuda():requires_grad()
  end
  return cpu, dev
end

-- Runs `steps` steps of cls(opts) on both devices with the same gradients, comparing the
-- parameters and the state after each step.
local function compare(cls, opts, dtype, steps)
  flare.manual_seed(11)
  local pc, pd = make_params(dtype)
  local oc, od = cls(pc, opts), cls(pd, opts)
  for _ = 1, steps or 3 do
    for i, p in ipairs(pc) do
      local g = flare.randn(p:size()):to(dtype)
      p.grad = g
      pd[i].grad = g:cuda()
    end
    oc:step()
    od:step()
    for i, p in ipairs(pc) do
      close(pd[i]:detach(), p:detach())
      local sc, sd = oc.state[p] or {}, od.state[pd[i]] or {}
      for k, v in pairs(sc) do
        if flare.is_tensor(v) then
          assert(flare.is_tensor(sd[k]), 'state ' .. k .. ' missing on the device')
          close(sd[k], v)
        else
          assert.are.equal(v, sd[k])
        end
      end
    end
  end
end

local cases = {
  { 'SGD', { lr = 0.1 } },
  { 'SGD', { lr = 0.1, momentum = 0.9 } },
  { 'SGD', { lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01 } },
  { 'SGD', { lr = 0.05, momentum = 0.5, dampening = 0.3, weight_decay = 0.1, maximize = true } },
  { 'Adam', { lr = 0.01 } },
  { 'Adam', { lr = 0.01, weight_decay = 0.1, amsgrad = true } },
  { 'Adam', { lr = 0.02, betas = { 0.8, 0.9 }, eps = 1e-6, maximize = true } },
  { 'AdamW', { lr = 0.01 } },
  { 'AdamW', { lr = 0.01, weight_decay = 0.05, amsgrad = true, maximize = true } },
  { 'Adagrad', { lr = 0.1 } },
  { 'Adagrad', { lr = 0.1, lr_decay = 0.01, weight_decay = 0.1, initial_accumulator_value = 0.2, maximize = true } },
  { 'RMSprop', { lr = 0.01 } },
  { 'RMSprop', { lr = 0.01, centered = true } },
  { 'RMSprop', { lr = 0.01, momentum = 0.9 } },
  { 'RMSprop', { lr = 0.01, alpha = 0.9, centered = true, momentum = 0.5, weight_decay = 0.1, maximize = true } },
  { 'Adadelta', { lr = 1 } },
  { 'Adadelta', { lr = 0.5, rho = 0.8, eps = 1e-5, weight_decay = 0.1, maximize = true } },
}

local function describe_opts(opts)
  local keys = {}
  for k in pairs(opts) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local v = opts[k]
    keys[i] = k .. '=' .. (type(v) == 'table' and table.concat(v, ',') or tostring(v))
  end
  return table.concat(keys, ' ')
end

describe('cuda optimizers', function()
  for _, case in ipairs(cases) do
    local name, opts = case[1], case[2]
    for _, dtype in ipairs({ 'float32', 'float64' }) do
      it(string.format('%s {%s} %s matches the CPU step after step', name, describe_opts(opts), dtype), function()
        compare(optim[name], opts, dtype)
      end)
    end
  end

  it('updates more parameters than one launch batch holds, of mixed dtypes', function()
    flare.manual_seed(5)
    local pc, pd = {}, {}
    for i = 1, 53 do
      local x = flare.randn(i % 5 + 1, 3):to(i % 3 == 0 and 'float64' or 'float32')
      pc[i], pd[i] = x:clone():requires_grad(), x:cuda():requires_grad()
    end
    local oc, od = optim.Adam(pc, { lr = 0.1 }), optim.Adam(pd, { lr = 0.1 })
    for _ = 1, 2 do
      for i, p in ipairs(pc) do
        local g = flare.randn(p:size()):to(p:dtype())
        p.grad, pd[i].grad = g, g:cuda()
      end
      oc:step()
      od:step()
    end
    for i, p in ipairs(pc) do
      close(pd[i]:detach(), p:detach())
      close(od.state[pd[i]].exp_avg_sq, oc.state[p].exp_avg_sq)
    end
  end)

  it('updates non-contiguous parameters and state in place', function()
    flare.manual_seed(6)
    local x, g = flare.randn(6, 9), flare.randn(9, 6)
    local pc, pd = x:t(), x:cuda():t()
    assert.is_false(pd:is_contiguous())
    local bc, bd = { false }, { false }
    local opts = { lr = 0.1, momentum = 0.9 }
    for _ = 1, 2 do
      flare._optim_sgd_step({ pc }, { g }, bc, opts)
      flare._optim_sgd_step({ pd }, { g:cuda() }, bd, opts)
    end
    close(pd, pc)
    close(bd[1], bc[1])
    assert.are.equal('cuda:0', bd[1]:device())
    local sq_c, sq_d = flare.zeros(6, 9):t(), flare.zeros(6, 9):cuda():t()
    local acc_c, acc_d = flare.zeros(6, 9):t(), flare.zeros(6, 9):cuda():t()
    flare._optim_adadelta_step({ pc }, { g }, { sq_c }, { acc_c }, { lr = 1 })
    flare._optim_adadelta_step({ pd }, { g:cuda() }, { sq_d }, { acc_d }, { lr = 1 })
    close(pd, pc)
    close(sq_d, sq_c)
    close(acc_d, acc_c)
  end)

  it('refuses tensors on different devices and leaves everything unchanged', function()
    local p = flare.randn(4):cuda()
    local before = p:cpu()
    assert.has_error(function() flare._optim_sgd_step({ p }, { flare.randn(4) }, nil, { lr = 1 }) end,
      'SGD step: expected all tensors on the same device, got cuda (parameter 1) and cpu (the gradient)')
    assert.has_error(function()
      flare._optim_sgd_step({ p }, { flare.randn(4):cuda() }, { flare.zeros(4) }, { lr = 1, momentum = 0.9 })
    end, 'SGD step: expected all tensors on the same device, got cuda (parameter 1) and cpu (the momentum buffer)')
    assert.is_true(cuda.equal(p:cpu(), before))
    assert.has_error(function()
      flare._clip_grad_norm({ flare.randn(3):cuda(), flare.randn(3) }, 1)
    end, 'clip_grad_norm_: expected all tensors on the same device, got cuda (gradient 1) and cpu (gradient 2)')
  end)
end)

describe('cuda gradient clipping', function()
  local function grads(dtype)
    flare.manual_seed(8)
    local cpu, dev = {}, {}
    for i, s in ipairs(shapes) do
      local g = (flare.randn(s) * 3):to(dtype)
      cpu[i], dev[i] = g, g:cuda()
    end
    return cpu, dev
  end

  for _, dtype in ipairs({ 'float32', 'float64' }) do
    for _, p in ipairs({ 2, 1, 3, 0.5, 0, 'inf', '-inf' }) do
      it(string.format('clip_grad_norm_ of order %s, %s, matches the CPU', tostring(p), dtype), function()
        local gc, gd = grads(dtype)
        local tc = flare._clip_grad_norm(gc, 5, p)
        local td = flare._clip_grad_norm(gd, 5, p)
        assert.are.equal('cuda:0', td:device())
        close(td, tc)
        for i = 1, #gc do close(gd[i], gc[i]) end
      end)
    end
  end

  it('clips through optim.clip_grad_norm_ with mixed dtypes, and leaves small gradients alone', function()
    local pc, pd = {}, {}
    for i, s in ipairs(shapes) do
      local x = flare.randn(s):to(i % 2 == 0 and 'float64' or 'float32')
      pc[i], pd[i] = x:clone():requires_grad(), x:cuda():requires_grad()
      local g = (flare.randn(s) * 2):to(x:dtype())
      pc[i].grad, pd[i].grad = g, g:cuda()
    end
    close(optim.clip_grad_norm_(pd, 1.5), optim.clip_grad_norm_(pc, 1.5))
    for i = 1, #pc do close(pd[i].grad, pc[i].grad) end
    local before = pd[3].grad:cpu()
    optim.clip_grad_norm_(pd, 1e6)
    assert.is_true(cuda.equal(pd[3].grad:cpu(), before))
  end)

  it('reports a non-finite total without touching the gradients', function()
    local g = flare.tensor({ 1, 0 / 0, 2 }):float():cuda()
    local h = flare.tensor({ 3, 4 }):float():cuda()
    assert.has_error(function() flare._clip_grad_norm({ h, g }, 1, 2, true) end)
    assert.is_true(cuda.equal(h:cpu(), flare.tensor({ 3, 4 }):float()))
    local t = flare._clip_grad_norm({ h, g }, 1, 'inf')
    assert.is_true(t:cpu():isnan():item())
  end)

  it('clip_grad_value_ matches the CPU on contiguous and strided gradients', function()
    local gc, gd = grads('float32')
    local tc, td = flare.randn(8, 5), nil
    td = tc:cuda():t()
    tc = tc:t()
    gc[#gc + 1], gd[#gd + 1] = tc, td
    flare._clip_grad_value(gc, 0.7)
    flare._clip_grad_value(gd, 0.7)
    for i = 1, #gc do close(gd[i], gc[i]) end
    local g64c, g64d = grads('float64')
    flare._clip_grad_value(g64c, 1.1)
    flare._clip_grad_value(g64d, 1.1)
    for i = 1, #g64c do close(g64d[i], g64c[i]) end
  end)
end)
