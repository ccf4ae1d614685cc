-- The nn module system: modules and user-defined classes, parameter names, containers,
-- train/eval, state dicts and their errors, dtype conversion, printing, descriptions and
-- rebuilding, initialisation, dropout, batch-norm statistics, gradient clipping, and the
-- layers' behaviour beyond the PyTorch fixtures (nn_layers_spec.lua, nn_losses_spec.lua).
local flare = require 'flare'
local nn = require 'flare.nn'
local fixture = require 'support.fixture'

local F = nn.functional

local function keys(map) return nn.keys(map) end

local function max_abs(t) return t:abs():max():item() end

local function close(a, b, tol)
  assert.is_true(max_abs(a - b) <= (tol or 1e-6), 'tensors differ by ' .. max_abs(a - b))
end

local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(err)
end

-- A user-defined module, as docs/nn.md shows it.
local Block = nn.Module:extend('SpecBlock')
function Block:init(n_in, n_out, opts)
  self.fc = nn.Linear(n_in, n_out)
  self.norm = nn.LayerNorm(n_out)
  self.scale = flare.ones(n_out):requires_grad()          -- a parameter, registered by assignment
  self.act = (opts and opts.act == 'tanh') and nn.Tanh() or nn.ReLU()
end
function Block:forward(x) return self.act(self.norm(self.fc(x))) * self.scale end

local function mlp()
  return nn.Sequential {
    nn.Linear(4, 8), nn.ReLU(),
    nn.Sequential { nn.Linear(8, 8), nn.Tanh() },
    nn.Linear(8, 3),
  }
end

describe('nn.Module', function()
  it('calling a module runs forward', function()
    local m = nn.Linear(3, 2)
    local x = flare.randn(4, 3)
    close(m(x), m:forward(x))
    close(m(x), x:matmul(m.weight:t()) + m.bias)
  end)

  it('names parameters as PyTorch, with 0-based child indices', function()
    local m = nn.Sequential { nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1) }
    local features = nn.Sequential { nn.Sequential { m }, nn.Linear(1, 1) }
    assert.are.same({ '0.0.0.weight', '0.0.0.bias', '0.0.2.weight', '0.0.2.bias', '1.weight', '1.bias' },
      keys(features:named_parameters()))
    local net = Block(3, 4)
    assert.are.same({ 'scale', 'fc.weight', 'fc.bias', 'norm.weight', 'norm.bias' }, keys(net:named_parameters()))
    -- pairs() over named_parameters runs in the same order
    local seen = {}
    for k in pairs(net:named_parameters()) do seen[#seen + 1] = k end
    assert.are.same(keys(net:named_parameters()), seen)
  end)

  it('lists children, modules, parameters and counts them', function()
    local m = mlp()
    assert.equal(4, #m:children())
    assert.equal(7, #m:modules())                      -- itself, 4 children, 2 grandchildren
    assert.equal(6, #m:parameters())
    assert.equal(4 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3, m:num_parameters())
    local names = {}
    for _, e in ipairs(m:named_modules()) do names[#names + 1] = e[1] end
    assert.are.same({ '', '0', '1', '2', '2.0', '2.1', '3' }, names)
  end)

  it('counts a shared parameter once', function()
    local a = nn.Linear(3, 3)
    local b = nn.Linear(3, 3)
    b.weight = a.weight
    local m = nn.Sequential { a, b }
    assert.equal(3, #m:parameters())
    assert.equal(9 + 3 + 3, m:num_parameters())
    assert.are.same({ '0.weight', '0.bias', '1.weight', '1.bias' }, keys(m:state_dict()))
  end)

  it('train() and eval() reach every descendant', function()
    local m = nn.Sequential { nn.Dropout(0.5), nn.Sequential { nn.BatchNorm1d(3) } }
    assert.is_true(m[2][1].training)
    assert.equal(m, m:eval())
    for _, sub in ipairs(m:modules()) do assert.is_false(sub.training) end
    m:train()
    for _, sub in ipairs(m:modules()) do assert.is_true(sub.training) end
  end)

  it('zero_grad clears gradients; requires_grad_ freezes', function()
    local m = mlp()
    m(flare.randn(2, 4)):sum():backward()
    for _, p in ipairs(m:parameters()) do assert.is_not_nil(p.grad) end
    m:zero_grad()
    for _, p in ipairs(m:parameters()) do assert.is_nil(p.grad) end
    m[1]:requires_grad_(false)
    m(flare.randn(2, 4)):sum():backward()
    assert.is_nil(m[1].weight.grad)
    assert.is_not_nil(m[4].weight.grad)
    assert.equal(m:num_parameters() - 40, m:num_parameters({ trainable = true }))
  end)

  it('registers parameters, buffers and children explicitly too', function()
    local m = nn.Module()
    m:register_parameter('w', flare.zeros(2))
    m:register_buffer('stat', flare.ones(2))
    m:register_buffer('scratch', flare.ones(1), false)
    m:add_module('sub', nn.Linear(2, 2))
    assert.is_true(m.w:wants_grad())
    assert.are.same({ 'w', 'sub.weight', 'sub.bias' }, keys(m:named_parameters()))
    assert.are.same({ 'w', 'stat', 'sub.weight', 'sub.bias' }, keys(m:state_dict()))
    assert.matches('has no forward', error_of(function() return m(flare.zeros(2)) end))
    assert.matches('expected a module', error_of(m.add_module, m, 'x', 3))
    assert.matches('without dots', error_of(m.register_parameter, m, 'a.b', flare.zeros(1)))
  end)
end)

describe('containers', function()
  it('Sequential: from a list, from arguments, with add, indexed from 1', function()
    local a, b = nn.Linear(2, 3), nn.ReLU()
    local s1 = nn.Sequential { a, b }
    local s2 = nn.Sequential(a, b)
    local s3 = nn.Sequential():add(a):add(b)
    for _, s in ipairs({ s1, s2, s3 }) do
      assert.equal(2, #s)
      assert.equal(a, s[1])
      assert.equal(b, s:get(2))
    end
    local x = flare.randn(5, 2)
    close(s1(x), flare.relu(a(x)))
    close(nn.Sequential()(x), x)
    assert.matches('expected a module at position 2', error_of(nn.Sequential, { a, 42 }))
    assert.matches('expected a module', error_of(s1.add, s1, 'relu'))
  end)

  it('ModuleList: append, insert, remove, no forward', function()
    local l = nn.ModuleList { nn.Linear(1, 1) }
    l:append(nn.ReLU()):insert(1, nn.Tanh())
    assert.equal(3, #l)
    assert.equal('nn.Tanh', l[1].__typename)
    assert.equal('nn.ReLU', l:remove().__typename)
    assert.are.same({ '1.weight', '1.bias' }, keys(l:named_parameters()))
    l[3] = nn.Identity()
    assert.equal(3, #l)
    assert.matches('out of range', error_of(function() l[7] = nn.Identity() end))
    assert.matches('has no forward', error_of(function() return l(flare.zeros(1)) end))
  end)

  it('containers can be subclassed like any module', function()
    local Residual = nn.Sequential:extend('SpecResidual')
    function Residual:forward(x) return x + nn.Sequential.forward(self, x) end
    local r = Residual { nn.Linear(3, 3), nn.Tanh() }
    local x = flare.randn(2, 3)
    close(r(x), x + flare.tanh(r[1](x)), 1e-6)
    assert.equal('SpecResidual', nn.build(r:describe()).__typename)
    local l = nn.ModuleList():extend({ nn.ReLU(), nn.Tanh() })
    assert.equal(2, #l)
  end)

  it('ModuleDict: by name, in insertion order', function()
    local d = nn.ModuleDict { { 'encoder', nn.Linear(2, 3) }, { 'decoder', nn.Linear(3, 2) } }
    d.head = nn.Linear(2, 1)
    assert.are.same({ 'encoder', 'decoder', 'head' }, d:keys())
    assert.are.same({ 'encoder.weight', 'encoder.bias', 'decoder.weight', 'decoder.bias', 'head.weight', 'head.bias' },
      keys(d:state_dict()))
    local from_map = nn.ModuleDict { b = nn.ReLU(), a = nn.Tanh() }
    assert.are.same({ 'a', 'b' }, from_map:keys())
  end)
end)

describe('state dicts', function()
  it('round-trip into a fresh model', function()
    local a, b = mlp(), mlp()
    local x = flare.randn(3, 4)
    assert.is_true(max_abs(a(x) - b(x)) > 0)
    local info = b:load_state_dict(a:state_dict())
    assert.are.same({}, info.missing_keys)
    assert.are.same({}, info.unexpected_keys)
    close(a(x), b(x), 0)
    -- the state dict shares memory with the model, detached
    local sd = a:state_dict()
    assert.is_false(sd['0.weight']:wants_grad())
    assert.equal(a[1].weight:data_ptr(), sd['0.weight']:data_ptr())
  end)

  it('report missing, unexpected and mis-shaped keys clearly, copying nothing', function()
    local m = nn.Sequential { nn.Linear(2, 3) }
    local before = m[1].weight:clone()
    local err = error_of(m.load_state_dict, m, { ['0.weight'] = flare.zeros(2, 3), ['0.b'] = flare.zeros(3) })
    assert.matches('size mismatch for 0.weight: expected 3x2, got 2x3', err, 1, true)
    assert.matches('missing keys: 0.bias', err, 1, true)
    assert.matches('unexpected keys: 0.b', err, 1, true)
    close(m[1].weight, before, 0)
    err = error_of(m.load_state_dict, m, { ['0.weight'] = flare.zeros(3, 2) })
    assert.equal('load_state_dict: the state dict does not match nn.Sequential: missing keys: 0.bias',
      err:match('load_state_dict: .*'))
    err = error_of(m.load_state_dict, m, { ['0.weight'] = 'zeros', ['0.bias'] = flare.zeros(3) })
    assert.matches('entry 0.weight: expected a tensor, got string', err, 1, true)
  end)

  it('non-strict loading returns what was missing and unexpected', function()
    local m = nn.Sequential { nn.Linear(2, 3) }
    local info = m:load_state_dict({ ['0.weight'] = flare.ones(3, 2), extra = flare.zeros(1) }, { strict = false })
    assert.are.same({ '0.bias' }, info.missing_keys)
    assert.are.same({ 'extra' }, info.unexpected_keys)
    close(m[1].weight, flare.ones(3, 2), 0)
    -- a size mismatch stays an error
    assert.has_error(function() m:load_state_dict({ ['0.weight'] = flare.ones(2, 2) }, { strict = false }) end)
  end)

  it('include buffers (batch norm statistics) and convert dtypes on load', function()
    local bn = nn.BatchNorm1d(3)
    assert.are.same({ 'weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked' }, keys(bn:state_dict()))
    local sd = bn:state_dict()
    local other = nn.BatchNorm1d(3)
    local new = {}
    for k, v in pairs(sd) do new[k] = v:double() + 1 end
    new.num_batches_tracked = flare.tensor(5, { dtype = 'int64' })
    other:load_state_dict(new)
    assert.equal('float32', other.running_mean:dtype())
    close(other.running_var, flare.full({ 3 }, 2), 0)
    assert.equal(5, other.num_batches_tracked:item())
  end)
end)

describe('to(dtype)', function()
  it('converts float parameters and buffers, keeping them trainable leaves', function()
    local m = nn.Sequential { nn.Linear(3, 2), nn.BatchNorm1d(2) }
    local w = m[1].weight:clone()
    assert.equal(m, m:to('float64'))
    for _, p in ipairs(m:parameters()) do
      assert.equal('float64', p:dtype())
      assert.is_true(p:wants_grad())
      assert.is_true(p.is_leaf)
    end
    assert.equal('float64', m[2].running_mean:dtype())
    assert.equal('int64', m[2].num_batches_tracked:dtype())
    close(m[1].weight:float(), w, 0)
    local y = m(flare.randn(4, 3, { dtype = 'float64' }))
    assert.equal('float64', y:dtype())
    y:sum():backward()
    assert.is_not_nil(m[1].weight.grad)
    m:float()
    assert.equal('float32', m[1].bias:dtype())
    assert.matches("expected a float dtype", error_of(m.to, m, 'int64'))
  end)

  it('keeps shared parameters shared', function()
    local a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight
    local m = nn.Sequential { a, b }:double()
    assert.equal(m[1].weight, m[2].weight)
  end)
end)

describe('printing', function()
  it('shows the tree, the layer shapes and the parameter counts', function()
    local m = nn.Sequential {
      nn.Conv2d(1, 8, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(), nn.Linear(8 * 14 * 14, 10),
    }
    local s = tostring(m)
    assert.equal(table.concat({
      'nn.Sequential (15,770 parameters) {',
      '  (0): nn.Conv2d(1 -> 8, 3, padding=1) (80 parameters)',
      '  (1): nn.ReLU',
      '  (2): nn.MaxPool2d(2)',
      '  (3): nn.Flatten',
      '  (4): nn.Linear(1568 -> 10) (15,690 parameters)',
      '}' }, '\n'), s)
    local net = Block(3, 4, { act = 'tanh' })
    assert.matches('SpecBlock %(28 parameters%) {', tostring(net))
    assert.matches('%(fc%): nn.Linear%(3 %-> 4%)', tostring(net))
    assert.matches('%(norm%): nn.LayerNorm%({4}, eps=1e%-05%)', tostring(net))
    assert.matches('nn.LSTM%(10, 20, num_layers=2, batch_first=true%)',
      tostring(nn.LSTM(10, 20, { num_layers = 2, batch_first = true })))
  end)
end)

describe('descriptions', function()
  it('describe a model declaratively and rebuild it (built-in and user classes)', function()
    local m = nn.Sequential { Block(3, 4, { act = 'tanh' }), nn.Dropout(0.25), nn.Linear(4, 2, { bias = false }) }
    m:add(nn.LogSoftmax(2))
    local desc = m:describe()
    assert.equal('Sequential', desc.type)
    assert.equal('SpecBlock', desc.args[1].value[1].module.type)
    -- plain data only: numbers, strings, booleans, tables
    local function plain(v)
      if type(v) == 'table' then
        assert.is_nil(getmetatable(v))
        for k, x in pairs(v) do plain(k) plain(x) end
      else
        assert.is_true(type(v) == 'number' or type(v) == 'string' or type(v) == 'boolean')
      end
    end
    plain(desc)
    local copy = nn.build(desc)
    assert.equal(tostring(m), tostring(copy))
    copy:load_state_dict(m:state_dict())
    m:eval()
    copy:eval()
    local x = flare.randn(5, 3)
    close(m(x), copy(x), 0)
    assert.equal('tanh', copy[1].act.__typename == 'nn.Tanh' and 'tanh' or 'relu')
  end)

  it('registers classes by name and refuses unknown ones', function()
    assert.equal(nn.Linear, nn.registry.Linear)
    assert.equal(Block, nn.registry.SpecBlock)
    assert.matches('unknown module class Nope', error_of(nn.build, { type = 'Nope', args = {} }))
    assert.matches('built%-in module class', error_of(nn.Module.extend, nn.Module, 'Linear'))
    local Anon = nn.Module:extend()
    assert.matches('not a registered module class', error_of(function() return Anon():describe() end))
    local WithFn = nn.Module:extend('SpecWithFn')
    assert.matches('cannot be saved', error_of(function() return WithFn(print):describe() end))
  end)

  it('encodes tensor arguments as data', function()
    local m = nn.CrossEntropyLoss({ weight = flare.tensor({ 1, 2 }) })
    local copy = nn.build(m:describe())
    close(copy.weight, flare.tensor({ 1, 2 }), 0)
  end)
end)

describe('layers', function()
  it('Linear: shapes, no bias, 3-D input, bad input', function()
    local m = nn.Linear(3, 2, { bias = false })
    assert.is_nil(m.bias)
    assert.are.same({ 'weight' }, keys(m:state_dict()))
    assert.are.same({ 4, 5, 2 }, m(flare.randn(4, 5, 3)):size())
    assert.matches('input of shape %[4, 2%] does not match weight of shape %[2, 3%]',
      error_of(m, flare.randn(4, 2)))
  end)

  it('F.pad pads the last dims with a constant, last dim first', function()
    local y = F.pad(flare.ones(2, 2), { 1, 0, 0, 2 }, 5)
    assert.are.same({ { 5, 1, 1 }, { 5, 1, 1 }, { 5, 5, 5 }, { 5, 5, 5 } }, y:totable())
  end)

  it('Flatten, Unflatten, Identity', function()
    local x = flare.randn(2, 3, 4, 5)
    assert.are.same({ 2, 60 }, nn.Flatten()(x):size())
    assert.are.same({ 6, 20 }, nn.Flatten(1, 2)(x):reshape(6, 20):size())
    assert.are.same({ 2, 3, 2, 2, 5 }, nn.Unflatten(3, { 2, 2 })(x):size())
    assert.are.same({ 2, 3, 4, 5, 1 }, nn.Unflatten(-1, { 5, 1 })(x):size())
    assert.equal(x, nn.Identity()(x))
  end)

  it('Embedding: 1-based indices, padding row starts at zero, bad indices raise', function()
    local m = nn.Embedding(5, 3, { padding_idx = -1 })
    assert.equal(5, m.padding_idx)
    close(m.weight[5], flare.zeros(3), 0)
    local idx = flare.tensor({ { 1, 5 }, { 2, 2 } }, { dtype = 'int64' })
    local y = m(idx)
    assert.are.same({ 2, 2, 3 }, y:size())
    close(y[1][1], m.weight[1], 0)
    assert.has_error(function() m(flare.tensor({ 6 }, { dtype = 'int64' })) end)
    assert.matches('expected int64 indices', error_of(m, flare.tensor({ 1.0 })))
    assert.matches('padding_idx', error_of(nn.Embedding, 5, 3, { padding_idx = 0 }))
    local pre = nn.Embedding.from_pretrained(flare.eye(3))
    assert.is_false(pre.weight:wants_grad())
    close(pre(flare.tensor({ 2 }, { dtype = 'int64' })), flare.tensor({ { 0, 1, 0 } }), 0)
  end)

  it('Dropout: drops about p, scales by 1 / (1 - p), identity in eval', function()
    flare.manual_seed(1)
    local m = nn.Dropout(0.3)
    local x = flare.ones(200, 100)
    local y = m(x)
    local zeros = y:eq(0):sum():item() / x:numel()
    assert.is_true(math.abs(zeros - 0.3) < 0.02, 'fraction dropped ' .. zeros)
    close(y:masked_select(y:ne(0)), flare.full({ y:ne(0):sum():item() }, 1 / 0.7), 1e-6)
    m:eval()
    assert.equal(x, m(x))
    close(nn.Dropout(1)(x), flare.zeros(200, 100), 0)
    assert.equal(x, nn.Dropout(0)(x))
    assert.matches('between 0 and 1', error_of(nn.Dropout, 1.5))
    -- the gradient flows through the kept elements only, scaled
    local leaf = flare.ones(50, 50):requires_grad()
    local out = nn.Dropout(0.5)(leaf)
    out:sum():backward()
    close(leaf.grad, out:detach(), 0)
  end)

  it('Dropout2d zeroes whole channels', function()
    flare.manual_seed(2)
    local y = nn.Dropout2d(0.5)(flare.ones(8, 16, 3, 3))
    local per_channel = y:sum({ 3, 4 })                 -- 0 or 9 * 2
    local dropped = per_channel:eq(0):sum():item()
    assert.equal(8 * 16, dropped + per_channel:eq(18):sum():item())
    assert.is_true(dropped > 20 and dropped < 108)
  end)

  it('BatchNorm: running statistics, cumulative momentum, eval mode', function()
    local bn = nn.BatchNorm1d(2, { momentum = false })
    local a, b = flare.randn(8, 2), flare.randn(8, 2) * 3 + 1
    bn(a)
    bn(b)
    assert.equal(2, bn.num_batches_tracked:item())
    close(bn.running_mean, (a:mean(1) + b:mean(1)) / 2, 1e-5)
    close(bn.running_var, (a:var(1) + b:var(1)) / 2, 1e-4)
    bn:eval()
    local x = flare.randn(4, 2)
    close(bn(x), (x - bn.running_mean) / (bn.running_var + 1e-5):sqrt(), 1e-5)
    assert.equal(2, bn.num_batches_tracked:item())
    local no_stats = nn.BatchNorm2d(3, { track_running_stats = false, affine = false })
    assert.are.same({}, keys(no_stats:state_dict()))
    no_stats:eval()
    local y = no_stats(flare.randn(4, 3, 2, 2))
    close(y:mean({ 1, 3, 4 }), flare.zeros(3), 1e-5)
    bn:train()
    assert.matches('more than 1 value per channel', error_of(bn, flare.randn(1, 2)))
    assert.matches('expected input %(N, 2%) or %(N, 2, L%), got shape %[4, 3%]', error_of(bn, flare.randn(4, 3)))
  end)

  it('activations', function()
    local x = flare.tensor({ -2, -0.5, 0, 0.5, 30 })
    close(nn.LeakyReLU()(x), flare.tensor({ -0.02, -0.005, 0, 0.5, 30 }), 1e-7)
    close(nn.Softplus()(x), flare.tensor({ math.log(1 + math.exp(-2)), math.log(1 + math.exp(-0.5)), math.log(2),
      math.log(1 + math.exp(0.5)), 30 }), 1e-6)
    close(nn.Softmax()(x:reshape(1, 5)):sum(2), flare.ones(1), 1e-6)
    -- ELU's discarded branch does not poison the gradient
    local big = flare.tensor({ 100.0, -1.0 }):requires_grad()
    nn.ELU()(big):sum():backward()
    close(big.grad, flare.tensor({ 1, math.exp(-1) }), 1e-6)
    assert.matches("approximate must be 'none' or 'tanh'", error_of(F.gelu, x, 'erf'))
  end)

  it('pooling and convolution modules call the engine kernels with their options', function()
    if not rawget(flare, 'conv2d') then
      pending('flare.conv2d is not in this build yet')
      return
    end
    local x = flare.randn(2, 3, 7, 6)
    close(nn.MaxPool2d(3, { stride = 2, padding = 1, ceil_mode = true })(x),
      flare.max_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true }), 0)
    close(nn.AvgPool2d({ 2, 3 }, { count_include_pad = false, padding = 1 })(x),
      flare.avg_pool2d(x, { 2, 3 }, { count_include_pad = false, padding = 1 }), 0)
    close(nn.AdaptiveAvgPool2d({ 2, 3 })(x), flare.adaptive_avg_pool2d(x, { 2, 3 }), 0)
    local x1 = flare.randn(2, 3, 9)
    close(nn.MaxPool1d(2)(x1), flare.max_pool1d(x1, 2), 0)
    local c = nn.Conv2d(3, 4, 3, { padding = 'same', dilation = 2 })
    assert.are.same({ 2, 4, 7, 6 }, c(x):size())
    assert.are.same({ 4, 3, 3, 3 }, c.weight:size())
    assert.are.same({ 4, 2, 3, 3 }, nn.ConvTranspose2d(4, 4, 3, { groups = 2 }).weight:size())
    assert.matches('divisible by groups', error_of(nn.Conv2d, 3, 4, 3, { groups = 2 }))
  end)
end)

describe('recurrent layers', function()
  it('return output and final state shaped as PyTorch', function()
    local x = flare.randn(5, 2, 3)
    local out, state = nn.LSTM(3, 4, { num_layers = 2, bidirectional = true })(x)
    assert.are.same({ 5, 2, 8 }, out:size())
    assert.are.same({ 4, 2, 4 }, state[1]:size())
    assert.are.same({ 4, 2, 4 }, state[2]:size())
    local gru = nn.GRU(3, 4, { batch_first = true })
    local o, h = gru(flare.randn(2, 5, 3))
    assert.are.same({ 2, 5, 4 }, o:size())
    assert.are.same({ 1, 2, 4 }, h:size())
    -- the last output of a unidirectional layer is its final state
    close(o:select(2, 5), h[1], 0)
    -- feeding the state back continues the sequence
    local seq = flare.randn(2, 6, 3)
    local full = gru(seq)
    local first, h1 = gru(seq:narrow(2, 1, 3))
    local second = gru(seq:narrow(2, 4, 3), h1)
    close(full, flare.cat({ first, second }, 2), 1e-6)
  end)

  it('apply dropout between layers in training only', function()
    local m = nn.GRU(3, 4, { num_layers = 2, dropout = 0.5 })
    local x = flare.randn(4, 2, 3)
    flare.manual_seed(1)
    local a = m(x)
    flare.manual_seed(2)
    local b = m(x)
    assert.is_true(max_abs(a - b) > 0)
    m:eval()
    close(m(x), m(x), 0)
  end)

  it('check the initial state and the input', function()
    local m = nn.LSTM(3, 4)
    local x = flare.randn(5, 2, 3)
    assert.matches('expected h0 of shape %[1, 2, 4%], got %[1, 3, 4%]',
      error_of(m, x, { flare.zeros(1, 3, 4), flare.zeros(1, 2, 4) }))
    assert.matches('expected the initial state as a table {h0, c0}', error_of(m, x, flare.zeros(1, 2, 4)))
    assert.matches('expected input with last size 3', error_of(m, flare.randn(5, 2, 4)))
    assert.matches('nonlinearity must be', error_of(nn.RNN, 3, 4, { nonlinearity = 'sigmoid' }))
  end)

  it('cells match one step of the layers', function()
    local lstm = nn.LSTM(3, 4)
    local cell = nn.LSTMCell(3, 4)
    cell:load_state_dict({ weight_ih = lstm.weight_ih_l0, weight_hh = lstm.weight_hh_l0,
                           bias_ih = lstm.bias_ih_l0, bias_hh = lstm.bias_hh_l0 })
    local x = flare.randn(1, 2, 3)
    local out, state = lstm(x)
    local h, c = cell(x[1])
    close(h, out[1], 1e-6)
    close(c, state[2][1], 1e-6)
    local h2 = nn.GRUCell(3, 4)(flare.randn(3))
    assert.are.same({ 4 }, h2:size())
  end)
end)

describe('attention', function()
  it('need_weights, causal masks, and padding masks', function()
    local m = nn.MultiheadAttention(8, 2)
    local x = flare.randn(4, 3, 8)
    local out, w = m(x, x, x, { need_weights = false })
    assert.is_nil(w)
    assert.are.same({ 4, 3, 8 }, out:size())
    local causal = nn.generate_square_subsequent_mask(4)
    local a, wa = m(x, x, x, { attn_mask = causal })
    local b, wb = m(x, x, x, { is_causal = true })
    close(a, b, 0)
    assert.are.same({ 3, 4, 4 }, wa:size())
    close(wa:sum(3), flare.ones(3, 4), 1e-6)
    assert.equal(0, wb[1][1][2]:item())
    -- a bool mask equals its -inf float form
    local bool = causal:lt(0)
    close(m(x, x, x, { attn_mask = bool }), a, 0)
    local kpm = flare.tensor({ { false, false, false, true }, { false, false, false, false }, { false, true, false, false } })
    local _, wk = m(x, x, x, { key_padding_mask = kpm })
    assert.equal(0, wk[1]:select(2, 4):abs():sum():item())
    assert.matches('expected attn_mask of shape', error_of(m, x, x, x, { attn_mask = flare.zeros(3, 3) }))
    assert.matches('divisible by num_heads', error_of(nn.MultiheadAttention, 8, 3))
  end)

  it('TransformerEncoder stacks independent copies of a layer', function()
    local layer = nn.TransformerEncoderLayer(8, 2, { dim_feedforward = 16, dropout = 0 })
    local enc = nn.TransformerEncoder(layer, 2, { norm = nn.LayerNorm(8) })
    assert.is_true(enc.layers[1].linear1.weight ~= enc.layers[2].linear1.weight)
    close(enc.layers[1].linear1.weight, enc.layers[2].linear1.weight, 0)
    assert.equal('layers.1.self_attn.in_proj_weight', keys(enc:state_dict())[13])
    local x = flare.randn(5, 2, 8)
    local y = enc(x, { mask = nn.generate_square_subsequent_mask(5) })
    assert.are.same({ 5, 2, 8 }, y:size())
    close(y, enc.norm(enc.layers[2](enc.layers[1](x, { src_mask = nn.generate_square_subsequent_mask(5) }),
      { src_mask = nn.generate_square_subsequent_mask(5) })), 1e-6)
  end)
end)

describe('nn.init', function()
  it('default initialisations follow PyTorch', function()
    flare.manual_seed(3)
    local lin = nn.Linear(400, 300)
    local bound = 1 / math.sqrt(400)
    assert.is_true(lin.weight:abs():max():item() <= bound)
    assert.is_true(lin.weight:abs():max():item() > 0.95 * bound)
    assert.is_true(lin.bias:abs():max():item() <= bound)
    local emb = nn.Embedding(1000, 50)
    assert.is_true(math.abs(emb.weight:std():item() - 1) < 0.02)
    local lstm = nn.LSTM(10, 25)
    for _, p in ipairs(lstm:parameters()) do assert.is_true(p:abs():max():item() <= 0.2) end
    local mha = nn.MultiheadAttention(16, 4)
    assert.equal(0, mha.in_proj_bias:abs():sum():item())
    assert.is_true(mha.in_proj_weight:abs():max():item() <= math.sqrt(6 / (16 + 48)))
  end)

  it('xavier, kaiming, constants, orthogonal', function()
    flare.manual_seed(4)
    local t = flare.empty(256, 512)
    nn.init.xavier_normal_(t)
    assert.is_true(math.abs(t:std():item() - math.sqrt(2 / 768)) < 0.002)
    nn.init.kaiming_normal_(t, { mode = 'fan_out', nonlinearity = 'relu' })
    assert.is_true(math.abs(t:std():item() - math.sqrt(2 / 256)) < 0.003)
    nn.init.kaiming_uniform_(t, 0, 'fan_in', 'relu')
    assert.is_true(t:abs():max():item() <= math.sqrt(6 / 512))
    nn.init.xavier_uniform_(t, nn.init.calculate_gain('tanh'))
    assert.is_true(t:abs():max():item() <= 5 / 3 * math.sqrt(6 / 768))
    nn.init.zeros_(t)
    assert.equal(0, t:abs():sum():item())
    nn.init.ones_(t)
    assert.equal(t:numel(), t:sum():item())
    nn.init.trunc_normal_(t, 0, 1, -0.5, 0.5)
    assert.is_true(t:abs():max():item() <= 0.5)
    for _, shape in ipairs({ { 5, 8 }, { 8, 5 }, { 6, 2, 3 } }) do
      local q = nn.init.orthogonal_(flare.empty(shape), 2)
      local m = q:reshape(shape[1], -1)
      local gram = shape[1] <= m:size(2) and m:matmul(m:t()) or m:t():matmul(m)
      close(gram, flare.eye(gram:size(1)) * 4, 1e-5)
    end
    assert.equal(math.sqrt(2), nn.init.calculate_gain('relu'))
    assert.matches('at least 2 dims', error_of(nn.init.xavier_uniform_, flare.empty(3)))
    assert.matches("mode must be 'fan_in' or 'fan_out'", error_of(nn.init.kaiming_normal_, t, { mode = 'fan' }))
    -- parameters stay leaves that require grad
    local p = flare.empty(3, 3):requires_grad()
    nn.init.orthogonal_(p)
    assert.is_true(p:wants_grad() and p.is_leaf)
  end)
end)

describe('nn.utils', function()
  for _, fused in ipairs({ true, false }) do
    local how = fused and ' (fused helper)' or ' (Lua from tensor ops)'
    local o = fused and {} or { fused = false }
    it('clip_grad_norm_ scales all gradients by their joint norm' .. how, function()
      local a = flare.zeros(2):requires_grad()
      local b = flare.zeros(3):requires_grad()
      a.grad = flare.tensor({ 3.0, 4.0 })
      b.grad = flare.tensor({ 0.0, 0.0, 12.0 })
      local total = nn.utils.clip_grad_norm_({ a, b }, 6.5, 2, o)
      assert.is_true(math.abs(total:item() - 13) < 1e-5)
      close(a.grad, flare.tensor({ 1.5, 2 }), 1e-5)
      close(b.grad, flare.tensor({ 0, 0, 6 }), 1e-5)
      -- under the limit: untouched; infinity norm
      total = nn.utils.clip_grad_norm_({ a, b }, 100, math.huge, o)
      assert.is_true(math.abs(total:item() - 6) < 1e-5)
      close(b.grad, flare.tensor({ 0, 0, 6 }), 1e-5)
      -- a module's parameters
      local m = nn.Linear(3, 3)
      m(flare.randn(4, 3) * 100):sum():backward()
      nn.utils.clip_grad_norm_(m, 1, 2, o)
      local sq = 0
      for _, p in ipairs(m:parameters()) do sq = sq + (p.grad * p.grad):sum():item() end
      assert.is_true(math.abs(math.sqrt(sq) - 1) < 1e-4)
      a.grad = flare.tensor({ 0 / 0, 1.0 })
      local oo = { error_if_nonfinite = true, fused = o.fused }
      assert.is_false(pcall(nn.utils.clip_grad_norm_, { a }, 1, 2, oo))
      local c = flare.zeros(3):requires_grad()
      c.grad = flare.tensor({ -5.0, 0.5, 7.0 })
      nn.utils.clip_grad_value_({ c }, 1, o)
      close(c.grad, flare.tensor({ -1, 0.5, 1 }), 0)
    end)
  end

  it('parameters_to_vector and vector_to_parameters round-trip', function()
    local m = nn.Linear(2, 2)
    local v = nn.utils.parameters_to_vector(m:parameters())
    assert.are.same({ 6 }, v:size())
    nn.utils.vector_to_parameters(flare.arange(6):float(), m:parameters())
    close(m.weight, flare.tensor({ { 0, 1 }, { 2, 3 } }), 0)
    close(m.bias, flare.tensor({ 4, 5 }), 0)
  end)
end)

describe('a small model trains', function()
  it('an MLP fits a toy problem with plain gradient steps', function()
    flare.manual_seed(0)
    local model = nn.Sequential { nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2) }
    local x = flare.randn(64, 2)
    local y = x:select(2, 1):gt(x:select(2, 2)):long() + 1
    local first, last
    for step = 1, 100 do
      model:zero_grad()
      local loss = nn.cross_entropy(model(x), y)
      loss:backward()
      flare.no_grad(function()
        for _, p in ipairs(model:parameters()) do p:sub_(p.grad * 0.5) end
      end)
      if step == 1 then first = loss:item() end
      last = loss:item()
    end
    assert.is_true(last < first / 4, string.format('loss went from %g to %g', first, last))
    fixture.assert_close(flare.tensor(1.0), flare.tensor(1.0))
  end)
end)

describe('bad arguments', function()
  -- every failure must be an error that says what was expected, never a Lua VM error from
  -- inside the library ("attempt to index a nil value")
  local function readable(err)
    if type(err) ~= 'string' or err:find('attempt to', 1, true) then return false end
    local l = err:lower()
    for _, w in ipairs({ 'expected', 'bad argument', 'out of memory', 'out of range', 'must', 'match',
                         'cannot', 'no forward', 'required' }) do
      if l:find(w, 1, true) then return true end
    end
    return false
  end
  local values = { { 'nil', nil }, { "'abc'", 'abc' }, { '-1', -1 }, { '1.5', 1.5 }, { '{}', {} }, { 'true', true },
                   { 'print', print }, { '2x3', flare.randn(2, 3) }, { 'scalar', flare.tensor(1.0) },
                   { 'int64', flare.tensor({ 1, 2 }, { dtype = 'int64' }) }, { '4-D', flare.randn(2, 3, 4, 5) },
                   { 'bool', flare.tensor({ true, false }) }, { 'empty', flare.zeros(0, 3) } }

  it('to the constructors of every registered class', function()
    local bad = {}
    local names = {}
    for k, v in pairs(nn.registry) do if not rawget(v, '_abstract') and not k:match('^Spec') then names[#names + 1] = k end end
    table.sort(names)
    for _, name in ipairs(names) do
      for _, a in ipairs(values) do
        for _, b in ipairs(values) do
          local ok, err = pcall(nn.registry[name], a[2], b[2], 3)
          if not ok and not readable(err) and #bad < 10 then
            bad[#bad + 1] = string.format('nn.%s(%s, %s, 3): %s', name, a[1], b[1], tostring(err))
          end
        end
      end
    end
    assert(#bad == 0, table.concat(bad, '\n'))
  end)

  it('to the methods of modules and containers', function()
    local methods = {}
    for k, v in pairs(nn.Module) do
      if type(v) == 'function' and not k:match('^__') and k ~= 'extend' then methods[#methods + 1] = k end
    end
    for _, k in ipairs({ 'add', 'append', 'extend', 'insert', 'remove', 'get', 'keys', 'items' }) do
      methods[#methods + 1] = k
    end
    table.sort(methods)
    local bad = {}
    for _, name in ipairs(methods) do
      for _, a in ipairs(values) do
        for _, b in ipairs(values) do
          local m = nn.Sequential { nn.Linear(2, 2), nn.BatchNorm1d(2) }
          if m[name] == nil then m = nn.ModuleDict { { 'a', nn.Linear(2, 2) } } end
          local f = m[name]
          local ok, err = true, nil
          if a[2] ~= print and b[2] ~= print then ok, err = pcall(f, m, a[2], b[2]) end
          if not ok and not readable(err) and #bad < 10 then
            bad[#bad + 1] = string.format('%s(%s, %s): %s', name, a[1], b[1], tostring(err))
          end
        end
      end
    end
    assert(#bad == 0, table.concat(bad, '\n'))
  end)

  it('to the forward of every layer', function()
    local mods = {
      nn.Linear(3, 2), nn.Bilinear(3, 3, 2), nn.ReLU(), nn.LeakyReLU(), nn.ELU(), nn.GELU(), nn.SiLU(), nn.Tanh(),
      nn.Sigmoid(), nn.Softplus(), nn.Softmax(), nn.LogSoftmax(), nn.Dropout(), nn.Dropout2d(), nn.Embedding(5, 3),
      nn.LayerNorm(3), nn.GroupNorm(1, 3), nn.BatchNorm1d(3), nn.BatchNorm2d(3), nn.Flatten(), nn.Unflatten(2, { 3, 1 }),
      nn.Identity(), nn.RNN(3, 2), nn.LSTM(3, 2), nn.GRU(3, 2), nn.RNNCell(3, 2), nn.LSTMCell(3, 2), nn.GRUCell(3, 2),
      nn.MultiheadAttention(4, 2), nn.TransformerEncoderLayer(4, 2, { dim_feedforward = 4 }),
      nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, { dim_feedforward = 4 }), 1),
      nn.MSELoss(), nn.L1Loss(), nn.SmoothL1Loss(), nn.HuberLoss(), nn.CrossEntropyLoss(), nn.NLLLoss(), nn.BCELoss(),
      nn.BCEWithLogitsLoss(), nn.KLDivLoss(), nn.CosineEmbeddingLoss(), nn.MarginRankingLoss(),
      nn.Sequential { nn.Linear(3, 2) }, nn.ModuleList(), nn.ModuleDict(),
    }
    if rawget(flare, 'conv2d') then
      for _, m in ipairs({ nn.Conv1d(3, 2, 1), nn.Conv2d(3, 2, 1), nn.ConvTranspose2d(3, 2, 1), nn.MaxPool1d(2),
                           nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1) }) do
        mods[#mods + 1] = m
      end
    end
    local bad = {}
    for _, m in ipairs(mods) do
      for _, a in ipairs(values) do
        for _, b in ipairs(values) do
          local ok, err = pcall(m, a[2], b[2])
          if not ok and not readable(err) and #bad < 10 then
            bad[#bad + 1] = string.format('%s(%s, %s): %s', m.__typename, a[1], b[1], tostring(err))
          end
        end
      end
    end
    assert(#bad == 0, table.concat(bad, '\n'))
  end)
end)
