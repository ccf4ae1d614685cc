-- flare.plot.script: writes the gnuplot commands that draw a figure. A figure is a list of
-- panels (one, or several in a multiplot grid); a panel holds axis options and series
-- (x/y curves, boxes, images). Data goes inline as gnuplot datablocks, so nothing is
-- written to disk and every draw is complete on its own.
local M = {}

-- A gnuplot single-quoted string ('' stands for ').
local function q(s)
  return "'" .. tostring(s):gsub('[\r\n]', ' '):gsub("'", "''") .. "'"
end
M.quote = q

local function fmt(x)
  if x ~= x or x == math.huge or x == -math.huge then return 'NaN' end
  if math.type(x) == 'integer' then return tostring(x) end
  return string.format('%.9g', x)
end
M.fmt = fmt

local styles = {
  lines = 'lines', line = 'lines', points = 'points pt 7 ps 0.6', point = 'points pt 7 ps 0.6',
  linespoints = 'linespoints pt 7 ps 0.6', dots = 'dots', steps = 'steps',
  impulses = 'impulses', boxes = 'boxes fs solid 0.6',
}
M.styles = styles

local legend_words = { left = true, right = true, top = true, bottom = true, center = true,
                       outside = true, inside = true, box = true, opaque = true,
                       horizontal = true, vertical = true, above = true, below = true }

local palettes = {
  gray = 'set palette gray',
  viridis = "set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')",
  hot = 'set palette rgb 21,22,23',
  coolwarm = "set palette defined (0 '#3b4cc0', 0.5 '#dddddd', 1 '#b40426')",
}
M.palettes = palettes

local function range(r)
  local function b(v) return type(v) == 'number' and fmt(v) or '*' end
  return '[' .. b(r[1]) .. ':' .. b(r[2]) .. ']'
end

-- Keeps at most `max` points of a long curve for live drawing: the smallest and the largest
-- y of each bucket, in x order, so the envelope of a noisy loss stays visible.
local function decimate(x, y, max)
  local n = #y
  if not max or n <= max then return x, y end
  local b = math.ceil(n / (max // 2))
  local dx, dy = {}, {}
  for s = 1, n, b do
    local e = math.min(s + b - 1, n)
    local imin, imax = s, s
    for i = s + 1, e do
      local v = y[i]
      if v < y[imin] then imin = i end
      if v > y[imax] then imax = i end
    end
    local a, c = math.min(imin, imax), math.max(imin, imax)
    dx[#dx + 1], dy[#dy + 1] = x and x[a] or a, y[a]
    if c ~= a then dx[#dx + 1], dy[#dy + 1] = x and x[c] or c, y[c] end
  end
  return dx, dy
end

local function datablock(out, name, lines)
  out[#out + 1] = name .. ' << EOD'
  out[#out + 1] = table.concat(lines, '\n')
  out[#out + 1] = 'EOD'
end

local function xy_block(out, name, s, max)
  local x, y = decimate(s.x, s.y, max)
  local lines = {}
  if s.w then
    for i = 1, #y do lines[i] = fmt(x and x[i] or i) .. ' ' .. fmt(y[i]) .. ' ' .. fmt(s.w) end
  else
    for i = 1, #y do lines[i] = fmt(x and x[i] or i) .. ' ' .. fmt(y[i]) end
  end
  datablock(out, name, lines)
end

-- Images whose height or width is 1 are too small for gnuplot's `with image`: they are
-- written as x y value triples with each pixel split in 2 x 2.
local function image_block(out, name, img, lo, hi)
  local lines = {}
  local small = img.h < 2 or img.w < 2
  if img.gray and not small then
    for r = 1, img.h do
      local row, cells = img.gray[r], {}
      for c = 1, img.w do cells[c] = fmt(row[c]) end
      lines[r] = table.concat(cells, ' ')
    end
    datablock(out, name, lines)
    return 'matrix using 1:2:3 with image'
  end
  local rgb = img.rgb
  local scale = rgb and (hi > lo and 255 / (hi - lo) or 0)
  local function px(p, r, c)
    local v = (p[r][c] - lo) * scale
    if not (v >= 0) then return 0 elseif v > 255 then return 255 end
    return math.floor(v + 0.5)
  end
  local offs = small and { -0.25, 0.25 } or { 0 }
  for r = 1, img.h do
    for c = 1, img.w do
      local val
      if rgb then
        val = px(rgb[1], r, c) .. ' ' .. px(rgb[2], r, c) .. ' ' .. px(rgb[3], r, c)
      else
        val = fmt(img.gray[r][c])
      end
      for _, dy in ipairs(offs) do
        for _, dx in ipairs(offs) do
          lines[#lines + 1] = fmt(c - 1 + dx) .. ' ' .. fmt(r - 1 + dy) .. ' ' .. val
        end
      end
    end
  end
  datablock(out, name, lines)
  if rgb then return 'using 1:2:3:4:5 with rgbimage' end
  return 'using 1:2:3 with image'
end

-- Raises on a style or colour that gnuplot would not take.
function M.check_style(s)
  if s.style ~= nil and not styles[s.style] then
    error("plot: unknown style '" .. tostring(s.style) ..
          "' (expected lines, points, linespoints, dots, steps, impulses or boxes)", 0)
  end
  if s.color ~= nil and not tostring(s.color):match('^#?[%w]+$') then
    error("plot: bad color '" .. tostring(s.color) .. "' (a name like 'red' or '#rrggbb')", 0)
  end
end

local function series_with(s)
  local style = s.style or 'lines'
  -- a curve of one point would not show as a line
  if #s.y == 1 and (style == 'lines' or style == 'line' or style == 'steps') then
    style = 'linespoints'
  end
  local w = styles[style] or error("plot: unknown style '" .. tostring(s.style) ..
    "' (expected lines, points, linespoints, dots, steps, impulses or boxes)", 0)
  local extra = {}
  if s.color then
    if not tostring(s.color):match('^#?[%w]+$') then
      error("plot: bad color '" .. tostring(s.color) .. "' (a name like 'red' or '#rrggbb')", 0)
    end
    extra[#extra + 1] = 'lc rgb ' .. q(s.color)
  end
  if s.width then extra[#extra + 1] = 'lw ' .. fmt(tonumber(s.width) or 1) end
  if s.pointsize then extra[#extra + 1] = 'ps ' .. fmt(tonumber(s.pointsize) or 1) end
  local using = s.w and 'using 1:2:3' or 'using 1:2'
  return using .. ' with ' .. w .. (#extra > 0 and ' ' .. table.concat(extra, ' ') or '')
end

local function legend(out, v)
  if v == false then
    out[#out + 1] = 'unset key'
  elseif type(v) == 'string' then
    for word in v:gmatch('%S+') do
      if not legend_words[word] then
        error("plot: bad legend position '" .. v .. "' (words like 'top left', 'bottom right', 'outside')", 0)
      end
    end
    out[#out + 1] = 'set key ' .. v
  else
    out[#out + 1] = 'set key'
  end
end

-- Commands for one panel: its settings, then one `plot` command.
local function panel_commands(out, blocks, p, pi, ctx)
  local o = p.opts
  out[#out + 1] = 'reset'
  if o.title or (ctx.single and ctx.title) then
    out[#out + 1] = 'set title ' .. q(o.title or ctx.title)
  end
  if o.xlabel then out[#out + 1] = 'set xlabel ' .. q(o.xlabel) end
  if o.ylabel then out[#out + 1] = 'set ylabel ' .. q(o.ylabel) end
  if o.logx then out[#out + 1] = "set logscale x\nset format x '%g'" end
  if o.logy then out[#out + 1] = "set logscale y\nset format y '%g'" end
  if o.grid then out[#out + 1] = 'set grid' end
  legend(out, o.legend)
  if o.xtics then
    local t = {}
    for i, lab in ipairs(o.xtics) do t[i] = q(lab[1]) .. ' ' .. fmt(lab[2]) end
    out[#out + 1] = 'set xtics (' .. table.concat(t, ', ') .. ')' ..
      (#o.xtics > 8 and ' rotate by -45' or '')
  end
  local plots = {}
  for si, s in ipairs(p.series) do
    local name = string.format('$p%ds%d', pi, si)
    if s.kind == 'image' then
      local img = s.img
      out[#out + 1] = 'set size ratio -1'
      out[#out + 1] = string.format('set xrange [-0.5:%s]', fmt(img.w - 0.5))
      out[#out + 1] = string.format('set yrange [%s:-0.5]', fmt(img.h - 0.5))
      out[#out + 1] = 'unset tics\nunset key'
      if not o.colorbox then out[#out + 1] = 'unset colorbox' end
      out[#out + 1] = palettes[s.palette or 'gray'] or palettes.gray
      out[#out + 1] = string.format('set cbrange [%s:%s]', fmt(s.lo), fmt(s.hi))
      local how = image_block(blocks, name, img, s.lo, s.hi)
      plots[#plots + 1] = name .. ' ' .. how .. ' notitle'
    elseif #s.y > 0 then
      xy_block(blocks, name, s, ctx.max_points)
      plots[#plots + 1] = name .. ' ' .. series_with(s) .. ' title ' .. q(s.title or '')
    end
  end
  if o.xrange then out[#out + 1] = 'set xrange ' .. range(o.xrange) end
  if o.yrange then out[#out + 1] = 'set yrange ' .. range(o.yrange) end
  if #plots == 0 then
    -- nothing to draw yet: an empty frame with a note, no error from gnuplot
    out[#out + 1] = "set label 1 'no data yet' at graph 0.5, graph 0.5 center"
    out[#out + 1] = 'unset key'
    out[#out + 1] = 'set xrange [0:1]\nset yrange [0:1]'
    out[#out + 1] = 'plot 1/0 notitle'
  else
    out[#out + 1] = 'plot ' .. table.concat(plots, ', \\\n  ')
  end
end

-- The commands that draw `fig` on the current terminal and output. opts.max_points thins
-- long curves (live drawing); opts.dumb marks the text terminal.
function M.render(fig, opts)
  opts = opts or {}
  local panels = fig.panels
  local ctx = { single = #panels == 1, title = fig.title, max_points = opts.max_points }
  local blocks, out = {}, {}
  if #panels == 1 then
    panel_commands(out, blocks, panels[1], 1, ctx)
  else
    local rows, cols = fig.layout and fig.layout[1], fig.layout and fig.layout[2]
    if not rows then
      cols = math.ceil(math.sqrt(#panels))
      rows = math.ceil(#panels / cols)
    end
    out[#out + 1] = 'reset'
    out[#out + 1] = string.format('set multiplot layout %d,%d%s', rows, cols,
                                  fig.title and ' title ' .. q(fig.title) or '')
    for i, p in ipairs(panels) do panel_commands(out, blocks, p, i, ctx) end
    out[#out + 1] = 'unset multiplot'
  end
  return table.concat(blocks, '\n') .. '\n' .. table.concat(out, '\n') .. '\n'
end

return M
