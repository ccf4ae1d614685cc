/* unary.c: elementwise unary kernels, casts, clamp. Floating ops on integer inputs are
 * computed in float32 (PyTorch's rule); sign, abs, neg and friends keep integer types. */
#include "kernels.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

#define UNARY_LOOP(TI, TO, EXPR)                                                    \
    do {                                                                            \
        const TI *A = a;                                                            \
        TO *O = out;                                                                \
        if (so == 1 && sa == 1) {                                                   \
            for (int64_t i = 0; i < n; i++) { TI x = A[i]; O[i] = (TO)(EXPR); }     \
        } else {                                                                    \
            for (int64_t i = 0; i < n; i++) { TI x = A[i * sa]; O[i * so] = (TO)(EXPR); } \
        }                                                                           \
    } while (0)

/* One expression per op, shared by float32 and float64 (F picks the libm flavour). */
#define FLOAT_UNARY_CASES(T, F)                                                     \
    case FL_UNOP_NEG: UNARY_LOOP(T, T, -x); break;                                  \
    case FL_UNOP_ABS: UNARY_LOOP(T, T, F(fabs)(x)); break;                          \
    case FL_UNOP_EXP: UNARY_LOOP(T, T, F(vexp)(x)); break;                          \
    case FL_UNOP_LOG: UNARY_LOOP(T, T, F(log)(x)); break;                           \
    case FL_UNOP_LOG2: UNARY_LOOP(T, T, F(log2)(x)); break;                         \
    case FL_UNOP_LOG1P: UNARY_LOOP(T, T, F(log1p)(x)); break;                       \
    case FL_UNOP_EXPM1: UNARY_LOOP(T, T, F(expm1)(x)); break;                       \
    case FL_UNOP_SQRT: UNARY_LOOP(T, T, F(sqrt)(x)); break;                         \
    case FL_UNOP_RSQRT: UNARY_LOOP(T, T, (T)1 / F(sqrt)(x)); break;                 \
    case FL_UNOP_SIN: UNARY_LOOP(T, T, F(sin)(x)); break;                           \
    case FL_UNOP_COS: UNARY_LOOP(T, T, F(cos)(x)); break;                           \
    case FL_UNOP_TAN: UNARY_LOOP(T, T, F(tan)(x)); break;                           \
    case FL_UNOP_ASIN: UNARY_LOOP(T, T, F(asin)(x)); break;                         \
    case FL_UNOP_ACOS: UNARY_LOOP(T, T, F(acos)(x)); break;                         \
    case FL_UNOP_ATAN: UNARY_LOOP(T, T, F(atan)(x)); break;                         \
    case FL_UNOP_SINH: UNARY_LOOP(T, T, F(sinh)(x)); break;                         \
    case FL_UNOP_COSH: UNARY_LOOP(T, T, F(cosh)(x)); break;                         \
    case FL_UNOP_TANH: UNARY_LOOP(T, T, F(vtanh)(x)); break;                        \
    case FL_UNOP_ERF: UNARY_LOOP(T, T, F(erf)(x)); break;                           \
    case FL_UNOP_SIGMOID: UNARY_LOOP(T, T, F(vsigmoid)(x)); break;                  \
    case FL_UNOP_RELU: UNARY_LOOP(T, T, x > 0 ? x : (x != x ? x : (T)0)); break;    \
    case FL_UNOP_GELU: UNARY_LOOP(T, T, (T)0.5 * x * ((T)1 + F(erf)(x * (T)0.70710678118654752440))); break; \
    case FL_UNOP_SILU: UNARY_LOOP(T, T, x / ((T)1 + F(vexp)(-x))); break;           \
    case FL_UNOP_SOFTPLUS: UNARY_LOOP(T, T, x > 20 ? x : F(log1p)(F(exp)(x))); break; \
    case FL_UNOP_FLOOR: UNARY_LOOP(T, T, F(floor)(x)); break;                       \
    case FL_UNOP_CEIL: UNARY_LOOP(T, T, F(ceil)(x)); break;                         \
    case FL_UNOP_ROUND: UNARY_LOOP(T, T, F(nearbyint)(x)); break;                   \
    case FL_UNOP_TRUNC: UNARY_LOOP(T, T, F(trunc)(x)); break;                       \
    case FL_UNOP_SIGN: UNARY_LOOP(T, T, (T)((x > 0) - (x < 0))); break;             \
    case FL_UNOP_RECIPROCAL: UNARY_LOOP(T, T, (T)1 / x); break;                     \
    case FL_UNOP_SQUARE: UNARY_LOOP(T, T, x * x); break;                            \
    case FL_UNOP_NOT: UNARY_LOOP(T, uint8_t, x == 0); break;                        \
    case FL_UNOP_ISNAN: UNARY_LOOP(T, uint8_t, x != x); break;                      \
    case FL_UNOP_ISINF: UNARY_LOOP(T, uint8_t, F(fabs)(x) == (T)INFINITY); break;   \
    case FL_UNOP_ISFINITE: UNARY_LOOP(T, uint8_t, F(isfinite)(x)); break;           \
    default: break;

#define F32(name) name##f
#define F64(name) name
#define isfinitef isfinite

/* exp, tanh and sigmoid: float32 takes the vectorisable forms of vmath.h, float64 libm. */
#define vexpf fl_vm_expf
#define vtanhf fl_vm_tanhf
#define vsigmoidf fl_vm_sigmoidf
#define vexp exp
#define vtanh tanh
static inline double vsigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

__attribute__((target_clones("avx512f", "avx2", "default")))
static void unary_f32(fl_unop op, void *out, const void *a, int64_t n, int64_t so, int64_t sa)
{
    switch (op) { FLOAT_UNARY_CASES(float, F32) }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void unary_f64(fl_unop op, void *out, const void *a, int64_t n, int64_t so, int64_t sa)
{
    switch (op) { FLOAT_UNARY_CASES(double, F64) }
}

/* Integer inputs: ops that stay integer, computed in int64 with wrap-around. */
static void unary_int(fl_unop op, fl_dtype dt, void *out, const void *a, int64_t n, int64_t so, int64_t sa)
{
    fl_dtype odt = fl_unop_result_dtype(op, dt);
    for (int64_t i = 0; i < n; i++) {
        int64_t x = fl_load_i64(dt, a, i * sa), r;
        switch (op) {
        case FL_UNOP_NEG: r = (int64_t)(0 - (uint64_t)x); break;
        case FL_UNOP_ABS: r = x < 0 ? (int64_t)(0 - (uint64_t)x) : x; break;
        case FL_UNOP_RELU: r = x > 0 ? x : 0; break;
        case FL_UNOP_SIGN: r = (x > 0) - (x < 0); break;
        case FL_UNOP_SQUARE: r = (int64_t)((uint64_t)x * (uint64_t)x); break;
        case FL_UNOP_NOT: r = x == 0; break;
        case FL_UNOP_ISNAN: case FL_UNOP_ISINF: r = 0; break;
        case FL_UNOP_ISFINITE: r = 1; break;
        default: r = x; break;   /* floor, ceil, round, trunc: identity on integers */
        }
        fl_store_i64(odt, out, i * so, r);
    }
}

void fl_cpu_unary(fl_unop op, fl_dtype in, void *out, const void *a, int64_t n, int64_t so, int64_t sa)
{
    switch (in) {
    case FL_DTYPE_F32: unary_f32(op, out, a, n, so, sa); break;
    case FL_DTYPE_F64: unary_f64(op, out, a, n, so, sa); break;
    default: unary_int(op, in, out, a, n, so, sa); break;
    }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void cast_f32_f64(float *o, const double *a, int64_t n, int64_t so, int64_t sa)
{
    for (int64_t i = 0; i < n; i++)
        o[i * so] = (float)a[i * sa];
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void cast_f64_f32(double *o, const float *a, int64_t n, int64_t so, int64_t sa)
{
    for (int64_t i = 0; i < n; i++)
        o[i * so] = a[i * sa];
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void cast_f32_u8(float *o, const uint8_t *a, int64_t n, int64_t so, int64_t sa)
{
    if (so == 1 && sa == 1) {
        for (int64_t i = 0; i < n; i++)
            o[i] = a[i];
        return;
    }
    for (int64_t i = 0; i < n; i++)
        o[i * so] = a[i * sa];
}

void fl_cpu_cast(fl_dtype dst, void *out, fl_dtype src, const void *a, int64_t n, int64_t so, int64_t sa)
{
    if (dst == src) {
        size_t es = fl_dtype_size(dst);
        if (so == 1 && sa == 1) {
            memcpy(out, a, (size_t)n * es);
            return;
        }
        switch (es) {
        case 1: for (int64_t i = 0; i < n; i++) ((uint8_t *)out)[i * so] = ((const uint8_t *)a)[i * sa]; return;
        case 4: for (int64_t i = 0; i < n; i++) ((uint32_t *)out)[i * so] = ((const uint32_t *)a)[i * sa]; return;
        case 8: for (int64_t i = 0; i < n; i++) ((uint64_t *)out)[i * so] = ((const uint64_t *)a)[i * sa]; return;
        }
    }
    if (dst == FL_DTYPE_F32 && (src == FL_DTYPE_BOOL || src == FL_DTYPE_U8)) {
        cast_f32_u8(out, a, n, so, sa);   /* masks in backward rules: keep it fast */
    } else if (dst == FL_DTYPE_F64 && (src == FL_DTYPE_BOOL || src == FL_DTYPE_U8)) {
        for (int64_t i = 0; i < n; i++)
            ((double *)out)[i * so] = ((const uint8_t *)a)[i * sa];
    } else if (dst == FL_DTYPE_F32 && src == FL_DTYPE_F64) {
        cast_f32_f64(out, a, n, so, sa);
    } else if (dst == FL_DTYPE_F64 && src == FL_DTYPE_F32) {
        cast_f64_f32(out, a, n, so, sa);
    } else if (fl_dtype_is_float(src) || fl_dtype_is_float(dst)) {
        for (int64_t i = 0; i < n; i++)
            fl_store_f64(dst, out, i * so, fl_load_f64(src, a, i * sa));
    } else {
        for (int64_t i = 0; i < n; i++)
            fl_store_i64(dst, out, i * so, fl_load_i64(src, a, i * sa));
    }
}

void fl_cpu_clamp(fl_dtype dt, void *out, const void *a, int64_t n, int64_t so, int64_t sa,
                  double lo, double hi, int has_lo, int has_hi)
{
    if (dt == FL_DTYPE_F32) {
        float l = (float)lo, h = (float)hi;
        const float *A = a;
        float *O = out;
        for (int64_t i = 0; i < n; i++) {
            float x = A[i * sa];
            if (has_lo && x < l) x = l;
            if (has_hi && x > h) x = h;
            O[i * so] = x;
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double x = fl_load_f64(dt, a, i * sa);
        if (has_lo && x < lo) x = lo;
        if (has_hi && x > hi) x = hi;
        fl_store_f64(dt, out, i * so, x);
    }
}

void fl_cpu_fill(fl_dtype dt, void *out, int64_t n, int64_t so, double v)
{
    if (dt == FL_DTYPE_F32) {
        float f = (float)v, *o = out;
        for (int64_t i = 0; i < n; i++)
            o[i * so] = f;
        return;
    }
    unsigned char bytes[8];
    fl_store_f64(dt, bytes, 0, v);
    size_t es = fl_dtype_size(dt);
    for (int64_t i = 0; i < n; i++)
        memcpy((char *)out + (size_t)(i * so) * es, bytes, es);
}
