/* reduce.cu: reductions, arg max/min and scans (see reduce.h).
 *
 * Two walks, chosen as the CPU chooses: when a row's entries are closer together than the
 * rows (reducing the innermost dims), one warp per row, lanes striding along it and a
 * shuffle tree at the end; when the rows are closer together (reducing a leading dim), or
 * too short to busy a warp, one thread per row, so that the threads of a warp read
 * neighbouring addresses at each step.
 * Rows too long for the number of rows to fill the GPU are cut into segments whose partial
 * results go to scratch memory, then folded by a second launch of the same kernels. The
 * split depends on the shape only, so results do not depend on the device. */
#include "common.cuh"
#include "math.cuh"
#include "reduce.h"

namespace {

const unsigned FULL = 0xffffffffu;
const int WARPS = FL_THREADS / 32;      /* rows per block of the warp walk */
const int64_t WARP_ITEMS = 2048;        /* (row, segment) pairs wanted for the warp walk */
const int64_t WARP_SEG = 4096;          /* shortest segment of the warp walk */
const int64_t THREAD_ITEMS = 65536;     /* (row, segment) pairs wanted for the thread walk */
const int64_t THREAD_SEG = 64;          /* shortest segment of the thread walk */

/* ---------------------------------------------------------------- operations */

/* Float dtypes accumulate in double: identity, folding one entry v (row shift s), and
 * combining two partial results, as kernels/cpu/reduce.c. */
template <fl_rk OP> struct float_op {
    typedef double acc;
    double p;
    __device__ __forceinline__ double identity() const
    {
        switch (OP) {
        case FL_RK_PROD: case FL_RK_ALL: return 1;
        case FL_RK_MAX: return -INFINITY;
        case FL_RK_MIN: case FL_RK_ABSMIN: return INFINITY;
        default: return 0;
        }
    }
    template <typename T> __device__ __forceinline__ double fold(double a, T x, double s) const
    {
        double v = (double)x;
        switch (OP) {
        case FL_RK_SUM: return a + v;
        case FL_RK_PROD: return a * v;
        case FL_RK_MAX: return (v > a || v != v) ? v : a;
        case FL_RK_MIN: return (v < a || v != v) ? v : a;
        case FL_RK_ALL: return v != 0 ? a : 0.0;
        case FL_RK_ANY: return v != 0 ? 1.0 : a;
        case FL_RK_SQDEV: return a + (v - s) * (v - s);
        case FL_RK_EXPSHIFT: return a + exp(v - s);
        case FL_RK_ABSPOW: return a + (p == 1 ? fabs(v) : p == 2 ? v * v : pow(fabs(v), p));
        case FL_RK_ABSMAX: return (fabs(v) > a || v != v) ? fabs(v) : a;
        case FL_RK_ABSMIN: return (fabs(v) < a || v != v) ? fabs(v) : a;
        case FL_RK_NONZERO: return a + (v != 0);
        default: return a;
        }
    }
    __device__ __forceinline__ double combine(double a, double b) const
    {
        switch (OP) {
        case FL_RK_PROD: return a * b;
        case FL_RK_MAX: case FL_RK_ABSMAX: case FL_RK_ANY: return (b > a || b != b) ? b : a;
        case FL_RK_MIN: case FL_RK_ABSMIN: case FL_RK_ALL: return (b < a || b != b) ? b : a;
        default: return a + b;
        }
    }
};

/* Integer and bool dtypes accumulate in int64; sums and products wrap around. */
template <fl_rk OP> struct int_op {
    typedef int64_t acc;
    __device__ __forceinline__ int64_t identity() const
    {
        switch (OP) {
        case FL_RK_PROD: case FL_RK_ALL: return 1;
        case FL_RK_MAX: return INT64_MIN;
        case FL_RK_MIN: return INT64_MAX;
        default: return 0;
        }
    }
    __device__ __forceinline__ int64_t combine(int64_t a, int64_t b) const
    {
        switch (OP) {
        case FL_RK_SUM: return (int64_t)((uint64_t)a + (uint64_t)b);
        case FL_RK_PROD: return (int64_t)((uint64_t)a * (uint64_t)b);
        case FL_RK_MAX: return b > a ? b : a;
        case FL_RK_MIN: return b < a ? b : a;
        case FL_RK_ALL: return b == 0 ? 0 : a;
        case FL_RK_ANY: return b != 0 ? 1 : a;
        default: return a;
        }
    }
    template <typename T> __device__ __forceinline__ int64_t fold(int64_t a, T x, double) const
    {
        return combine(a, (int64_t)x);
    }
};

/* The fold of a first pass's partial results. */
constexpr fl_rk combine_of(fl_rk op)
{
    return op == FL_RK_PROD ? FL_RK_PROD
         : (op == FL_RK_MAX || op == FL_RK_ABSMAX || op == FL_RK_ANY) ? FL_RK_MAX
         : (op == FL_RK_MIN || op == FL_RK_ABSMIN || op == FL_RK_ALL) ? FL_RK_MIN
         : FL_RK_SUM;
}

/* ---------------------------------------------------------------- where results go */

/* Conversions as the CPU's fl_cast of its double or int64 accumulator. */
__device__ __forceinline__ void store_double(fl_dtype dt, void *out, int64_t i, double v)
{
    switch (dt) {
    case FL_DTYPE_F32: ((float *)out)[i] = (float)v; break;
    case FL_DTYPE_F64: ((double *)out)[i] = v; break;
    case FL_DTYPE_BOOL: ((uint8_t *)out)[i] = v != 0; break;
    default: break;   /* float reductions give float or bool */
    }
}

__device__ __forceinline__ void store_int(fl_dtype dt, void *out, int64_t i, int64_t v)
{
    switch (dt) {
    case FL_DTYPE_I64: ((int64_t *)out)[i] = v; break;
    case FL_DTYPE_I32: ((int32_t *)out)[i] = (int32_t)v; break;
    case FL_DTYPE_U8: ((uint8_t *)out)[i] = (uint8_t)v; break;
    case FL_DTYPE_BOOL: ((uint8_t *)out)[i] = v != 0; break;
    default: break;   /* integer reductions give integers or bool */
    }
}

/* Partial results (acc[segment][row]) or final ones (post-processed, of dtype dt). */
struct sink {
    void *out;
    bool partial;
    fl_dtype dt;
    fl_rpost post;
    double n, arg;
    const double *shift;
    __device__ __forceinline__ void put(int64_t seg, int64_t r, int64_t n_out, double a) const
    {
        if (partial)
            ((double *)out)[seg * n_out + r] = a;
        else
            store_double(dt, out, r, fl_rpost_apply(post, a, n, arg, shift ? shift[r] : 0));
    }
    __device__ __forceinline__ void put(int64_t seg, int64_t r, int64_t n_out, int64_t a) const
    {
        if (partial)
            ((int64_t *)out)[seg * n_out + r] = a;
        else
            store_int(dt, out, r, a);
    }
};

/* The end of segment s of a row of n entries. */
__device__ __forceinline__ int64_t seg_end(int64_t s, int64_t seg, int64_t n)
{
    return (s + 1) * seg < n ? (s + 1) * seg : n;
}

/* Element offset of row r's first entry. */
__device__ __forceinline__ int64_t row_offset(const fl_cuda_rplan &pl, int64_t r)
{
    int64_t o = r / pl.n_inner, off = (r - o * pl.n_inner) * pl.so;
    for (int k = pl.nouter - 1; k >= 0; k--) {
        int64_t q = o / pl.outer_shape[k];
        off += (o - q * pl.outer_shape[k]) * pl.outer_stride[k];
        o = q;
    }
    return off;
}

/* ---------------------------------------------------------------- choosing the walk */

/* The thread walk where rows are closer together than entries, or too short for a warp. */
bool walks_across(const fl_cuda_rplan &pl)
{
    int64_t so = pl.so < 0 ? -pl.so : pl.so, sr = pl.sr < 0 ? -pl.sr : pl.sr;
    return (pl.so != 0 && so < sr) || pl.n_red <= 16;
}

/* Segments per row: enough (row, segment) pairs to fill the device, none too short. */
int64_t segments(const fl_cuda_rplan &pl, bool across)
{
    int64_t want = across ? THREAD_ITEMS : WARP_ITEMS, shortest = across ? THREAD_SEG : WARP_SEG;
    if (pl.n_out >= want || pl.n_red <= shortest)
        return 1;
    int64_t by_len = (pl.n_red + shortest - 1) / shortest, by_rows = (want + pl.n_out - 1) / pl.n_out;
    return by_len < by_rows ? by_len : by_rows;
}

unsigned warp_blocks(int64_t items)
{
    int64_t b = (items + WARPS - 1) / WARPS;
    return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

/* The plan of the partial results of pl's rows: row r's nseg values lie n_out apart. */
fl_cuda_rplan partial_plan(const fl_cuda_rplan &pl, const void *part, fl_dtype dt, int64_t nseg)
{
    fl_cuda_rplan p2 = {};
    p2.x = part;
    p2.dt = dt;
    p2.n_inner = pl.n_out;
    p2.so = 1;
    p2.n_red = nseg;
    p2.sr = pl.n_out;
    p2.n_out = pl.n_out;
    return p2;
}

/* ---------------------------------------------------------------- reduction kernels */

/* One warp per (row, segment) of entries s*seg ...; every thread of the block reaches the
 * shuffles. */
template <typename T, typename OP>
__global__ void warp_walk(fl_cuda_rplan pl, const T *x, int64_t nseg, int64_t seg, const double *shift,
                          OP op, sink out)
{
    typedef typename OP::acc A;
    const int lane = threadIdx.x & 31, per = blockDim.x >> 5;
    const int64_t items = pl.n_out * nseg;
    for (int64_t b = (int64_t)blockIdx.x * per; b < items; b += (int64_t)gridDim.x * per) {
        int64_t item = b + (threadIdx.x >> 5), r = 0, s = 0;
        A a = op.identity();
        if (item < items) {
            r = item / nseg;
            s = item - r * nseg;
            const T *row = x + row_offset(pl, r);
            double sh = shift ? shift[r] : 0;
            int64_t j = s * seg + lane, end = seg_end(s, seg, pl.n_red);
            if (pl.sr == 1) {
                for (; j + 96 < end; j += 128) {   /* four loads in flight per lane */
                    T v0 = row[j], v1 = row[j + 32], v2 = row[j + 64], v3 = row[j + 96];
                    a = op.fold(op.fold(op.fold(op.fold(a, v0, sh), v1, sh), v2, sh), v3, sh);
                }
                for (; j < end; j += 32)
                    a = op.fold(a, row[j], sh);
            } else {
                for (; j < end; j += 32)
                    a = op.fold(a, row[j * pl.sr], sh);
            }
        }
        for (int o = 16; o > 0; o >>= 1)
            a = op.combine(a, __shfl_down_sync(FULL, a, o));
        if (item < items && lane == 0)
            out.put(s, r, pl.n_out, a);
    }
}

/* One thread per (row, segment), neighbouring threads on neighbouring rows. */
template <typename T, typename OP>
__global__ void thread_walk(fl_cuda_rplan pl, const T *x, int64_t nseg, int64_t seg, const double *shift,
                            OP op, sink out)
{
    typedef typename OP::acc A;
    FL_GRID_STRIDE(t, pl.n_out * nseg) {
        int64_t s = t / pl.n_out, r = t - s * pl.n_out;
        const T *col = x + row_offset(pl, r);
        double sh = shift ? shift[r] : 0;
        A a = op.identity();
        int64_t end = seg_end(s, seg, pl.n_red);
        for (int64_t j = s * seg; j < end; j++)
            a = op.fold(a, col[j * pl.sr], sh);
        out.put(s, r, pl.n_out, a);
    }
}

template <typename T, typename OP>
int launch(const fl_cuda_rplan &pl, int64_t nseg, const double *shift, OP op, const sink &out)
{
    int64_t seg = (pl.n_red + nseg - 1) / nseg;
    /* kernels through pointers: the macro cannot take a template's commas */
    auto across = thread_walk<T, OP>;
    auto along = warp_walk<T, OP>;
    if (walks_across(pl))
        FL_LAUNCH(across, fl_blocks(pl.n_out * nseg), FL_THREADS, pl, (const T *)pl.x, nseg, seg, shift, op, out);
    else
        FL_LAUNCH(along, warp_blocks(pl.n_out * nseg), FL_THREADS, pl, (const T *)pl.x, nseg, seg, shift, op, out);
    return FL_CHECK_LAUNCH("reduction");
}

/* op over the rows of pl; split rows go through partial results (of dtype acc_dt) folded
 * by comb. */
template <typename T, typename OP, typename COMB>
int reduce_rows(const fl_cuda_rplan &pl, const double *shift, OP op, COMB comb, fl_dtype acc_dt, const sink &out)
{
    typedef typename OP::acc A;
    int64_t nseg = segments(pl, walks_across(pl));
    if (nseg == 1)
        return launch<T>(pl, 1, shift, op, out);
    size_t bytes = (size_t)(nseg * pl.n_out) * sizeof(A);
    A *part = (A *)fl_cuda_malloc(bytes);
    if (!part)
        return -1;
    sink partial = out;
    partial.out = part;
    partial.partial = true;
    int rc = launch<T>(pl, nseg, shift, op, partial);
    if (rc == 0)
        rc = launch<A>(partial_plan(pl, part, acc_dt, nseg), 1, nullptr, comb, out);
    fl_cuda_free(part, bytes);
    return rc;
}

template <typename T, fl_rk OP> int run_float(const fl_cuda_rplan &pl, const double *shift, double p, const sink &out)
{
    return reduce_rows<T>(pl, shift, float_op<OP>{p}, float_op<combine_of(OP)>{p}, FL_DTYPE_F64, out);
}

template <typename T> int reduce_float(fl_rk op, const fl_cuda_rplan &pl, const double *shift, double p, const sink &out)
{
    switch (op) {
    case FL_RK_SUM: return run_float<T, FL_RK_SUM>(pl, shift, p, out);
    case FL_RK_PROD: return run_float<T, FL_RK_PROD>(pl, shift, p, out);
    case FL_RK_MAX: return run_float<T, FL_RK_MAX>(pl, shift, p, out);
    case FL_RK_MIN: return run_float<T, FL_RK_MIN>(pl, shift, p, out);
    case FL_RK_ALL: return run_float<T, FL_RK_ALL>(pl, shift, p, out);
    case FL_RK_ANY: return run_float<T, FL_RK_ANY>(pl, shift, p, out);
    case FL_RK_SQDEV: return run_float<T, FL_RK_SQDEV>(pl, shift, p, out);
    case FL_RK_EXPSHIFT: return run_float<T, FL_RK_EXPSHIFT>(pl, shift, p, out);
    case FL_RK_ABSPOW: return run_float<T, FL_RK_ABSPOW>(pl, shift, p, out);
    case FL_RK_ABSMAX: return run_float<T, FL_RK_ABSMAX>(pl, shift, p, out);
    case FL_RK_ABSMIN: return run_float<T, FL_RK_ABSMIN>(pl, shift, p, out);
    case FL_RK_NONZERO: return run_float<T, FL_RK_NONZERO>(pl, shift, p, out);
    default: return fl_cuda_fail("reduction: unknown operation %d", (int)op);
    }
}

template <typename T, fl_rk OP> int run_int(const fl_cuda_rplan &pl, const sink &out)
{
    return reduce_rows<T>(pl, nullptr, int_op<OP>{}, int_op<combine_of(OP)>{}, FL_DTYPE_I64, out);
}

template <typename T> int reduce_int(fl_rk op, const fl_cuda_rplan &pl, const sink &out)
{
    switch (op) {
    case FL_RK_SUM: return run_int<T, FL_RK_SUM>(pl, out);
    case FL_RK_PROD: return run_int<T, FL_RK_PROD>(pl, out);
    case FL_RK_MAX: return run_int<T, FL_RK_MAX>(pl, out);
    case FL_RK_MIN: return run_int<T, FL_RK_MIN>(pl, out);
    case FL_RK_ALL: return run_int<T, FL_RK_ALL>(pl, out);
    case FL_RK_ANY: return run_int<T, FL_RK_ANY>(pl, out);
    default: return fl_cuda_fail("reduction: operation %d takes floating-point tensors", (int)op);
    }
}

/* ---------------------------------------------------------------- arg max / min */

/* A candidate: value and position (-1: none yet). */
template <typename V> struct cand {
    V v;
    int64_t i;
};

/* The winner of two candidates as the CPU's left-to-right scan picks it: the first NaN,
 * else the first extreme. */
template <bool MAX, typename V> __device__ __forceinline__ cand<V> pick(cand<V> a, cand<V> b)
{
    if (b.i < 0)
        return a;
    if (a.i < 0)
        return b;
    bool an = a.v != a.v, bn = b.v != b.v;
    if (an || bn)
        return (an && (!bn || a.i < b.i)) ? a : b;
    if (MAX ? b.v > a.v : b.v < a.v)
        return b;
    return (b.v == a.v && b.i < a.i) ? b : a;
}

/* Partial candidates (val[segment][row], idx likewise) or final ones (val of dtype dt,
 * idx + base). */
template <typename V> struct arg_sink {
    V *pval;
    int64_t *pidx;
    void *val;
    int64_t *idx;
    fl_dtype dt;
    int64_t base;
    __device__ __forceinline__ void put(int64_t seg, int64_t r, int64_t n_out, cand<V> c) const
    {
        if (pval) {
            pval[seg * n_out + r] = c.v;
            pidx[seg * n_out + r] = c.i;
            return;
        }
        store(c.v, r);
        idx[r] = c.i + base;
    }
    __device__ __forceinline__ void store(double v, int64_t r) const { store_double(dt, val, r, v); }
    __device__ __forceinline__ void store(int64_t v, int64_t r) const { store_int(dt, val, r, v); }
};

/* Entry j of a row: (value, j), or (value, xi[...]) when folding partial candidates. */
template <typename T, typename V>
__device__ __forceinline__ cand<V> entry(const T *x, const int64_t *xi, int64_t off, int64_t j)
{
    return cand<V>{(V)x[off], xi ? xi[off] : j};
}

template <typename T, typename V, bool MAX>
__global__ void arg_warp_walk(fl_cuda_rplan pl, const T *x, const int64_t *xi, int64_t nseg, int64_t seg,
                              arg_sink<V> out)
{
    const int lane = threadIdx.x & 31, per = blockDim.x >> 5;
    const int64_t items = pl.n_out * nseg;
    for (int64_t b = (int64_t)blockIdx.x * per; b < items; b += (int64_t)gridDim.x * per) {
        int64_t item = b + (threadIdx.x >> 5), r = 0, s = 0;
        cand<V> a = {0, -1};
        if (item < items) {
            r = item / nseg;
            s = item - r * nseg;
            int64_t off = row_offset(pl, r), end = seg_end(s, seg, pl.n_red);
            for (int64_t j = s * seg + lane; j < end; j += 32)
                a = pick<MAX>(a, entry<T, V>(x, xi, off + j * pl.sr, j));
        }
        for (int o = 16; o > 0; o >>= 1) {
            cand<V> c = {__shfl_down_sync(FULL, a.v, o), __shfl_down_sync(FULL, a.i, o)};
            a = pick<MAX>(a, c);
        }
        if (item < items && lane == 0)
            out.put(s, r, pl.n_out, a);
    }
}

template <typename T, typename V, bool MAX>
__global__ void arg_thread_walk(fl_cuda_rplan pl, const T *x, const int64_t *xi, int64_t nseg, int64_t seg,
                                arg_sink<V> out)
{
    FL_GRID_STRIDE(t, pl.n_out * nseg) {
        int64_t s = t / pl.n_out, r = t - s * pl.n_out;
        int64_t off = row_offset(pl, r), end = seg_end(s, seg, pl.n_red);
        cand<V> a = {0, -1};
        for (int64_t j = s * seg; j < end; j++)
            a = pick<MAX>(a, entry<T, V>(x, xi, off + j * pl.sr, j));
        out.put(s, r, pl.n_out, a);
    }
}

template <typename T, typename V, bool MAX>
int arg_launch(const fl_cuda_rplan &pl, const int64_t *xi, int64_t nseg, const arg_sink<V> &out)
{
    int64_t seg = (pl.n_red + nseg - 1) / nseg;
    auto across = arg_thread_walk<T, V, MAX>;
    auto along = arg_warp_walk<T, V, MAX>;
    if (walks_across(pl))
        FL_LAUNCH(across, fl_blocks(pl.n_out * nseg), FL_THREADS, pl, (const T *)pl.x, xi, nseg, seg, out);
    else
        FL_LAUNCH(along, warp_blocks(pl.n_out * nseg), FL_THREADS, pl, (const T *)pl.x, xi, nseg, seg, out);
    return FL_CHECK_LAUNCH("arg max/min");
}

/* V: double for float dtypes, int64 for the others. */
template <typename T, typename V, bool MAX>
int arg_rows(const fl_cuda_rplan &pl, int64_t base, void *val, int64_t *idx)
{
    arg_sink<V> out = {nullptr, nullptr, val, idx, pl.dt, base};
    int64_t nseg = segments(pl, walks_across(pl));
    if (nseg == 1)
        return arg_launch<T, V, MAX>(pl, nullptr, 1, out);
    size_t n = (size_t)(nseg * pl.n_out);
    arg_sink<V> partial = out;
    partial.pval = (V *)fl_cuda_malloc(n * sizeof(V));
    partial.pidx = partial.pval ? (int64_t *)fl_cuda_malloc(n * sizeof(int64_t)) : nullptr;
    int rc = partial.pidx ? arg_launch<T, V, MAX>(pl, nullptr, nseg, partial) : -1;
    if (rc == 0) {
        fl_cuda_rplan p2 = partial_plan(pl, partial.pval, pl.dt, nseg);
        rc = arg_launch<V, V, MAX>(p2, partial.pidx, 1, out);
    }
    fl_cuda_free(partial.pval, n * sizeof(V));
    fl_cuda_free(partial.pidx, n * sizeof(int64_t));
    return rc;
}

template <typename T, typename V>
int arg_dtype(int want_max, const fl_cuda_rplan &pl, int64_t base, void *val, int64_t *idx)
{
    return want_max ? arg_rows<T, V, true>(pl, base, val, idx) : arg_rows<T, V, false>(pl, base, val, idx);
}

/* ---------------------------------------------------------------- scans */

/* Scans along contiguous rows (inner == 1): one warp per row, 32 entries at a time, with a
 * shuffle scan inside each tile and the running value carried across tiles. */
template <typename T, typename A, bool PROD>
__global__ void scan_warp(T *out, const T *x, int64_t rows, int64_t n)
{
    const int lane = threadIdx.x & 31, per = blockDim.x >> 5;
    for (int64_t b = (int64_t)blockIdx.x * per; b < rows; b += (int64_t)gridDim.x * per) {
        int64_t r = b + (threadIdx.x >> 5);
        bool ok = r < rows;
        A carry = PROD ? 1 : 0;
        for (int64_t j0 = 0; j0 < n; j0 += 32) {
            int64_t j = j0 + lane;
            bool here = ok && j < n;
            A v = here ? (A)x[r * n + j] : (A)(PROD ? 1 : 0);
            for (int d = 1; d < 32; d <<= 1) {
                A u = __shfl_up_sync(FULL, v, d);
                if (lane >= d)
                    v = PROD ? u * v : u + v;
            }
            v = PROD ? carry * v : carry + v;
            if (here)
                out[r * n + j] = (T)v;
            carry = __shfl_sync(FULL, v, 31);
        }
    }
}

/* Scans along a strided dim: one thread per (outer, inner) column, neighbouring threads on
 * neighbouring columns. */
template <typename T, typename A, bool PROD>
__global__ void scan_columns(T *out, const T *x, int64_t outer, int64_t n, int64_t inner)
{
    FL_GRID_STRIDE(t, outer * inner) {
        int64_t o = t / inner, base = o * n * inner + (t - o * inner);
        A a = PROD ? 1 : 0;
        for (int64_t j = 0; j < n; j++) {
            A v = (A)x[base + j * inner];
            a = PROD ? a * v : a + v;
            out[base + j * inner] = (T)a;
        }
    }
}

template <typename T, typename A, bool PROD>
int scan(T *out, const T *x, int64_t outer, int64_t n, int64_t inner)
{
    auto rows = scan_warp<T, A, PROD>;
    auto columns = scan_columns<T, A, PROD>;
    if (inner == 1 && n > 1)
        FL_LAUNCH(rows, warp_blocks(outer), FL_THREADS, out, x, outer, n);
    else
        FL_LAUNCH(columns, fl_blocks(outer * inner), FL_THREADS, out, x, outer, n, inner);
    return FL_CHECK_LAUNCH("cumulative");
}

template <typename T, typename A>
int scan_dtype(int prod, void *out, const void *x, int64_t outer, int64_t n, int64_t inner)
{
    return prod ? scan<T, A, true>((T *)out, (const T *)x, outer, n, inner)
                : scan<T, A, false>((T *)out, (const T *)x, outer, n, inner);
}

}  // namespace

/* ---------------------------------------------------------------- entry points */

extern "C" int fl_cuda_reduce(fl_rk op, const fl_cuda_rplan *pl, const double *shift, double p, fl_rpost post,
                              double n, double arg, fl_dtype out_dt, void *out)
{
    if (pl->n_out == 0)
        return 0;
    sink s = {out, false, out_dt, post, n, arg, shift};
    switch (pl->dt) {
    case FL_DTYPE_F32: return reduce_float<float>(op, *pl, shift, p, s);
    case FL_DTYPE_F64: return reduce_float<double>(op, *pl, shift, p, s);
    case FL_DTYPE_I64: return reduce_int<int64_t>(op, *pl, s);
    case FL_DTYPE_I32: return reduce_int<int32_t>(op, *pl, s);
    case FL_DTYPE_U8: case FL_DTYPE_BOOL: return reduce_int<uint8_t>(op, *pl, s);
    default: return fl_cuda_fail("reduction: unsupported dtype %d", (int)pl->dt);
    }
}

extern "C" int fl_cuda_reduce_arg(int want_max, const fl_cuda_rplan *pl, int64_t base, void *val, int64_t *idx)
{
    if (pl->n_out == 0)
        return 0;
    switch (pl->dt) {
    case FL_DTYPE_F32: return arg_dtype<float, double>(want_max, *pl, base, val, idx);
    case FL_DTYPE_F64: return arg_dtype<double, double>(want_max, *pl, base, val, idx);
    case FL_DTYPE_I64: return arg_dtype<int64_t, int64_t>(want_max, *pl, base, val, idx);
    case FL_DTYPE_I32: return arg_dtype<int32_t, int64_t>(want_max, *pl, base, val, idx);
    case FL_DTYPE_U8: case FL_DTYPE_BOOL: return arg_dtype<uint8_t, int64_t>(want_max, *pl, base, val, idx);
    default: return fl_cuda_fail("arg max/min: unsupported dtype %d", (int)pl->dt);
    }
}

extern "C" int fl_cuda_cumulative(int prod, fl_dtype dt, void *out, const void *x, int64_t outer, int64_t n,
                                  int64_t inner)
{
    if (outer * n * inner == 0)
        return 0;
    switch (dt) {
    case FL_DTYPE_F32: return scan_dtype<float, double>(prod, out, x, outer, n, inner);
    case FL_DTYPE_F64: return scan_dtype<double, double>(prod, out, x, outer, n, inner);
    case FL_DTYPE_I64: return scan_dtype<int64_t, uint64_t>(prod, out, x, outer, n, inner);
    default: return fl_cuda_fail("cumulative: unsupported dtype %d", (int)dt);
    }
}
