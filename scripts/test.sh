#!/bin/sh
# test.sh: runs every spec twice: with stock lua5.4 loading build/flare/core.so, then inside
# the AddressSanitizer + UndefinedBehaviorSanitizer build of the `flare` executable. Ends with
# one line "N passed, N failed" over both runs; exits non-zero if anything failed. A run that
# exits non-zero without a failed spec (a sanitizer report at exit, a crash) counts as one
# failure.
cd "$(dirname "$0")/.." || exit 1
export LUA_PATH="stdlib/?.lua;stdlib/?/init.lua;spec/?.lua;;"
export LUA_CPATH="build/?.so;;"
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT
export FLARE_TEST_COUNTS="$counts"

run() {
    name=$1
    shift
    echo "== specs: $name"
    before=$(wc -l < "$counts")
    "$@"
    rc=$?
    after=$(wc -l < "$counts")
    if [ "$rc" -ne 0 ] && { [ "$after" -eq "$before" ] || [ "$(tail -n 1 "$counts" | awk '{print $2 + $3}')" -eq 0 ]; }; then
        echo "!! $name exited with status $rc without a failing spec (sanitizer report or crash): counted as a failure"
        echo "0 1 0 0" >> "$counts"
    fi
}

run "lua5.4 + build/flare/core.so" lua5.4 /usr/bin/busted -o spec/support/summary.lua "$@" spec

export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/spec/support/lsan.supp:print_suppressions=0"
export FLARE_SANITIZED=1
run "AddressSanitizer + UndefinedBehaviorSanitizer (build/asan/bin/flare)" \
    build/asan/bin/flare /usr/bin/busted -o spec/support/summary.lua "$@" spec

awk '
  { passed += $1; failed += $2 + $3 }
  END {
    printf "%d passed, %d failed\n", passed, failed
    exit (failed > 0)
  }' "$counts"
