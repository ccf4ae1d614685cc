-- args.lua: the command-line parser the example scripts share.
--
--   local args = require 'args'      -- (scripts put their own directory on package.path)
--   local opt = args.parse(arg, {
--     usage = 'flare scripts/x.lua [options]',
--     {'epochs', 10, 'passes over the training set'},
--     {'lr', 1e-3, 'learning rate'},
--     {'batch-size', 64, 'samples per batch'},
--     {'plot', false, 'show the curves live'},
--   })
--   opt.epochs, opt.lr, opt.batch_size, opt.plot
--
-- Options are --name value, --name=value, or --flag / --no-flag for booleans; a value's
-- type is the default's (a number default takes numbers only). --help prints the options.
-- Every script also gets --seed (1) and --device ('cpu').
local M = {}

local function usage_text(spec)
  local lines = { 'usage: ' .. (spec.usage or 'flare script.lua [options]') }
  if spec.about then lines[#lines + 1] = spec.about end
  lines[#lines + 1] = ''
  lines[#lines + 1] = 'options:'
  for _, o in ipairs(spec) do
    local name, default, help = o[1], o[2], o[3] or ''
    local shown = type(default) == 'boolean' and ('--' .. name) or string.format('--%s %s', name, tostring(default == nil and '' or default))
    lines[#lines + 1] = string.format('  %-26s %s', shown, help)
  end
  return table.concat(lines, '\n')
end

local function die(spec, msg)
  io.stderr:write(msg, '\n\n', usage_text(spec), '\n')
  os.exit(2)
end

--- args.parse(argv, spec) -> options (names with '-' become '_': batch-size -> batch_size)
function M.parse(argv, spec)
  argv = argv or {}
  local have = {}
  for _, o in ipairs(spec) do have[o[1]] = true end
  if not have.seed then spec[#spec + 1] = { 'seed', 1, 'random seed' } end
  if not have.device then spec[#spec + 1] = { 'device', 'cpu', "where to train: 'cpu' or 'cuda' (a GPU)" } end
  local by_name, opts = {}, {}
  for _, o in ipairs(spec) do
    by_name[o[1]] = o
    opts[o[1]:gsub('-', '_')] = o[2]
  end
  local i = 1
  while argv[i] ~= nil do
    local a = argv[i]
    if a == '--help' or a == '-h' then
      print(usage_text(spec))
      os.exit(0)
    end
    local name, value = a:match('^%-%-([%w%-_]+)=(.*)$')
    if not name then name = a:match('^%-%-([%w%-_]+)$') end
    if not name then die(spec, "unexpected argument '" .. a .. "'") end
    name = name:gsub('_', '-')
    local o = by_name[name]
    local negated = false
    if not o and name:match('^no%-') and by_name[name:sub(4)] and type(by_name[name:sub(4)][2]) == 'boolean' then
      o, negated = by_name[name:sub(4)], true
    end
    if not o then die(spec, "unknown option '--" .. name .. "'") end
    local key = o[1]:gsub('-', '_')
    if type(o[2]) == 'boolean' then
      if value ~= nil then
        if value ~= 'true' and value ~= 'false' then die(spec, '--' .. name .. ' takes true or false, got ' .. value) end
        opts[key] = value == 'true'
      else
        opts[key] = not negated
      end
    else
      if value == nil then
        i = i + 1
        value = argv[i]
        if value == nil then die(spec, '--' .. name .. ' needs a value') end
      end
      if type(o[2]) == 'number' then
        local n = tonumber(value)
        if not n then die(spec, string.format("--%s takes a number, got '%s'", name, value)) end
        if math.type(o[2]) == 'integer' then
          n = math.tointeger(n)
          if not n then die(spec, string.format("--%s takes an integer, got '%s'", name, value)) end
        end
        opts[key] = n
      else
        opts[key] = value
      end
    end
    i = i + 1
  end
  if opts.device ~= 'cpu' then
    if not opts.device:match('^cuda[:%d]*$') then
      die(spec, "--device must be 'cpu' or 'cuda', got '" .. tostring(opts.device) .. "'")
    end
    local flare = require 'flare'
    if not flare.cuda.is_available() then
      die(spec, '--device ' .. opts.device .. ': no usable GPU (' .. tostring(flare.cuda.why_unavailable()) .. '); use --device cpu')
    end
  end
  return opts
end

M.usage = usage_text
return M
