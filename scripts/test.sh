#!/bin/sh
# test.sh: runs every spec twice: with stock lua5.4 loading build/flare/core.so, then inside
# the AddressSanitizer + UndefinedBehaviorSanitizer build of the `flare` executable. Ends with
# one line "N passed, N failed" over both runs; exits non-zero if anything failed.
cd "$(dirname "$0")/.." || exit 1
export LUA_PATH="stdlib/?.lua;stdlib/?/init.lua;spec/?.lua;;"
export LUA_CPATH="build/?.so;;"
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT
export FLARE_TEST_COUNTS="$counts"
status=0

echo "== specs (lua5.4 + build/flare/core.so)"
lua5.4 /usr/bin/busted -o spec/support/summary.lua "$@" spec || status=1

echo "== specs under AddressSanitizer + UndefinedBehaviorSanitizer (build/asan/bin/flare)"
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/spec/support/lsan.supp:print_suppressions=0"
export FLARE_SANITIZED=1
build/asan/bin/flare /usr/bin/busted -o spec/support/summary.lua "$@" spec || status=1

awk -v status=$status '
  { passed += $1; failed += $2 + $3; runs++ }
  END {
    if (runs < 2) failed += 1   # a run that died before reporting counts as a failure
    printf "%d passed, %d failed\n", passed, failed
    exit (failed > 0 || status != 0)
  }' "$counts"
