/* binary.c: elementwise binary kernels on strided 1-d runs. float32 and float64 have their
 * own loops (with unit-stride and scalar-broadcast cases the compiler vectorises); integer
 * and bool types compute in int64 with wrap-around, as PyTorch does. */
#include "kernels.h"

#include <math.h>

/* The same loop in four stride patterns: both unit, one side broadcast, general. */
#define BINARY_LOOP(TA, TO, EXPR)                                                   \
    do {                                                                            \
        const TA *A = a, *B = b;                                                    \
        TO *O = out;                                                                \
        if (so == 1 && sa == 1 && sb == 1) {                                        \
            for (int64_t i = 0; i < n; i++) { TA x = A[i], y = B[i]; O[i] = (TO)(EXPR); } \
        } else if (so == 1 && sa == 1 && sb == 0) {                                 \
            TA y = B[0];                                                            \
            for (int64_t i = 0; i < n; i++) { TA x = A[i]; O[i] = (TO)(EXPR); }     \
        } else if (so == 1 && sa == 0 && sb == 1) {                                 \
            TA x = A[0];                                                            \
            for (int64_t i = 0; i < n; i++) { TA y = B[i]; O[i] = (TO)(EXPR); }     \
        } else {                                                                    \
            for (int64_t i = 0; i < n; i++) {                                       \
                TA x = A[i * sa], y = B[i * sb];                                    \
                O[i * so] = (TO)(EXPR);                                             \
            }                                                                       \
        }                                                                           \
    } while (0)

#define FLOAT_CASES(T, POW, FMOD, ATAN2)                                            \
    case FL_BINOP_ADD: BINARY_LOOP(T, T, x + y); break;                             \
    case FL_BINOP_SUB: BINARY_LOOP(T, T, x - y); break;                             \
    case FL_BINOP_MUL: BINARY_LOOP(T, T, x * y); break;                             \
    case FL_BINOP_DIV: BINARY_LOOP(T, T, x / y); break;                             \
    case FL_BINOP_POW: BINARY_LOOP(T, T, POW(x, y)); break;                         \
    case FL_BINOP_MAXIMUM: BINARY_LOOP(T, T, (x != x || x > y) ? x : y); break;     \
    case FL_BINOP_MINIMUM: BINARY_LOOP(T, T, (x != x || x < y) ? x : y); break;     \
    case FL_BINOP_FMOD: BINARY_LOOP(T, T, FMOD(x, y)); break;                       \
    case FL_BINOP_ATAN2: BINARY_LOOP(T, T, ATAN2(x, y)); break;                     \
    case FL_BINOP_EQ: BINARY_LOOP(T, uint8_t, x == y); break;                       \
    case FL_BINOP_NE: BINARY_LOOP(T, uint8_t, x != y); break;                       \
    case FL_BINOP_LT: BINARY_LOOP(T, uint8_t, x < y); break;                        \
    case FL_BINOP_LE: BINARY_LOOP(T, uint8_t, x <= y); break;                       \
    case FL_BINOP_GT: BINARY_LOOP(T, uint8_t, x > y); break;                        \
    case FL_BINOP_GE: BINARY_LOOP(T, uint8_t, x >= y); break;                       \
    case FL_BINOP_AND: BINARY_LOOP(T, uint8_t, x != 0 && y != 0); break;            \
    case FL_BINOP_OR: BINARY_LOOP(T, uint8_t, x != 0 || y != 0); break;             \
    case FL_BINOP_XOR: BINARY_LOOP(T, uint8_t, (x != 0) != (y != 0)); break;        \
    default: break;

__attribute__((target_clones("avx512f", "avx2", "default")))
static void binary_f32(fl_binop op, void *out, const void *a, const void *b,
                       int64_t n, int64_t so, int64_t sa, int64_t sb)
{
    switch (op) { FLOAT_CASES(float, powf, fmodf, atan2f) }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void binary_f64(fl_binop op, void *out, const void *a, const void *b,
                       int64_t n, int64_t so, int64_t sa, int64_t sb)
{
    switch (op) { FLOAT_CASES(double, pow, fmod, atan2) }
}

/* Integer power by squaring; exponents are non-negative here (checked by the caller). */
static int64_t ipow(int64_t base, int64_t e)
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

/* Integer remainder with the sign of the dividend (C's %, PyTorch's fmod). */
static int64_t imod(int64_t x, int64_t y)
{
    return y == -1 ? 0 : x % y;
}

static int binary_int(fl_binop op, fl_dtype dt, void *out, const void *a, const void *b,
                      int64_t n, int64_t so, int64_t sa, int64_t sb)
{
    fl_dtype odt = op >= FL_BINOP_EQ ? FL_DTYPE_BOOL : dt;
    for (int64_t i = 0; i < n; i++) {
        int64_t x = fl_load_i64(dt, a, i * sa), y = fl_load_i64(dt, b, i * sb), r = 0;
        uint64_t ux = (uint64_t)x, uy = (uint64_t)y;
        switch (op) {
        case FL_BINOP_ADD: r = dt == FL_DTYPE_BOOL ? (x || y) : (int64_t)(ux + uy); break;
        case FL_BINOP_SUB: r = (int64_t)(ux - uy); break;
        case FL_BINOP_MUL: r = dt == FL_DTYPE_BOOL ? (x && y) : (int64_t)(ux * uy); break;
        case FL_BINOP_POW: if (y < 0) return -1; r = ipow(x, y); break;
        case FL_BINOP_MAXIMUM: r = x > y ? x : y; break;
        case FL_BINOP_MINIMUM: r = x < y ? x : y; break;
        case FL_BINOP_FMOD: if (y == 0) return -1; r = imod(x, y); break;
        case FL_BINOP_EQ: r = x == y; break;
        case FL_BINOP_NE: r = x != y; break;
        case FL_BINOP_LT: r = x < y; break;
        case FL_BINOP_LE: r = x <= y; break;
        case FL_BINOP_GT: r = x > y; break;
        case FL_BINOP_GE: r = x >= y; break;
        case FL_BINOP_AND: r = x && y; break;
        case FL_BINOP_OR: r = x || y; break;
        case FL_BINOP_XOR: r = (x != 0) != (y != 0); break;
        default: return -1;   /* div and atan2 are computed in floating point */
        }
        fl_store_i64(odt, out, i * so, r);
    }
    return 0;
}

int fl_cpu_binary(fl_binop op, fl_dtype dt, void *out, const void *a, const void *b,
                  int64_t n, int64_t so, int64_t sa, int64_t sb)
{
    switch (dt) {
    case FL_DTYPE_F32: binary_f32(op, out, a, b, n, so, sa, sb); return 0;
    case FL_DTYPE_F64: binary_f64(op, out, a, b, n, so, sa, sb); return 0;
    default: return binary_int(op, dt, out, a, b, n, so, sa, sb);
    }
}

void fl_cpu_where(fl_dtype dt, void *out, const uint8_t *cond, const void *a, const void *b,
                  int64_t n, int64_t so, int64_t sc, int64_t sa, int64_t sb)
{
    switch (fl_dtype_size(dt)) {
    case 1: for (int64_t i = 0; i < n; i++) ((uint8_t *)out)[i * so] = cond[i * sc] ? ((const uint8_t *)a)[i * sa] : ((const uint8_t *)b)[i * sb]; break;
    case 4: for (int64_t i = 0; i < n; i++) ((uint32_t *)out)[i * so] = cond[i * sc] ? ((const uint32_t *)a)[i * sa] : ((const uint32_t *)b)[i * sb]; break;
    case 8: for (int64_t i = 0; i < n; i++) ((uint64_t *)out)[i * so] = cond[i * sc] ? ((const uint64_t *)a)[i * sa] : ((const uint64_t *)b)[i * sb]; break;
    default: break;
    }
}
