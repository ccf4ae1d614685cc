-- Loader prefetch (data.loader(ds, {prefetch = true})): the next batch's rows are copied on a
-- background thread; the batches must be exactly those of a loader without it.
local flare = require 'flare'
local data = require 'flare.data'

local function same_tensor(a, b)
  assert.equal(b:dtype(), a:dtype())
  assert.are.same({ table.unpack(b:size()) }, { table.unpack(a:size()) })
  assert.are.same(b:totable(), a:totable())
end

-- every batch of `passes` passes (or until `limit` batches of one pass), as lists of fields
local function collect(loader, passes, limit)
  local out = {}
  for _ = 1, passes do
    local k = 0
    for a, b in loader do
      out[#out + 1] = { a, b }
      k = k + 1
      if limit and k == limit then break end
    end
  end
  return out
end

local function same_batches(got, want)
  assert.equal(#want, #got)
  for i = 1, #want do
    assert.equal(#want[i], #got[i])
    for k = 1, #want[i] do same_tensor(got[i][k], want[i][k]) end
  end
end

describe('loader prefetch', function()
  flare.manual_seed(3)
  local x = flare.randn(60, 3, 4)
  local y = flare.arange(1, 61)
  local ds = data.TensorDataset(x, y)

  it('gives the same batches, shuffled or not, with or without drop_last', function()
    for _, opts in ipairs {
      { batch_size = 7 }, { batch_size = 7, drop_last = true }, { batch_size = 60 }, { batch_size = 1 },
      { batch_size = 8, shuffle = true, seed = 11 }, { batch_size = 8, shuffle = true, seed = 11, drop_last = true },
    } do
      local plain = data.loader(ds, opts)
      local with = {}
      for k, v in pairs(opts) do with[k] = v end
      with.prefetch = true
      local pre = data.loader(ds, with)
      same_batches(collect(pre, 3), collect(plain, 3))
    end
  end)

  it('actually gathers in the background over tensors, and is off by default', function()
    local pre = data.loader(ds, { batch_size = 10, prefetch = true })
    local plain = data.loader(ds, { batch_size = 10 })
    pre(nil, nil)
    plain(nil, nil)
    assert.is_not_nil(pre._pending)
    assert.is_nil(plain._pending)
  end)

  it('draws the same shuffled order from the global generator', function()
    flare.manual_seed(42)
    local want = collect(data.loader(ds, { batch_size = 9, shuffle = true }), 2)
    flare.manual_seed(42)
    local got = collect(data.loader(ds, { batch_size = 9, shuffle = true, prefetch = true }), 2)
    same_batches(got, want)
  end)

  it('works on a Subset, on views with offsets, and falls back on other sources', function()
    local sub = data.Subset(ds, flare.tensor({ 5, 60, 1, 33, 2, 17, 40, 8, 9, 11, 30 }))
    same_batches(collect(data.loader(sub, { batch_size = 4, prefetch = true }), 2),
                 collect(data.loader(sub, { batch_size = 4 }), 2))
    local view = data.TensorDataset(x:narrow(1, 5, 50), y:narrow(1, 5, 50))
    same_batches(collect(data.loader(view, { batch_size = 6, shuffle = true, seed = 2, prefetch = true }), 2),
                 collect(data.loader(view, { batch_size = 6, shuffle = true, seed = 2 }), 2))
    -- rows that are not contiguous (a column slice): index_select as usual
    local cols = data.TensorDataset(x:narrow(3, 2, 2), y)
    local pre = data.loader(cols, { batch_size = 16, prefetch = true })
    same_batches(collect(pre, 1), collect(data.loader(cols, { batch_size = 16 }), 1))
    assert.is_false(pre._prefetch_src)
    -- a data set of Lua samples accepts the option and ignores it
    local lua_ds = setmetatable({}, { __len = function() return 10 end,
                                      __index = function(_, i) return { flare.tensor({ i, -i }), i } end })
    local plain_lua = collect(data.loader(lua_ds, { batch_size = 3 }), 1)
    same_batches(collect(data.loader(lua_ds, { batch_size = 3, prefetch = true }), 1), plain_lua)
  end)

  it('applies transform to prefetched batches', function()
    local t = function(f) return { f[1] * 2, f[2] } end
    same_batches(collect(data.loader(ds, { batch_size = 13, transform = t, prefetch = true }), 1),
                 collect(data.loader(ds, { batch_size = 13, transform = t }), 1))
  end)

  it('survives a break mid-pass, then a full new pass', function()
    local opts = { batch_size = 5, shuffle = true, seed = 7 }
    local want = collect(data.loader(ds, opts), 2, 3)
    local popts = { batch_size = 5, shuffle = true, seed = 7, prefetch = true }
    local pre = data.loader(ds, popts)
    local got = collect(pre, 2, 3) -- each pass breaks with a gather pending
    same_batches(got, want)
    collectgarbage()
    local plain = data.loader(ds, opts)
    collect(plain, 2, 3)
    same_batches(collect(pre, 1), collect(plain, 1))
  end)

  it('joins a pending gather when the loader itself is dropped', function()
    for _ = 1, 5 do
      local pre = data.loader(ds, { batch_size = 30, prefetch = true })
      for a in pre do assert.equal(30, a:size(1)) break end
      pre = nil
      collectgarbage()
    end
  end)

  it('resumes exactly from a state_dict', function()
    local opts = { batch_size = 7, shuffle = true, seed = 4, drop_last = true }
    local ref = collect(data.loader(ds, opts), 1)
    local popts = { batch_size = 7, shuffle = true, seed = 4, drop_last = true, prefetch = true }
    local pre = data.loader(ds, popts)
    local first = collect(pre, 1, 3)
    local sd = pre:state_dict()
    assert.is_true(sd.in_pass)
    -- into a fresh loader, and back into the same one (its pending gather is dropped)
    for _, target in ipairs { data.loader(ds, popts), pre } do
      target:load_state_dict(sd)
      local rest = collect(target, 1)
      local got = {}
      for _, b in ipairs(first) do got[#got + 1] = b end
      for _, b in ipairs(rest) do got[#got + 1] = b end
      same_batches(got, ref)
    end
  end)
end)
