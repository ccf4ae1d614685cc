#!/bin/sh
# run.sh: `make bench`. Runs the benchmark workloads of BENCHMARKS.md (gemm, tiny_add,
# tiny_add_grad, add_large, startup, chain10, mlp_train, cnn_train, lstm_train, gru_train,
# mnist_epoch, and matmul_grad: a large product with and without autograd) on flare
# (scripts/bench/*.lua under ./flare), on the C yardsticks (gemm_ref.c, add_ref.c) and, when
# /usr/bin/python3 has torch, on PyTorch (scripts/bench/*.py), all in this one run, and
# prints one line per figure with the ratio.
#
# ratio > 1 means flare is better: reference/flare for times, flare/reference for rates.
#
# Each program warms up and reports the median of its timed runs (at least 5 where a run is
# short; chain10 takes 3, mnist_epoch 1 per round); run.sh runs the
# contenders in turn, BENCH_ROUNDS times (default 3), and quotes the median over rounds, so
# that a burst of load from elsewhere hits them alike. The machine should otherwise be idle.
#
# PyTorch runs in its best configuration: OPENBLAS_CORETYPE=SkylakeX (Debian's OpenBLAS
# misdetects this CPU otherwise), 2 threads, and each script runs with and without
# OMP_WAIT_POLICY=PASSIVE, the better of the two quoted. flare gets no such help: it picks
# its BLAS kernels and thread policy itself.
#
# The training workloads take seconds per run, so they time fewer iterations (see each
# script); mnist_epoch times one epoch per round.
#
#   scripts/bench/run.sh [workload ...]     workloads: gemm tiny_add add_large startup chain10
#                                           matmul_grad mlp_train cnn_train rnn_train (lstm_train
#                                           and gru_train) mnist_epoch, and on a GPU
#                                           gpu_gemm cnn_train_gpu lstm_train_gpu (all three: gpu)
# shellcheck disable=SC2046  # set -- $(torch_best ...) splits "figure policy" on purpose
cd "$(dirname "$0")/../.." || exit 1
BENCH=scripts/bench
BIN=build/bench
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
mkdir -p "$BIN"
CORETYPE=${BENCH_OPENBLAS_CORETYPE:-SkylakeX}
ROUNDS=${BENCH_ROUNDS:-3}

if [ ! -x ./flare ]; then
    echo "run.sh: ./flare is missing: run make first" >&2
    exit 1
fi
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    HAVE_TORCH=1
else
    HAVE_TORCH=0
    echo "(PyTorch not found for /usr/bin/python3: torch figures skipped)"
fi

# ---------------------------------------------------------------- helpers

# Result files hold lines "<case> <value> <unit>", one per round; `get FILE CASE` prints
# the median over rounds, or "n/a" when the case is missing or marked unavailable.
get() {
    awk -v c="$2" '$1 == c && $2 != "unavailable" { print $2 }' "$1" 2>/dev/null | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# `ratio X Y` prints X/Y with two decimals, or n/a.
ratio() {
    awk -v x="$1" -v y="$2" 'BEGIN { if (x == "n/a" || y == "n/a" || y + 0 == 0) print "n/a"; else printf "%.2f\n", x / y }'
}

# `fmt X` rounds a figure for display (3 significant digits).
fmt() {
    awk -v x="$1" 'BEGIN { if (x == "n/a") print x; else if (x + 0 >= 100) printf "%.0f\n", x; else if (x + 0 >= 1) printf "%.3g\n", x; else printf "%.2g\n", x }'
}

# `target R MIN` prints "met" or "MISSED" for ratio R against a minimum.
target() {
    awk -v r="$1" -v m="$2" 'BEGIN { if (r == "n/a") print "n/a"; else print (r + 0 >= m ? "met" : "MISSED") }'
}

flare_run() {   # flare_run SCRIPT ARGS... >> results
    script=$1
    shift
    ./flare "$BENCH/$script.lua" "$@" 2>"$TMP/err" ||
        echo "run.sh: $script.lua failed: $(tail -n 3 "$TMP/err")" >&2
}

# Runs a PyTorch script in both wait policies (or those in TORCH_POLICIES), appending to
# $TMP/NAME_torch_active and $TMP/NAME_torch_passive.
torch_run() {   # torch_run SCRIPT ARGS...
    [ "$HAVE_TORCH" = 1 ] || return 0
    script=$1
    shift
    for policy in ${TORCH_POLICIES:-active passive}; do
        if [ "$policy" = passive ]; then export OMP_WAIT_POLICY=PASSIVE; else unset OMP_WAIT_POLICY; fi
        (cd "$BENCH" && OPENBLAS_CORETYPE=$CORETYPE /usr/bin/python3 "$script.py" "$@") \
            >>"$TMP/${script}_torch_$policy" 2>"$TMP/err" ||
            echo "run.sh: $script.py (OMP_WAIT_POLICY=$policy) failed: $(tail -n 3 "$TMP/err")" >&2
    done
    unset OMP_WAIT_POLICY
}

# `torch_best SCRIPT CASE higher|lower` prints the better policy's median and the policy.
torch_best() {
    a=$(get "$TMP/$1_torch_active" "$2")
    p=$(get "$TMP/$1_torch_passive" "$2")
    awk -v a="$a" -v p="$p" -v h="$3" 'BEGIN {
        if (a == "n/a" && p == "n/a") { print "n/a -"; exit }
        if (a == "n/a") { print p, "passive"; exit }
        if (p == "n/a") { print a, "active"; exit }
        if ((h == "higher") == (p + 0 > a + 0)) print p, "passive"; else print a, "active"
    }'
}

compile() {   # compile NAME FLAGS... : builds $BIN/NAME from $BENCH/NAME.c; 0 on success
    name=$1
    shift
    cc -O2 -o "$BIN/$name" "$BENCH/$name.c" "$@" 2>"$TMP/err" || {
        echo "run.sh: cannot build $name.c ($(head -n 1 "$TMP/err"))" >&2
        return 1
    }
}

rounds() {   # rounds FUNCTION: runs it ROUNDS times
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        "$1"
        r=$((r + 1))
    done
}

# ---------------------------------------------------------------- workloads

GEMM_SIZES="256 1024 2048"

# shellcheck disable=SC2086  # $GEMM_SIZES is a list of arguments
gemm_round() {
    flare_run gemm $GEMM_SIZES >>"$TMP/gemm_flare"
    if [ -x "$BIN/gemm_ref" ]; then
        OPENBLAS_CORETYPE=$CORETYPE OPENBLAS_NUM_THREADS=$THREADS "$BIN/gemm_ref" $GEMM_SIZES >>"$TMP/gemm_ref"
    fi
    torch_run gemm $GEMM_SIZES
}

bench_gemm() {
    compile gemm_ref -lopenblas || rm -f "$BIN/gemm_ref"
    THREADS=$(./flare -e 'io.write(flare.get_num_threads())')
    rounds gemm_round
    for n in $GEMM_SIZES; do
        f=$(get "$TMP/gemm_flare" "gemm:n=$n")
        c=$(get "$TMP/gemm_ref" "gemm:n=$n")
        set -- $(torch_best gemm "gemm:n=$n" higher)
        t=$1
        r=$(ratio "$f" "$c")
        if [ "$f" = n/a ]; then
            note="(flare: no matmul yet)"
        elif [ "$n" -ge 1024 ]; then
            note="(target flare/cblas >= 0.95: $(target "$r" 0.95))"
        else
            note=""
        fi
        echo "gemm n=$n flare_gflops=$(fmt "$f") cblas_gflops=$(fmt "$c") torch_gflops=$(fmt "$t")" \
            "ratio=$r vs_torch=$(ratio "$f" "$t") $note"
    done
}

tiny_add_round() {
    flare_run tiny_add >>"$TMP/tiny_flare"
    torch_run tiny_add
}

bench_tiny_add() {
    rounds tiny_add_round
    f=$(get "$TMP/tiny_flare" tiny_add)
    set -- $(torch_best tiny_add tiny_add lower)
    t=$1
    met=$(awk -v f="$f" 'BEGIN { print (f == "n/a" ? "n/a" : f + 0 <= 1 ? "met" : "MISSED") }')
    echo "tiny_add flare_us=$(fmt "$f") torch_us=$(fmt "$t") ratio=$(ratio "$t" "$f")" \
        "(torch OMP_WAIT_POLICY=$2; target flare <= 1 us: $met)"
    f=$(get "$TMP/tiny_flare" tiny_add_grad)
    set -- $(torch_best tiny_add tiny_add_grad lower)
    t=$1
    note=""
    [ "$f" = n/a ] && note="(flare: no autograd yet)"
    echo "tiny_add_grad flare_us=$(fmt "$f") torch_us=$(fmt "$t") ratio=$(ratio "$t" "$f") $note"
}

add_large_round() {
    flare_run add_large >>"$TMP/add_flare"
    [ -x "$BIN/add_ref" ] && "$BIN/add_ref" >>"$TMP/add_ref"
    torch_run add_large
}

bench_add_large() {
    compile add_ref -pthread || rm -f "$BIN/add_ref"
    rounds add_large_round
    f=$(get "$TMP/add_flare" add_large)
    c1=$(get "$TMP/add_ref" add_large:threads=1)
    c2=$(get "$TMP/add_ref" add_large:threads=2)
    set -- $(torch_best add_large add_large lower)
    t=$1
    r=$(ratio "$c1" "$f")
    echo "add_large flare_ms=$(fmt "$f") c_1thread_ms=$(fmt "$c1") c_2threads_ms=$(fmt "$c2") torch_ms=$(fmt "$t")" \
        "ratio=$r vs_c_2threads=$(ratio "$c2" "$f") vs_torch=$(ratio "$t" "$f")" \
        "(target within 1.3x of the C loop, ratio >= 0.77: $(target "$r" 0.769))"
    f=$(get "$TMP/add_flare" add_large:inplace)
    set -- $(torch_best add_large add_large:inplace lower)
    t=$1
    echo "add_large_inplace flare_ms=$(fmt "$f") torch_ms=$(fmt "$t") ratio=$(ratio "$t" "$f") (a:add_(b), no new result)"
}

# Milliseconds from process start to the first result: hyperfine when installed, else a
# shell loop over `date +%s%N`; the median of the runs after a warm-up.
time_command() {   # time_command RUNS CMD... > median ms
    runs=$1
    shift
    if command -v hyperfine >/dev/null 2>&1; then
        hyperfine -N --warmup 2 --runs "$runs" --export-csv "$TMP/hf.csv" "$*" >/dev/null 2>&1 &&
            awk -F, 'NR == 2 { printf "%.6g\n", $4 * 1000 }' "$TMP/hf.csv" && return
    fi
    "$@" >/dev/null 2>&1 || { echo n/a; return; }
    i=0
    : >"$TMP/times"
    while [ $i -lt "$runs" ]; do
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000)) >>"$TMP/times"
        i=$((i + 1))
    done
    sort -n "$TMP/times" | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.6g\n", m / 1000 }'
}

bench_startup() {
    if ./flare -e 'os.exit(flare._methods.sum and 0 or 1)' 2>/dev/null; then
        code='print(flare.randn(3,3):sum())'
    else
        code='print(flare.randn(3,3))'   # no reductions yet
    fi
    f=$(time_command 21 ./flare -e "$code")
    t=n/a
    if [ "$HAVE_TORCH" = 1 ]; then
        t=$(time_command 5 env OPENBLAS_CORETYPE="$CORETYPE" /usr/bin/python3 -c 'import torch; print(torch.randn(3,3).sum())')
    fi
    echo "startup flare_ms=$(fmt "$f") torch_ms=$(fmt "$t") ratio=$(ratio "$t" "$f") (flare -e \"$code\")"
}

# ---------------------------------------------------------------- training workloads

# `pair - FLARE_FILE TORCH_SCRIPT CASE higher|lower` sets F (flare's median over rounds),
# T (PyTorch's, in its better wait policy) and POLICY.
pair() {
    F=$(get "$TMP/$2" "$4")
    set -- $(torch_best "$3" "$4" "$5")
    T=$1
    POLICY=$2
}

chain10_round() {
    flare_run chain10 >>"$TMP/chain10_flare"
    torch_run chain10
}

bench_chain10() {
    rounds chain10_round
    pair - chain10_flare chain10 chain10 lower
    r=$(ratio "$T" "$F")
    echo "chain10 flare_us_per_op=$(fmt "$F") torch_us_per_op=$(fmt "$T") ratio=$r" \
        "(torch OMP_WAIT_POLICY=$POLICY; target flare <= 0.3x torch's time, ratio >= 3.33: $(target "$r" 3.333))"
}

matmul_grad_round() {
    flare_run matmul_grad >>"$TMP/matmul_grad_flare"
    torch_run matmul_grad
}

bench_matmul_grad() {
    rounds matmul_grad_round
    fp=$(get "$TMP/matmul_grad_flare" matmul_grad:plain)
    fg=$(get "$TMP/matmul_grad_flare" matmul_grad:requires_grad)
    set -- $(torch_best matmul_grad matmul_grad:plain lower)
    tp=$1
    tg=$(get "$TMP/matmul_grad_torch_$2" matmul_grad:requires_grad)
    over=$(awk -v p="$fp" -v g="$fg" 'BEGIN { if (p == "n/a" || g == "n/a" || p + 0 == 0) print "n/a"; else printf "%+.1f%%\n", (g / p - 1) * 100 }')
    met=$(awk -v p="$fp" -v g="$fg" 'BEGIN { if (p == "n/a" || g == "n/a") print "n/a"; else print (g <= p * 1.02 ? "met" : "MISSED") }')
    echo "matmul_grad n=1024 flare_ms=$(fmt "$fp") flare_requires_grad_ms=$(fmt "$fg") torch_ms=$(fmt "$tp")" \
        "torch_requires_grad_ms=$(fmt "$tg") flare_overhead=$over vs_torch=$(ratio "$tg" "$fg")" \
        "(forward with A requiring grad; target within 2% of plain: $met)"
}

mlp_train_round() {
    flare_run mlp_train >>"$TMP/mlp_flare"
    torch_run mlp_train
}

bench_mlp_train() {
    rounds mlp_train_round
    pair - mlp_flare mlp_train mlp_train higher
    r=$(ratio "$F" "$T")
    echo "mlp_train flare_steps_per_s=$(fmt "$F") torch_steps_per_s=$(fmt "$T") ratio=$r" \
        "(torch OMP_WAIT_POLICY=$POLICY; target >= 1.0: $(target "$r" 1))"
    f=$(get "$TMP/mlp_flare" mlp_train:rss)
    t=$(get "$TMP/mlp_train_torch_$POLICY" mlp_train:rss)
    r=$(ratio "$t" "$f")
    echo "mlp_train_rss flare_peak_mib=$(fmt "$f") torch_peak_mib=$(fmt "$t") ratio=$r" \
        "(peak resident memory of the process; target flare <= torch: $(target "$r" 1))"
}

cnn_train_round() {
    flare_run cnn_train >>"$TMP/cnn_flare"
    torch_run cnn_train
}

bench_cnn_train() {
    rounds cnn_train_round
    pair - cnn_flare cnn_train cnn_train higher
    r=$(ratio "$F" "$T")
    echo "cnn_train flare_steps_per_s=$(fmt "$F") torch_steps_per_s=$(fmt "$T") ratio=$r" \
        "(torch OMP_WAIT_POLICY=$POLICY; target >= 1.0: $(target "$r" 1))"
}

# lstm_train and gru_train come from one script (rnn_train.lua/.py); RNN_KINDS picks them.
# PyTorch's recurrent step runs best with OMP_WAIT_POLICY=PASSIVE (3x slower without, see
# BENCHMARKS.md), so only that policy is timed: the other takes a minute per run of make bench.
rnn_train_round() {
    # shellcheck disable=SC2086  # $RNN_KINDS is a list of arguments
    flare_run rnn_train $RNN_KINDS >>"$TMP/rnn_flare"
    TORCH_POLICIES=passive
    # shellcheck disable=SC2086
    torch_run rnn_train $RNN_KINDS
    unset TORCH_POLICIES
}

bench_rnn_train() {   # bench_rnn_train KIND... (lstm, gru)
    RNN_KINDS="$*"
    rounds rnn_train_round
    for kind in "$@"; do
        pair - rnn_flare rnn_train "${kind}_train" higher
        r=$(ratio "$F" "$T")
        ft=$(get "$TMP/rnn_flare" "${kind}_train:tokens")
        tt=$(get "$TMP/rnn_train_torch_$POLICY" "${kind}_train:tokens")
        echo "${kind}_train flare_steps_per_s=$(fmt "$F") torch_steps_per_s=$(fmt "$T") ratio=$r" \
            "flare_tokens_per_s=$(fmt "$ft") torch_tokens_per_s=$(fmt "$tt")" \
            "(torch OMP_WAIT_POLICY=$POLICY; target >= 1.0: $(target "$r" 1))"
    done
}

mnist_epoch_round() {
    flare_run mnist_epoch >>"$TMP/mnist_flare"
    torch_run mnist_epoch
}

bench_mnist_epoch() {
    rounds mnist_epoch_round
    pair - mnist_flare mnist_epoch mnist_epoch lower
    echo "mnist_epoch flare_s=$(fmt "$F") torch_s=$(fmt "$T") ratio=$(ratio "$T" "$F")" \
        "(one shuffled epoch of 60,000 samples, batch 128; torch OMP_WAIT_POLICY=$POLICY)"
}

# ---------------------------------------------------------------- GPU workloads
# cnn_train at batch 512 and lstm_train at batch 256 on the GPU, against PyTorch CUDA (its
# default settings, cuDNN autotuned for the fixed shapes). They run only when flare finds a
# real GPU (the CUDA emulator does not count); otherwise one line says why they are skipped.

HAVE_GPU=unknown
check_gpu() {
    if [ "$HAVE_GPU" = unknown ]; then
        if ./flare -e 'os.exit(flare.cuda.is_available() and not flare.cuda.is_emulated() and 0 or 1)' 2>/dev/null; then
            HAVE_GPU=1
            echo "GPU: $(./flare -e 'local i = flare.cuda.device_info(); io.write(i.name, ", ", i.memory // 2^20, " MiB")')"
        else
            HAVE_GPU=0
            why=$(./flare -e 'io.write(tostring(flare.cuda.why_unavailable() or "only the CUDA emulator"))' 2>&1)
            echo "(no GPU for flare: $why; the GPU rows are skipped)"
        fi
    fi
    [ "$HAVE_GPU" = 1 ]
}

# PyTorch on the GPU: one wait policy is enough (the CPU threads only launch kernels).
torch_gpu_run() {   # torch_gpu_run SCRIPT ARGS...
    TORCH_POLICIES=active
    torch_run "$@"
    unset TORCH_POLICIES
}

gpu_note() {   # gpu_note TORCH_FIGURE: why a torch figure is missing
    if [ "$1" = n/a ]; then
        if [ "$HAVE_TORCH" = 1 ]; then echo "(PyTorch sees no GPU)"; else echo "(no PyTorch)"; fi
    fi
}

# gemm at n = 8192 in float32, TF32 and bf16, against cuBLAS called directly in the same run.
bench_gpu_gemm() {
    check_gpu || return 0
    ./flare "$BENCH/gpu_gemm.lua" "${BENCH_GPU_GEMM_N:-8192}"
}

cnn_train_gpu_round() {
    flare_run cnn_train gpu >>"$TMP/cnn_gpu_flare"
    torch_gpu_run cnn_train gpu
}

bench_cnn_train_gpu() {
    check_gpu || return 0
    rounds cnn_train_gpu_round
    pair - cnn_gpu_flare cnn_train cnn_train_gpu higher
    r=$(ratio "$F" "$T")
    echo "cnn_train_gpu batch=512 flare_steps_per_s=$(fmt "$F") torch_cuda_steps_per_s=$(fmt "$T") ratio=$r" \
        "(target >= 1.0: $(target "$r" 1)) $(gpu_note "$T")"
}

lstm_train_gpu_round() {
    flare_run rnn_train gpu lstm >>"$TMP/rnn_gpu_flare"
    torch_gpu_run rnn_train gpu lstm
}

bench_lstm_train_gpu() {
    check_gpu || return 0
    rounds lstm_train_gpu_round
    pair - rnn_gpu_flare rnn_train lstm_train_gpu higher
    r=$(ratio "$F" "$T")
    ft=$(get "$TMP/rnn_gpu_flare" lstm_train_gpu:tokens)
    tt=$(get "$TMP/rnn_train_torch_active" lstm_train_gpu:tokens)
    echo "lstm_train_gpu batch=256 flare_steps_per_s=$(fmt "$F") torch_cuda_steps_per_s=$(fmt "$T") ratio=$r" \
        "flare_tokens_per_s=$(fmt "$ft") torch_tokens_per_s=$(fmt "$tt") (target >= 1.0: $(target "$r" 1))" \
        "$(gpu_note "$T")"
}

# ---------------------------------------------------------------- main

echo "flare $(./flare -v 2>&1 | head -n 1 | sed 's/^flare //'), $(./flare -e 'io.write(flare.blas_info())');" \
    "$(nproc) cores; medians of $ROUNDS rounds; ratio > 1: flare better"
ALL="gemm tiny_add add_large startup chain10 matmul_grad mlp_train cnn_train rnn_train mnist_epoch gpu_gemm cnn_train_gpu lstm_train_gpu"
workloads=${*:-$ALL}
for w in $workloads; do
    case $w in
    gemm | tiny_add | add_large | startup | chain10 | matmul_grad | mlp_train | cnn_train | mnist_epoch) "bench_$w" ;;
    rnn_train) bench_rnn_train lstm gru ;;
    lstm_train | gru_train) bench_rnn_train "${w%_train}" ;;
    gpu_gemm | cnn_train_gpu | lstm_train_gpu) "bench_$w" ;;
    gpu) bench_gpu_gemm && bench_cnn_train_gpu && bench_lstm_train_gpu ;;
    *) echo "run.sh: unknown workload '$w' ($ALL lstm_train gru_train gpu)" >&2 ;;
    esac
done
