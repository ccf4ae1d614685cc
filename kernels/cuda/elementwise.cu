/* elementwise.cu: binary, unary, cast, clamp, where and fill over N-d strided operands.
 * One kernel template walks the iteration space; the op is a small functor chosen on the
 * host (the op code is a kernel argument, uniform across a warp). */
#include "common.cuh"
#include "elementwise.h"
#include "iter.cuh"
#include "math.cuh"

namespace {

template <int N> struct operands {
    char *p[N];
};

/* Walks n positions; hands each functor call the byte pointers of its operands. */
template <int N, typename F>
__global__ void map_kernel(fl_offsets<N> o, operands<N> ops, int64_t n, F f)
{
    FL_GRID_STRIDE(i, n) {
        int64_t off[N];
        if (o.ndim == 1) {
            for (int a = 0; a < N; a++)
                off[a] = i * o.strides[a][0];
        } else {
            o.of(i, off);
        }
        f(ops, off);
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


/* ---------------------------------------------------------------- conversions */

template <typename TO, bool TO_BOOL> struct store {
    template <typename TI> __device__ __forceinline__ static TO from(TI v)
    {
        if (TO_BOOL)
            return (TO)(v != 0);
        return (TO)v;
    }
};

template <typename TO, typename TI, bool TO_BOOL, bool TO_INT, bool TI_FLOAT> struct cast_op {
    __device__ void operator()(operands<2> o, const int64_t *off) const
    {
        TI x = fl_at<TI>(o.p[1], off[1]);
        TO r;
        if (TO_BOOL)
            r = (TO)(x != 0);
        else if (TO_INT && TI_FLOAT)
            r = fl_float_to_int<TO>((double)x);
        else
            r = (TO)x;
        fl_at<TO>(o.p[0], off[0]) = r;
    }
};

template <typename TO, typename TI> int cast_to(fl_dtype dst, fl_dtype src, const fl_iter *it)
{
    bool to_bool = dst == FL_DTYPE_BOOL, ti_float = fl_dtype_is_float(src);
    bool to_int = !to_bool && !fl_dtype_is_float(dst);
    if (to_bool)
        return run<2>(it, cast_op<TO, TI, true, false, false>(), "cast");
    if (to_int && ti_float)
        return run<2>(it, cast_op<TO, TI, false, true, true>(), "cast");
    return run<2>(it, cast_op<TO, TI, false, false, false>(), "cast");
}

/* ---------------------------------------------------------------- binary */

template <typename T> struct binary_float {
    fl_binop op;
    __device__ void operator()(operands<3> o, const int64_t *off) const
    {
        T x = fl_at<T>(o.p[1], off[1]), y = fl_at<T>(o.p[2], off[2]);
        if (op >= FL_BINOP_EQ) {
            uint8_t r = 0;
            switch (op) {
            case FL_BINOP_EQ: r = x == y; break;
            case FL_BINOP_NE: r = x != y; break;
            case FL_BINOP_LT: r = x < y; break;
            case FL_BINOP_LE: r = x <= y; break;
            case FL_BINOP_GT: r = x > y; break;
            case FL_BINOP_GE: r = x >= y; break;
            case FL_BINOP_AND: r = x != 0 && y != 0; break;
            case FL_BINOP_OR: r = x != 0 || y != 0; break;
            case FL_BINOP_XOR: r = (x != 0) != (y != 0); break;
            default: break;
            }
            fl_at<uint8_t>(o.p[0], off[0]) = r;
            return;
        }
        T r = 0;
        switch (op) {
        case FL_BINOP_ADD: r = x + y; break;
        case FL_BINOP_SUB: r = x - y; break;
        case FL_BINOP_MUL: r = x * y; break;
        case FL_BINOP_DIV: r = x / y; break;
        case FL_BINOP_POW: r = fl_pow(x, y); break;
        case FL_BINOP_MAXIMUM: r = (x != x || x > y) ? x : y; break;
        case FL_BINOP_MINIMUM: r = (x != x || x < y) ? x : y; break;
        case FL_BINOP_FMOD: r = fl_fmod(x, y); break;
        case FL_BINOP_ATAN2: r = fl_atan2(x, y); break;
        default: break;
        }
        fl_at<T>(o.p[0], off[0]) = r;
    }
};

__device__ __forceinline__ int64_t ipow(int64_t base, int64_t e)
{
    uint64_t r = 1, b = (uint64_t)base;
    while (e > 0) {
        if (e & 1)
            r *= b;
        b *= b;
        e >>= 1;
    }
    return (int64_t)r;
}

/* Integers compute in int64 with wrap-around; a bad operand raises the flag in *bad. */
template <typename T, bool IS_BOOL> struct binary_int {
    fl_binop op;
    int *bad;
    __device__ void operator()(operands<3> o, const int64_t *off) const
    {
        int64_t x = (int64_t)fl_at<T>(o.p[1], off[1]), y = (int64_t)fl_at<T>(o.p[2], off[2]), r = 0;
        uint64_t ux = (uint64_t)x, uy = (uint64_t)y;
        switch (op) {
        case FL_BINOP_ADD: r = IS_BOOL ? (x || y) : (int64_t)(ux + uy); break;
        case FL_BINOP_SUB: r = (int64_t)(ux - uy); break;
        case FL_BINOP_MUL: r = IS_BOOL ? (x && y) : (int64_t)(ux * uy); break;
        case FL_BINOP_POW: if (y < 0) *bad = 1; else r = ipow(x, y); break;
        case FL_BINOP_MAXIMUM: r = x > y ? x : y; break;
        case FL_BINOP_MINIMUM: r = x < y ? x : y; break;
        case FL_BINOP_FMOD: if (y == 0) *bad = 1; else r = y == -1 ? 0 : x % y; break;
        case FL_BINOP_EQ: r = x == y; break;
        case FL_BINOP_NE: r = x != y; break;
        case FL_BINOP_LT: r = x < y; break;
        case FL_BINOP_LE: r = x <= y; break;
        case FL_BINOP_GT: r = x > y; break;
        case FL_BINOP_GE: r = x >= y; break;
        case FL_BINOP_AND: r = x && y; break;
        case FL_BINOP_OR: r = x || y; break;
        case FL_BINOP_XOR: r = (x != 0) != (y != 0); break;
        default: *bad = 1; break;
        }
        if (op >= FL_BINOP_EQ)
            fl_at<uint8_t>(o.p[0], off[0]) = (uint8_t)r;
        else if (IS_BOOL)
            fl_at<uint8_t>(o.p[0], off[0]) = r != 0;
        else
            fl_at<T>(o.p[0], off[0]) = (T)r;
    }
};

/* The flag lives in device memory; it is read back only for the ops that can raise it. */
template <typename T, bool IS_BOOL> int binary_integer(fl_binop op, const fl_iter *it)
{
    bool can_fail = op == FL_BINOP_POW || op == FL_BINOP_FMOD || op == FL_BINOP_DIV || op == FL_BINOP_ATAN2;
    int *bad = can_fail ? (int *)fl_cuda_malloc(sizeof(int)) : nullptr;
    if (can_fail && (!bad || fl_cuda_memset(bad, 0, sizeof(int)) < 0)) {
        fl_cuda_free(bad, sizeof(int));
        return -1;
    }
    int rc = run<3>(it, binary_int<T, IS_BOOL>{op, bad}, "binary op");
    if (can_fail) {
        int flag = 0;
        if (rc == 0)
            rc = fl_cuda_memcpy(&flag, bad, sizeof flag, FL_COPY_D2H);
        fl_cuda_free(bad, sizeof(int));
        if (rc == 0 && flag)
            rc = fl_cuda_fail(op == FL_BINOP_POW ? "integers to negative integer powers are not allowed"
                                                 : "integer division by zero");
    }
    return rc;
}

/* ---------------------------------------------------------------- unary */

template <typename T> struct unary_float {
    fl_unop op;
    __device__ void operator()(operands<2> o, const int64_t *off) const
    {
        T x = fl_at<T>(o.p[1], off[1]);
        if (op == FL_UNOP_NOT || op == FL_UNOP_ISNAN || op == FL_UNOP_ISINF || op == FL_UNOP_ISFINITE) {
            uint8_t r = op == FL_UNOP_NOT ? x == 0 : op == FL_UNOP_ISNAN ? x != x
                      : op == FL_UNOP_ISINF ? fl_fabs(x) == (T)INFINITY : fl_isfinite(x);
            fl_at<uint8_t>(o.p[0], off[0]) = r;
            return;
        }
        fl_at<T>(o.p[0], off[0]) = fl_unary_value(op, x);
    }
};

template <typename T> struct unary_int {
    fl_unop op;
    fl_dtype out;
    __device__ void operator()(operands<2> o, const int64_t *off) const
    {
        int64_t x = (int64_t)fl_at<T>(o.p[1], off[1]), r;
        switch (op) {
        case FL_UNOP_NEG: r = (int64_t)(0 - (uint64_t)x); break;
        case FL_UNOP_ABS: r = x < 0 ? (int64_t)(0 - (uint64_t)x) : x; break;
        case FL_UNOP_RELU: r = x > 0 ? x : 0; break;
        case FL_UNOP_SIGN: r = (x > 0) - (x < 0); break;
        case FL_UNOP_SQUARE: r = (int64_t)((uint64_t)x * (uint64_t)x); break;
        case FL_UNOP_NOT: r = x == 0; break;
        case FL_UNOP_ISNAN: case FL_UNOP_ISINF: r = 0; break;
        case FL_UNOP_ISFINITE: r = 1; break;
        default: r = x; break;
        }
        if (out == FL_DTYPE_BOOL)
            fl_at<uint8_t>(o.p[0], off[0]) = r != 0;
        else
            fl_at<T>(o.p[0], off[0]) = (T)r;
    }
};

/* ---------------------------------------------------------------- clamp, where, fill */

template <typename T> struct clamp_op {
    T lo, hi;
    int has_lo, has_hi;
    __device__ void operator()(operands<2> o, const int64_t *off) const
    {
        T x = fl_at<T>(o.p[1], off[1]);
        if (has_lo && x < lo)
            x = lo;
        if (has_hi && x > hi)
            x = hi;
        fl_at<T>(o.p[0], off[0]) = x;
    }
};

template <typename W> struct where_op {
    __device__ void operator()(operands<4> o, const int64_t *off) const
    {
        fl_at<W>(o.p[0], off[0]) = fl_at<uint8_t>(o.p[1], off[1]) ? fl_at<W>(o.p[2], off[2]) : fl_at<W>(o.p[3], off[3]);
    }
};

template <typename W> struct fill_op {
    W v;
    __device__ void operator()(operands<1> o, const int64_t *off) const { fl_at<W>(o.p[0], off[0]) = v; }
};

}  // namespace

/* ---------------------------------------------------------------- entry points */

extern "C" int fl_cuda_binary(fl_binop op, fl_dtype dt, const fl_iter *it)
{
    switch (dt) {
    case FL_DTYPE_F32: return run<3>(it, binary_float<float>{op}, "binary op");
    case FL_DTYPE_F64: return run<3>(it, binary_float<double>{op}, "binary op");
    case FL_DTYPE_I64: return binary_integer<int64_t, false>(op, it);
    case FL_DTYPE_I32: return binary_integer<int32_t, false>(op, it);
    case FL_DTYPE_U8: return binary_integer<uint8_t, false>(op, it);
    case FL_DTYPE_BOOL: return binary_integer<uint8_t, true>(op, it);
    default: return fl_cuda_fail("binary op: unsupported dtype %d", (int)dt);
    }
}

extern "C" int fl_cuda_unary(fl_unop op, fl_dtype in, fl_dtype out, const fl_iter *it)
{
    switch (in) {
    case FL_DTYPE_F32: return run<2>(it, unary_float<float>{op}, "unary op");
    case FL_DTYPE_F64: return run<2>(it, unary_float<double>{op}, "unary op");
    case FL_DTYPE_I64: return run<2>(it, unary_int<int64_t>{op, out}, "unary op");
    case FL_DTYPE_I32: return run<2>(it, unary_int<int32_t>{op, out}, "unary op");
    case FL_DTYPE_U8: case FL_DTYPE_BOOL: return run<2>(it, unary_int<uint8_t>{op, out}, "unary op");
    default: return fl_cuda_fail("unary op: unsupported dtype %d", (int)in);
    }
}

extern "C" int fl_cuda_cast(fl_dtype dst, fl_dtype src, const fl_iter *it)
{
    FL_DISPATCH(dst, TO, FL_DISPATCH(src, TI, return cast_to<TO, TI>(dst, src, it)));
    return 0;
}

extern "C" int fl_cuda_clamp(fl_dtype dt, const fl_iter *it, double lo, double hi, int has_lo, int has_hi)
{
    FL_DISPATCH(dt, T, return run<2>(it, clamp_op<T>{(T)lo, (T)hi, has_lo, has_hi}, "clamp"));
    return 0;
}

extern "C" int fl_cuda_where(fl_dtype dt, const fl_iter *it)
{
    switch (fl_dtype_size(dt)) {
    case 1: return run<4>(it, where_op<uint8_t>(), "where");
    case 4: return run<4>(it, where_op<uint32_t>(), "where");
    case 8: return run<4>(it, where_op<uint64_t>(), "where");
    default: return fl_cuda_fail("where: unsupported dtype %d", (int)dt);
    }
}

extern "C" int fl_cuda_fill(fl_dtype dt, const fl_iter *it, double v)
{
    unsigned char bytes[8] = {0};
    fl_store_f64(dt, bytes, 0, v);   /* the CPU's conversion, done once on the host */
    switch (fl_dtype_size(dt)) {
    case 1: return run<1>(it, fill_op<uint8_t>{bytes[0]}, "fill");
    case 4: { uint32_t w; memcpy(&w, bytes, 4); return run<1>(it, fill_op<uint32_t>{w}, "fill"); }
    case 8: { uint64_t w; memcpy(&w, bytes, 8); return run<1>(it, fill_op<uint64_t>{w}, "fill"); }
    default: return fl_cuda_fail("fill: unsupported dtype %d", (int)dt);
    }
}
