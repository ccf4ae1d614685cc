-- The losses, as functions and as modules, against PyTorch (spec/fixtures/gen_nn.py), for
-- every reduction: values and input gradients.
local flare = require 'flare'
local nn = require 'flare.nn'
local fixture = require 'support.fixture'

local fx = fixture.load('nn').losses
local F = nn.functional

-- gen_nn.py's pattern() (the upstream gradient of reduction 'none')
local function pattern(shape, name)
  local s = 0
  for i = 1, #name do s = s + name:byte(i) end
  s = s % 97
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local vals = {}
  for i = 0, n - 1 do vals[i + 1] = math.sin((i + 1) * (0.731 + 0.013 * s) + s) end
  if n == 1 and #shape == 0 then return flare.tensor(vals[1], { dtype = 'float64' }):float() end
  local t = flare.tensor(vals, { dtype = 'float64' })
  if #shape ~= 1 then t = t:reshape(shape) end
  return t:float()
end

-- For each fixture case: the loss function, the module, and how its options map.
local function opts_of(c, r)
  local o = { reduction = r }
  for k, v in pairs(c.opts) do
    if k ~= 'target' then o[k] = type(v) == 'table' and v.shape and fixture.tensor(v) or v end
  end
  return o
end

local specs = {
  mse = { F.mse_loss, nn.MSELoss, nn.mse },
  l1 = { F.l1_loss, nn.L1Loss, nn.l1 },
  smooth_l1 = { F.smooth_l1_loss, nn.SmoothL1Loss, nn.smooth_l1 },
  huber = { F.huber_loss, nn.HuberLoss, nn.huber },
  cross_entropy = { F.cross_entropy, nn.CrossEntropyLoss, nn.cross_entropy },
  cross_entropy_kdim = { F.cross_entropy, nn.CrossEntropyLoss, nn.cross_entropy },
  cross_entropy_probs = { F.cross_entropy, nn.CrossEntropyLoss, nn.cross_entropy },
  nll = { F.nll_loss, nn.NLLLoss, nn.nll },
  bce = { F.binary_cross_entropy, nn.BCELoss, nn.bce },
  bce_with_logits = { F.binary_cross_entropy_with_logits, nn.BCEWithLogitsLoss, nn.bce_with_logits },
  kl_div = { F.kl_div, nn.KLDivLoss, nn.kl_div },
  kl_div_log_target = { F.kl_div, nn.KLDivLoss, nn.kl_div },
  cosine_embedding = { F.cosine_embedding_loss, nn.CosineEmbeddingLoss, nn.cosine_embedding },
  margin_ranking = { F.margin_ranking_loss, nn.MarginRankingLoss, nn.margin_ranking },
}

local tol = { rtol = 1e-5, atol = 1e-6 }

local names = {}
for name in pairs(fx) do names[#names + 1] = name end
table.sort(names)

describe('nn losses match PyTorch', function()
  for _, name in ipairs(names) do
    local c = fx[name]
    for _, r in ipairs({ 'mean', 'sum', 'none', 'batchmean' }) do
      if c[r] then
        it(name .. ' reduction=' .. r, function()
          local fn, Module, short = table.unpack(specs[name])
          local ins = {}
          for i, e in ipairs(c.inputs) do
            ins[i] = fixture.tensor(e)
            if c[r].grads[i] then ins[i]:requires_grad() end
          end
          if c.opts.target then ins[#ins + 1] = fixture.tensor(c.opts.target) end
          local o = opts_of(c, r)
          local call = { table.unpack(ins) }
          call[#call + 1] = o                   -- the options table follows the inputs
          local out = fn(table.unpack(call))
          fixture.assert_close(out, c[r].output, tol)
          local g = r == 'none' and pattern(out:size(), 'grad_output1') or flare.tensor(1.0)
          ;(out * g):sum():backward()
          for i, want in ipairs(c[r].grads) do
            if want then fixture.assert_close(ins[i].grad, want, tol) end
          end
          -- the module and the short name give the same value
          local args = {}
          for i, x in ipairs(ins) do args[i] = x:detach() end
          local m = Module(o)
          fixture.assert_close(m(table.unpack(args)), c[r].output, tol)
          args[#args + 1] = o
          fixture.assert_close(short(table.unpack(args)), c[r].output, tol)
        end)
      end
    end
  end
end)

describe('nn losses', function()
  it('reject a bad reduction and mismatched shapes', function()
    local x = flare.randn(3, 2)
    assert.has_error(function() F.mse_loss(x, x, { reduction = 'avg' }) end,
      "mse_loss: reduction must be 'mean', 'sum' or 'none', got avg")
    local ok, err = pcall(F.l1_loss, x, flare.randn(2, 3))
    assert.is_false(ok)
    assert.matches('target of shape %[2, 3%] does not match input of shape %[3, 2%]', err)
    assert.has_error(function() nn.CrossEntropyLoss('sum') end)
  end)

  it('CrossEntropyLoss keeps its class weights as a buffer in the state dict', function()
    local w = flare.tensor({ 1, 2, 3 })
    local m = nn.CrossEntropyLoss({ weight = w })
    assert.are.same({ 'weight' }, nn.keys(m:state_dict()))
    local x = flare.randn(4, 3)
    local t = flare.tensor({ 1, 2, 3, 3 }, { dtype = 'int64' })
    fixture.assert_close(m(x, t), flare.cross_entropy(x, t, { weight = w }))
  end)

  it('cross_entropy ignores ignore_index targets', function()
    local x = flare.randn(4, 3)
    local t = flare.tensor({ 1, -100, 3, 2 }, { dtype = 'int64' })
    local keep = flare.tensor({ 1, 3, 4 }, { dtype = 'int64' })
    fixture.assert_close(F.cross_entropy(x, t), F.cross_entropy(x:index_select(1, keep), t:index_select(1, keep)))
  end)
end)
