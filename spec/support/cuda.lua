-- support/cuda.lua: where the specs of spec/cuda/ run. With a usable GPU they run on it;
-- with FLARE_CUDA=emu they run on the CUDA emulator (the same kernels, executed on the CPU:
-- see kernels/cuda/emu/emu.h); otherwise each file is skipped with a visible message and a
-- pending entry in busted's report.
local flare = require 'flare'
local assert = require 'luassert'

local M = {}

local announced = false

-- Call at the top of a spec file, passing busted's `pending`:
--   if not cuda.enabled('reduce_spec.lua', pending) then return end
function M.enabled(area, pending)
  if flare.cuda.is_available() then
    if not announced then
      announced = true
      local info = flare.cuda.device_info()
      io.stderr:write(string.format('[cuda] specs run on %s%s\n', info.name,
                                    flare.cuda.is_emulated() and ' (no GPU: CPU emulation)' or ''))
    end
    return true
  end
  local why = flare.cuda.why_unavailable()
  io.stderr:write(string.format('[cuda] SKIPPED spec/cuda/%s: no GPU (%s)\n', area, why))
  pending(string.format('CUDA specs of %s skipped: %s', area, why))
  return false
end

-- Same dtype, same shape, same values (NaN equal to NaN).
function M.equal(a, b)
  if a:dtype() ~= b:dtype() or a:dim() ~= b:dim() then return false end
  for d = 1, a:dim() do
    if a:size(d) ~= b:size(d) then return false end
  end
  if a:numel() == 0 then return true end
  local differ = a:ne(b)
  if a:dtype():match('float') then differ = differ:logical_and(a:isnan():logical_and(b:isnan()):logical_not()) end
  return differ:sum():item() == 0
end

-- Asserts that a device result matches the CPU result within tolerance (float32 defaults).
function M.assert_close(got, want, rtol, atol)
  rtol, atol = rtol or 1e-5, atol or 1e-6
  assert.are.equal('cuda:0', got:device())
  local g = got:cpu()
  assert.are.same(want:size(), g:size())
  assert.are.equal(want:dtype(), g:dtype())
  if want:numel() == 0 then return end
  if want:dtype() == 'bool' or not (want:dtype():match('float')) then
    assert.is_true(M.equal(g, want), 'device result differs from the CPU result')
    return
  end
  local gd, wd = g:double(), want:double()
  -- equal values (infinities included) and NaN against NaN agree; the rest within tolerance
  local same = gd:eq(wd):logical_or(gd:isnan():logical_and(wd:isnan()))
  local diff = (gd - wd):abs():masked_fill(same, 0)
  local excess = (diff - (wd:abs() * rtol + atol)):masked_fill(same, -1)
  local worst = excess:max():item()
  assert(worst <= 0, string.format('device result differs from the CPU result by %g (tolerance %g + %g*|x|)',
                                   diff:max():item(), atol, rtol))
end

return M
