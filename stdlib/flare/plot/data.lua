-- flare.plot.data: turning what users pass to plot functions (tensors, Lua tables, numbers)
-- into flat Lua arrays and matrices, plus the arithmetic plots need: histograms, image
-- scaling, mosaics of images, and reading training logs (CSV). Pure Lua on x:totable(), so
-- it depends on no reduction in the core.
local M = {}

local core_ok, core = pcall(require, 'flare.core')

function M.is_tensor(v)
  if type(v) ~= 'userdata' then return false end
  if core_ok and core.is_tensor then return core.is_tensor(v) end
  local ok, r = pcall(function() return v.totable ~= nil and v.dim ~= nil end)
  return ok and r
end

-- Something that holds numbers: a tensor, or a table whose first element is a number (or
-- an empty table).
function M.is_data(v)
  if M.is_tensor(v) then return true end
  if type(v) ~= 'table' or getmetatable(v) ~= nil then return false end
  if v[1] == nil then return next(v) == nil end
  return type(v[1]) == 'number' or type(v[1]) == 'boolean'
end

local function num(v)
  if type(v) == 'boolean' then return v and 1 or 0 end
  return v
end

local function flatten_into(t, out)
  for i = 1, #t do
    local v = t[i]
    if type(v) == 'table' then flatten_into(v, out) else out[#out + 1] = num(v) end
  end
  return out
end

-- A flat array of the values of a tensor or a (nested) table of numbers.
function M.values(v, what)
  if M.is_tensor(v) then
    if v:dim() == 0 then return { num(v:item()) } end
    local t = v:totable()
    if v:dim() == 1 then
      if v:dtype() == 'bool' then for i = 1, #t do t[i] = num(t[i]) end end
      return t
    end
    return flatten_into(t, {})
  elseif type(v) == 'table' then
    return flatten_into(v, {})
  elseif type(v) == 'number' then
    return { v }
  end
  error(string.format('%s: expected a tensor or a table of numbers, got %s', what or 'plot',
                      type(v)), 3)
end

-- A number from a number or a one-element tensor.
function M.number(v, what)
  if type(v) == 'number' then return v end
  if M.is_tensor(v) then
    if v:numel() ~= 1 then
      error(string.format('%s: expected a number or a one-element tensor, got a tensor of %d elements',
                          what or 'plot', v:numel()), 3)
    end
    return num(M.values(v)[1])
  end
  error(string.format('%s: expected a number, got %s', what or 'plot', type(v)), 3)
end

-- The shape of a tensor or nested table, as an array of sizes.
function M.shape(v)
  if M.is_tensor(v) then
    local s = {}
    for i = 1, v:dim() do s[i] = v:size(i) end
    return s
  end
  local s = {}
  while type(v) == 'table' do
    s[#s + 1] = #v
    v = v[1]
  end
  return s
end

-- The integer dtypes whose images are read as 0..255.
local integral = { uint8 = true, int32 = true, int64 = true, int16 = true, int8 = true }

function M.is_integral(v)
  return M.is_tensor(v) and integral[v:dtype()] == true
end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end
M.finite = finite

-- Smallest and largest finite value (nil when there is none).
function M.range(vals)
  local lo, hi = math.huge, -math.huge
  for i = 1, #vals do
    local x = vals[i]
    if finite(x) then
      if x < lo then lo = x end
      if x > hi then hi = x end
    end
  end
  if lo > hi then return nil end
  return lo, hi
end

-- Histogram of `vals`: counts of `bins` equal bins over `range` (default: the finite min and
-- max). Values outside the range and non-finite values are left out (returned as `dropped`).
-- Returns counts, edges (bins + 1 of them), dropped.
function M.histogram(vals, bins, range)
  bins = bins or 40
  if math.type(bins) ~= 'integer' or bins < 1 then
    error('plot.hist: bins must be a positive integer, got ' .. tostring(bins), 3)
  end
  local lo, hi
  if range then
    lo, hi = range[1], range[2]
    if type(lo) ~= 'number' or type(hi) ~= 'number' or not (lo < hi) then
      error(string.format('plot.hist: range must be {lo, hi} with lo < hi, got {%s, %s}',
                          tostring(lo), tostring(hi)), 3)
    end
  else
    lo, hi = M.range(vals)
    if not lo then lo, hi = 0, 1 end
    if lo == hi then lo, hi = lo - 0.5, hi + 0.5 end
  end
  local counts, edges = {}, {}
  for i = 1, bins do counts[i] = 0 end
  local width = (hi - lo) / bins
  for i = 0, bins do edges[i + 1] = lo + i * width end
  edges[bins + 1] = hi
  local dropped = 0
  for i = 1, #vals do
    local x = vals[i]
    if x >= lo and x <= hi then   -- false for NaN
      local b = math.floor((x - lo) / width) + 1
      if b > bins then b = bins end -- the last bin includes hi, as numpy and torch do
      counts[b] = counts[b] + 1
    else
      dropped = dropped + 1
    end
  end
  return counts, edges, dropped
end

-- ---------------------------------------------------------------- images

-- An image as {h, w, gray = rows} or {h, w, rgb = {r rows, g rows, b rows}} from a 2-D
-- (H x W) or 3-D (C x H x W, C = 1 or 3) tensor or nested table.
function M.image(t, what)
  local shape = M.shape(t)
  local tab = M.is_tensor(t) and t:totable() or t
  if #shape == 2 then
    return { h = shape[1], w = shape[2], gray = tab }
  elseif #shape == 3 and shape[1] == 1 then
    return { h = shape[2], w = shape[3], gray = tab[1] }
  elseif #shape == 3 and shape[1] == 3 then
    return { h = shape[2], w = shape[3], rgb = tab }
  end
  error(string.format('%s: expected an image of shape HxW, 1xHxW or 3xHxW, got %s', what,
                      #shape == 0 and 'a scalar' or table.concat(shape, 'x')), 3)
end

local function planes(img)
  return img.gray and { img.gray } or img.rgb
end

function M.image_range(img)
  local lo, hi = math.huge, -math.huge
  for _, p in ipairs(planes(img)) do
    for r = 1, img.h do
      local row = p[r]
      for c = 1, img.w do
        local x = row[c]
        if finite(x) then
          if x < lo then lo = x end
          if x > hi then hi = x end
        end
      end
    end
  end
  if lo > hi then return 0, 1 end
  return lo, hi
end

-- The image with values mapped from [lo, hi] to [0, 1] and clipped (NaN becomes 0).
function M.normalize(img, lo, hi)
  local scale = hi > lo and 1 / (hi - lo) or 0
  local out = { h = img.h, w = img.w }
  local ps = {}
  for k, p in ipairs(planes(img)) do
    local q = {}
    for r = 1, img.h do
      local row, nrow = p[r], {}
      for c = 1, img.w do
        local x = (row[c] - lo) * scale
        if not (x >= 0) then x = 0 elseif x > 1 then x = 1 end
        nrow[c] = x
      end
      q[r] = nrow
    end
    ps[k] = q
  end
  if img.gray then out.gray = ps[1] else out.rgb = ps end
  return out
end

-- Images to lay out in a mosaic: from a 4-D N x C x H x W tensor (C = 1 or 3, or any C:
-- then each channel is its own gray image, one row per item, which is how conv filters are
-- shown), a 3-D N x H x W tensor, or a table of images. Returns a list of images, and the
-- number of columns suggested by the shape (or nil).
function M.image_list(t)
  if M.is_tensor(t) then
    local shape = M.shape(t)
    local tab = t:totable()
    local list = {}
    if #shape == 4 then
      local n, c, h, w = shape[1], shape[2], shape[3], shape[4]
      if c == 1 or c == 3 then
        for i = 1, n do list[i] = M.image(tab[i], 'plot.grid') end
        return list
      end
      for i = 1, n do
        for j = 1, c do list[#list + 1] = { h = h, w = w, gray = tab[i][j] } end
      end
      return list, c
    elseif #shape == 3 then
      for i = 1, shape[1] do list[i] = { h = shape[2], w = shape[3], gray = tab[i] } end
      return list
    elseif #shape == 2 then
      return { { h = shape[1], w = shape[2], gray = tab } }
    end
    error(string.format('plot.grid: expected N x C x H x W, N x H x W or a table of images, got a tensor of shape %s',
                        #shape == 0 and 'scalar' or table.concat(shape, 'x')), 3)
  end
  if type(t) ~= 'table' then
    error('plot.grid: expected a tensor or a table of images, got ' .. type(t), 3)
  end
  local list = {}
  for i, v in ipairs(t) do list[i] = M.image(v, 'plot.grid') end
  return list
end

-- A mosaic of images (each normalized to [0, 1] first: on its own when `each`, else over
-- all of them) separated by `pad` pixels of value `pad_value`, `ncol` per row.
function M.mosaic(list, ncol, pad, pad_value, each, range)
  local n = #list
  if n == 0 then error('plot.grid: no images', 3) end
  local h, w, rgb = list[1].h, list[1].w, list[1].rgb ~= nil
  for i, img in ipairs(list) do
    if img.h ~= h or img.w ~= w then
      error(string.format('plot.grid: all images must have one size: image 1 is %dx%d, image %d is %dx%d',
                          h, w, i, img.h, img.w), 3)
    end
    if img.rgb then rgb = true end
  end
  local glo, ghi
  if range then
    glo, ghi = range[1], range[2]
  elseif not each then
    glo, ghi = math.huge, -math.huge
    for _, img in ipairs(list) do
      local a, b = M.image_range(img)
      glo, ghi = math.min(glo, a), math.max(ghi, b)
    end
  end
  ncol = math.max(1, math.min(ncol, n))
  local nrow = (n + ncol - 1) // ncol
  local H, W = nrow * h + (nrow + 1) * pad, ncol * w + (ncol + 1) * pad
  local nplanes = rgb and 3 or 1
  local out = {}
  for k = 1, nplanes do
    local p = {}
    for r = 1, H do
      local row = {}
      for c = 1, W do row[c] = pad_value end
      p[r] = row
    end
    out[k] = p
  end
  for i, img in ipairs(list) do
    local lo, hi = glo, ghi
    if not lo then lo, hi = M.image_range(img) end
    local nimg = M.normalize(img, lo, hi)
    local src = nimg.gray and { nimg.gray, nimg.gray, nimg.gray } or nimg.rgb
    local gr, gc = (i - 1) // ncol, (i - 1) % ncol
    local r0, c0 = pad + gr * (h + pad), pad + gc * (w + pad)
    for k = 1, nplanes do
      local dst, s = out[k], src[k]
      for r = 1, h do
        local drow, srow = dst[r0 + r], s[r]
        for c = 1, w do drow[c0 + c] = srow[c] end
      end
    end
  end
  if rgb then return { h = H, w = W, rgb = out } end
  return { h = H, w = W, gray = out[1] }
end

-- ---------------------------------------------------------------- training logs

local function split_csv(line)
  local cells = {}
  for cell in (line .. ','):gmatch('([^,]*),') do
    cells[#cells + 1] = cell:match('^%s*"?(.-)"?%s*$')
  end
  return cells
end

-- Reads a CSV file with a header line. Returns the column names and the columns (arrays of
-- numbers with nil for empty or non-numeric cells), and the number of rows.
function M.read_csv(path)
  local f, err = io.open(path, 'r')
  if not f then error('plot.log: ' .. err, 3) end
  local header = f:read('l')
  if not header then
    f:close()
    error("plot.log: '" .. path .. "' is empty", 3)
  end
  local names = split_csv(header)
  local cols = {}
  for i = 1, #names do cols[i] = {} end
  local n = 0
  for line in f:lines() do
    if line:match('%S') then
      n = n + 1
      local cells = split_csv(line)
      for i = 1, #names do cols[i][n] = tonumber(cells[i]) end
    end
  end
  f:close()
  return names, cols, n
end

return M
