-- The prompt: printing (flare.format), completion, commands and `_` (flare.repl), help and
-- who (flare.help), timeit; then the real `flare` executable driven in a terminal through
-- tmux: printing, multi-line input, completion, help, history across sessions, Ctrl-C in a
-- Lua loop, in a long C kernel and in a loop of large ops, uninterruptible sections, Ctrl-D,
-- ~/.flarerc, FLARE_INIT and -i, colours, and start-up time.
local flare = require 'flare'
local format = require 'flare.format'
local repl = require 'flare.repl'
local help = require 'flare.help'
local tmux = require 'support.tmux'

local sanitized = os.getenv('FLARE_SANITIZED') ~= nil

-- Runs f with io.write and print captured; returns the text.
local function capture(f, ...)
  local out = {}
  local write, print_ = io.write, _G.print
  io.write = function(...) for _, s in ipairs({ ... }) do out[#out + 1] = tostring(s) end end
  _G.print = function(...)
    local parts = {}
    for i = 1, select('#', ...) do parts[i] = tostring((select(i, ...))) end
    out[#out + 1] = table.concat(parts, '\t') .. '\n'
  end
  local ok, err = pcall(f, ...)
  io.write, _G.print = write, print_
  if not ok then error(err, 2) end
  return table.concat(out)
end

-- A small module class following format's protocol, as nn's modules will.
local function fake_nn()
  local Linear = { __typename = 'nn.Linear' }
  Linear.__index = Linear
  function Linear.new(i, o)
    return setmetatable({ weight = flare.zeros(o, i), bias = flare.zeros(o), i = i, o = o }, Linear)
  end
  function Linear:parameters() return { self.weight, self.bias } end
  function Linear:extra_repr() return self.i .. ', ' .. self.o end
  function Linear:forward(x) return x end
  local ReLU = { __typename = 'nn.ReLU' }
  ReLU.__index = ReLU
  function ReLU:parameters() return {} end
  local Sequential = { __typename = 'nn.Sequential' }
  Sequential.__index = Sequential
  function Sequential:parameters()
    local ps = {}
    for _, m in ipairs(self.modules) do
      for _, p in ipairs(m:parameters()) do ps[#ps + 1] = p end
    end
    return ps
  end
  return setmetatable({ modules = { Linear.new(784, 128), setmetatable({}, ReLU), Linear.new(128, 10) } }, Sequential)
end

describe('flare.format', function()
  it('keeps the tensor printing and its footer', function()
    local x = flare.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { dtype = 'float32' })
    local s = format.value(x)
    assert.equal(' 1. 2. 3.\n 4. 5. 6.\n[flare.FloatTensor of size 2x3]', s)
    assert.equal(s, tostring(x))
  end)

  it('prints tables on one line when they fit, nested and indented when not', function()
    assert.equal('{1, 2, 3, a = 1, b = "x"}', format.value({ 1, 2, 3, a = 1, b = 'x' }))
    assert.equal('{}', format.value({}))
    local s = format.value({ name = string.rep('n', 60), inner = { deep = string.rep('d', 90), list = { 1, 2 } } })
    assert.equal('{\n  inner = {\n    deep = "' .. string.rep('d', 90) .. '",\n    list = {1, 2}\n  },\n  name = "' ..
                 string.rep('n', 60) .. '"\n}', s)
  end)

  it('quotes strings and odd keys, and shows tensors in tables by dtype and shape', function()
    local s = format.value({ ['a b'] = 'line\n"q"', [2.5] = true, t = flare.zeros(2, 3, { dtype = 'int64' }) })
    assert.equal('{["a b"] = "line\\n\\"q\\"", t = [flare.LongTensor of size 2x3], [2.5] = true}', s)
  end)

  it('marks cycles instead of looping', function()
    local t = { a = 1 }
    t.self = t
    t.child = { parent = t }
    local s = format.value(t)
    assert.matches('self = <cycle: table: 0x%x+>', s)
    assert.matches('child = {parent = <cycle: table: 0x%x+>}', s)
  end)

  it('cuts long tables and deep nesting', function()
    local long = {}
    for i = 1, 100 do long[i] = i end
    local s = format.value(long)
    assert.matches('28, 29, 30, %.%.%.70 more\n}$', s)
    assert.not_matches('31', s)
    local deep = { a = { b = { c = { d = { e = 1 } } } } }
    assert.equal('{a = {b = {c = {d = {...1 entry}}}}}', format.value(deep))
  end)

  it('prints modules as their tree with parameter counts', function()
    local s = format.value(fake_nn())
    assert.equal(table.concat({
      'nn.Sequential (101,770 parameters) {',
      '  (1): nn.Linear(784, 128) (100,480 parameters)',
      '  (2): nn.ReLU',
      '  (3): nn.Linear(128, 10) (1,290 parameters)',
      '}' }, '\n'), s)
    assert.equal('{model = nn.Sequential (101,770 parameters)}', format.value({ model = fake_nn() }))
  end)

  it('names library functions and locates Lua ones', function()
    assert.equal('function: flare.randn', format.value(flare.randn))
    assert.equal('function: string.format', format.value(string.format))
    assert.matches('^function: .*repl_spec%.lua:%d+$', format.value(function() end))
  end)

  it('colours only when asked', function()
    local plain = format.value({ 1, 'a', true })
    assert.not_matches('\27', plain)
    local coloured = format.value({ 1, 'a', true }, { color = true })
    assert.matches('\27%[36m1\27%[0m', coloured)
    assert.matches('\27%[32m"a"\27%[0m', coloured)
  end)
end)

describe('flare.repl', function()
  it('prints several values side by side and keeps only the last result in _', function()
    local out = capture(repl.print, 1, 'two', { 3 })
    assert.equal('1\ttwo\t{3}\n', out)
    assert.equal(1, rawget(_G, '_'))
    capture(repl.print, flare.zeros(2, 2))
    assert.is_true(flare.is_tensor(rawget(_G, '_')))
    _G._ = nil
  end)

  it('does not pin a large result once another one is printed', function()
    collectgarbage()
    collectgarbage()
    local before = flare.bytes_allocated()
    capture(repl.print, flare.zeros(1000, 1000))
    assert.is_true(flare.bytes_allocated() >= before + 4e6)
    capture(repl.print, 42)
    collectgarbage()
    collectgarbage()
    assert.is_true(flare.bytes_allocated() < before + 1e6)
    _G._ = nil
  end)

  it('completes globals, fields, methods through metatables, keywords and file names', function()
    _G.spec_tensor = flare.zeros(2)
    local Class = {}
    Class.__index = Class
    function Class:forward() end
    function Class:fit() end
    _G.spec_obj = setmetatable({ weight = 1 }, Class)
    local had_flare = rawget(_G, 'flare')
    _G.flare = flare
    local c = repl.complete('', 'flare.ran')
    assert.truthy(#c >= 3)
    for _, name in ipairs({ 'flare.rand', 'flare.randn', 'flare.randperm' }) do
      assert.truthy(table.concat(c, ' '):find(name, 1, true), name)
    end
    assert.same({ 'flare.autograd.gradcheck' }, repl.complete('', 'flare.autograd.gradc'))
    assert.same({ 'spec_tensor:totable' }, repl.complete('', 'spec_tensor:tota'))
    assert.same({ 'spec_obj:fit', 'spec_obj:forward' }, repl.complete('', 'spec_obj:f'))
    assert.same({ 'spec_obj.fit', 'spec_obj.forward' }, repl.complete('', 'spec_obj.f'))
    assert.same({ 'spec_obj.weight' }, repl.complete('', 'spec_obj.w'))
    assert.same({ 'while' }, repl.complete('', 'whil'))
    assert.same({ 'x/flare' }, repl.complete('', 'x/flar'))
    assert.equal('file', repl.complete('dofile("', 'spec/supp'))
    assert.equal('file', repl.complete("x = 'a' .. '", ''))
    assert.not_equal('file', repl.complete('x = "a" -- "', 'fl'))
    -- names starting with _ only when asked for
    for _, name in ipairs(repl.complete('', 'flare.')) do assert.not_matches('^flare%._', name) end
    assert.truthy(#repl.complete('', 'flare._') > 0)
    _G.spec_tensor, _G.spec_obj, _G.flare = nil, nil, had_flare
  end)

  it('knows string literals from code', function()
    assert.is_true(repl.in_string('print("abc'))
    assert.is_false(repl.in_string('print("abc")'))
    assert.is_true(repl.in_string('x = [[long'))
    assert.is_false(repl.in_string('x = "a\\"b" .. y'))
    assert.is_true(repl.in_string("x = 'it\\'s"))
  end)

  it('runs :commands and rejects unknown ones with the list', function()
    local was = repl.options.time
    assert.equal('timing on\n', capture(repl.command, ':time on'))
    assert.is_true(repl.options.time)
    capture(repl.command, ':time off')
    assert.is_false(repl.options.time)
    repl.options.time = was
    assert.equal('quit', repl.command(':quit'))
    local ok, err = pcall(repl.command, ':frobnicate')
    assert.is_false(ok)
    assert.matches('unknown command :frobnicate', err)
    assert.matches(':time %[on|off%]', err)
    assert.matches('standard normal', capture(repl.command, '?flare.randn'))
  end)

  it('trims the prompt from tracebacks', function()
    assert.equal('stdin:1: boom', repl.error_text("stdin:1: boom\nstack traceback:\n\t[C]: in function 'error'\n\tstdin:1: in main chunk\n\t[C]: in ?"))
    local deep = repl.error_text('x.lua:3: bad\nstack traceback:\n\tx.lua:3: in function \'f\'\n\tstdin:1: in main chunk\n\t[C]: in ?')
    assert.equal("x.lua:3: bad\nstack traceback:\n\tx.lua:3: in function 'f'\n\tstdin:1: in main chunk", deep)
    assert.equal('\ninterrupted!', repl.error_text('interrupted!'))
  end)

  it('times functions with flare.timeit', function()
    local calls = 0
    local t = flare.timeit(function() calls = calls + 1 end, 50)
    assert.equal(50, t.n)
    assert.equal(51, calls)   -- and one warm-up call
    assert.is_true(t.min <= t.median and t.median <= t.max)
    assert.is_true(t.mean > 0 and t.total > 0)
    assert.matches('per call %(median; min .+ 50 calls%)$', tostring(t))
    local auto = flare.timeit(function() end, nil, { seconds = 0.01 })
    assert.is_true(auto.n >= 1)
    assert.has_error(function() flare.timeit(42) end, "bad argument #1 to 'timeit' (function expected, got number)")
    assert.has_error(function() flare.timeit(function() end, 0) end)
  end)

  it('runs uninterruptible sections as plain calls outside the executable', function()
    assert.same({ 3, 4 }, { flare.uninterruptible(function(a, b) return a + 1, b + 1 end, 2, 3) })
    assert.has_error(function() flare.uninterruptible(function() error('inner', 0) end) end, 'inner')
  end)
end)

describe('flare.help', function()
  it('documents every public function of flare and every tensor method', function()
    local missing = {}
    for k, v in pairs(flare) do
      if type(k) == 'string' and k:sub(1, 1) ~= '_' and type(v) == 'function' and not help.text_of(v, 'flare.' .. k) then
        missing[#missing + 1] = 'flare.' .. k
      end
    end
    for k, v in pairs(flare._methods) do
      if not help.text_of(v, 'Tensor:' .. k) then missing[#missing + 1] = 'Tensor:' .. k end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it('shows documentation by value and by name', function()
    assert.matches('^flare%.randn%(sizes', help.text(flare.randn))
    assert.matches('standard normal', help.text('flare.randn'))
    assert.matches('standard normal', help.text('randn'))
    assert.matches('^x:sum_?', help.text('Tensor:sum_') or '')
    assert.matches('In%-place form of x:add', help.text('Tensor:add_'))
    assert.matches('another name for mul', help.text('flare.multiply'))
    assert.matches('^no help for nothing_like_this', help.text('nothing_like_this'))
    -- Lua functions: the comment block above the definition
    assert.matches('finite differences', help.text(flare.autograd.gradcheck))
    assert.matches('flare%.autograd%.gradcheck +Compares', help.text(flare.autograd))
    -- flare.doc
    local f = flare.doc(function() end, 'f(x)\n\nDoes nothing.')
    assert.equal('f(x)\n\nDoes nothing.', help.text(f))
    -- undocumented Lua functions show their parameters
    assert.matches('^function%(a, b, %.%.%.%), defined at .*repl_spec%.lua:%d+', help.text(function(a, b, ...) end))
  end)

  it('finds a class by the --- comment that introduces it, and documents its instances', function()
    local path = os.tmpname()
    local f = assert(io.open(path, 'w'))
    f:write([[
local Thing = { __typename = 'spec.Thing' }
Thing.__index = Thing

--- spec.Thing(n): a thing with n parts.
-- Second line of the description.
function Thing.new(n) return setmetatable({ n = n }, Thing) end

--- t:parts() returns the number of parts.
function Thing:parts() return self.n end

return Thing
]])
    f:close()
    finally(function() os.remove(path) end)
    local Thing = dofile(path)
    assert.is_true(help.is_class(Thing))
    local s = help.text(Thing)
    assert.matches('^spec%.Thing%(n%): a thing with n parts%.\nSecond line of the description%.\nMethods defined by this class:\n', s)
    assert.matches('spec%.Thing:parts +returns the number of parts%.', s)
    assert.matches('^spec%.Thing%(n%): a thing', help.text(Thing.new(3)))
    assert.matches('^t:parts%(%) returns', help.text(Thing.parts))
  end)

  it('gives an overview and the tensor methods', function()
    local s = help.text()
    assert.matches('Creating tensors', s)
    assert.matches('randn', s)
    assert.matches(':time %[on|off%]', s)
    assert.matches('Elementwise math', help.text(flare.zeros(1)))
  end)

  it('lists user globals with types and sizes', function()
    _G.spec_who_tensor = flare.zeros(2, 3)
    _G.spec_who_table = { 1, 2, 3 }
    local names = help.user_globals()
    local set = {}
    for _, n in ipairs(names) do set[n] = true end
    assert.is_true(set.spec_who_tensor and set.spec_who_table)
    assert.is_nil(set.flare)
    assert.is_nil(set.string)
    assert.same({ 'FloatTensor', '2x3, 24 B' }, { help.describe(spec_who_tensor) })
    assert.same({ 'table', '3 entries' }, { help.describe(spec_who_table) })
    assert.same({ 'nn.Sequential', '101,770 parameters' }, { help.describe(fake_nn()) })
    local out = capture(help.who)
    assert.matches('spec_who_tensor +FloatTensor +2x3, 24 B', out)
    _G.spec_who_tensor, _G.spec_who_table = nil, nil
  end)
end)

-- ---------------------------------------------------------------- in a terminal

local function tempdir()
  local p = io.popen('mktemp -d')
  local d = p:read('l')
  p:close()
  return d
end

local function write_file(path, text)
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
end

local function read_file(path)
  local f = io.open(path, 'r')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  return s
end

local binary = sanitized and 'build/asan/bin/flare' or 'build/bin/flare'
-- Ctrl-C must bring the prompt back within a quarter of a second (the sanitized build is
-- several times slower, and the measurement includes polling the screen).
local latency_limit = sanitized and 1.0 or 0.25

local function start(dir, opts)
  opts = opts or {}
  local env = { LUA_PATH = 'stdlib/?.lua;stdlib/?/init.lua;;', HOME = dir,
                FLARE_HISTORY = opts.history or (dir .. '/history'), TERM = 'xterm' }
  if not opts.color then env.NO_COLOR = '1' end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local cmd = 'env -u FLARE_INIT ' .. binary .. ' ' .. (opts.args or '')
  if opts.env and opts.env.FLARE_INIT then cmd = binary .. ' ' .. (opts.args or '') end
  local term = tmux.start({ cmd = cmd, env = env, width = 150, height = 50 })
  local ok, err = pcall(term.wait_for, term, '\n>$', { timeout = sanitized and 30 or 10 })
  if not ok then
    term:close()
    error(err, 2)
  end
  return term
end

-- Types a line at the prompt and returns what it printed, once the prompt (or `ending`,
-- e.g. '\n>>' for a continuation) is back.
local function run(term, line, ending)
  ending = ending or '\n>'
  local before = term:screen()
  assert(before:sub(-1) == '>', 'not at a prompt:\n' .. before)
  term:line(line)
  local screen = term:wait(function(s)
    return #s > #before and s:sub(1, #before) == before and s:sub(-#ending) == ending
      and s:find('\n', #before + 1, true) ~= nil
  end, { timeout = sanitized and 60 or 20 }, 'the prompt after ' .. line)
  local rest = screen:sub(#before + 1)          -- " line\noutput\n>" or " line\n>"
  local out = rest:match('^[^\n]*\n(.*)$')
  if out == ending:sub(2) then return '' end
  return (out:sub(1, #out - #ending))
end

-- Sends Ctrl-C to a running command and returns the seconds until "interrupted!" and a
-- new prompt show.
local function interrupt(term)
  local before = tmux.count(term:screen(), 'interrupted!', true)
  local t0 = tmux.now()
  term:keys('C-c')
  term:wait(function(s) return tmux.count(s, 'interrupted!', true) > before and s:sub(-2) == '\n>' end,
            { timeout = 10 }, 'interrupted!')
  return tmux.now() - t0
end

describe('the prompt in a terminal', function()
  if not tmux.available() then
    io.stderr:write('\nrepl_spec: tmux is not installed: SKIPPING the terminal tests of the prompt\n')
    pending('tmux is not installed')
    return
  end

  local dir = tempdir()
  local term

  setup(function() term = start(dir) end)
  teardown(function()
    if term then term:close() end
    os.execute('rm -rf ' .. tmux.quote(dir))
  end)

  it('shows a banner with the versions, BLAS threads and CUDA', function()
    local screen = term:screen()
    assert.matches('^flare ' .. flare.version:gsub('%p', '%%%0') .. ' — Lua 5%.4%.%d+, .-%(%d+ threads?%), CUDA: ', screen)
  end)

  it('prints expressions, several values, and nothing after a trailing ;', function()
    run(term, "x = flare.tensor({{1, 2}, {3, 4}}, {dtype = 'float32'})")
    assert.equal(' 1. 2.\n 3. 4.\n[flare.FloatTensor of size 2x2]', run(term, 'x'))
    assert.matches('^1 +two +{3}$', run(term, "1, 'two', {3}"))
    assert.equal('', run(term, 'x;'))
    assert.equal('', run(term, 'y = 5'))
    assert.equal('5', run(term, 'y'))
    assert.matches('self = <cycle: table: 0x%x+>', run(term, 't = {a = 1}; t.self = t; return t'))
    assert.equal('stdin:1: attempt to call a nil value (global \'undefined_function\')', run(term, 'undefined_function()'))
  end)

  it('continues incomplete chunks with a >> prompt', function()
    assert.equal('', run(term, 'for i = 1, 2 do', '\n>>'))
    assert.equal('', run(term, "  print('row' .. i)", '\n>>'))
    assert.equal('row1\nrow2', run(term, 'end'))
    assert.equal('', run(term, '{10,', '\n>>'))
    assert.equal('{10, 20}', run(term, '20}'))
    -- Ctrl-C drops an unfinished chunk
    run(term, 'if true then', '\n>>')
    term:keys('C-c')
    term:wait_for('\n>> ?\n>$')
    assert.equal('7', run(term, '7'))
  end)

  it('completes names, fields, methods, keywords and file names with Tab', function()
    local function completes(typed, expected)
      term:type(typed)
      term:keys('Tab')
      local ok, err = pcall(term.wait_for, term, '\n> ' .. expected:gsub('%p', '%%%0') .. '$', { timeout = 5 })
      term:keys('C-e', 'C-u')   -- clear the line
      term:wait_for('\n>$')
      if not ok then error(err, 2) end
    end
    run(term, 'Net = {}; Net.__index = Net; function Net:forward() end; net = setmetatable({}, Net)')
    completes('flare.autograd.gradc', 'flare.autograd.gradcheck')
    completes('x:tota', 'x:totable')
    completes('net:forw', 'net:forward')
    completes('whil', 'while')
    completes("dofile('spec/supp", "dofile('spec/support/")
    -- ambiguous: the second Tab lists the candidates
    term:type('flare.randn_')
    term:keys('Tab')
    term:wait_for('\n> flare%.randn_like$')
    term:keys('C-e', 'C-u')
    term:type('flare.ran')
    term:keys('Tab', 'Tab')
    local screen = term:wait_for('flare%.randperm')
    assert.matches('flare%.randn_like', screen)
    term:keys('C-e', 'C-u')
    term:wait_for('\n>$')
  end)

  it('shows help for ?name and help()', function()
    assert.matches('standard normal distribution', run(term, '?flare.randn'))
    assert.matches('Creating tensors', run(term, 'help()'))
    assert.matches('In%-place form', run(term, '?x:add_'))
  end)

  it('lists user globals with who()', function()
    local out = run(term, 'who()')
    assert.matches('x +FloatTensor +2x2, 16 B', out)
    assert.matches('net +table', out)
    assert.not_matches('flare ', out)
  end)

  it('times commands after :time on', function()
    assert.equal('timing on', run(term, ':time on'))
    assert.matches('^2\ntime: [%d%.]+ %S*s$', run(term, '1 + 1'))
    run(term, ':time off')
    assert.equal('2', run(term, '1 + 1'))
  end)

  it('keeps only the last result in _', function()
    run(term, 'collectgarbage(); collectgarbage(); base = flare.bytes_allocated()')
    assert.matches('flare%.FloatTensor of size 2000x2000', run(term, 'flare.zeros(2000, 2000)'))
    assert.equal('4000000', run(term, '_:numel()'))
    assert.matches('flare%.FloatTensor of size 2000x2000', run(term, 'flare.zeros(2000, 2000)'))
    -- kept while it is the last result...
    assert.equal('true', run(term, 'collectgarbage(); collectgarbage(); return flare.bytes_allocated() > base + 15e6'))
    -- ...and released once another result replaces it
    assert.equal('true', run(term, 'collectgarbage(); collectgarbage(); return flare.bytes_allocated() < base + 1e6'))
  end)

  it('interrupts a Lua loop with Ctrl-C, keeping the globals', function()
    term:line('n = 0; while true do n = n + 1 end')
    tmux.sleep(0.3)
    local dt = interrupt(term)
    assert.is_true(dt < latency_limit, string.format('Ctrl-C took %.3f s', dt))
    assert.equal('true', run(term, 'n > 1000'))
    assert.equal(' 1. 2.\n 3. 4.\n[flare.FloatTensor of size 2x2]', run(term, 'x'))
  end)

  it('interrupts a long C kernel between blocks', function()
    run(term, 'big = flare.full({2e7}, 2.0)')
    -- erf of 2e7 floats takes most of a second; Ctrl-C stops it within a block
    term:line('erf_result = big:erf()')
    tmux.sleep(0.1)
    local dt = interrupt(term)
    assert.is_true(dt < latency_limit, string.format('Ctrl-C took %.3f s', dt))
    assert.equal('nil', run(term, 'erf_result'))
    -- the engine works normally afterwards (the flag was cleared)
    assert.equal('2.0', run(term, 'flare.ones(3e6):add(1)[3e6]:item()'))
  end)

  it('interrupts a training-like loop of large ops', function()
    run(term, 'w = flare.randn(1000, 1000)')
    term:line('step = 0; while true do w:mul_(0.999):add_(0.001); step = step + 1 end')
    tmux.sleep(0.3)
    local dt = interrupt(term)
    assert.is_true(dt < latency_limit, string.format('Ctrl-C took %.3f s', dt))
    assert.equal('true', run(term, 'step > 0'))
    if flare.matmul then
      run(term, 'm = flare.randn(1200, 1200)')
      term:line('for i = 1, 1e6 do r = m:matmul(m) end')
      tmux.sleep(0.3)
      dt = interrupt(term)
      assert.is_true(dt < latency_limit, string.format('Ctrl-C during matmul took %.3f s', dt))
    end
    run(term, 'big, w, m, r = nil')
  end)

  it('never leaves parameters half-updated by an interrupted optimizer step', function()
    -- each step updates two large "parameters" and a counter inside flare.uninterruptible,
    -- as optimizers do; Ctrl-C lands somewhere in the loop
    run(term, 'pa = flare.zeros(4e6); pb = flare.zeros(4e6); nsteps = 0')
    term:line('while true do flare.uninterruptible(function() pa:add_(1); pb:add_(1); nsteps = nsteps + 1 end) end')
    tmux.sleep(0.3)
    local dt = interrupt(term)
    assert.is_true(dt < latency_limit, string.format('Ctrl-C took %.3f s', dt))
    assert.equal('true', run(term, 'nsteps > 0 and pa[1]:item() == nsteps and pa[4e6]:item() == nsteps and pb[1]:item() == nsteps and pb[4e6]:item() == nsteps'))
    -- a real training loop, when autograd reaches through matmul and mean
    local trainable = pcall(function()
      local X, W = flare.randn(4, 3), flare.zeros(3, 1):requires_grad()
      X:matmul(W):pow(2):mean():backward()
      assert(W.grad)
    end)
    if trainable then
      run(term, 'X = flare.randn(2048, 512); Y = flare.randn(2048, 1); W = flare.zeros(512, 1):requires_grad(); epochs = 0')
      term:line('while true do local loss = (X:matmul(W) - Y):pow(2):mean(); loss:backward(); ' ..
                'flare.uninterruptible(function() local g <close> = flare.no_grad(); W:sub_(W.grad * 0.01); W:zero_grad() end); epochs = epochs + 1 end')
      tmux.sleep(0.3)
      dt = interrupt(term)
      assert.is_true(dt < latency_limit, string.format('Ctrl-C during training took %.3f s', dt))
      assert.equal('true', run(term, 'epochs > 0 and W:isfinite():all():item()'))
    end
    run(term, 'pa, pb, X, Y, W = nil')
  end)

  it('lets an uninterruptible section finish first', function()
    term:line('done = false; flare.uninterruptible(function() local t = flare.clock(); while flare.clock() - t < 0.6 do end; done = true end)')
    tmux.sleep(0.15)
    local dt = interrupt(term)
    assert.is_true(dt > 0.3, string.format('the section was cut short after %.3f s', dt))
    assert.equal('true', run(term, 'done'))
  end)

  it('clears the line on Ctrl-C at the prompt', function()
    term:type('this is not lua')
    term:wait_for('> this is not lua$')
    term:keys('C-c')
    term:wait_for('> this is not lua\n>$')
    assert.equal('3', run(term, '1 + 2'))
  end)

  it('exits on Ctrl-D and saves the history', function()
    assert.equal(0, term:quit())
    local hist = read_file(dir .. '/history')
    assert.truthy(hist:find("x = flare.tensor({{1, 2}, {3, 4}}, {dtype = 'float32'})\n", 1, true))
    assert.truthy(hist:find('1 + 2\n', 1, true))
    assert.falsy(hist:find('this is not lua', 1, true))
  end)
end)

describe('the prompt across sessions', function()
  if not tmux.available() then
    pending('tmux is not installed')
    return
  end
  local dir = tempdir()
  teardown(function() os.execute('rm -rf ' .. tmux.quote(dir)) end)

  it('keeps history without blanks and repeats; Up and Ctrl-R recall it', function()
    write_file(dir .. '/.flarerc', 'home_rc = "loaded"\n')
    local term = start(dir, { history = dir .. '/hist' })
    finally(function() term:close() end)
    run(term, 'h1 = 11')
    run(term, 'h1 = 11')
    run(term, '')
    run(term, '   ')
    run(term, 'h2 = 22')
    assert.equal('loaded', run(term, 'home_rc'))
    assert.equal(0, term:quit())
    term:close()
    assert.equal('h1 = 11\nh2 = 22\nhome_rc\n', read_file(dir .. '/hist'))

    term = start(dir, { history = dir .. '/hist' })
    finally(function() term:close() end)
    term:keys('Up')
    term:wait_for('\n> home_rc$')
    term:keys('Up')
    term:wait_for('\n> h2 = 22$')
    term:keys('C-e', 'C-u')
    term:keys('C-r')
    term:type('h1')
    term:keys('Enter')
    term:wait_for('h1 = 11\n>$')
    assert.equal('11', run(term, 'h1'))
    assert.equal(0, term:quit())
    term:close()
    assert.equal('h1 = 11\nh2 = 22\nhome_rc\nh1 = 11\nh1\n', read_file(dir .. '/hist'))
  end)

  it('runs FLARE_INIT, then a script with -i, and colours the output', function()
    write_file(dir .. '/init.lua', 'rc_value = 42\n')
    write_file(dir .. '/script.lua', 'from_script = rc_value + 1\n')
    local term = start(dir, { env = { FLARE_INIT = '@' .. dir .. '/init.lua' }, args = '-i ' .. dir .. '/script.lua', color = true })
    finally(function() term:close() end)
    assert.matches('^42 +43$', run(term, 'rc_value, from_script'))
    assert.is_nil(run(term, 'home_rc'):find('loaded'))   -- FLARE_INIT replaces ~/.flarerc
    term:line("{1, 'a'}")
    local screen = term:wait_for('\27%[3%dm', { color = true })
    assert.matches('\27%[36m1', screen)
    assert.equal(0, term:quit())
    term:close()
  end)
end)

describe('start-up', function()
  it('reaches the prompt in well under 50 ms', function()
    if sanitized then
      pending('timing is not meaningful under the sanitizers')
      return
    end
    local dir = tempdir()
    local function time(cmd)
      local best = math.huge
      for _ = 1, 5 do
        local t0 = tmux.now()
        os.execute(cmd)
        best = math.min(best, tmux.now() - t0)
      end
      return best
    end
    local base = time('true')
    local env = 'HOME=' .. dir .. ' FLARE_HISTORY=' .. dir .. '/h '
    local e = time(env .. binary .. " -e '' >/dev/null") - base
    local prompt = time(env .. binary .. ' -i </dev/null >/dev/null') - base
    os.execute('rm -rf ' .. tmux.quote(dir))
    assert.is_true(e < 0.05, string.format('flare -e "" took %.1f ms', e * 1e3))
    assert.is_true(prompt < 0.05, string.format('start-up to the prompt took %.1f ms', prompt * 1e3))
  end)
end)
