-- A busted output handler: the usual terminal output, plus the run's counts appended to the
-- file named by FLARE_TEST_COUNTS ("passed failed errors pending"), which scripts/test.sh
-- adds up into its closing "N passed, N failed" line.
return function(options)
  local busted = require 'busted'
  local style = os.getenv('CI') and 'plainTerminal' or 'utfTerminal'
  local handler = require('busted.outputHandlers.' .. style)(options)
  busted.subscribe({ 'suite', 'end' }, function()
    local path = os.getenv('FLARE_TEST_COUNTS')
    if path then
      local f = assert(io.open(path, 'a'))
      f:write(string.format('%d %d %d %d\n', handler.successesCount, handler.failuresCount,
                            handler.errorsCount, handler.pendingsCount))
      f:close()
    end
    return nil, true
  end)
  return handler
end
