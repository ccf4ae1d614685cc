-- flare.plot: live plots through gnuplot. Curves, scatter plots, histograms, bar charts,
-- images and image mosaics; figures that grow point by point while a model trains and redraw
-- at most every `interval` milliseconds; saving to PNG, SVG or PDF.
--
-- Each figure owns one gnuplot process (started when it first draws), ended when the figure
-- is closed, garbage collected, or when Lua exits. Where figures draw is chosen once: a window
-- (qt, wxt, x11) when there is a display, else inside the terminal (sixel, or gnuplot's
-- `dumb` text plot), else only to files. See plot.backend() and plot.output().
local gp = require 'flare.plot.gnuplot'
local data = require 'flare.plot.data'
local script = require 'flare.plot.script'

local M = {}

-- Defaults that plot.config changes.
local config = {
  interval = nil,       -- ms between live redraws; nil: by backend (below)
  max_points = 4000,    -- live redraws thin longer curves (saved files get every point)
  size = nil,           -- {w, h} in pixels (window, sixel, files) or characters (dumb)
}
local default_interval = { window = 200, sixel = 1000, dumb = 2000, file = 1000, none = 1000 }

-- Wall-clock seconds: flare.clock from the core when it exists, else /proc/uptime (10 ms
-- steps), else os.clock (processor time, which stalls while the process waits).
local core_ok, core = pcall(require, 'flare.core')
local function readable(path)
  local f = io.open(path, 'r')
  if f then f:close() end
  return f ~= nil
end
local now
if core_ok and type(core.clock) == 'function' then
  now = core.clock
elseif readable('/proc/uptime') then
  now = function()
    local f = io.open('/proc/uptime', 'r')
    if not f then return os.clock() end
    local t = f:read('n')
    f:close()
    return t or os.clock()
  end
else
  now = os.clock
end

--- plot.now() -> seconds
-- The wall clock the redraw interval is measured with.
M.now = function() return now() end

-- ---------------------------------------------------------------- warnings

local warned = {}

-- Prints `msg` once per session (per key) on stderr, or hands it to plot.on_warning.
local function warn_once(key, msg)
  if warned[key] then return end
  warned[key] = true
  if M.on_warning then M.on_warning(msg) else io.stderr:write('flare.plot: ', msg, '\n') end
end

local function gnuplot_missing()
  local p = gp.probe()
  if p.ok then return nil end
  warn_once('missing', p.why .. '; figures are kept but not drawn. Install gnuplot ' ..
            '(`make deps`, or apt-get install gnuplot-nox) or set FLARE_GNUPLOT to its path.')
  return p.why
end

-- ---------------------------------------------------------------- where figures draw

local output_path -- set by plot.output: figures draw only into this file (and numbered ones)
local output_count = 0

local last_choice -- the latest automatic or forced choice, for help(plot)
local update_doc

-- The backend choice for a new figure: {backend, terminal, why}.
local function choose(name)
  if name then return gp.resolve(name, 'asked by the figure') end
  local c
  if output_path then
    c = { backend = 'file', why = 'plot.output(' .. string.format('%q', output_path) .. ')' }
  else
    -- FLARE_PLOT may name a backend this machine lacks: warn and choose automatically,
    -- rather than stop a training script
    local ok, err = pcall(gp.choose)
    if ok then
      c = err
    else
      warn_once('backend', tostring(err) .. '; choosing automatically')
      gp.settings.backend = nil
      c = gp.choose()
    end
  end
  if c ~= last_choice then
    last_choice = c
    update_doc()
  end
  return c
end

--- plot.backend([name]) -> name, terminal, why
-- With a name, forces where new figures draw: 'window' (or 'qt', 'wxt', 'x11'), 'sixel',
-- 'dumb', 'file' (only plot.output and fig:save), 'none', or 'auto' to choose again.
-- Returns the current choice and the reason for it.
function M.backend(name)
  if name ~= nil then
    if name == 'auto' then
      gp.settings.backend = nil
      gp.forget_choice()
    else
      gp.resolve(name, 'plot.backend') -- raises on a name this gnuplot cannot do
      gp.settings.backend = name
    end
  end
  local c = choose()
  return c.backend, c.terminal, c.why
end

--- plot.output(path | nil)
-- Figures made from now on draw only into files: the first into `path`, later ones into
-- path-2.png, path-3.png... (same extension), rewritten on every redraw. nil goes back to
-- the automatic choice.
function M.output(path)
  if path ~= nil and type(path) ~= 'string' then
    error("plot.output: expected a file name or nil, got " .. type(path), 2)
  end
  if path then
    local t = gp.file_terminal(path)
    if not t and gp.probe().ok then
      error("plot.output: cannot write '" .. path .. "' (expected .png, .svg, .pdf, .jpg, .gif or .txt)", 2)
    end
  end
  output_path, output_count = path, 0
  pcall(choose) -- keeps help(plot) up to date
end

local function next_output()
  output_count = output_count + 1
  if output_count == 1 then return output_path end
  local stem, ext = output_path:match('^(.-)(%.[%w]+)$')
  return (stem or output_path) .. '-' .. output_count .. (ext or '')
end

-- ---------------------------------------------------------------- figures

local Figure = {}
Figure.__index = Figure
Figure.__name = 'flare.plot.Figure'
M.Figure = Figure

local open_figures = setmetatable({}, { __mode = 'k' })
local current = setmetatable({}, { __mode = 'v' }) -- current.fig: target of plot.line & co
local default_fig                                   -- held: a figure made by plot.line & co
local next_id = 0

local panel_keys = { title = true, xlabel = true, ylabel = true, logx = true, logy = true,
                     xrange = true, yrange = true, legend = true, grid = true, colorbox = true }

local function new_panel(opts)
  local p = { opts = {}, series = {}, by_name = {} }
  if opts then
    for k in pairs(panel_keys) do p.opts[k] = opts[k] end
  end
  return p
end

local forced -- set while a figure method (fig:line ...) runs the module function

local function check_opts(opts, what)
  if opts ~= nil and type(opts) ~= 'table' then
    error(string.format('%s: expected an options table, got %s', what, type(opts)), 3)
  end
  return opts or {}
end

--- plot.figure([opts]) -> fig
-- A new figure; it becomes the target of plot.line & co. It draws when data arrives, and
-- its gnuplot process ends with fig:close(), when the figure is garbage collected, or at exit.
-- opts: title, xlabel, ylabel, logx, logy, xrange = {lo, hi}, yrange, legend, grid,
-- layout = {rows, cols}, size = {w, h}, interval (ms between live redraws), backend,
-- output (a file the figure draws into), persist (windows outlive the figure).
function M.figure(opts)
  opts = check_opts(opts, 'plot.figure')
  local c = choose(opts.backend)
  next_id = next_id + 1
  local fig = setmetatable({
    id = next_id,
    title = opts.title,
    layout = opts.layout,
    panels = { new_panel(opts) },
    defaults = new_panel(opts).opts, -- axis options for panels that replace the first
    active = nil,
    backend = c.backend,
    terminal = c.terminal,
    why = c.why,
    output = opts.output,
    size = opts.size or config.size,
    persist = opts.persist,
    interval = (opts.interval or config.interval or default_interval[c.backend]) / 1000,
    max_points = opts.max_points or config.max_points,
    last_draw = nil,
    draws = 0,        -- redraws so far (the rate limit is visible in it)
    draw_cost = 0,    -- seconds the last redraw kept us waiting
    dirty = false,
    closed = false,
  }, Figure)
  if fig.backend == 'file' and not fig.output and output_path then fig.output = next_output() end
  if fig.output and fig.backend ~= 'file' and not opts.backend then
    fig.backend, fig.why = 'file', 'output given'
  end
  if fig.layout ~= nil and (type(fig.layout) ~= 'table' or math.type(fig.layout[1]) ~= 'integer'
                            or math.type(fig.layout[2]) ~= 'integer') then
    error('plot.figure: layout must be {rows, cols}', 2)
  end
  open_figures[fig] = true
  if not opts._keep_current then current.fig = fig end
  return fig
end

function Figure:__tostring()
  local n, pts = 0, 0
  for _, p in ipairs(self.panels) do
    for _, s in ipairs(p.series) do
      n = n + 1
      pts = pts + (s.y and #s.y or 0)
    end
  end
  return string.format("plot.Figure %d%s (%s%s, %d series, %d points)", self.id,
                       self.title and " '" .. self.title .. "'" or '',
                       self.closed and 'closed' or self.backend,
                       self.output and ' ' .. self.output or '', n, pts)
end

-- The gnuplot process, started on first use with this figure's terminal.
function Figure:_process()
  if self.proc and self.proc:is_open() then
    if self.proc:alive() then return self.proc end
    local msg = self.proc:messages()
    warn_once('died' .. self.id, string.format('gnuplot of figure %d exited%s; it will not redraw',
              self.id, msg ~= '' and ': ' .. msg:gsub('%s+$', '') or ''))
    self.proc:close()
    self.dead = true
    return nil
  end
  if self.dead or gnuplot_missing() then return nil end
  local terminal_out = self.backend == 'dumb' or self.backend == 'sixel'
  local proc, err = gp.start(terminal_out)
  if not proc then
    warn_once('start', err)
    return nil
  end
  self.proc = proc
  proc:send(self:_terminal_command() .. '\n')
  return proc
end

function Figure:_terminal_command()
  local b, size = self.backend, self.size
  if b == 'window' then
    local t = self.terminal
    local cmd = string.format('set terminal %s %d title %s', t, self.id,
                              script.quote(self.title or ('flare figure ' .. self.id)))
    if size then cmd = cmd .. string.format(' size %d,%d', size[1], size[2]) end
    if self.persist then cmd = cmd .. ' persist' end
    return cmd .. '\nset termoption noenhanced'
  elseif b == 'sixel' then
    local w, h = 640, 400
    if size then w, h = size[1], size[2] end
    return string.format('set terminal sixelgd size %d,%d truecolor\nset termoption noenhanced', w, h)
  elseif b == 'dumb' then
    local w, h
    if size then
      w, h = size[1], size[2]
    else
      -- the width of the terminal; at most its height, and not much more than a third of
      -- its width, so that a prompt or a progress line stays in view
      local cols, rows = gp.terminal_size()
      w, h = cols, math.max(10, math.min(rows - 2, cols // 3 + 2))
    end
    local colors = ''
    if os.getenv('NO_COLOR') == nil and os.execute('test -t 1') == true then colors = ' ansi' end
    return string.format('set terminal dumb size %d,%d%s', w, h, colors)
  elseif b == 'file' and self.output then
    local t, sz = gp.file_terminal(self.output, size)
    if not t then return 'set terminal unknown' end
    return string.format('set terminal %s %s\nset termoption noenhanced', t, sz)
  end
  return 'set terminal unknown'
end

local function has_only_images(fig)
  for _, p in ipairs(fig.panels) do
    if #p.series == 0 then return false end
    for _, s in ipairs(p.series) do
      if s.kind ~= 'image' then return false end
    end
  end
  return true
end

-- Images as text, for the dumb terminal (gnuplot's own dumb terminal draws no images).
local ramp = ' .:-=+*#%@'
local function ascii_images(fig, cols, rows)
  local out = {}
  if fig.title then out[#out + 1] = fig.title end
  for _, p in ipairs(fig.panels) do
    for _, s in ipairs(p.series) do
      local img = s.img
      if p.opts.title and p.opts.title ~= fig.title then out[#out + 1] = p.opts.title end
      -- a character is about twice as tall as it is wide
      local k = math.min(cols / img.w, 2 * math.max(4, rows - 2) / img.h, 2)
      local cw, ch = math.max(1, math.floor(img.w * k)), math.max(1, math.floor(img.h * k / 2))
      local scale = s.hi > s.lo and 1 / (s.hi - s.lo) or 0
      for r = 1, ch do
        local line = {}
        local pr = math.min(img.h, math.floor((r - 0.5) * img.h / ch) + 1)
        for c = 1, cw do
          local pc = math.min(img.w, math.floor((c - 0.5) * img.w / cw) + 1)
          local v
          if img.rgb then
            v = 0.299 * img.rgb[1][pr][pc] + 0.587 * img.rgb[2][pr][pc] + 0.114 * img.rgb[3][pr][pc]
          else
            v = img.gray[pr][pc]
          end
          v = (v - s.lo) * scale
          if not (v >= 0) then v = 0 elseif v > 1 then v = 1 end
          local i = math.floor(v * (#ramp - 1) + 0.5) + 1
          line[c] = ramp:sub(i, i)
        end
        out[#out + 1] = table.concat(line)
      end
    end
  end
  return table.concat(out, '\n') .. '\n'
end

--- fig:draw() -> fig
-- Draws the figure now, whatever the time since the last redraw.
function Figure:draw()
  if self.closed then error('plot: figure ' .. self.id .. ' is closed', 2) end
  self.dirty = false
  local t0 = now()
  self.last_draw = t0
  self.draws = self.draws + 1
  local b = self.backend
  if b == 'none' or (b == 'file' and not self.output) then return self end
  if b == 'dumb' and has_only_images(self) then
    local cols, rows = gp.terminal_size()
    if self.size then cols, rows = self.size[1], self.size[2] end
    io.stdout:write(ascii_images(self, cols, rows))
    io.stdout:flush()
    return self
  end
  local proc = self:_process()
  if not proc then return self end
  local text = script.render(self, { max_points = self.max_points })
  if b == 'file' then
    text = 'set output ' .. script.quote(self.output) .. '\n' .. text .. 'unset output\n'
  end
  if b == 'dumb' or b == 'sixel' then io.stdout:flush() end
  proc:send(text)
  proc:flush()
  if b == 'dumb' or b == 'sixel' then
    -- wait for the picture, so that what Lua prints next comes after it
    proc:sync(5)
  end
  -- A write blocks while gnuplot is still busy with the previous picture: the next redraw
  -- waits for the interval after this one ended, and for 3 times what it cost, so that
  -- drawing never takes more than a quarter of a training loop's time.
  local t1 = now()
  self.last_draw, self.draw_cost = t1, t1 - t0
  local msg = proc:messages()
  if msg:match('line %d+:') and not msg:match('warning') then
    warn_once('gnuplot' .. self.id, 'gnuplot: ' .. msg:gsub('%s+$', ''))
  end
  return self
end

-- Draws if the figure changed and `interval` has passed since the last redraw.
function Figure:_maybe_draw()
  self.dirty = true
  local t = now()
  if not self.last_draw or t - self.last_draw >= math.max(self.interval, 3 * self.draw_cost) then
    self:draw()
  end
end

--- fig:flush()
-- Draws the figure if points arrived since the last redraw.
function Figure:flush()
  if self.dirty and not self.closed then self:draw() end
  return self
end

local function find_series(fig, name)
  for pi, p in ipairs(fig.panels) do
    local s = p.by_name[name]
    if s then return s, pi end
  end
end

local function target_panel(fig, opts)
  local i = opts and opts.panel or fig.active or 1
  if math.type(i) ~= 'integer' or i < 1 then
    error('plot: panel must be a positive integer, got ' .. tostring(i), 3)
  end
  for j = #fig.panels + 1, i do fig.panels[j] = new_panel() end
  return fig.panels[i], i
end

--- fig:add(name, [x,] y [, opts]) -> fig
-- Appends the point (x, y) to the curve `name` (made on first use; x defaults to the
-- number of points so far + 1) and redraws at most every `interval` ms. x and y may be
-- numbers or one-element tensors. opts (first use only): panel, style, color, width.
function Figure:add(name, x, y, opts)
  if self.closed then error('plot: figure ' .. self.id .. ' is closed', 2) end
  if type(name) ~= 'string' and type(name) ~= 'number' then
    error('bad argument #1 to \'add\' (series name expected, got ' .. type(name) .. ')', 2)
  end
  if y == nil or type(y) == 'table' then
    y, opts, x = x, y, nil
  end
  y = data.number(y, 'fig:add')
  local s = find_series(self, name)
  if not s then
    opts = opts or {}
    local p = target_panel(self, opts)
    s = { title = tostring(name), x = {}, y = {}, style = opts.style, color = opts.color,
          width = opts.width }
    p.series[#p.series + 1] = s
    p.by_name[name] = s
  end
  local n = #s.y + 1
  x = x == nil and n or data.number(x, 'fig:add')
  s.x[n], s.y[n] = x, y
  self:_maybe_draw()
  return self
end

--- fig:series(name) -> x, y
-- The points of curve `name` (copies), or nil.
function Figure:series(name)
  local s = find_series(self, name)
  if not s then return nil end
  local x = {}
  for i = 1, #s.y do x[i] = s.x and s.x[i] or i end
  return x, table.move(s.y, 1, #s.y, 1, {})
end

--- fig:set(opts) -> fig
-- Changes axis options of a panel (the active one, or opts.panel) and the figure's title:
-- title, xlabel, ylabel, logx, logy, xrange, yrange, legend, grid, colorbox.
function Figure:set(opts)
  opts = check_opts(opts, 'fig:set')
  local p = target_panel(self, opts)
  for k in pairs(panel_keys) do
    if opts[k] ~= nil then p.opts[k] = opts[k] end
  end
  if #self.panels == 1 and opts.title then self.title = opts.title end
  self.dirty = true
  return self
end

--- fig:subplot(i [, opts]) -> fig
-- Makes panel i the target of the next fig:line & co (the figure keeps its other panels;
-- layout from plot.figure{layout = {rows, cols}} or automatic).
function Figure:subplot(i, opts)
  if math.type(i) ~= 'integer' or i < 1 then
    error('bad argument #1 to \'subplot\' (positive integer expected, got ' .. tostring(i) .. ')', 2)
  end
  self.active = i
  target_panel(self, { panel = i })
  if opts then self:set(opts) end
  return self
end

--- fig:clear() -> fig
function Figure:clear()
  self.panels = { new_panel() }
  self.active = nil
  self.dirty = true
  return self
end

local supported_ext = '.png, .svg, .pdf, .jpg, .gif, .eps or .txt'

--- fig:save(path [, {size = {w, h}}]) -> path | nil, message
-- Writes the figure with every point to a file; the format follows the extension (png, svg,
-- pdf, jpg, gif, eps, txt for a dumb text plot). Returns when the file is complete.
-- Without gnuplot it warns once and returns nil and the reason.
function Figure:save(path, opts)
  if type(path) ~= 'string' then
    error("bad argument #1 to 'save' (file name expected, got " .. type(path) .. ')', 2)
  end
  opts = check_opts(opts, 'fig:save')
  local why = gnuplot_missing()
  if why then return nil, why end
  local t, sz, ext = gp.file_terminal(path, opts.size)
  if not t then
    if ext == 'pdf' then
      return nil, "this gnuplot has no pdfcairo terminal: save as .svg or .png instead"
    end
    error(string.format("fig:save: cannot write '%s' (expected %s)", path, supported_ext), 2)
  end
  if t == 'dumb' and has_only_images(self) then
    local f, err = io.open(path, 'w')
    if not f then return nil, err end
    f:write(ascii_images(self, opts.size and opts.size[1] or 80, opts.size and opts.size[2] or 25))
    f:close()
    return path
  end
  if self.closed then error('plot: figure ' .. self.id .. ' is closed', 2) end
  local proc = self:_process()
  if not proc then return nil, 'gnuplot is not running' end
  os.remove(path)
  proc:messages() -- skip what came before
  proc:send(string.format('set terminal push\nset terminal %s %s\n%sset output %s\n', t, sz,
                          t == 'dumb' and '' or 'set termoption noenhanced\n', script.quote(path)))
  proc:send(script.render(self))
  proc:send('unset output\nset terminal pop\n')
  local ok, err = proc:sync(60)
  if not ok then return nil, err end
  local msg = proc:messages()
  local f = io.open(path, 'rb')
  local size = f and f:seek('end') or 0
  if f then f:close() end
  if size == 0 then
    return nil, string.format("gnuplot did not write '%s'%s", path,
                              msg ~= '' and ': ' .. msg:gsub('%s+$', '') or '')
  end
  return path
end

--- fig:close()
-- Ends the figure's gnuplot process (and closes its window). Points that arrived since the
-- last redraw are drawn first into a file (plot.output) or the terminal. Safe to call twice.
function Figure:close()
  if self.closed then return end
  if self.dirty and self.proc and self.proc:is_open() and self.backend ~= 'window' then
    pcall(self.draw, self)
  end
  if self.proc then self.proc:close() end
  self.proc = nil
  self.closed = true
  open_figures[self] = nil
  if default_fig == self then default_fig = nil end
end

Figure.__gc = Figure.close
Figure.__close = Figure.close

--- plot.close([fig])
-- Closes `fig`, or the current figure.
function M.close(fig)
  fig = fig or current.fig
  if fig then fig:close() end
end

--- plot.close_all()
-- Closes every open figure.
function M.close_all()
  local list = {}
  for fig in pairs(open_figures) do list[#list + 1] = fig end
  for _, fig in ipairs(list) do fig:close() end
end

--- plot.flush()
-- Draws every figure that received points since its last redraw. The prompt can call it
-- before it waits for input, so that no point stays hidden behind the rate limit.
function M.flush()
  for fig in pairs(open_figures) do
    if fig.dirty and not fig.closed then pcall(fig.draw, fig) end
  end
end

--- plot.gcf() -> fig
-- The current figure (made if there is none).
function M.gcf(opts)
  local fig = current.fig
  if fig and not fig.closed then return fig end
  fig = M.figure(opts)
  default_fig = fig
  return fig
end

-- The figure a module-level call draws into: opts.figure, or the current figure.
local function target(opts)
  if forced then return forced end
  if opts.figure ~= nil then
    if getmetatable(opts.figure) ~= Figure then
      error('plot: opts.figure must be a figure from plot.figure()', 3)
    end
    return opts.figure
  end
  return M.gcf { backend = opts.backend, size = opts.size }
end

-- Puts `series` into the figure, applying panel options, and draws it.
local function show(fig, what, series, opts, panel_defaults)
  if fig.closed then error(what .. ': figure ' .. fig.id .. ' is closed', 3) end
  local p
  if opts.panel or fig.active then
    p = target_panel(fig, opts)
    if not opts.hold then
      p.series, p.by_name, p.opts = {}, {}, {}
    end
  elseif opts.hold then
    p = fig.panels[1]
  else
    fig.panels = { new_panel(fig.defaults) }
    fig.layout = nil
    p = fig.panels[1]
  end
  for k, v in pairs(panel_defaults or {}) do p.opts[k] = v end
  for k in pairs(panel_keys) do
    if opts[k] ~= nil then p.opts[k] = opts[k] end
  end
  if #fig.panels == 1 and opts.title then fig.title = opts.title end
  for _, s in ipairs(series) do
    p.series[#p.series + 1] = s
    if s.title and s.kind ~= 'image' then p.by_name[s.title] = s end
  end
  fig:draw()
  return fig
end

-- ---------------------------------------------------------------- curves

-- The series of a 2-D tensor's columns, or of a flat one.
local function y_series(y, x, what)
  if data.is_tensor(y) and y:dim() == 2 then
    local t, out = y:totable(), {}
    for j = 1, y:size(2) do
      local col = {}
      for i = 1, #t do col[i] = t[i][j] end
      out[j] = { x = x, y = col, title = tostring(j) }
    end
    return out
  end
  return { { x = x, y = data.values(y, what) } }
end

local function spec_series(e, name, what)
  local list
  if data.is_data(e) then
    list = y_series(e, nil, what)
  elseif type(e) == 'table' and data.is_data(e[1]) then
    if data.is_data(e[2]) then
      list = y_series(e[2], data.values(e[1], what), what)
    else
      list = y_series(e[1], nil, what)
    end
    local title = e.title or (type(e[2]) == 'string' and e[2]) or (type(e[3]) == 'string' and e[3])
    for _, s in ipairs(list) do
      s.title = title or name or s.title
      s.style, s.color, s.width = e.style, e.color, e.width
    end
    return list
  else
    error(string.format('%s: expected a tensor, a table of numbers or {x, y, title = ...}, got %s',
                        what, type(e)), 4)
  end
  if name then
    for _, s in ipairs(list) do s.title = #list > 1 and name .. ' ' .. s.title or name end
  end
  return list
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- Reads the forms line and scatter accept: (y), (x, y), (x, {y1, y2}), ({series...}),
-- ({name = y, ...}), each followed by options. Returns the series and the options.
local function parse_curves(what, a, b, c)
  local series, opts = {}, nil
  if data.is_data(a) then
    if data.is_data(b) then
      opts = c
      local x = data.values(a, what)
      series = y_series(b, x, what)
    elseif type(b) == 'table' and b[1] ~= nil and data.is_data(b[1]) then
      opts = c
      local x = data.values(a, what)
      for i, y in ipairs(b) do
        for _, s in ipairs(y_series(y, x, what)) do
          s.title = tostring(i)
          series[#series + 1] = s
        end
      end
    else
      opts = b
      series = y_series(a, nil, what)
    end
  elseif type(a) == 'table' and getmetatable(a) == nil then
    opts = b
    if a[1] ~= nil then
      for i, e in ipairs(a) do
        for _, s in ipairs(spec_series(e, nil, what)) do series[#series + 1] = s end
      end
    else
      for _, k in ipairs(sorted_keys(a)) do
        for _, s in ipairs(spec_series(a[k], tostring(k), what)) do series[#series + 1] = s end
      end
    end
  else
    error(string.format('%s: expected a tensor or a table of numbers, got %s', what, type(a)), 3)
  end
  opts = check_opts(opts, what)
  for i, s in ipairs(series) do
    s.kind = 'xy'
    -- a lone unnamed curve needs no legend entry; others are numbered
    if s.title == nil then s.title = #series == 1 and (opts.label or '') or tostring(i) end
    if s.x and #s.x ~= #s.y then
      error(string.format('%s: x has %d values but y has %d', what, #s.x, #s.y), 3)
    end
    if opts.titles and opts.titles[i] then s.title = opts.titles[i] end
    s.style = s.style or opts.style
    s.color = s.color or (#series == 1 and opts.color) or nil
    s.width = s.width or opts.width
    script.check_style(s)
  end
  return series, opts
end

--- plot.line(y [, opts]) -> fig
-- Curves from tensors or tables of numbers. Also plot.line(x, y [, opts]),
-- plot.line(x, {y1, y2}), plot.line({series...} [, opts]), plot.line({name = y, ...} [, opts]).
-- A 2-D tensor gives one curve per column; a
-- series is y, or {x, y, title = , style = , color = , width = }. opts: title, xlabel,
-- ylabel, logx, logy, xrange = {lo, hi}, yrange, legend (false or 'top left' ...), grid,
-- style ('lines', 'points', 'linespoints', 'steps', 'impulses', 'dots', 'boxes'), color,
-- width, titles = {...}, hold (add to the figure), panel, figure.
function M.line(a, b, c)
  local series, opts = parse_curves('plot.line', a, b, c)
  return show(target(opts), 'plot.line', series, opts)
end

--- plot.scatter(x, y [, opts]) -> fig
-- Points; takes the same forms and options as plot.line (style defaults to 'points').
function M.scatter(a, b, c)
  local series, opts = parse_curves('plot.scatter', a, b, c)
  for _, s in ipairs(series) do s.style = s.style or 'points' end
  return show(target(opts), 'plot.scatter', series, opts)
end

-- ---------------------------------------------------------------- histograms and bars

-- Named tensors from a model (its named_parameters()), a table name -> tensor, an array of
-- {name, tensor} pairs, an iterator of (name, tensor), or an array of tensors.
local function named_tensors(t)
  if type(t) == 'table' and type(t.named_parameters) == 'function' then
    t = t:named_parameters()
  end
  local list = {}
  if type(t) == 'function' then
    for name, v in t do list[#list + 1] = { tostring(name), v } end
    return list
  end
  if t[1] ~= nil then
    for i, e in ipairs(t) do
      if type(e) == 'table' and getmetatable(e) == nil and e[2] ~= nil then
        list[i] = { tostring(e[1]), e[2] }
      else
        list[i] = { tostring(i), e }
      end
    end
    return list
  end
  for _, k in ipairs(sorted_keys(t)) do list[#list + 1] = { tostring(k), t[k] } end
  return list
end

local function grad_of(v)
  local ok, g = pcall(function() return v.grad end)
  if ok and g ~= nil and data.is_tensor(g) then return g end
  return nil
end

local function hist_series(vals, opts)
  local counts, edges = data.histogram(vals, opts.bins, opts.range)
  local width = edges[2] - edges[1]
  local total = 0
  for _, n in ipairs(counts) do total = total + n end
  local x, y = {}, {}
  for i, n in ipairs(counts) do
    x[i] = (edges[i] + edges[i + 1]) / 2
    y[i] = opts.density and total > 0 and n / (total * width) or n
  end
  return { kind = 'xy', style = 'boxes', x = x, y = y, w = width, color = opts.color,
           title = '', counts = counts, edges = edges }
end

local function stats_title(name, vals)
  local n, sum, sq = 0, 0, 0
  for _, v in ipairs(vals) do
    if data.finite(v) then n, sum = n + 1, sum + v end
  end
  local mean = n > 0 and sum / n or 0
  for _, v in ipairs(vals) do
    if data.finite(v) then sq = sq + (v - mean) ^ 2 end
  end
  return string.format('%s  (mean %.3g, std %.3g)', name, mean, n > 1 and math.sqrt(sq / (n - 1)) or 0)
end

--- plot.histogram(t [, {bins, range}]) -> counts, edges
-- The numbers plot.hist draws: counts of `bins` (default 40) equal bins over `range`
-- (default: min and max of the finite values); edges has bins + 1 entries.
function M.histogram(t, opts)
  opts = check_opts(opts, 'plot.histogram')
  local counts, edges = data.histogram(data.values(t, 'plot.histogram'), opts.bins, opts.range)
  return counts, edges
end

--- plot.hist(t [, opts]) -> fig
-- Histogram of the values of a tensor or table (opts: bins = 40, range = {lo, hi},
-- density, color, title, xlabel, logy). Given named tensors instead (model:named_parameters(),
-- a table name -> tensor, or {{name, tensor}, ...}), one panel per tensor: the parameter
-- distribution view; opts.grads adds a panel with each parameter's gradient.
function M.hist(t, opts)
  opts = check_opts(opts, 'plot.hist')
  if data.is_data(t) then
    local s = hist_series(data.values(t, 'plot.hist'), opts)
    return show(target(opts), 'plot.hist', { s }, opts,
                { legend = false, ylabel = opts.density and 'density' or 'count',
                  yrange = not opts.logy and { 0 } or nil })
  end
  if type(t) ~= 'table' and type(t) ~= 'function' then
    error('plot.hist: expected a tensor, a table of numbers or named tensors, got ' .. type(t), 2)
  end
  local list = named_tensors(t)
  if #list == 0 then error('plot.hist: no tensors given', 2) end
  local fig = target(opts)
  if fig.closed then error('plot.hist: figure ' .. fig.id .. ' is closed', 2) end
  local panels = {}
  local any_grad = false
  for _, e in ipairs(list) do
    local name, v = e[1], e[2]
    if not data.is_data(v) then
      error(string.format("plot.hist: '%s' is not a tensor (got %s)", name, type(v)), 2)
    end
    local vals = data.values(v, 'plot.hist')
    local p = new_panel { title = stats_title(name, vals), legend = false, yrange = { 0 } }
    p.series[1] = hist_series(vals, opts)
    panels[#panels + 1] = p
    if opts.grads then
      local g = grad_of(v)
      local gp_ = new_panel { legend = false, yrange = { 0 } }
      if g then
        any_grad = true
        local gv = data.values(g, 'plot.hist')
        gp_.opts.title = stats_title(name .. ' grad', gv)
        gp_.series[1] = hist_series(gv, { bins = opts.bins, color = opts.grad_color or '#b40426',
                                          density = opts.density })
      else
        gp_.opts.title = name .. ' grad (none)'
      end
      panels[#panels + 1] = gp_
    end
  end
  if opts.grads and not any_grad then
    warn_once('nograd', 'plot.hist: no gradients yet (call loss:backward() first)')
  end
  fig.panels = panels
  fig.active = nil
  fig.layout = opts.layout or (opts.grads and { #list, 2 }) or nil
  fig.title = opts.title or fig.title
  fig:draw()
  return fig
end

--- plot.bar(values [, opts]) -> fig
-- Bars from a tensor or table of numbers (opts.labels names them), a table name -> value,
-- or {{name, value}, ...}. opts: title, xlabel, ylabel, color, logy, yrange.
function M.bar(values, opts)
  opts = check_opts(opts, 'plot.bar')
  local labels, ys = {}, {}
  if data.is_data(values) then
    ys = data.values(values, 'plot.bar')
    for i = 1, #ys do labels[i] = opts.labels and opts.labels[i] or tostring(i) end
  elseif type(values) == 'table' then
    local list = named_tensors(values)
    for i, e in ipairs(list) do
      labels[i], ys[i] = e[1], data.number(e[2], 'plot.bar')
    end
  else
    error('plot.bar: expected a tensor, a table of numbers or a table name -> value, got ' ..
          type(values), 2)
  end
  local x, tics = {}, {}
  for i = 1, #ys do
    x[i] = i
    tics[i] = { labels[i], i }
  end
  local s = { kind = 'xy', style = 'boxes', x = x, y = ys, w = 0.8, color = opts.color, title = '' }
  local lo = data.range(ys)
  return show(target(opts), 'plot.bar', { s }, opts,
              { legend = false, xtics = tics, xrange = { 0.4, #ys + 0.6 },
                yrange = lo and lo >= 0 and not opts.logy and { 0 } or nil })
end

-- ---------------------------------------------------------------- images

local function image_series(img, lo, hi, palette)
  return { kind = 'image', img = img, lo = lo, hi = hi, palette = palette }
end

--- plot.image(t [, opts]) -> fig
-- Shows an H x W matrix (gray) or a C x H x W image (C = 1 or 3), row 1 at the top. Values
-- are read in opts.range: default {0, 255} for integer tensors, else {0, 1}.
-- opts: title, range, palette ('gray', 'viridis', 'hot', 'coolwarm'), colorbox.
function M.image(t, opts)
  opts = check_opts(opts, 'plot.image')
  local img = data.image(t, 'plot.image')
  local r = opts.range or (data.is_integral(t) and { 0, 255 } or { 0, 1 })
  local s = image_series(img, r[1], r[2], opts.palette or 'gray')
  return show(target(opts), 'plot.image', { s }, opts)
end

--- plot.imagesc(t [, opts]) -> fig
-- Like plot.image, with the colours scaled from the smallest to the largest value and a
-- colour bar (palette 'viridis' unless opts.palette).
function M.imagesc(t, opts)
  opts = check_opts(opts, 'plot.imagesc')
  local img = data.image(t, 'plot.imagesc')
  local lo, hi = data.image_range(img)
  if opts.range then lo, hi = opts.range[1], opts.range[2] end
  if lo == hi then lo, hi = lo - 0.5, hi + 0.5 end
  local s = image_series(img, lo, hi, opts.palette or 'viridis')
  local o = setmetatable({ colorbox = opts.colorbox ~= false and not img.rgb }, { __index = opts })
  return show(target(opts), 'plot.imagesc', { s }, o)
end

--- plot.grid(t [, opts]) -> fig
-- A mosaic: a batch of images (N x C x H x W with C = 1 or 3, or N x H x W), conv filters
-- (out x in x kH x kW: one row per filter, one gray tile per input channel), or a table of
-- images. Each tile is scaled to [0, 1] on its own unless opts.each == false (one scale) or
-- opts.range is given. opts: cols (tiles per row; nrow is taken as its torchvision name),
-- padding (1), pad_value (1 = white), title, palette.
function M.grid(t, opts)
  opts = check_opts(opts, 'plot.grid')
  local list, cols = data.image_list(t)
  cols = opts.cols or opts.nrow or cols or math.ceil(math.sqrt(#list))
  local range = opts.range
  if not range and data.is_integral(t) and opts.each == nil then range = { 0, 255 } end
  local m = data.mosaic(list, cols, opts.padding or 1, opts.pad_value or 1, opts.each ~= false, range)
  local s = image_series(m, 0, 1, opts.palette or 'gray')
  return show(target(opts), 'plot.grid', { s }, opts)
end

-- ---------------------------------------------------------------- training

local TrainingPlot = {}
TrainingPlot.__index = TrainingPlot
TrainingPlot.__name = 'flare.plot.TrainingPlot'
M.TrainingPlot = TrainingPlot

local function metric_panel(key)
  local k = key:lower():gsub('^val_', ''):gsub('^train_', '')
  if k:find('loss') then return 1 end
  if k:find('acc') then return 2 end
  return 3
end

local panel_titles = { 'loss', 'accuracy', 'other' }
local panel_legends = { 'top right opaque', 'bottom right opaque', 'top right opaque' }

-- Colours by role, so that every run reads the same: per-step curves pale and thin, the
-- training metric per epoch dark, validation orange (several metrics in a panel cycle).
local role_colors = {
  step = { '#aec7e8', '#98df8a', '#c5b0d5', '#c49c94' },
  train = { '#1f77b4', '#2ca02c', '#9467bd', '#8c564b' },
  val = { '#ff7f0e', '#d62728', '#e377c2', '#bcbd22' },
}

local function metric_look(p, key, per_step)
  local lower = key:lower()
  local val = lower:match('^val') or lower:match('^test') or lower:match('^valid')
  local base = lower:gsub('^val_', ''):gsub('^valid_', ''):gsub('^test_', ''):gsub('^train_', '')
  p.bases = p.bases or { n = 0 }
  if not p.bases[base] then
    p.bases.n = p.bases.n + 1
    p.bases[base] = p.bases.n
  end
  local i = (p.bases[base] - 1) % 4 + 1
  if per_step then return role_colors.step[i], 1, 'lines' end
  return (val and role_colors.val or role_colors.train)[i], 2, 'linespoints'
end

--- plot.training_figure([opts]) -> tp
-- The live view of a training run, made for flare.train.fit{plot = true}: a loss panel and
-- an accuracy panel (a third for other metrics such as lr), x = step. opts: title, log,
-- interval, backend, size, logy.
--   tp:step(step, {loss = , acc = , ...})          after each batch   ('loss (step)' curves)
--   tp:epoch(epoch, {loss = , acc = , val_loss = , val_acc = } [, step])  after each epoch
--   tp:save('curves.png'), tp:close()
-- Metric names containing 'loss' go to the loss panel, 'acc' to the accuracy panel.
-- opts.log = 'run.csv' also writes every row to a CSV file that plot.log replots.
function M.training_figure(opts)
  opts = check_opts(opts, 'plot.training_figure')
  local fig = M.figure { title = opts.title or 'training', backend = opts.backend,
                         interval = opts.interval, size = opts.size, output = opts.output,
                         layout = opts.layout, _keep_current = true }
  fig.panels[1].opts = { title = 'loss', xlabel = 'step', logy = opts.logy, legend = panel_legends[1] }
  fig.panels[2] = new_panel { title = 'accuracy', xlabel = 'step', legend = panel_legends[2] }
  local tp = setmetatable({ figure = fig, last_step = 0, epochs = 0, columns = {},
                            colset = {}, rows = {}, log = opts.log }, TrainingPlot)
  if tp.log then
    local f, err = io.open(tp.log, 'w')
    if not f then error('plot.training_figure: ' .. err, 2) end
    tp.file = f
    tp:_rewrite()
  end
  return tp
end

-- CSV: step,epoch,<metric>...; an empty epoch cell marks a per-step row. When a new metric
-- appears, the file is written again with the wider header.
function TrainingPlot:_rewrite()
  local f = self.file
  f:close()
  f = assert(io.open(self.log, 'w'))
  self.file = f
  f:write('step,epoch', #self.columns > 0 and ',' .. table.concat(self.columns, ',') or '', '\n')
  for _, r in ipairs(self.rows) do self:_write_row(r) end
  f:flush()
end

function TrainingPlot:_write_row(r)
  local cells = { script.fmt(r.step), r.epoch and script.fmt(r.epoch) or '' }
  for i, k in ipairs(self.columns) do
    local v = r.metrics[k]
    cells[i + 2] = v and script.fmt(v) or ''
  end
  self.file:write(table.concat(cells, ','), '\n')
end

function TrainingPlot:_record(step, epoch, metrics)
  if not self.file then return end
  local grew = false
  for _, k in ipairs(sorted_keys(metrics)) do
    if not self.colset[k] then
      self.colset[k] = true
      self.columns[#self.columns + 1] = k
      grew = true
    end
  end
  local r = { step = step, epoch = epoch, metrics = metrics }
  self.rows[#self.rows + 1] = r
  if grew then
    self:_rewrite()
  else
    self:_write_row(r)
    self.file:flush()
  end
end

local function numbers(metrics, what)
  if type(metrics) ~= 'table' then
    error(string.format("bad argument #2 to '%s' (table of metrics expected, got %s)", what,
                        type(metrics)), 3)
  end
  local out = {}
  for k, v in pairs(metrics) do out[tostring(k)] = data.number(v, what) end
  return out
end

local function add_metric(fig, key, per_step, x, y)
  local name = per_step and key .. ' (step)' or key
  local s = find_series(fig, name)
  if not s then
    local panel = metric_panel(key)
    local p = target_panel(fig, { panel = panel })
    if panel == 3 and not p.opts.title then
      p.opts = { title = 'other', xlabel = 'step', legend = panel_legends[3] }
    end
    local color, width, style = metric_look(p, key, per_step)
    s = { title = name, x = {}, y = {}, style = style, color = color, width = width }
    p.series[#p.series + 1] = s
    p.by_name[name] = s
  end
  local n = #s.y + 1
  s.x[n], s.y[n] = x, y
end

--- tp:step(step, metrics) -> tp
function TrainingPlot:step(step, metrics)
  step = data.number(step, 'step')
  metrics = numbers(metrics, 'step')
  self.last_step = step
  for _, k in ipairs(sorted_keys(metrics)) do
    add_metric(self.figure, k, true, step, metrics[k])
  end
  self:_record(step, nil, metrics)
  self.figure:_maybe_draw()
  return self
end

--- tp:epoch(epoch, metrics [, step]) -> tp
function TrainingPlot:epoch(epoch, metrics, step)
  epoch = data.number(epoch, 'epoch')
  metrics = numbers(metrics, 'epoch')
  step = step and data.number(step, 'epoch') or self.last_step
  self.epochs = epoch
  for _, k in ipairs(sorted_keys(metrics)) do
    add_metric(self.figure, k, false, step, metrics[k])
  end
  self:_record(step, epoch, metrics)
  self.figure:_maybe_draw()
  return self
end

function TrainingPlot:flush()
  self.figure:flush()
  if self.file then self.file:flush() end
  return self
end

function TrainingPlot:save(path, opts)
  return self.figure:save(path, opts)
end

function TrainingPlot:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
  self.figure:close()
end

TrainingPlot.__gc = TrainingPlot.close
TrainingPlot.__close = TrainingPlot.close

function TrainingPlot:__tostring()
  return 'plot.TrainingPlot (' .. tostring(self.figure) .. ')'
end

--- plot.log(path [, opts]) -> fig
-- Replots a training log written by plot.training_figure{log = } (or any CSV with a header
-- line): x is the 'step' column (else 'iter', 'epoch', or the row number); columns whose
-- name holds 'loss' go to a loss panel, 'acc' to an accuracy panel, others to a third.
-- Rows with an empty epoch cell are per-step points, the others end-of-epoch points.
function M.log(path, opts)
  if type(path) ~= 'string' then
    error("bad argument #1 to 'log' (file name expected, got " .. type(path) .. ')', 2)
  end
  opts = check_opts(opts, 'plot.log')
  local names, cols, n = data.read_csv(path)
  local idx = {}
  for i, name in ipairs(names) do idx[name:lower()] = i end
  local xcol = idx.step or idx.iter or idx.iteration or idx.epoch
  local ecol = idx.epoch ~= xcol and idx.epoch or nil
  local step_series, epoch_series = {}, {}
  for i, name in ipairs(names) do
    if i ~= xcol and i ~= ecol then
      local sx, sy, ex, ey = {}, {}, {}, {}
      for r = 1, n do
        local v = cols[i][r]
        if v then
          local x = xcol and cols[xcol][r] or r
          if ecol and cols[ecol][r] then
            ex[#ex + 1], ey[#ey + 1] = x, v
          else
            sx[#sx + 1], sy[#sy + 1] = x, v
          end
        end
      end
      if #sy > 0 then
        step_series[#step_series + 1] = { name = name, x = sx, y = sy }
      end
      if #ey > 0 then
        epoch_series[#epoch_series + 1] = { name = name, x = ex, y = ey }
      end
    end
  end
  local fig = target(opts)
  local xlabel = xcol and names[xcol] or 'row'
  local panels = {}
  local function put(s, title, per_step)
    local pi = metric_panel(s.name)
    if not panels[pi] then
      panels[pi] = new_panel { title = panel_titles[pi], xlabel = xlabel, legend = panel_legends[pi] }
    end
    local p = panels[pi]
    local color, width, style = metric_look(p, s.name, per_step)
    local ser = { kind = 'xy', x = s.x, y = s.y, title = title, style = style, color = color,
                  width = width }
    p.series[#p.series + 1] = ser
    p.by_name[title] = ser
    return ser
  end
  local has_epochs = #epoch_series > 0
  for _, s in ipairs(step_series) do
    local ser = put(s, has_epochs and s.name .. ' (step)' or s.name, has_epochs)
    if not has_epochs and #s.y > 50 then ser.style = 'lines' end
  end
  for _, s in ipairs(epoch_series) do put(s, s.name, false) end
  local list = {}
  for i = 1, 3 do if panels[i] then list[#list + 1] = panels[i] end end
  if #list == 0 then error("plot.log: no numeric columns in '" .. path .. "'", 2) end
  if opts.logy then list[1].opts.logy = true end
  fig.panels = list
  fig.active = nil
  fig.layout = nil
  fig.title = opts.title or path
  fig:draw()
  return fig
end

-- fig:line(...), fig:scatter, fig:hist, fig:bar, fig:image, fig:imagesc, fig:grid, fig:log:
-- the module functions, drawing into this figure. They return the figure.
for _, name in ipairs { 'line', 'scatter', 'hist', 'bar', 'image', 'imagesc', 'grid', 'log' } do
  local f = M[name]
  Figure[name] = function(self, ...)
    if getmetatable(self) ~= Figure then
      error(string.format("calling 'fig:%s' on bad self (figure expected, got %s)", name, type(self)), 2)
    end
    local prev = forced
    forced = self
    local ok, err = pcall(f, ...)
    forced = prev
    if not ok then error(err, 0) end
    return self
  end
end

-- ---------------------------------------------------------------- settings and help

--- plot.config([opts]) -> settings
-- Defaults for new figures: interval (ms between live redraws), max_points (live curves are
-- thinned beyond this), size ({w, h}); gnuplot (the program to run, also $FLARE_GNUPLOT);
-- sixel_probe (ask the terminal whether it draws sixel). Returns the current settings.
function M.config(opts)
  opts = check_opts(opts, 'plot.config')
  for _, k in ipairs { 'interval', 'max_points', 'size' } do
    if opts[k] ~= nil then config[k] = opts[k] end
  end
  if opts.gnuplot ~= nil then
    gp.settings.gnuplot = opts.gnuplot
    gp.reset()
    gp.forget_choice()
    warned = {}
  end
  if opts.sixel_probe ~= nil then gp.settings.sixel_probe = opts.sixel_probe end
  return { interval = config.interval, max_points = config.max_points, size = config.size,
           gnuplot = gp.settings.gnuplot, sixel_probe = gp.settings.sixel_probe }
end

--- plot.available() -> boolean, version or reason
-- Whether gnuplot runs here: true and its version, or false and why not.
function M.available()
  local p = gp.probe()
  if p.ok then return true, p.version end
  return false, p.why
end

--- plot.info() -> string
-- Where figures draw and why, the gnuplot found and its terminals.
function M.info()
  local p = gp.probe()
  if not p.ok then
    return 'plot: ' .. p.why .. ' - figures are not drawn (install gnuplot: `make deps`)'
  end
  local ok, c = pcall(choose)
  local lines = {}
  if ok then
    lines[1] = string.format('plot: draws to %s%s (%s)', c.backend,
                             c.terminal and c.backend ~= c.terminal and ' [' .. c.terminal .. ']' or '',
                             c.why or '')
  else
    lines[1] = 'plot: ' .. tostring(c)
  end
  if output_path then lines[#lines + 1] = 'plot.output: ' .. output_path end
  local useful = {}
  for _, t in ipairs { 'qt', 'wxt', 'x11', 'aqua', 'sixelgd', 'dumb', 'pngcairo', 'png', 'svg',
                       'pdfcairo', 'jpeg', 'gif' } do
    if p.terminals[t] then useful[#useful + 1] = t end
  end
  lines[#lines + 1] = string.format('gnuplot %s, terminals: %s', p.version, table.concat(useful, ' '))
  lines[#lines + 1] = "force with plot.backend('window' | 'sixel' | 'dumb' | 'file' | 'none') " ..
    'or FLARE_PLOT=...; plot.output(path) to draw only into a file'
  return table.concat(lines, '\n')
end

-- help(plot): the overview, with where figures draw now (kept up to date as the choice is
-- made or changed). flare.doc's table lives on the core module, which `flare` is.
local overview = [[
flare.plot: live plots through gnuplot.
  plot.line, plot.scatter, plot.hist, plot.bar     curves, points, histograms, bars
  plot.image, plot.imagesc, plot.grid              matrices, images, mosaics of images/filters
  plot.figure{...} -> fig; fig:add(name, x, y)     a figure that grows point by point
  fig:save('x.png' | '.svg' | '.pdf'), fig:close() files; each figure owns one gnuplot
  plot.training_figure{log = 'run.csv'}, plot.log  live training curves; replot a log
Where figures draw: a window (qt, wxt, x11) when there is a display, else in the terminal
(sixel when it draws sixel, else gnuplot's dumb text plot), else only to files. Force it
with plot.backend('window' | 'sixel' | 'dumb' | 'file' | 'none' | 'auto') or FLARE_PLOT;
plot.output('run.png') draws into files only. plot.info() tells the gnuplot found.]]

function update_doc()
  local docs = core_ok and type(core) == 'table' and rawget(core, '_docstrings')
  if type(docs) ~= 'table' then return end
  local now_line
  if last_choice then
    now_line = string.format('Now: figures draw to %s%s (%s).', last_choice.backend,
                             last_choice.terminal and last_choice.terminal ~= last_choice.backend
                               and ' [' .. last_choice.terminal .. ']' or '',
                             last_choice.why or '')
  else
    now_line = 'Now: chosen when the first figure draws (plot.info() chooses at once).'
  end
  docs[M] = overview .. '\n' .. now_line
  docs[Figure] = 'flare.plot.Figure: a figure and its gnuplot process. Methods: fig:add(name, [x,] y), ' ..
    'fig:line, fig:scatter, fig:hist, fig:bar, fig:image, fig:imagesc, fig:grid, fig:log, ' ..
    'fig:set{...}, fig:subplot(i), fig:series(name), fig:draw(), fig:flush(), fig:save(path), ' ..
    'fig:clear(), fig:close().'
  docs[TrainingPlot] = 'flare.plot.TrainingPlot: live training curves (plot.training_figure). ' ..
    'Methods: tp:step(step, metrics), tp:epoch(epoch, metrics [, step]), tp:flush(), ' ..
    'tp:save(path), tp:close(); tp.figure is its plot.Figure.'
end
update_doc()

-- Closes every figure when the Lua state closes (finalizers of figures run then too; this
-- also covers figures that something else still references).
M._sentinel = setmetatable({}, { __gc = function() M.close_all() end })

return M
