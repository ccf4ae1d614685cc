-- Autograd through views, movement and indexing ops: gradients reach the input through
-- Lua indexing, split/chunk/unbind and cat chains; views keep sharing storage when they
-- record; in-place writes refuse tensors that require grad. (Every rule is also checked
-- against finite differences in gradcheck_spec.lua.)
local flare = require 'flare'

local function leaf(t) return flare.tensor(t, { dtype = 'float64' }):requires_grad() end
local function ones(...) return flare.ones({ ... }, { dtype = 'float64' }) end

describe('gradients through views and indexing', function()
  it('flow through x[i], x[{...}], x[mask] and x[idx]', function()
    local x = leaf { { 1, 2, 3 }, { 4, 5, 6 } }
    x[2]:backward(flare.tensor { 1, 2, 3 })
    assert.are.same({ { 0, 0, 0 }, { 1, 2, 3 } }, x.grad:totable())
    x.grad = nil
    x[{ {}, { 1, 3, 2 } }]:backward(flare.tensor { { 1, 2 }, { 3, 4 } })
    assert.are.same({ { 1, 0, 2 }, { 3, 0, 4 } }, x.grad:totable())
    x.grad = nil
    x[flare.tensor { { true, false, true }, { false, true, false } }]:backward(flare.tensor { 1, 2, 3 })
    assert.are.same({ { 1, 0, 2 }, { 0, 3, 0 } }, x.grad:totable())
    x.grad = nil
    -- repeated rows accumulate
    x[flare.tensor { 2, 2, 1 }]:backward(ones(3, 3))
    assert.are.same({ { 1, 1, 1 }, { 2, 2, 2 } }, x.grad:totable())
    assert.equal('IndexBackward', x[flare.tensor { 1 }].grad_fn)
    assert.equal('SelectBackward', x[1].grad_fn)
  end)

  it('reach every piece of split, chunk and unbind', function()
    local x = leaf { 1, 2, 3, 4, 5 }
    local p = x:split(2)
    assert.equal(3, #p)
    local y = flare.cat { p[3] * 3, p[1], p[2] * 2 }
    y:backward(ones(5))
    assert.are.same({ 1, 1, 2, 2, 3 }, x.grad:totable())
    x.grad = nil
    local c = x:chunk(2)
    local z = c[2] * 10
    z:backward(ones(2))
    assert.are.same({ 0, 0, 0, 10, 10 }, x.grad:totable())
    x.grad = nil
    local m = leaf { { 1, 2 }, { 3, 4 } }
    local u = m:unbind(2)
    flare.stack({ u[2], u[1] * 2, u[2] }):backward(ones(3, 2))
    assert.are.same({ { 2, 2 }, { 2, 2 } }, m.grad:totable())
  end)

  it('share storage with their input while recording', function()
    local x = leaf { { 1, 2, 3 }, { 4, 5, 6 } }
    local views = { x[2], x:t(), x:view(6), x:narrow(2, 2, 2), x:unsqueeze(1), x:expand(2, 2, 3),
                    x[{ {}, { 1, 3, 2 } }], x:permute(2, 1), x:unfold(2, 2, 1), x:reshape(3, 2) }
    for _, v in ipairs(views) do assert.is_not_nil(v.grad_fn) end
    assert.equal(x:data_ptr(), x:view(6):data_ptr())
    flare.no_grad(function() x:fill_(7) end)
    for n, v in ipairs(views) do
      assert.is_true(v:eq(7):all():item(), 'view ' .. n)
    end
  end)

  it('sums overlapping unfold windows and expanded dims', function()
    local x = leaf { 1, 2, 3, 4, 5 }
    x:unfold(1, 3, 1):backward(ones(3, 3))
    assert.are.same({ 1, 2, 3, 2, 1 }, x.grad:totable())
    local y = leaf { { 1 }, { 2 } }
    y:expand(4, 2, 3):backward(ones(4, 2, 3))
    assert.are.same({ { 12 }, { 12 } }, y.grad:totable())
  end)

  it('split cat gradients among many inputs, skipping constants and integers', function()
    local a, b = leaf { { 1, 2 } }, leaf { { 3, 4 }, { 5, 6 } }
    local k = flare.tensor { { 7, 8 } }   -- int64: promoted, no gradient
    local y = flare.cat { k, a, b, k, a, b, k }
    assert.equal('float64', y:dtype())
    local g = flare.arange(1, 19, { dtype = 'float64' }):view(9, 2)
    y:backward(g)
    assert.are.same({ { 3 + 11, 4 + 12 } }, a.grad:totable())
    assert.are.same({ { 5 + 13, 6 + 14 }, { 7 + 15, 8 + 16 } }, b.grad:totable())
    assert.is_nil(k.grad)
  end)

  it('pass no gradient to positions a later write replaced', function()
    local x = leaf { 1, 2, 3, 4 }
    local src = leaf { 10, 20, 30 }
    local y = x:index_copy(1, flare.tensor { 2, 4, 2 }, src)
    assert.are.same({ 1, 30, 3, 20 }, y:totable())
    y:backward(flare.tensor({ 1, 2, 3, 4 }, { dtype = 'float64' }))
    assert.are.same({ 1, 0, 3, 0 }, x.grad:totable())
    assert.are.same({ 0, 4, 2 }, src.grad:totable())
  end)

  it('refuses in-place writes into tensors that require grad, except under no_grad', function()
    local x = flare.randn(3, 4, { dtype = 'float64' }):requires_grad()
    local i = flare.tensor { { 1, 2, 3, 1 } }
    local m = flare.rand(3, 4):gt(0.5)
    local writes = {
      function(t) t:scatter_(1, i, 0) end,
      function(t) t:scatter_add_(1, i, flare.ones(1, 4, { dtype = 'float64' })) end,
      function(t) t:index_copy_(1, flare.tensor { 1 }, flare.zeros(1, 4, { dtype = 'float64' })) end,
      function(t) t:index_add_(1, flare.tensor { 2 }, flare.ones(1, 4, { dtype = 'float64' })) end,
      function(t) t:index_fill_(2, flare.tensor { 2 }, 0) end,
      function(t) t:masked_fill_(m, 1) end,
      function(t) t:masked_scatter_(m, flare.zeros(12, { dtype = 'float64' })) end,
      function(t) t[m] = 0 end,
      function(t) t[flare.tensor { 1, 3 }] = 0 end,
      function(t) t[2] = 0 end,
      function(t) t[{ {}, 2 }] = 0 end,
    }
    for n, write in ipairs(writes) do
      local ok, err = pcall(write, x)
      assert.is_false(ok, 'write ' .. n)
      assert.matches('in%-place operation on a tensor that requires grad', err)
      -- a view of it has a grad_fn and is refused too
      ok = pcall(write, x:view(3, 4))
      assert.is_false(ok, 'write ' .. n .. ' into a view')
    end
    assert.is_nil(x.grad)
    flare.no_grad(function()
      for _, write in ipairs(writes) do write(x) end
    end)
  end)

  it('names the op whose saved index was changed in place', function()
    local x = flare.randn(4, { dtype = 'float64' }):requires_grad()
    local i = flare.tensor { 1, 3 }
    local y = x:index_select(1, i)
    i[1] = 2
    local ok, err = pcall(function() y:backward(ones(2)) end)
    assert.is_false(ok)
    assert.matches("'index_select' was modified in place", err)
  end)
end)
