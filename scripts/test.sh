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

# The CUDA specs once more on the CUDA emulator (kernels/cuda/emu): without a GPU the run
# above skipped them, and with one this checks the emulator still agrees.
run "spec/cuda on the CUDA emulator (FLARE_CUDA=emu)" \
    env FLARE_CUDA=emu lua5.4 /usr/bin/busted -o spec/support/summary.lua "$@" spec/cuda

export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/spec/support/lsan.supp:print_suppressions=0"
export FLARE_SANITIZED=1
# The sanitized executable lives in build/asan/bin: point it at the CUDA library of the build.
[ -f build/flare/cuda.so ] && export FLARE_CUDA_LIB="$(pwd)/build/flare/cuda.so"
run "AddressSanitizer + UndefinedBehaviorSanitizer (build/asan/bin/flare)" \
    build/asan/bin/flare /usr/bin/busted -o spec/support/summary.lua "$@" spec
# ASan warns once that it cannot follow the emulator's coroutine stacks (swapcontext).
run "spec/cuda on the CUDA emulator, sanitized" \
    env FLARE_CUDA=emu FLARE_CUDA_LIB="$(pwd)/build/flare/cuda_emu.so" \
    build/asan/bin/flare /usr/bin/busted -o spec/support/summary.lua "$@" spec/cuda

awk '
  { passed += $1; failed += $2 + $3 }
  END {
    printf "%d passed, %d failed\n", passed, failed
    exit (failed > 0)
  }' "$counts"
