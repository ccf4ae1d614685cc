/* index.cu: index checks, gather and scatter along a dimension, masked fill, and the
 * compactions that must keep the CPU's order (count_nonzero, masked_select, masked_scatter,
 * nonzero). A compaction splits the positions into at most MAX_CHUNKS contiguous chunks, one
 * block each: the blocks count, one block scans the counts, then each block writes its
 * chunk tile by tile with a block-wide prefix sum, so the output order is the input order. */
#include "common.cuh"
#include "iter.cuh"
#include "index.h"

namespace {

/* ---------------------------------------------------------------- walking an fl_iter */

template <int N> struct operands {
    char *p[N];
};



template <int N> __device__ __forceinline__ void offsets(const fl_offsets<N> &o, int64_t i, int64_t *off)
{
    if (o.ndim == 1) {
        for (int a = 0; a < N; a++)
            off[a] = i * o.strides[a][0];
    } else {
        o.of(i, off);
    }
}

/* f(ops, off, i) at every position i of the walk. */
template <int N, typename F> __global__ void map_kernel(fl_offsets<N> o, operands<N> ops, int64_t n, F f)
{
    FL_GRID_STRIDE(i, n) {
        int64_t off[N];
        offsets(o, i, off);
        f(ops, off, i);
    }
}

template <int N, typename F> int run(const fl_iter *it, F f, const char *what)
{
    if (it->numel == 0)
        return 0;
    operands<N> ops;
    for (int a = 0; a < N; a++)
        ops.p[a] = it->data[a];
    FL_LAUNCH(map_kernel, fl_blocks(it->numel), FL_THREADS, fl_offsets_of<N>(it), ops, it->numel, f);
    return FL_CHECK_LAUNCH(what);
}

/* Element types by size: moves copy bits. */
#define BY_SIZE(elsize, W, ...)                                                    \
    switch (elsize) {                                                              \
    case 1: { typedef uint8_t W; __VA_ARGS__; } break;                             \
    case 4: { typedef uint32_t W; __VA_ARGS__; } break;                            \
    case 8: { typedef uint64_t W; __VA_ARGS__; } break;                            \
    default: return fl_cuda_fail("unsupported element size %zu", (size_t)(elsize)); \
    }
#define BY_INDEX(idt, I, ...)                                                      \
    switch (idt) {                                                                 \
    case FL_DTYPE_I64: { typedef int64_t I; __VA_ARGS__; } break;                  \
    case FL_DTYPE_I32: { typedef int32_t I; __VA_ARGS__; } break;                  \
    default: return fl_cuda_fail("index must be int64 or int32, got dtype %d", (int)(idt)); \
    }

/* ---------------------------------------------------------------- index check */

/* The first bad position wins (atomicMin), so the message names the CPU's first bad index. */
template <typename I> struct check_op {
    int64_t limit, base;
    unsigned long long *first;
    __device__ void operator()(operands<1> o, const int64_t *off, int64_t i) const
    {
        int64_t v = (int64_t)fl_at<I>(o.p[0], off[0]);
        if (v < base || v - base >= limit)
            atomicMin(first, (unsigned long long)i);
    }
};

/* ---------------------------------------------------------------- gather and scatter */

template <typename W, typename I> struct gather_op {
    int64_t sd, base;
    __device__ void operator()(operands<3> o, const int64_t *off, int64_t) const
    {
        int64_t v = (int64_t)fl_at<I>(o.p[1], off[1]);
        fl_at<W>(o.p[0], off[0]) = fl_at<W>(o.p[2], off[2] + (v - base) * sd);
    }
};

/* Scatter SET in two passes: every position claims its target with atomicMax of (i + 1),
 * then only the claimant writes, so the last position wins as on the CPU. */
template <typename I> struct claim_op {
    int64_t sd, base;
    unsigned long long *owner;
    __device__ void operator()(operands<3> o, const int64_t *off, int64_t i) const
    {
        int64_t v = (int64_t)fl_at<I>(o.p[1], off[1]);
        atomicMax(&owner[off[0] + (v - base) * sd], (unsigned long long)i + 1);
    }
};

template <typename W, typename I> struct scatter_set_op {
    int64_t sd, base;
    const unsigned long long *owner;
    __device__ void operator()(operands<3> o, const int64_t *off, int64_t i) const
    {
        int64_t v = (int64_t)fl_at<I>(o.p[1], off[1]), target = off[0] + (v - base) * sd;
        if (owner[target] == (unsigned long long)i + 1)
            fl_at<W>(o.p[0], target) = fl_at<W>(o.p[2], off[2]);
    }
};

/* += in the element's own type; integers wrap (added as unsigned), bool adds as or. Bytes
 * have no atomic of their own: a compare-and-swap on the aligned word holding them (the
 * caching allocator hands out 512-byte aligned blocks, so the word is inside the block). */
__device__ __forceinline__ void atomic_byte(uint8_t *p, uint8_t v, bool logical_or)
{
    unsigned *word = (unsigned *)((uintptr_t)p & ~(uintptr_t)3);
    unsigned shift = (unsigned)((uintptr_t)p & 3) * 8, old = *word, assumed;
    do {
        assumed = old;
        unsigned byte = (assumed >> shift) & 0xffu;
        unsigned next = logical_or ? (byte | (v != 0)) : ((byte + v) & 0xffu);
        old = atomicCAS(word, assumed, (assumed & ~(0xffu << shift)) | (next << shift));
    } while (old != assumed);
}

template <typename T, bool IS_BOOL> struct adder {
    __device__ __forceinline__ static void add(T *p, T v) { atomicAdd(p, v); }
};
template <> struct adder<int64_t, false> {
    __device__ __forceinline__ static void add(int64_t *p, int64_t v)
    {
        atomicAdd((unsigned long long *)p, (unsigned long long)v);
    }
};
template <> struct adder<int32_t, false> {
    __device__ __forceinline__ static void add(int32_t *p, int32_t v) { atomicAdd((unsigned *)p, (unsigned)v); }
};
template <> struct adder<uint8_t, false> {
    __device__ __forceinline__ static void add(uint8_t *p, uint8_t v) { atomic_byte(p, v, false); }
};
template <> struct adder<uint8_t, true> {
    __device__ __forceinline__ static void add(uint8_t *p, uint8_t v) { atomic_byte(p, v, true); }
};

template <typename T, bool IS_BOOL, typename I> struct scatter_add_op {
    int64_t sd, base;
    __device__ void operator()(operands<3> o, const int64_t *off, int64_t) const
    {
        int64_t v = (int64_t)fl_at<I>(o.p[1], off[1]);
        adder<T, IS_BOOL>::add(&fl_at<T>(o.p[0], off[0] + (v - base) * sd), fl_at<T>(o.p[2], off[2]));
    }
};

template <typename I> int scatter_add(fl_dtype dt, const fl_iter *it, int64_t sd, int64_t base)
{
    switch (dt) {
    case FL_DTYPE_F32: return run<3>(it, scatter_add_op<float, false, I>{sd, base}, "scatter_add");
    case FL_DTYPE_F64: return run<3>(it, scatter_add_op<double, false, I>{sd, base}, "scatter_add");
    case FL_DTYPE_I64: return run<3>(it, scatter_add_op<int64_t, false, I>{sd, base}, "scatter_add");
    case FL_DTYPE_I32: return run<3>(it, scatter_add_op<int32_t, false, I>{sd, base}, "scatter_add");
    case FL_DTYPE_U8: return run<3>(it, scatter_add_op<uint8_t, false, I>{sd, base}, "scatter_add");
    case FL_DTYPE_BOOL: return run<3>(it, scatter_add_op<uint8_t, true, I>{sd, base}, "scatter_add");
    default: return fl_cuda_fail("scatter_add: unsupported dtype %d", (int)dt);
    }
}

template <typename W, typename I> int scatter_set(const fl_iter *it, int64_t sd, int64_t base, int64_t span)
{
    size_t bytes = (size_t)span * sizeof(unsigned long long);
    unsigned long long *owner = (unsigned long long *)fl_cuda_malloc(bytes);
    if (!owner)
        return -1;
    int rc = fl_cuda_memset(owner, 0, bytes);
    if (rc == 0)
        rc = run<3>(it, claim_op<I>{sd, base, owner}, "scatter");
    if (rc == 0)
        rc = run<3>(it, scatter_set_op<W, I>{sd, base, owner}, "scatter");
    fl_cuda_free(owner, bytes);
    return rc;
}

/* ---------------------------------------------------------------- masked fill */

template <typename W> struct masked_fill_op {
    W v;
    const W *dv;   /* the value in device memory, or null for v */
    __device__ void operator()(operands<2> o, const int64_t *off, int64_t) const
    {
        if (fl_at<uint8_t>(o.p[1], off[1]))
            fl_at<W>(o.p[0], off[0]) = dv ? *dv : v;
    }
};

/* ---------------------------------------------------------------- compaction */

#define SCAN_THREADS 256
#define MAX_CHUNKS 1024
#define MIN_CHUNK 1024   /* positions per block at least: 4 tiles */

/* Exclusive prefix sum of one value per thread across the block: a shuffle scan within each
 * warp, then every warp scans the warp totals (so that all threads reach every shuffle).
 * *total gets the block's sum. Every thread of the block must call it. */
template <typename T> __device__ T block_scan(T v, T *total)
{
    const int warps = SCAN_THREADS / 32;
    __shared__ T sums[warps];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    T x = v;
    for (int d = 1; d < 32; d *= 2) {
        T y = __shfl_up_sync(0xffffffffu, x, d);
        if (lane >= d)
            x += y;
    }
    if (lane == 31)
        sums[warp] = x;
    __syncthreads();
    T s = lane < warps ? sums[lane] : 0;
    for (int d = 1; d < warps; d *= 2) {
        T y = __shfl_up_sync(0xffffffffu, s, d);
        if (lane >= d)
            s += y;
    }
    T before = __shfl_sync(0xffffffffu, s, warp ? warp - 1 : 0);
    *total = __shfl_sync(0xffffffffu, s, warps - 1);
    __syncthreads();   /* sums is reused by the next call */
    return (warp ? before : 0) + x - v;
}

/* counts[b] = positions of chunk b that pass f.test */
template <typename F> __global__ void count_kernel(F f, int64_t n, int64_t chunk, int64_t *counts)
{
    int64_t begin = (int64_t)blockIdx.x * chunk, end = begin + chunk < n ? begin + chunk : n, c = 0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        int64_t off[2];
        c += f.test(i, off);
    }
    int64_t total;
    block_scan<int64_t>(c, &total);
    if (threadIdx.x == 0)
        counts[blockIdx.x] = total;
}

/* One block: starts[b] = counts[0] + ... + counts[b - 1]; starts[chunks] = the total. */
__global__ void scan_kernel(const int64_t *counts, int64_t *starts, int chunks)
{
    int64_t running = 0;
    for (int b0 = 0; b0 < chunks; b0 += SCAN_THREADS) {
        int b = b0 + (int)threadIdx.x;
        int64_t total, pre = block_scan<int64_t>(b < chunks ? counts[b] : 0, &total);
        if (b < chunks)
            starts[b] = running + pre;
        running += total;
    }
    if (threadIdx.x == 0)
        starts[chunks] = running;
}

/* Chunk b, one tile of SCAN_THREADS positions at a time: the k-th passing position of the
 * whole walk gets f.emit(k, ...). The tile loop is the same for every thread of the block. */
template <typename F> __global__ void emit_kernel(F f, int64_t n, int64_t chunk, const int64_t *starts)
{
    int64_t begin = (int64_t)blockIdx.x * chunk, end = begin + chunk < n ? begin + chunk : n;
    int64_t k = starts[blockIdx.x];
    for (int64_t t0 = begin; t0 < end; t0 += SCAN_THREADS) {
        int64_t i = t0 + threadIdx.x, off[2];
        int flag = i < end && f.test(i, off), total;
        int pre = block_scan<int>(flag, &total);
        if (flag)
            f.emit(k + pre, i, off);
        k += total;
    }
}

/* Runs the compaction of n positions: the count into *count (read back) when asked, and the
 * writes when emit. */
template <typename F> int compact(const F &f, int64_t n, bool emit, int64_t *count)
{
    if (n == 0) {
        if (count)
            *count = 0;
        return 0;
    }
    int64_t chunk = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    chunk = chunk < MIN_CHUNK ? MIN_CHUNK : (chunk + SCAN_THREADS - 1) / SCAN_THREADS * SCAN_THREADS;
    int64_t chunks = (n + chunk - 1) / chunk;
    size_t bytes = (size_t)(2 * chunks + 1) * sizeof(int64_t);
    int64_t *counts = (int64_t *)fl_cuda_malloc(bytes), *starts = counts + chunks;
    if (!counts)
        return -1;
    FL_LAUNCH(count_kernel, (unsigned)chunks, SCAN_THREADS, f, n, chunk, counts);
    int rc = FL_CHECK_LAUNCH("counting non-zero elements");
    if (rc == 0) {
        FL_LAUNCH(scan_kernel, 1, SCAN_THREADS, counts, starts, (int)chunks);
        rc = FL_CHECK_LAUNCH("counting non-zero elements");
    }
    if (rc == 0 && emit) {
        FL_LAUNCH(emit_kernel, (unsigned)chunks, SCAN_THREADS, f, n, chunk, (const int64_t *)starts);
        rc = FL_CHECK_LAUNCH("compaction");
    }
    if (rc == 0 && count)
        rc = fl_cuda_memcpy(count, starts + chunks, sizeof *count, FL_COPY_D2H);
    fl_cuda_free(counts, bytes);
    return rc;
}

/* The element tests: non-zero of dtype T (-0 is zero, NaN is not), or a bool mask. */
template <typename T> struct nonzero_test {
    fl_offsets<1> o;
    char *p;
    __device__ bool test(int64_t i, int64_t *off) const
    {
        offsets(o, i, off);
        return fl_at<T>(p, off[0]) != 0;
    }
    __device__ void emit(int64_t, int64_t, const int64_t *) const {}
};

/* operands a, mask */
template <typename W> struct select_op {
    fl_offsets<2> o;
    char *a, *mask;
    W *out;
    __device__ bool test(int64_t i, int64_t *off) const
    {
        offsets(o, i, off);
        return fl_at<uint8_t>(mask, off[1]) != 0;
    }
    __device__ void emit(int64_t k, int64_t, const int64_t *off) const { out[k] = fl_at<W>(a, off[0]); }
};

/* operands out, mask */
template <typename W> struct masked_scatter_op {
    fl_offsets<2> o;
    char *out, *mask;
    const W *src;
    __device__ bool test(int64_t i, int64_t *off) const
    {
        offsets(o, i, off);
        return fl_at<uint8_t>(mask, off[1]) != 0;
    }
    __device__ void emit(int64_t k, int64_t, const int64_t *off) const { fl_at<W>(out, off[0]) = src[k]; }
};

/* coordinates of position i in a's own (unmerged) shape */
template <typename T> struct nonzero_op {
    fl_offsets<1> o;
    char *a;
    int64_t *out, base;
    __device__ bool test(int64_t i, int64_t *off) const
    {
        o.of(i, off);
        return fl_at<T>(a, off[0]) != 0;
    }
    __device__ void emit(int64_t k, int64_t i, const int64_t *) const
    {
        for (int d = o.ndim - 1; d >= 0; d--) {
            int64_t q = i / o.shape[d];
            out[k * o.ndim + d] = i - q * o.shape[d] + base;
            i = q;
        }
    }
};

}  // namespace

/* ---------------------------------------------------------------- entry points */

extern "C" int fl_cuda_index_check(fl_dtype idt, const fl_iter *it, int64_t limit, int64_t base, int64_t *bad)
{
    if (it->numel == 0)
        return 0;
    if (idt != FL_DTYPE_I64 && idt != FL_DTYPE_I32)
        return fl_cuda_fail("index must be int64 or int32, got dtype %d", (int)idt);
    unsigned long long *first = (unsigned long long *)fl_cuda_malloc(sizeof *first), pos = 0;
    if (!first)
        return -1;
    int rc = fl_cuda_memset(first, 0xff, sizeof *first);
    if (rc == 0)
        BY_INDEX(idt, I, rc = run<1>(it, check_op<I>{limit, base, first}, "index check"));
    if (rc == 0)
        rc = fl_cuda_memcpy(&pos, first, sizeof pos, FL_COPY_D2H);
    fl_cuda_free(first, sizeof *first);
    if (rc < 0 || pos == ~0ull)
        return rc;
    /* the offending value, for the message: position pos of the walk */
    int64_t off = 0, i = (int64_t)pos;
    for (int d = it->ndim - 1; d >= 0; d--) {
        off += (i % it->shape[d]) * it->strides[0][d];
        i /= it->shape[d];
    }
    if (idt == FL_DTYPE_I64) {
        rc = fl_cuda_memcpy(bad, it->data[0] + off * 8, 8, FL_COPY_D2H);
    } else {
        int32_t v = 0;
        rc = fl_cuda_memcpy(&v, it->data[0] + off * 4, 4, FL_COPY_D2H);
        *bad = v;
    }
    return rc < 0 ? rc : 1;
}

extern "C" int fl_cuda_gather(size_t elsize, fl_dtype idt, const fl_iter *it, int64_t sd, int64_t base)
{
    BY_SIZE(elsize, W, BY_INDEX(idt, I, return run<3>(it, gather_op<W, I>{sd, base}, "gather")));
    return 0;
}

extern "C" int fl_cuda_scatter(fl_dtype dt, fl_dtype idt, fl_scatter_mode mode, const fl_iter *it, int64_t sd,
                               int64_t base, int64_t span)
{
    if (it->numel == 0)
        return 0;
    if (mode == FL_SCATTER_ADD)
        BY_INDEX(idt, I, return scatter_add<I>(dt, it, sd, base));
    BY_SIZE(fl_dtype_size(dt), W, BY_INDEX(idt, I, return scatter_set<W, I>(it, sd, base, span)));
    return 0;
}

extern "C" int fl_cuda_masked_fill(size_t elsize, const fl_iter *it, const void *value, int value_on_device)
{
    BY_SIZE(elsize, W, {
        W v = 0;
        if (!value_on_device)
            memcpy(&v, value, sizeof v);
        return run<2>(it, masked_fill_op<W>{v, value_on_device ? (const W *)value : nullptr}, "masked_fill");
    });
    return 0;
}

extern "C" int fl_cuda_count_nonzero(fl_dtype dt, const fl_iter *it, int64_t *count)
{
    FL_DISPATCH(dt, T, return compact(nonzero_test<T>{fl_offsets_of<1>(it), it->data[0]}, it->numel, false, count));
    return 0;
}

extern "C" int fl_cuda_masked_select(size_t elsize, const fl_iter *it, void *out)
{
    BY_SIZE(elsize, W, return compact(select_op<W>{fl_offsets_of<2>(it), it->data[0], it->data[1], (W *)out},
                                      it->numel, true, nullptr));
    return 0;
}

extern "C" int fl_cuda_masked_scatter(size_t elsize, const fl_iter *it, const void *src)
{
    BY_SIZE(elsize, W, return compact(masked_scatter_op<W>{fl_offsets_of<2>(it), it->data[0], it->data[1],
                                                           (const W *)src},
                                      it->numel, true, nullptr));
    return 0;
}

extern "C" int fl_cuda_nonzero(int64_t *out, fl_dtype dt, const void *a, int ndim, const int64_t *shape,
                               const int64_t *strides, int64_t base)
{
    fl_offsets<1> o;
    o.ndim = ndim;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        o.shape[d] = shape[d];
        o.strides[0][d] = strides[d];
        n *= shape[d];
    }
    if (ndim == 0)
        return 0;
    FL_DISPATCH(dt, T, return compact(nonzero_op<T>{o, (char *)a, out, base}, n, true, nullptr));
    return 0;
}
