-- flare.plot: figures drawn by gnuplot. Checks the numbers behind plots (histograms,
-- mosaics, argument forms), the files written (PNG signature and dimensions, SVG, PDF, dumb
-- text), the in-terminal text plot of a real child process, and the gnuplot processes:
-- one per figure however many updates, a flat descriptor count, nothing left after close or
-- garbage collection, and a single warning when gnuplot is missing.
local flare = require 'flare'
local plot = require 'flare.plot'

local have_gnuplot = plot.available()
local function needs_gnuplot(name, fn)
  if have_gnuplot then
    it(name, fn)
  else
    pending(name .. ' (gnuplot is not installed)')
  end
end

-- Our process id, the processes below it and our open descriptors, through ps and /proc.
local function read_cmd(cmd)
  local p = assert(io.popen(cmd, 'r'))
  local s = p:read('a')
  p:close()
  return s
end
local mypid = tonumber(read_cmd('echo $PPID'))

local function descendants()
  local children = {}
  for line in read_cmd('ps -eo pid=,ppid=,stat=,comm='):gmatch('[^\n]+') do
    local pid, ppid, stat, comm = line:match('^%s*(%d+)%s+(%d+)%s+(%S+)%s+(.-)%s*$')
    if pid then
      pid, ppid = tonumber(pid), tonumber(ppid)
      children[ppid] = children[ppid] or {}
      table.insert(children[ppid], { pid = pid, stat = stat, comm = comm })
    end
  end
  local out, todo = {}, { mypid }
  while #todo > 0 do
    local p = table.remove(todo)
    for _, c in ipairs(children[p] or {}) do
      out[#out + 1] = c
      todo[#todo + 1] = c.pid
    end
  end
  return out
end

-- gnuplot processes below us, and zombies among all our descendants
local function gnuplots()
  local n, zombies = 0, 0
  for _, p in ipairs(descendants()) do
    if p.comm == 'gnuplot' then n = n + 1 end
    if p.stat:find('Z') then zombies = zombies + 1 end
  end
  return n, zombies
end

-- Waits (up to 5 s) until `n` gnuplots run below us: popen returns before the shell has
-- started gnuplot. Returns the last count.
local function wait_gnuplots(n)
  local got
  for _ = 1, 100 do
    got = gnuplots()
    if got == n then return got end
    os.execute('sleep 0.05')
  end
  return got
end

-- Our open descriptors, leaving out the pipe this very count is read through (both of its
-- ends: popen closes the writing end in the parent only after the child has started) and
-- descriptors that close while the count runs.
local function fd_count()
  return tonumber(read_cmd([[out=$(readlink /proc/$$/fd/1); n=0
for f in /proc/$PPID/fd/*; do
  l=$(readlink "$f") && [ -n "$l" ] && [ "$l" != "$out" ] && n=$((n+1))
done; echo $n]]))
end

local function read_file(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  return s
end

local function be32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local tmpfiles = {}
local function tmp(ext)
  local base = os.tmpname()
  os.remove(base)
  local p = base .. ext
  tmpfiles[#tmpfiles + 1] = p
  return p
end

describe('plot', function()
  setup(function()
    plot.backend('none') -- nothing draws on screen; tests save files or pick a backend
  end)
  teardown(function()
    plot.close_all()
    plot.backend('auto')
    for _, p in ipairs(tmpfiles) do os.remove(p) end
  end)

  describe('numbers', function()
    it('counts histogram bins like torch.histc, the last bin closed', function()
      local counts, edges = plot.histogram({ 0, 0.1, 0.5, 0.9, 1.0, 1.0, 0 / 0 }, { bins = 2 })
      assert.are.same({ 2, 4 }, counts)
      assert.are.same({ 0, 0.5, 1 }, edges)
      counts = plot.histogram(flare.tensor { { 1, 2 }, { 3, 4 } }, { bins = 4, range = { 0, 4 } })
      assert.are.same({ 0, 1, 1, 2 }, counts)
      -- values outside the range are left out
      counts = plot.histogram({ -5, 1, 2, 9 }, { bins = 1, range = { 0, 4 } })
      assert.are.same({ 2 }, counts)
      -- one distinct value still gives a usable range
      counts, edges = plot.histogram({ 3, 3, 3 }, { bins = 1 })
      assert.are.same({ 3 }, counts)
      assert.are.same({ 2.5, 3.5 }, edges)
    end)

    it('rejects bad histogram options with what was given', function()
      assert.has_error(function() plot.histogram({ 1, 2 }, { bins = 0 }) end,
                       'plot.hist: bins must be a positive integer, got 0')
      assert.has_error(function() plot.histogram({ 1, 2 }, { range = { 2, 1 } }) end,
                       'plot.hist: range must be {lo, hi} with lo < hi, got {2, 1}')
    end)

    it('reads curves from tensors, tables, columns and named tables', function()
      local fig = plot.figure { backend = 'none' }
      fig:line(flare.tensor { 3, 1, 2 })
      local x, y = fig:series('')
      assert.are.same({ 1, 2, 3 }, x)
      assert.are.same({ 3, 1, 2 }, y)
      fig:line({ 10, 20 }, { 1, 4 }, { title = 't' })
      x, y = fig:series('')
      assert.are.same({ 10, 20 }, x)
      assert.are.same({ 1, 4 }, y)
      fig:line { train = { 1, 2, 3 }, val = { { 1, 3 }, { 5, 6 } } }
      x, y = fig:series('val')
      assert.are.same({ 1, 3 }, x)
      assert.are.same({ 5, 6 }, y)
      assert.are.same({ 1, 2, 3 }, select(2, fig:series('train')))
      fig:line(flare.tensor { { 1, 10 }, { 2, 20 } }) -- 2-D: one curve per column
      assert.are.same({ 10, 20 }, select(2, fig:series('2')))
      fig:scatter({ 1, 2 }, { { 5, 6 }, { 7, 8 } }, { titles = { 'a', 'b' } })
      assert.are.same({ 7, 8 }, select(2, fig:series('b')))
      assert.equal('points', fig.panels[1].series[1].style)
      fig:close()
    end)

    it('says what was wrong with curve arguments', function()
      local fig = plot.figure { backend = 'none' }
      assert.has_error(function() fig:line({ 1, 2, 3 }, { 1, 2 }) end,
                       'plot.line: x has 3 values but y has 2')
      assert.has_error(function() plot.line('abc') end,
                       'plot.line: expected a tensor or a table of numbers, got string')
      assert.has_error(function() fig:line({ 1, 2 }, { style = 'wiggly' }) end)
      assert.has_error(function() fig:add({}, 1) end)
      assert.has_error(function() fig:add('a', flare.tensor { 1, 2 }) end,
                       'fig:add: expected a number or a one-element tensor, got a tensor of 2 elements')
      assert.has_error(function() plot.image(flare.zeros(2, 3, 4)) end,
                       'plot.image: expected an image of shape HxW, 1xHxW or 3xHxW, got 2x3x4')
      assert.has_error(function() plot.backend('hologram') end)
      fig:close()
    end)

    it('appends points and keeps them in order', function()
      local fig = plot.figure { backend = 'none' }
      fig:add('loss', 1.5)
      fig:add('loss', flare.tensor(0.5))
      fig:add('loss', 10, 0.25)
      local x, y = fig:series('loss')
      assert.are.same({ 1, 2, 10 }, x)
      assert.are.same({ 1.5, 0.5, 0.25 }, y)
      fig:close()
      local ok, err = pcall(fig.add, fig, 'loss', 1)
      assert.is_false(ok)
      assert.matches('figure %d+ is closed', err)
    end)

    it('lays out image mosaics and conv filters', function()
      local fig = plot.figure { backend = 'none' }
      -- 5 images of 4x3, 3 per row, padding 1: 2 rows -> 2*4+3 high, 3*3+4 wide
      fig:grid(flare.rand(5, 1, 4, 3), { cols = 3 })
      local img = fig.panels[1].series[1].img
      assert.equal(11, img.h)
      assert.equal(13, img.w)
      -- filters out x in x kH x kW with in = 2: one row per filter
      fig:grid(flare.rand(4, 2, 3, 3))
      img = fig.panels[1].series[1].img
      assert.equal(4 * 3 + 5, img.h)
      assert.equal(2 * 3 + 3, img.w)
      -- each tile scaled to [0, 1]: a tile 0..2 becomes 0..1
      fig:grid({ flare.tensor { { 0, 2 }, { 1, 1 } } }, { padding = 0 })
      assert.are.same({ { 0, 1 }, { 0.5, 0.5 } }, fig.panels[1].series[1].img.gray)
      -- RGB batch keeps three planes
      fig:grid(flare.rand(2, 3, 2, 2), { cols = 2, padding = 0 })
      img = fig.panels[1].series[1].img
      assert.equal(3, #img.rgb)
      assert.equal(4, img.w)
      fig:close()
    end)

    it('makes one histogram panel per named tensor', function()
      local fig = plot.figure { backend = 'none' }
      fig:hist({ ['fc1.weight'] = flare.randn(20, 5), ['fc1.bias'] = flare.zeros(5) }, { bins = 8 })
      assert.equal(2, #fig.panels)
      -- sorted by name; the title carries mean and std
      assert.matches('^fc1.bias', fig.panels[1].opts.title)
      assert.matches('^fc1.weight', fig.panels[2].opts.title)
      local total = 0
      for _, n in ipairs(fig.panels[2].series[1].counts) do total = total + n end
      assert.equal(100, total)
      -- {name, tensor} pairs keep their order
      fig:hist({ { 'b', flare.ones(3) }, { 'a', flare.ones(4) } })
      assert.matches('^b ', fig.panels[1].opts.title)
      fig:close()
    end)

    it('bars carry their labels', function()
      local fig = plot.figure { backend = 'none' }
      fig:bar({ cat = 3, dog = 5 })
      local p = fig.panels[1]
      assert.are.same({ { 'cat', 1 }, { 'dog', 2 } }, p.opts.xtics)
      assert.are.same({ 3, 5 }, p.series[1].y)
      fig:close()
    end)
  end)

  describe('files', function()
    needs_gnuplot('writes a valid PNG of the asked size', function()
      local fig = plot.figure { title = 'loss', backend = 'none' }
      for i = 1, 50 do fig:add('train', i, 1 / i) end
      local path = tmp('.png')
      assert.equal(path, fig:save(path, { size = { 320, 240 } }))
      local s = read_file(path)
      assert.equal('\137PNG\r\n\26\n', s:sub(1, 8))
      assert.equal('IHDR', s:sub(13, 16))
      assert.equal(320, be32(s, 17))
      assert.equal(240, be32(s, 21))
      assert.is_true(#s > 2000)
      fig:close()
    end)

    needs_gnuplot('writes SVG (and PDF when gnuplot has pdfcairo)', function()
      local fig = plot.figure { backend = 'none' }
      fig:line({ 1, 4, 9, 16 }, { title = 'squares_svg', xlabel = 'n' })
      local path = tmp('.svg')
      assert.equal(path, fig:save(path, { size = { 400, 300 } }))
      local s = read_file(path)
      assert.matches('^<%?xml', s)
      assert.matches('<svg', s)
      assert.matches('width="400"', s)
      assert.matches('squares_svg', s) -- noenhanced: the underscore stays
      assert.matches('</svg>%s*$', s)
      local pdf = tmp('.pdf')
      local ok, err = fig:save(pdf)
      if ok then
        assert.equal('%PDF-', read_file(pdf):sub(1, 5))
      else
        assert.matches('pdfcairo', err)
      end
      fig:close()
    end)

    needs_gnuplot('writes images and mosaics', function()
      local fig = plot.figure { backend = 'none' }
      local path = tmp('.png')
      fig:image(flare.rand(3, 16, 16))
      assert.equal(path, fig:save(path, { size = { 200, 200 } }))
      assert.equal(200, be32(read_file(path), 17))
      fig:imagesc(flare.randn(1, 7)) -- a single row needs the small-image path
      assert.equal(path, fig:save(path))
      fig:grid(flare.rand(6, 1, 5, 5))
      assert.equal(path, fig:save(path))
      fig:hist({ w = flare.randn(100), b = flare.randn(10) })
      assert.equal(path, fig:save(path))
      assert.equal('\137PNG', read_file(path):sub(1, 4))
      fig:close()
    end)

    needs_gnuplot('draws a dumb text plot with the title and the curve', function()
      local fig = plot.figure { backend = 'none' }
      local y = {}
      for i = 1, 40 do y[i] = math.sin(i / 6) end
      fig:line(y, { title = 'wavy title', label = 'sine' })
      local path = tmp('.txt')
      assert.equal(path, fig:save(path, { size = { 70, 20 } }))
      local s = read_file(path)
      assert.matches('wavy title', s)
      assert.matches('sine', s)
      local stars = select(2, s:gsub('%*', ''))
      assert.is_true(stars > 20, 'the curve is drawn with *: ' .. s)
      fig:close()
    end)

    needs_gnuplot('rejects an unknown extension', function()
      local fig = plot.figure { backend = 'none' }
      fig:line { 1, 2 }
      assert.has_error(function() fig:save('/tmp/x.docx') end,
                       "fig:save: cannot write '/tmp/x.docx' (expected .png, .svg, .pdf, .jpg, .gif, .eps or .txt)")
      fig:close()
    end)
  end)

  describe('in the terminal', function()
    needs_gnuplot('a script with FLARE_PLOT=dumb prints the plot on stdout', function()
      local script = [[
        local plot = require 'flare.plot'
        plot.config { size = { 72, 20 } }
        local fig = plot.figure { title = 'live loss', interval = 0 }
        for i = 1, 20 do fig:add('train', i, 1 / i) end
        fig:flush() -- the last points may wait for the interval
        print('after the plot')
      ]]
      local path = tmp('.lua')
      local f = assert(io.open(path, 'w'))
      f:write(script)
      f:close()
      local out = read_cmd('FLARE_PLOT=dumb NO_COLOR=1 lua5.4 ' .. path .. ' 2>&1')
      assert.matches('live loss', out)
      assert.matches('train %*+', out) -- the legend names the curve
      assert.is_true(select(2, out:gsub('%*', '')) > 40)
      -- drawing waits for gnuplot, so what the script prints next comes after the plot
      assert.matches('live loss.*after the plot%s*$', out)
    end)

    needs_gnuplot('images become text in the dumb terminal', function()
      local path = tmp('.lua')
      local f = assert(io.open(path, 'w'))
      f:write([[
        local plot = require 'flare.plot'
        plot.config { size = { 40, 20 } }
        plot.image({ { 0, 1 }, { 1, 0 } }, { title = 'checker' })
      ]])
      f:close()
      local out = read_cmd('FLARE_PLOT=dumb lua5.4 ' .. path .. ' 2>&1')
      assert.matches('checker', out)
      assert.matches('@@', out)
    end)
  end)

  describe('processes', function()
    needs_gnuplot('a figure updated 10,000 times keeps one process and flat descriptors', function()
      local before = gnuplots()
      local path = tmp('.png')
      local fig = plot.figure { output = path, interval = 20 }
      finally(function() fig:close() end)
      fig:add('train', 0, 1)
      collectgarbage() -- files that earlier code left to the collector
      collectgarbage()
      local fds = fd_count()
      assert.equal(before + 1, wait_gnuplots(before + 1))
      local t0 = plot.now()
      for i = 1, 10000 do
        fig:add('train', i, 1 / i + (i % 7) * 1e-3)
        if i % 2500 == 0 then
          assert.equal(before + 1, wait_gnuplots(before + 1))
          assert.equal(fds, fd_count())
        end
      end
      local elapsed = plot.now() - t0
      -- rate limited: at most one redraw per 20 ms (plus the first)
      assert.is_true(fig.draws <= elapsed / 0.02 + 2, fig.draws .. ' redraws in ' .. elapsed .. ' s')
      assert.is_true(fig.draws < 10000)
      fig:draw()
      assert.equal(path, fig:save(path))
      assert.equal(10001, #select(2, fig:series('train')))
      fig:close()
      local n, zombies = gnuplots()
      assert.equal(before, n)
      assert.equal(0, zombies)
      assert.equal(fds - 1, fd_count()) -- the pipe is gone
    end)

    it('the interval holds back redraws', function()
      local fig = plot.figure { backend = 'none', interval = 1e6 }
      for i = 1, 100 do fig:add('a', i) end
      assert.equal(1, fig.draws)
      fig:flush()
      assert.equal(2, fig.draws)
      fig:flush() -- nothing new
      assert.equal(2, fig.draws)
      fig:close()
    end)

    needs_gnuplot('closing ends the process; closing twice is fine', function()
      local before = gnuplots()
      local fig = plot.figure { output = tmp('.png') }
      fig:line { 1, 2, 3 }
      assert.equal(before + 1, wait_gnuplots(before + 1))
      fig:close()
      fig:close()
      local n, zombies = gnuplots()
      assert.equal(before, n)
      assert.equal(0, zombies)
    end)

    needs_gnuplot('garbage collection ends the process', function()
      collectgarbage() -- figures an earlier failed test left behind
      local before = gnuplots()
      do
        local fig = plot.figure { output = tmp('.png') }
        fig:line { 1, 2, 3 }
        assert.equal(before + 1, wait_gnuplots(before + 1))
      end
      collectgarbage()
      collectgarbage()
      local n, zombies = gnuplots()
      assert.equal(before, n)
      assert.equal(0, zombies)
    end)

    needs_gnuplot('a to-be-closed figure ends with its scope', function()
      local before = gnuplots()
      do
        local fig <close> = plot.figure { output = tmp('.png') }
        fig:line { 3, 1 }
      end
      assert.equal(before, (gnuplots()))
    end)

    needs_gnuplot('a figure whose gnuplot died warns once and carries on', function()
      local warnings = {}
      plot.on_warning = function(msg) warnings[#warnings + 1] = msg end
      local before = {}
      for _, p in ipairs(descendants()) do before[p.pid] = true end
      local fig = plot.figure { output = tmp('.png'), interval = 0 }
      finally(function()
        fig:close()
        plot.on_warning = nil
      end)
      fig:line { 1, 2, 3 }
      local victim
      for _ = 1, 100 do
        for _, p in ipairs(descendants()) do
          if p.comm == 'gnuplot' and not before[p.pid] then victim = p.pid end
        end
        if victim then break end
        os.execute('sleep 0.05')
      end
      assert.is_not_nil(victim)
      os.execute('kill -9 ' .. victim)
      for _ = 1, 100 do
        if not fig.proc:alive() then break end
        os.execute('sleep 0.05')
      end
      assert.is_false(fig.proc:alive())
      -- writing into the pipe raises no SIGPIPE and does not block: the wrapper shell reads
      -- on after gnuplot's death
      assert.is_true(fig.proc:send(string.rep('# nothing\n', 20000)))
      fig.proc:flush()
      for i = 1, 200 do fig:add('more', i, i) end
      fig:draw()
      fig:close()
      plot.on_warning = nil
      assert.equal(1, #warnings)
      assert.matches('gnuplot of figure %d+ exited', warnings[1])
    end)

    needs_gnuplot('plot.output sends figures to numbered files', function()
      local path = tmp('.png')
      plot.output(path)
      local a = plot.figure()
      local b = plot.figure()
      a:line { 1, 2 }
      b:line { 2, 1 }
      a:save(path) -- also waits for gnuplot
      b:save(b.output)
      plot.output(nil)
      assert.equal(path, a.output)
      assert.equal(path:gsub('%.png$', '-2.png'), b.output)
      tmpfiles[#tmpfiles + 1] = b.output
      assert.equal('\137PNG', read_file(b.output):sub(1, 4))
      a:close()
      b:close()
    end)
  end)

  describe('without gnuplot', function()
    it('warns once and carries on', function()
      local warnings = {}
      local saved = plot.config().gnuplot
      plot.on_warning = function(msg) warnings[#warnings + 1] = msg end
      plot.config { gnuplot = '/nonexistent/gnuplot' }
      local ok, err = pcall(function()
        assert.is_false((plot.available()))
        local fig = plot.figure { interval = 0 }
        for i = 1, 100 do fig:add('loss', i, 1 / i) end
        fig:line { 1, 2, 3 }
        local path, why = fig:save(tmp('.png'))
        assert.is_nil(path)
        assert.matches('gnuplot not found', why)
        local tp = plot.training_figure { backend = 'none' }
        tp:step(1, { loss = 1 })
        tp:epoch(1, { loss = 1, val_loss = 2 })
        tp:close()
        fig:close()
        assert.matches('not found', plot.info())
      end)
      plot.config { gnuplot = saved }
      plot.on_warning = nil
      assert(ok, err)
      assert.equal(1, #warnings)
      assert.matches('gnuplot not found', warnings[1])
      assert.matches('make deps', warnings[1])
    end)
  end)

  describe('training', function()
    it('shows loss and accuracy per step and per epoch, and logs them', function()
      local log = tmp('.csv')
      local tp = plot.training_figure { backend = 'none', log = log }
      tp:step(1, { loss = 2.0, acc = 0.1 })
      tp:step(2, { loss = 1.5, acc = 0.3 })
      tp:epoch(1, { loss = 1.7, acc = 0.2, val_loss = 1.6, val_acc = 0.25 })
      tp:step(3, { loss = 1.0, acc = 0.5, lr = 0.01 }) -- a new column rewrites the header
      tp:epoch(2, { loss = 1.0, val_loss = 1.2 }, 3)
      local fig = tp.figure
      assert.are.same({ 2.0, 1.5, 1.0 }, select(2, fig:series('loss (step)')))
      assert.are.same({ 2, 3 }, (fig:series('val_loss')))
      assert.are.same({ 0.25 }, select(2, fig:series('val_acc')))
      assert.equal('loss', fig.panels[1].opts.title)
      assert.equal('accuracy', fig.panels[2].opts.title)
      assert.equal('other', fig.panels[3].opts.title)
      assert.is_not_nil(fig.panels[2].by_name['acc (step)'])
      assert.is_not_nil(fig.panels[3].by_name['lr (step)'])
      tp:close()
      local csv = read_file(log)
      assert.equal('step,epoch,acc,loss,val_acc,val_loss,lr', csv:match('^[^\n]+'))
      assert.matches('\n2,,0.3,1.5,,,\n', csv)
      assert.matches('\n3,2,,1,,1.2,\n', csv)
      -- plot.log puts the same curves back
      local back = plot.figure { backend = 'none' }
      back:log(log)
      assert.are.same({ 2.0, 1.5, 1.0 }, select(2, back:series('loss (step)')))
      assert.are.same({ 1.6, 1.2 }, select(2, back:series('val_loss')))
      assert.are.same({ 2, 3 }, (back:series('loss')))
      assert.equal(3, #back.panels)
      back:close()
    end)

    it('adds a gradient histogram per parameter', function()
      local w = flare.randn(20, 3, { requires_grad = true })
      local b = flare.zeros(3, { requires_grad = true })
      ;((w * w):sum() + (b * 3):sum()):backward()
      local fig = plot.figure { backend = 'none' }
      fig:hist({ weight = w, bias = b }, { grads = true, bins = 5 })
      assert.equal(4, #fig.panels)
      assert.are.same({ 2, 2 }, fig.layout)
      assert.matches('^bias grad', fig.panels[2].opts.title)
      -- d(3b)/db = 3 everywhere: all 3 values in one bin
      local counts = fig.panels[2].series[1].counts
      local total, top = 0, 0
      for _, n in ipairs(counts) do total, top = total + n, math.max(top, n) end
      assert.equal(3, total)
      assert.equal(3, top)
      fig:close()
    end)

    it('replots any CSV with a header', function()
      local path = tmp('.csv')
      local f = assert(io.open(path, 'w'))
      f:write('iter,train_loss,test_accuracy\n1,0.9,0.5\n2,0.7,\n3,0.5,0.7\n')
      f:close()
      local fig = plot.figure { backend = 'none' }
      fig:log(path)
      assert.are.same({ 1, 2, 3 }, (fig:series('train_loss')))
      assert.are.same({ 0.5, 0.7 }, select(2, fig:series('test_accuracy')))
      assert.equal(2, #fig.panels)
      fig:close()
      assert.has_error(function() plot.log('/nonexistent/run.csv') end)
    end)
  end)

  it('says where it draws', function()
    local info = plot.info()
    if have_gnuplot then
      assert.matches('plot: draws to none', info)
      assert.matches('terminals: .*dumb', info)
    end
    assert.equal('none', (plot.backend()))
  end)
end)
