-- The first look at a tensor: creation, shape queries, printing, arithmetic.
local flare = require 'flare'

describe('tensor basics', function()
  it('builds from nested tables and reports its shape', function()
    local x = flare.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
    assert.are.same({ 2, 3 }, { table.unpack(x:size()) })
    assert.equal(2, x:dim())
    assert.equal(6, x:numel())
    assert.equal('int64', x:dtype())
    assert.equal(2, #x)
    assert.are.same({ { 1, 2, 3 }, { 4, 5, 6 } }, x:totable())
  end)

  it('adds with broadcasting', function()
    local a = flare.tensor { { 1 }, { 2 } }
    local b = flare.tensor { 10, 20, 30 }
    assert.are.same({ { 11, 21, 31 }, { 12, 22, 32 } }, (a + b):totable())
  end)
end)
