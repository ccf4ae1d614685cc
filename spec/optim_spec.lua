-- Optimizers, schedulers and gradient clipping: parameter trajectories over 10 steps against
-- torch.optim (spec/fixtures/optim.lua, written by gen_optim.py) for every optimizer and
-- its main options, parameter groups, skipped parameters, state dicts that resume
-- identically, lr sequences of every scheduler, clipping, and bad input.
local flare = require 'flare'
local optim = require 'flare.optim'
local fixture = require 'support.fixture'
-- support/fixture.lua asserts through the global `assert`, which busted does not set to
-- luassert for required modules; busted restores globals after this file.
_G.assert = assert

local fx = fixture.load('optim')
local S = optim.lr_scheduler

-- ---------------------------------------------------------------- the fixed problem

local function new_params(dtype)
  dtype = dtype or 'float32'
  local ps = {}
  for _, n in ipairs { 'p1', 'p2' } do
    local init = fx.init[n]
    ps[n] = flare.tensor(init.data, { dtype = dtype }):reshape(init.shape):requires_grad()
  end
  return ps
end

-- g = (p - c) * a2 + p * p * p * k, as in gen_optim.py (bit-identical in float32).
local consts = {}
local function grad_of(n, p)
  local key = n .. p:dtype()
  if not consts[key] then
    local c, shape = fx.const[n], fx.init[n].shape
    local dt = { dtype = p:dtype() }
    consts[key] = {
      c = flare.tensor(c.c, dt):reshape(shape), a2 = flare.tensor(c.a2, dt):reshape(shape),
      k = flare.full(shape, c.k, dt),
    }
  end
  local k = consts[key]
  return flare.no_grad(function() return (p - k.c) * k.a2 + p * p * p * k.k end)
end

local function flat(ps)
  local row = {}
  for _, n in ipairs { 'p1', 'p2' } do
    for _, v in ipairs(ps[n]:reshape(-1):totable()) do row[#row + 1] = v end
  end
  return row
end

local function assert_row(got, want, tol, what)
  for i, w in ipairs(want) do
    local g = got[i]
    if not (math.abs(g - w) <= tol.atol + tol.rtol * math.abs(w)) then
      error(string.format('%s: element %d: expected %.10g, got %.10g (|diff| %.3g)', what, i, w, g, math.abs(g - w)), 2)
    end
  end
end

local F32 = { rtol = 2e-5, atol = 2e-6 }
local F64 = { rtol = 1e-12, atol = 1e-13 }

-- Options from the fixture (Python tuples arrive as lists, which is what flare takes).
local function opts_of(case)
  local o = {}
  for k, v in pairs(case.opts) do o[k] = v end
  return o
end

local classes = {
  sgd = optim.SGD, adam = optim.Adam, adamw = optim.AdamW, adagrad = optim.Adagrad,
  rmsprop = optim.RMSprop, adadelta = optim.Adadelta,
}
local function class_of(name)
  return classes[name:match('^(%a+)')]
end

local function build(name, case, ps)
  local cls = class_of(name)
  if case.groups then
    local groups = {}
    for i, g in ipairs(case.groups) do
      local group = { params = {} }
      for _, n in ipairs(g[1]) do group.params[#group.params + 1] = ps[n] end
      for k, v in pairs(g[2]) do group[k] = v end
      groups[i] = group
    end
    return cls(groups, opts_of(case))
  end
  return cls({ ps.p1, ps.p2 }, opts_of(case))
end

local function skipped(case, step, n)
  if not case.skip or n ~= 'p2' then return false end
  for _, s in ipairs(case.skip) do if s == step then return true end end
  return false
end

-- One step as the fixture took it: fresh gradients (or none), opt:step(), sched:step().
local function take_step(case, ps, opt, sched, step)
  opt:zero_grad()
  for _, n in ipairs { 'p1', 'p2' } do
    if not skipped(case, step, n) then ps[n].grad = grad_of(n, ps[n]) end
  end
  opt:step()
  if sched then sched:step() end
end

local function run_case(name, case, from, to, ps, opt, sched)
  local tol = case.dtype == 'float64' and F64 or F32
  for step = from, to do
    take_step(case, ps, opt, sched, step)
    assert_row(flat(ps), case.traj[step], tol, string.format('%s, step %d', name, step))
  end
end

local function sorted_names(t)
  local names = {}
  for k in pairs(t) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- ---------------------------------------------------------------- trajectories

describe('optimizer trajectories match torch.optim over 10 steps', function()
  for _, name in ipairs(sorted_names(fx.optimizers)) do
    local case = fx.optimizers[name]
    it(name, function()
      local ps = new_params(case.dtype)
      local opt = build(name, case, ps)
      local sched = case.onecycle and S.OneCycleLR(opt, case.onecycle) or nil
      run_case(name, case, 1, fx.steps, ps, opt, sched)
    end)
  end

  it('with gradients from backward (autograd), not set by hand', function()
    local case = fx.optimizers.adam_amsgrad
    local ps = new_params()
    local opt = build('adam_amsgrad', case, ps)
    local c = {}
    for _, n in ipairs { 'p1', 'p2' } do
      local k = fx.const[n]
      c[n] = { c = flare.tensor(k.c):reshape(fx.init[n].shape), a2 = flare.tensor(k.a2):reshape(fx.init[n].shape) }
    end
    for step = 1, fx.steps do
      opt:zero_grad()
      for _, n in ipairs { 'p1', 'p2' } do
        local p, k = ps[n], c[n]
        -- d/dp of (p - c)^2 * a2 / 2 + p^4 * 0.1 is the fixture's gradient
        local d = p - k.c
        local loss = d * d * k.a2 * 0.5 + p * p * p * p * 0.1
        loss:backward(flare.ones_like(p))
      end
      opt:step()
      assert_row(flat(ps), case.traj[step], { rtol = 1e-4, atol = 1e-5 }, 'step ' .. step)
    end
  end)

  it('updates non-contiguous parameters through a copy', function()
    local case = fx.optimizers.rmsprop_centered
    local ps = new_params()
    -- p1 as a transposed view (column-major strides) of a (3, 2) tensor
    local leaf = flare.empty(3, 2):t()
    leaf:copy_(flare.tensor(fx.init.p1.data):reshape(2, 3))
    leaf:requires_grad()
    ps.p1 = leaf
    assert.is_false(leaf:is_contiguous())
    local opt = build('rmsprop_centered', case, ps)
    run_case('rmsprop_centered (non-contiguous p1)', case, 1, fx.steps, ps, opt)
    assert.is_false(leaf:is_contiguous())
  end)
end)

-- ---------------------------------------------------------------- state dicts

describe('state_dict / load_state_dict', function()
  for _, name in ipairs { 'sgd_momentum', 'adam_amsgrad', 'adamw', 'adagrad_decay', 'rmsprop_centered',
                          'adadelta', 'adam_groups', 'adam_skip' } do
    it('resumes ' .. name .. ' exactly where it stopped', function()
      local case = fx.optimizers[name]
      local ps = new_params()
      local opt = build(name, case, ps)
      run_case(name, case, 1, 5, ps, opt)
      local sd = opt:state_dict()
      -- a fresh optimizer over copies of the parameters, built with other options
      local ps2 = {}
      for n, p in pairs(ps) do ps2[n] = p:detach():clone():requires_grad() end
      local opt2 = build(name, { opts = {}, groups = case.groups }, ps2)
      opt2:load_state_dict(sd)
      run_case(name .. ' (loaded)', case, 6, fx.steps, ps2, opt2)
      -- the original goes on too, unaffected by the copy
      run_case(name .. ' (original)', case, 6, fx.steps, ps, opt)
    end)
  end

  it('uses PyTorch layout: parameters numbered across groups, options per group', function()
    local ps = new_params()
    local opt = optim.SGD({ { params = { ps.p1 }, momentum = 0.9 }, { params = { ps.p2 }, lr = 0.5 } }, { lr = 0.1 })
    ps.p1.grad = flare.ones(2, 3)
    ps.p2.grad = flare.ones(4)
    opt:step()
    local sd = opt:state_dict()
    assert.same({ 1 }, sd.param_groups[1].params)
    assert.same({ 2 }, sd.param_groups[2].params)
    assert.equal(0.1, sd.param_groups[1].lr)
    assert.equal(0.5, sd.param_groups[2].lr)
    assert.equal(0.9, sd.param_groups[1].momentum)
    assert.equal(0, sd.param_groups[2].momentum)
    assert.is_true(flare.is_tensor(sd.state[1].momentum_buffer))
    assert.is_nil(sd.state[2])
    local sd2 = optim.Adam({ ps.p1, ps.p2 }):state_dict()
    assert.same({}, sd2.state)
  end)

  it('casts loaded state to the parameter dtype and copies it', function()
    local ps = new_params('float64')
    local opt = optim.Adam({ ps.p1, ps.p2 }, { lr = 0.1 })
    local sd = {
      state = { [1] = { step = 3, exp_avg = flare.ones(2, 3), exp_avg_sq = flare.ones(2, 3) } },
      param_groups = { { lr = 0.2, betas = { 0.5, 0.6 }, eps = 1e-8, weight_decay = 0, amsgrad = false,
                         maximize = false, params = { 1, 2 } } },
    }
    opt:load_state_dict(sd)
    local s = opt.state[ps.p1]
    assert.equal('float64', s.exp_avg:dtype())
    assert.equal(3, s.step)
    assert.equal(0.2, opt.param_groups[1].lr)
    ps.p1.grad = flare.zeros(2, 3, { dtype = 'float64' })
    opt:step()
    assert.equal(1, sd.state[1].exp_avg[1][1]:item())   -- the caller's tensor is untouched
    assert.equal(4, s.step)
  end)

  it('refuses a state dict of another layout, naming the mismatch', function()
    local ps = new_params()
    local opt = optim.Adam({ ps.p1, ps.p2 })
    local other = optim.Adam({ ps.p1 })
    assert.has_error(function() opt:load_state_dict(other:state_dict()) end,
      'optim.Adam:load_state_dict: parameter group 1 has 1 parameters in the state dict, 2 in the optimizer')
    local two = optim.Adam({ { params = { ps.p1 } }, { params = { ps.p2 } } })
    assert.has_error(function() opt:load_state_dict(two:state_dict()) end,
      'optim.Adam:load_state_dict: the state dict has 2 parameter groups, the optimizer 1')
    local sd = opt:state_dict()
    sd.state[2] = { step = 1, exp_avg = flare.zeros(3), exp_avg_sq = flare.zeros(4) }
    local ok, err = pcall(opt.load_state_dict, opt, sd)
    assert.is_false(ok)
    assert.matches('state exp_avg of parameter 2 has shape {3}, expected {4}', err, 1, true)
    sd.state[2] = { step = 1, exp_avg = 3 }
    ok, err = pcall(opt.load_state_dict, opt, sd)
    assert.is_false(ok)
    assert.matches('state exp_avg of parameter 2 is a number, expected a tensor', err, 1, true)
    assert.has_error(function() opt:load_state_dict(42) end)
    -- nothing was changed by the failed loads
    assert.same({}, opt.state)
  end)
end)

-- ---------------------------------------------------------------- the optimizer object

describe('optimizer objects', function()
  it('zero_grad drops gradients by default, zeroes them on request', function()
    local ps = new_params()
    local opt = optim.SGD({ ps.p1, ps.p2 }, { lr = 0.1 })
    ps.p1.grad = flare.ones(2, 3)
    opt:zero_grad()
    assert.is_nil(ps.p1.grad)
    ps.p1.grad = flare.ones(2, 3)
    opt:zero_grad(false)
    assert.same({ { 0, 0, 0 }, { 0, 0, 0 } }, ps.p1.grad:totable())
    ps.p1.grad = flare.ones(2, 3)
    opt:zero_grad { set_to_none = false }
    assert.same({ { 0, 0, 0 }, { 0, 0, 0 } }, ps.p1.grad:totable())
  end)

  it('skips parameters without a gradient and steps with a closure', function()
    local ps = new_params()
    local opt = optim.SGD({ ps.p1, ps.p2 }, 0.5)
    local before = ps.p2:clone()
    local calls = 0
    local loss = opt:step(function()
      calls = calls + 1
      assert.is_true(flare.is_grad_enabled())
      opt:zero_grad()
      local l = ps.p1 * ps.p1
      l:backward(flare.ones(2, 3))
      return 'the loss'
    end)
    assert.equal(1, calls)
    assert.equal('the loss', loss)
    assert.same(before:totable(), ps.p2:totable())
    -- p1 - 0.5 * 2 p1 = 0
    assert.same({ { 0, 0, 0 }, { 0, 0, 0 } }, ps.p1:totable())
    assert.is_nil(opt:step())
  end)

  it('steps inside and outside no_grad, leaves grad mode as it was, and is not recorded', function()
    local ps = new_params()
    local opt = optim.Adam({ ps.p1 }, { lr = 0.1 })
    ps.p1.grad = flare.ones(2, 3)
    flare.no_grad(function() opt:step() end)
    assert.is_true(flare.is_grad_enabled())
    opt:step()
    assert.is_true(flare.is_grad_enabled())
    assert.is_true(ps.p1.is_leaf)
    assert.is_nil(ps.p1.grad_fn)
  end)

  it('finishes a step that Ctrl-C interrupts, then reports the interrupt (flare executable)', function()
    local exe = io.open('build/bin/flare', 'r')
    if not exe then return end   -- only the executable installs the Ctrl-C handler
    exe:close()
    local script = os.tmpname()
    local f = assert(io.open(script, 'w'))
    f:write([[
      local optim = require 'flare.optim'
      local pid = io.open('/proc/self/stat'):read('n')
      local a, b = flare.tensor({1.0, 2.0}):requires_grad(), flare.tensor({1.0, 2.0}):requires_grad()
      local opt = optim.SGD({{params = {a}}, {params = {b}}}, {lr = 1})
      local update, groups = opt.update, 0
      opt.update = function(...)   -- Ctrl-C arrives after the first group's update
        update(...)
        groups = groups + 1
        if groups == 1 then io.popen('kill -INT ' .. pid):close() end
        for i = 1, 100000 do local _ = i * 2 end
      end
      a.grad, b.grad = flare.ones(2), flare.ones(2)
      local ok, err = pcall(opt.step, opt)
      print(ok, err, groups, a:totable()[1], b:totable()[1])
    ]])
    f:close()
    local out = io.popen("LUA_PATH='stdlib/?.lua;stdlib/?/init.lua;;' build/bin/flare " .. script .. ' 2>&1'):read('a')
    os.remove(script)
    assert.equal('false\tinterrupted!\t2\t0.0\t0.0\n', out)
  end)

  it('bumps the version of updated parameters, so a stale graph is caught', function()
    local ps = new_params()
    local opt = optim.SGD({ ps.p1 }, { lr = 0.1 })
    local y = ps.p1 * ps.p1            -- saves p1 for backward
    ps.p1.grad = flare.ones(2, 3)
    opt:step()
    assert.has_error(function() y:backward(flare.ones(2, 3)) end)
  end)

  it('accepts float64 and float32 parameters in one group', function()
    local a = flare.tensor({ 1, 2 }, { dtype = 'float64' }):requires_grad()
    local b = flare.tensor({ 1.0, 2.0 }):requires_grad()
    local opt = optim.SGD({ a, b }, { lr = 0.5, momentum = 0.5 })
    a.grad = flare.tensor({ 1, 1 }, { dtype = 'float64' })
    b.grad = flare.tensor({ 1.0, 1.0 })
    opt:step()
    opt:step()
    assert.same({ -0.25, 0.75 }, a:totable())
    assert.same({ -0.25, 0.75 }, b:totable())
    assert.equal('float64', opt.state[a].momentum_buffer:dtype())
  end)

  it('prints its groups and options', function()
    local ps = new_params()
    local s = tostring(optim.SGD({ ps.p1, ps.p2 }, { lr = 0.1, momentum = 0.9 }))
    assert.matches('^SGD %(\nParameter Group 1\n    params: 2 tensors, 10 elements\n', s)
    assert.matches('    momentum: 0.9\n', s, 1, true)
    assert.equal('optim.Adam', tostring(optim.Adam))
  end)

  it('groups take their own options and add_param_group adds more', function()
    local ps = new_params()
    local opt = optim.Adam({ { params = { ps.p1 }, lr = 0.5 } }, { betas = { 0.5, 0.6 } })
    opt:add_param_group { params = ps.p2, amsgrad = true }
    assert.equal(0.5, opt.param_groups[1].lr)
    assert.equal(1e-3, opt.param_groups[2].lr)
    assert.same({ 0.5, 0.6 }, opt.param_groups[2].betas)
    assert.is_true(opt.param_groups[2].amsgrad)
    assert.has_error(function() opt:add_param_group { params = { ps.p1 } } end,
      'optim.Adam: parameter 1 of group 3 appears twice (in this group or in another one)')
  end)
end)

-- ---------------------------------------------------------------- bad input

describe('bad input gives clear errors', function()
  local ps = new_params()
  local cases = {
    { function() optim.SGD({ ps.p1 }, { lr = -0.1 }) end, 'optim.SGD: invalid lr -0.1 (expected >= 0)' },
    { function() optim.Adam({ ps.p1 }, { betas = { 1.0, 0.999 } }) end,
      'optim.Adam: invalid beta1 (betas[1]) 1 (expected a value in [0, 1))' },
    { function() optim.Adam({ ps.p1 }, { betas = { 0.9, -0.1 } }) end,
      'optim.Adam: invalid beta2 (betas[2]) -0.1 (expected a value in [0, 1))' },
    { function() optim.Adam({ ps.p1 }, { betas = 0.9 }) end,
      'optim.Adam: option betas must be a table of two numbers {beta1, beta2}, got 0.9' },
    { function() optim.AdamW({ ps.p1 }, { eps = -1 }) end, 'optim.AdamW: invalid eps -1 (expected >= 0)' },
    { function() optim.SGD({ ps.p1 }, { lr = 0.1, momentun = 0.9 }) end,
      'optim.SGD: unknown option momentun (expected one of: lr, momentum, dampening, weight_decay, nesterov, maximize)' },
    { function() optim.SGD({ ps.p1 }, { nesterov = true }) end,
      'optim.SGD: nesterov needs momentum > 0 and dampening 0 (got momentum 0, dampening 0)' },
    { function() optim.SGD({ ps.p1 }, { lr = 'fast' }) end, 'optim.SGD: option lr must be a number, got string' },
    { function() optim.RMSprop({ ps.p1 }, { centered = 1 }) end,
      'optim.RMSprop: option centered must be true or false, got number' },
    { function() optim.Adadelta({ ps.p1 }, { rho = 1.5 }) end,
      'optim.Adadelta: invalid rho 1.5 (expected a value in [0, 1])' },
    { function() optim.Adagrad({ ps.p1 }, { lr_decay = -1 }) end,
      'optim.Adagrad: invalid lr_decay -1 (expected >= 0)' },
    { function() optim.SGD({ ps.p1, 'w' }) end, 'optim.SGD: parameter 2 is a string, not a tensor' },
    { function() optim.SGD(ps.p1) end,
      'optim.SGD: expected a list of tensors or of parameter groups, got a tensor (wrap it in a list: {p})' },
    { function() optim.SGD({}) end, 'optim.SGD: got an empty parameter list' },
    { function() optim.SGD({ ps.p1 * 2 }) end,
      'optim.SGD: parameter 1 is not a leaf tensor (it was computed from others); optimize the tensors it was ' ..
      'computed from, or use x:detach():requires_grad()' },
    { function() optim.SGD({ flare.tensor({ 1, 2 }, { dtype = 'int64' }) }) end,
      'optim.SGD: parameter 1 is int64; optimizers update floating point tensors' },
    { function() optim.SGD({ ps.p1, ps.p1 }) end,
      'optim.SGD: parameter 2 appears twice (in this group or in another one)' },
    { function() optim.SGD({ ps.p1 }):step(42) end, 'optim.SGD:step: closure must be a function, got number' },
    { function() S.StepLR(optim.SGD({ ps.p1 }), {}) end, 'optim.lr_scheduler.StepLR: option step_size is required' },
    { function() S.StepLR(ps.p1, 3) end,
      'optim.lr_scheduler.StepLR: expected an optimizer (from optim.SGD, optim.Adam, ...), got a tensor' },
    { function() S.CosineAnnealingLR(optim.SGD({ ps.p1 }), { T_max = 10, etamin = 0 }) end,
      'optim.lr_scheduler.CosineAnnealingLR: unknown option etamin (expected one of: T_max, eta_min, last_epoch)' },
    { function() S.OneCycleLR(optim.Adagrad({ ps.p1 }), { max_lr = 0.1, total_steps = 10 }) end,
      'optim.lr_scheduler.OneCycleLR: cycle_momentum needs an optimizer with momentum or betas (pass cycle_momentum = false)' },
    { function() S.ReduceLROnPlateau(optim.SGD({ ps.p1 }), { mode = 'lowest' }) end,
      "optim.lr_scheduler.ReduceLROnPlateau: mode must be 'min' or 'max', got lowest" },
  }
  it('accepts frozen parameters and leaves them alone', function()
    local frozen, live = flare.ones(3), flare.ones(3):requires_grad()
    local opt = optim.SGD({ frozen, live }, { lr = 0.5 })
    live.grad = flare.ones(3)
    opt:step()
    assert.are.same({ 1, 1, 1 }, frozen:totable())
    assert.are.same({ 0.5, 0.5, 0.5 }, live:totable())
  end)

  for i, c in ipairs(cases) do
    it(c[2], function()
      local ok, err = pcall(c[1])
      assert.is_false(ok, 'case ' .. i .. ' did not fail')
      assert.equal(c[2], (tostring(err):gsub('^[^:]*:%d+: ', '')))
    end)
  end

  it('points errors at the caller', function()
    local ok, err = pcall(function() optim.SGD({ ps.p1 }, { lr = -1 }) end)
    assert.is_false(ok)
    assert.matches('optim_spec.lua:%d+: optim.SGD', err)
  end)

  it('a failed fused step changes nothing', function()
    local p = flare.tensor({ 1.0, 2.0, 3.0 }):requires_grad()
    local q = flare.tensor({ 1.0, 2.0 }):requires_grad()
    p.grad = flare.ones(3)
    q.grad = flare.ones(2)
    local bufs = { false, flare.zeros(3) }   -- a wrong-shaped buffer for q
    local ok, err = pcall(flare._optim_sgd_step, { p, q }, { p.grad, q.grad }, bufs,
      { lr = 0.1, momentum = 0.9, dampening = 0, weight_decay = 0 })
    assert.is_false(ok)
    assert.matches('SGD step: the momentum buffer of parameter 2 is float32 of shape [3], expected float32 of shape [2]',
      err, 1, true)
    assert.same({ 1, 2, 3 }, p:totable())
    assert.same({ 1, 2 }, q:totable())
    assert.is_false(bufs[1])
    assert.has_error(function()
      flare._optim_sgd_step({ p }, { flare.ones(2) }, nil, { lr = 0.1 })
    end)
    assert.has_error(function() flare._optim_sgd_step({ p }, { p.grad }, nil, {}) end)
    assert.has_error(function() flare._optim_adam_step({ p }, { p.grad }, { false }, { false }, nil, { 0 },
      { lr = 0.1, betas = { 0.9, 0.99 } }) end)
  end)
end)

-- ---------------------------------------------------------------- clipping

describe('gradient clipping', function()
  for _, name in ipairs(sorted_names(fx.clip)) do
    local c = fx.clip[name]
    it('clip_grad_norm_ (' .. name .. ') matches PyTorch', function()
      local ps = new_params()
      for n, p in pairs(ps) do p.grad = grad_of(n, p) * c.scale end
      local total = optim.clip_grad_norm_({ ps.p1, ps.p2 }, c.max_norm, c.norm_type)
      assert.equal('float32', total:dtype())
      assert.equal(0, total:dim())
      assert.near(c.total, total:item(), 1e-5 * math.abs(c.total))
      assert_row(ps.p1.grad:reshape(-1):totable(), c.g1, F32, 'p1.grad')
      assert_row(ps.p2.grad:reshape(-1):totable(), c.g2, F32, 'p2.grad')
    end)
  end

  it('clip_grad_value_ clamps, and a non-finite norm is an error on request', function()
    local p = flare.tensor({ 1.0, 2.0, 3.0 }):requires_grad()
    p.grad = flare.tensor({ -5.0, 0.5, 7.0 })
    optim.clip_grad_value_({ p }, 1)
    assert.same({ -1, 0.5, 1 }, p.grad:totable())
    p.grad = flare.tensor({ 0 / 0, 1.0, 2.0 })
    assert.has_error(function() optim.clip_grad_norm_(p, 1, 2, { error_if_nonfinite = true }) end)
    assert.is_true(p.grad[2]:item() == 1)
    local t = optim.clip_grad_norm_(p, 1)
    assert.is_true(t:item() ~= t:item())
    assert.equal(0, optim.clip_grad_norm_({}, 1):item())
  end)
end)

-- ---------------------------------------------------------------- schedulers

describe('schedulers give PyTorch\'s lr sequences', function()
  local makers = {
    step = function(o) return S.StepLR(o, { step_size = 3, gamma = 0.5 }) end,
    multistep = function(o) return S.MultiStepLR(o, { 2, 5, 5, 9 }, { gamma = 0.3 }) end,
    exponential = function(o) return S.ExponentialLR(o, 0.9) end,
    cosine = function(o) return S.CosineAnnealingLR(o, { T_max = 5, eta_min = 0.001 }) end,
    linear_warmup = function(o) return S.LinearLR(o, { start_factor = 0.25, total_iters = 4 }) end,
    linear_decay = function(o) return S.LinearLR(o, { start_factor = 1.0, end_factor = 0.1, total_iters = 5 }) end,
    constant = function(o) return S.ConstantLR(o, { factor = 0.5, total_iters = 3 }) end,
    polynomial = function(o) return S.PolynomialLR(o, { total_iters = 6, power = 2.0 }) end,
    lambda = function(o) return S.LambdaLR(o, function(e) return 0.9 ^ e end) end,
    sequential = function(o)
      return S.SequentialLR(o, { S.LinearLR(o, { start_factor = 0.1, total_iters = 3 }), S.CosineAnnealingLR(o, 6) },
        { milestones = { 3 } })
    end,
    chained = function(o)
      return S.ChainedScheduler { S.ConstantLR(o, { factor = 0.5, total_iters = 2 }), S.ExponentialLR(o, 0.9) }
    end,
    onecycle = function(o) return S.OneCycleLR(o, { max_lr = { 0.5, 0.05 }, total_steps = 12 }) end,
    onecycle_three_phase = function(o)
      return S.OneCycleLR(o, 0.3, { epochs = 3, steps_per_epoch = 5, pct_start = 0.25, anneal_strategy = 'linear',
        three_phase = true, div_factor = 10., final_div_factor = 100. })
    end,
    plateau_min = function(o) return S.ReduceLROnPlateau(o, { patience = 2, factor = 0.5, cooldown = 1, threshold = 0.01 }) end,
    plateau_max = function(o)
      return S.ReduceLROnPlateau(o, { mode = 'max', threshold_mode = 'abs', threshold = 0.02, patience = 1,
        factor = 0.1, min_lr = { 0.002, 0.0 } })
    end,
  }
  local momentum = { onecycle = true, onecycle_three_phase = true }

  local function make_opt(name)
    local p, q = flare.zeros(2):requires_grad(), flare.zeros(3):requires_grad()
    local groups = { { params = { p }, lr = 0.1 }, { params = { q }, lr = 0.01 } }
    if name == 'onecycle_three_phase' then return optim.Adam(groups) end
    return optim.SGD(groups, { momentum = name == 'onecycle' and 0.9 or 0 })
  end

  local function record(opt, name)
    local row = {}
    for i, g in ipairs(opt.param_groups) do row[i] = g.lr end
    if momentum[name] then
      for _, g in ipairs(opt.param_groups) do row[#row + 1] = g.betas and g.betas[1] or g.momentum end
    end
    return row
  end

  local function run(name, sched, opt, from, to)
    local want = fx.schedulers[name]
    local metrics = fx.plateau_metrics[name]
    for i = from, to do
      opt:step()
      if metrics then sched:step(metrics[i]) else sched:step() end
      assert_row(record(opt, name), want[i + 1], F64, name .. ', step ' .. i)
    end
  end

  for _, name in ipairs(sorted_names(fx.schedulers)) do
    it(name, function()
      local opt = make_opt(name)
      local sched = makers[name](opt)
      assert_row(record(opt, name), fx.schedulers[name][1], F64, name .. ', at construction')
      run(name, sched, opt, 1, #fx.schedulers[name] - 1)
      if not name:match('plateau') then
        local lrs = {}
        for i, g in ipairs(opt.param_groups) do lrs[i] = g.lr end
        assert.same(lrs, sched:get_last_lr())
      end
    end)
  end

  for _, name in ipairs { 'step', 'cosine', 'onecycle', 'plateau_min', 'sequential', 'multistep' } do
    it('resumes ' .. name .. ' from its state dict', function()
      local opt = make_opt(name)
      local sched = makers[name](opt)
      local n = #fx.schedulers[name] - 1
      local half = n // 2
      run(name, sched, opt, 1, half)
      local osd, ssd = opt:state_dict(), sched:state_dict()
      local opt2 = make_opt(name)
      local sched2 = makers[name](opt2)
      opt2:load_state_dict(osd)
      sched2:load_state_dict(ssd)
      run(name, sched2, opt2, half + 1, n)
    end)
  end

  it('OneCycleLR refuses to go past total_steps', function()
    local opt = make_opt('onecycle')
    local sched = S.OneCycleLR(opt, { max_lr = 0.1, total_steps = 2 })
    sched:step()
    sched:step()
    assert.has_error(function() sched:step() end,
      'optim.lr_scheduler.OneCycleLR: stepped 4 times, but total_steps is 2')
  end)

  it('ReduceLROnPlateau takes a one-element tensor as the metric', function()
    local opt = make_opt('plateau_min')
    local sched = S.ReduceLROnPlateau(opt, { patience = 0 })
    sched:step(flare.tensor(1.0))
    sched:step(flare.tensor(2.0))
    assert.near(0.01, opt.param_groups[1].lr, 1e-15)
  end)

  it('prints', function()
    local sched = S.StepLR(make_opt('step'), 2)
    assert.equal('optim.lr_scheduler.StepLR (last_epoch 0, lr {0.1, 0.01})', tostring(sched))
  end)
end)

-- ---------------------------------------------------------------- a model-sized step

describe('a large step', function()
  it('runs on the pool and agrees with a step done in pieces', function()
    flare.manual_seed(3)
    local big = flare.randn(300, 700):requires_grad()
    local small = flare.no_grad(function() return big:clone() end)
    local pieces = {}
    for i = 1, 3 do pieces[i] = flare.no_grad(function() return big[{ { (i - 1) * 100 + 1, i * 100 } }]:clone() end):requires_grad() end
    local g = flare.randn(300, 700)
    local opt = optim.Adam({ big }, { lr = 0.01, amsgrad = true })
    local opt2 = optim.Adam(pieces, { lr = 0.01, amsgrad = true })
    for _ = 1, 3 do
      big.grad = g
      for i = 1, 3 do pieces[i].grad = g[{ { (i - 1) * 100 + 1, i * 100 } }]:contiguous() end
      opt:step()
      opt2:step()
    end
    local joined = flare.cat(pieces, 1)
    assert.is_true(flare.no_grad(function() return (joined - big):abs():amax():item() end) == 0)
    assert.is_true(flare.no_grad(function() return (small - big):abs():amax():item() end) > 0)
  end)
end)
