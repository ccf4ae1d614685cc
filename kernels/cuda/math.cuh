/* math.cuh: float32/float64 overloads of the math functions the kernels use, and the value
 * of each unary op, written once for both types with the CPU kernels' formulas. */
#ifndef FL_CUDA_MATH_CUH
#define FL_CUDA_MATH_CUH

#include "common.cuh"

#define FL_MATH1(name, f32, f64) \
    __device__ __forceinline__ float name(float x) { return f32(x); } \
    __device__ __forceinline__ double name(double x) { return f64(x); }
#define FL_MATH2(name, f32, f64) \
    __device__ __forceinline__ float name(float x, float y) { return f32(x, y); } \
    __device__ __forceinline__ double name(double x, double y) { return f64(x, y); }

FL_MATH1(fl_fabs, fabsf, fabs)
FL_MATH1(fl_exp, expf, exp)
FL_MATH1(fl_log, logf, log)
FL_MATH1(fl_log2, log2f, log2)
FL_MATH1(fl_log1p, log1pf, log1p)
FL_MATH1(fl_expm1, expm1f, expm1)
FL_MATH1(fl_sqrt, sqrtf, sqrt)
FL_MATH1(fl_sin, sinf, sin)
FL_MATH1(fl_cos, cosf, cos)
FL_MATH1(fl_tan, tanf, tan)
FL_MATH1(fl_asin, asinf, asin)
FL_MATH1(fl_acos, acosf, acos)
FL_MATH1(fl_atan, atanf, atan)
FL_MATH1(fl_sinh, sinhf, sinh)
FL_MATH1(fl_cosh, coshf, cosh)
FL_MATH1(fl_tanh, tanhf, tanh)
FL_MATH1(fl_erf, erff, erf)
FL_MATH1(fl_floor, floorf, floor)
FL_MATH1(fl_ceil, ceilf, ceil)
FL_MATH1(fl_rint, rintf, rint)
FL_MATH1(fl_trunc, truncf, trunc)
FL_MATH2(fl_pow, powf, pow)
FL_MATH2(fl_fmod, fmodf, fmod)
FL_MATH2(fl_atan2, atan2f, atan2)
FL_MATH2(fl_fmax, fmaxf, fmax)

template <typename T> __device__ __forceinline__ bool fl_isfinite(T x)
{
    return x == x && fl_fabs(x) != (T)INFINITY;
}

/* Overflow-free in both directions, as the CPU's sigmoid. */
template <typename T> __device__ __forceinline__ T fl_sigmoid(T x)
{
    if (x >= 0)
        return (T)1 / ((T)1 + fl_exp(-x));
    T e = fl_exp(x);
    return e / ((T)1 + e);
}

/* The value of a float-valued unary op (the predicates are handled by the caller). */
template <typename T> __device__ __forceinline__ T fl_unary_value(fl_unop op, T x)
{
    switch (op) {
    case FL_UNOP_NEG: return -x;
    case FL_UNOP_ABS: return fl_fabs(x);
    case FL_UNOP_EXP: return fl_exp(x);
    case FL_UNOP_LOG: return fl_log(x);
    case FL_UNOP_LOG2: return fl_log2(x);
    case FL_UNOP_LOG1P: return fl_log1p(x);
    case FL_UNOP_EXPM1: return fl_expm1(x);
    case FL_UNOP_SQRT: return fl_sqrt(x);
    case FL_UNOP_RSQRT: return (T)1 / fl_sqrt(x);
    case FL_UNOP_SIN: return fl_sin(x);
    case FL_UNOP_COS: return fl_cos(x);
    case FL_UNOP_TAN: return fl_tan(x);
    case FL_UNOP_ASIN: return fl_asin(x);
    case FL_UNOP_ACOS: return fl_acos(x);
    case FL_UNOP_ATAN: return fl_atan(x);
    case FL_UNOP_SINH: return fl_sinh(x);
    case FL_UNOP_COSH: return fl_cosh(x);
    case FL_UNOP_TANH: return fl_tanh(x);
    case FL_UNOP_ERF: return fl_erf(x);
    case FL_UNOP_SIGMOID: return fl_sigmoid(x);
    case FL_UNOP_RELU: return x > 0 ? x : (x != x ? x : (T)0);
    case FL_UNOP_GELU: return (T)0.5 * x * ((T)1 + fl_erf(x * (T)0.70710678118654752440));
    case FL_UNOP_SILU: return x / ((T)1 + fl_exp(-x));
    case FL_UNOP_SOFTPLUS: return x > 20 ? x : fl_log1p(fl_exp(x));
    case FL_UNOP_FLOOR: return fl_floor(x);
    case FL_UNOP_CEIL: return fl_ceil(x);
    case FL_UNOP_ROUND: return fl_rint(x);
    case FL_UNOP_TRUNC: return fl_trunc(x);
    case FL_UNOP_SIGN: return (T)((x > 0) - (x < 0));
    case FL_UNOP_RECIPROCAL: return (T)1 / x;
    case FL_UNOP_SQUARE: return x * x;
    default: return x;
    }
}

/* vm/dtype.c's float-to-integer rule: saturate into the target's range, NaN becomes 0. */
__device__ __forceinline__ int64_t fl_saturate(double v, double lo, double hi)
{
    if (v != v)
        return 0;
    if (v <= lo)
        return (int64_t)lo;
    if (v >= hi)
        return v >= 9223372036854775807.0 ? INT64_MAX : (int64_t)hi;
    return (int64_t)v;
}

/* An integer type TO from a double, as the CPU stores it (int32 saturates in its own range;
 * int64 and uint8 saturate in int64's, uint8 then wraps). */
template <typename TO> __device__ __forceinline__ TO fl_float_to_int(double v)
{
    if (sizeof(TO) == 4)
        return (TO)fl_saturate(v, -2147483648.0, 2147483647.0);
    return (TO)fl_saturate(v, -9223372036854775808.0, 9223372036854775807.0);
}

/* Separately rounded double operations: nvcc would otherwise contract a + b * c into a fused
 * multiply-add, which the CPU build does not use, and results would differ in the last bit. */
#ifdef FL_CUDA_EMU
__device__ __forceinline__ double fl_dmul(double x, double y) { return x * y; }
__device__ __forceinline__ double fl_dadd(double x, double y) { return x + y; }
#else
__device__ __forceinline__ double fl_dmul(double x, double y) { return __dmul_rn(x, y); }
__device__ __forceinline__ double fl_dadd(double x, double y) { return __dadd_rn(x, y); }
#endif

#endif
