/* reduce.c: reduction and scan kernels (see reduce.h).
 *
 * Rows are read in chunks of CHUNK elements, converted to double (or int64) into a small
 * buffer, and folded from there, so each operation is written once for every dtype. Two
 * walks: along rows with 32 independent accumulators (entry j goes to lane j % 32, so a
 * row's result depends only on its length), or, when consecutive rows are closer together
 * than consecutive entries (reducing a leading dim), across a band of rows at a time,
 * accumulating in `out`, so that memory is read in order. Either way a row's result does
 * not depend on how many rows one call gets. */
#include "reduce.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 256    /* a multiple of LANES */
#define BAND 2048    /* rows accumulated together when walking across rows (16 KiB) */
#define LANES 32   /* independent accumulators along a row (4 AVX-512 registers of double) */

/* ---------------------------------------------------------------- loading */

/* buf[i] = x[i*s], i < n, as double. Full chunks get a loop of constant length, which
 * -O2 vectorises. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void load_f64(double *restrict buf, fl_dtype dt, const void *restrict x, int64_t n, int64_t s)
{
    if (dt == FL_DTYPE_F32) {
        const float *X = x;
        if (s == 1 && n == CHUNK)
            for (int64_t i = 0; i < CHUNK; i++) buf[i] = X[i];
        else if (s == 1)
            for (int64_t i = 0; i < n; i++) buf[i] = X[i];
        else
            for (int64_t i = 0; i < n; i++) buf[i] = X[i * s];
    } else if (dt == FL_DTYPE_F64) {
        const double *X = x;
        if (s == 1)
            memcpy(buf, X, (size_t)n * sizeof *buf);
        else
            for (int64_t i = 0; i < n; i++) buf[i] = X[i * s];
    } else {
        for (int64_t i = 0; i < n; i++) buf[i] = fl_load_f64(dt, x, i * s);
    }
}

/* buf[i] = x[i*s], i < n, as int64. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void load_i64(int64_t *restrict buf, fl_dtype dt, const void *restrict x, int64_t n, int64_t s)
{
    switch (dt) {
    case FL_DTYPE_I64: { const int64_t *X = x; for (int64_t i = 0; i < n; i++) buf[i] = X[i * s]; break; }
    case FL_DTYPE_I32: { const int32_t *X = x; for (int64_t i = 0; i < n; i++) buf[i] = X[i * s]; break; }
    case FL_DTYPE_U8: { const uint8_t *X = x; for (int64_t i = 0; i < n; i++) buf[i] = X[i * s]; break; }
    case FL_DTYPE_BOOL: { const uint8_t *X = x; for (int64_t i = 0; i < n; i++) buf[i] = X[i * s] != 0; break; }
    default: for (int64_t i = 0; i < n; i++) buf[i] = fl_load_i64(dt, x, i * s); break;
    }
}

/* ---------------------------------------------------------------- float reductions */

static double identity_float(fl_rk op)
{
    switch (op) {
    case FL_RK_PROD: case FL_RK_ALL: return 1;
    case FL_RK_MAX: return -INFINITY;
    case FL_RK_MIN: case FL_RK_ABSMIN: return INFINITY;
    default: return 0;
    }
}

/* Folds two partial results of op (NaN wins for max/min). */
static double combine_float(fl_rk op, double a, double b)
{
    switch (op) {
    case FL_RK_PROD: return a * b;
    case FL_RK_MAX: case FL_RK_ABSMAX: case FL_RK_ANY: return (b > a || b != b) ? b : a;
    case FL_RK_MIN: case FL_RK_ABSMIN: case FL_RK_ALL: return (b < a || b != b) ? b : a;
    default: return a + b;
    }
}

/* Instantiates LOOP(EXPR) for each operation; EXPR folds the value v into the accumulator
 * a, with the row's shift s and the power p. */
#define FLOAT_OPS(LOOP)                                                             \
    switch (op) {                                                                   \
    case FL_RK_SUM: LOOP(a + v); break;                                             \
    case FL_RK_PROD: LOOP(a * v); break;                                            \
    case FL_RK_MAX: LOOP((v > a || v != v) ? v : a); break;                         \
    case FL_RK_MIN: LOOP((v < a || v != v) ? v : a); break;                         \
    case FL_RK_ALL: LOOP(v != 0 ? a : 0.0); break;                                  \
    case FL_RK_ANY: LOOP(v != 0 ? 1.0 : a); break;                                  \
    case FL_RK_SQDEV: LOOP(a + (v - s) * (v - s)); break;                           \
    case FL_RK_EXPSHIFT: LOOP(a + exp(v - s)); break;                               \
    case FL_RK_ABSPOW:                                                              \
        if (p == 1) LOOP(a + fabs(v));                                              \
        else if (p == 2) LOOP(a + v * v);                                           \
        else LOOP(a + pow(fabs(v), p));                                             \
        break;                                                                      \
    case FL_RK_ABSMAX: LOOP((fabs(v) > a || v != v) ? fabs(v) : a); break;          \
    case FL_RK_ABSMIN: LOOP((fabs(v) < a || v != v) ? fabs(v) : a); break;          \
    case FL_RK_NONZERO: LOOP(a + (v != 0)); break;                                  \
    default: break;                                                                 \
    }

/* Entry i of the chunk goes to lane i % LANES (chunks start at multiples of LANES). */
#define ROW_LOOP(EXPR)                                                              \
    do {                                                                            \
        int64_t i = 0;                                                              \
        for (; i + LANES <= n; i += LANES)                                          \
            for (int l = 0; l < LANES; l++) {                                       \
                double a = r[l], v = buf[i + l];                                    \
                r[l] = (EXPR);                                                      \
            }                                                                       \
        for (int l = 0; i + l < n; l++) {                                           \
            double a = r[l], v = buf[i + l];                                        \
            r[l] = (EXPR);                                                          \
        }                                                                           \
    } while (0)

/* The additive folds with the 32 lanes held in four 8-double vector registers (GCC vector
 * extensions, lowered to whatever the target has): the same lanes, so the same result as
 * ROW_LOOP, several times faster. */
typedef double v8d __attribute__((vector_size(64), aligned(8)));

#define VEC_ROW_LOOP(VEXPR, EXPR)                                                   \
    do {                                                                            \
        v8d a0 = *(const v8d *)(r + 0), a1 = *(const v8d *)(r + 8);                 \
        v8d a2 = *(const v8d *)(r + 16), a3 = *(const v8d *)(r + 24);               \
        int64_t i = 0;                                                              \
        for (; i + LANES <= n; i += LANES) {                                        \
            v8d x0 = *(const v8d *)(buf + i), x1 = *(const v8d *)(buf + i + 8);     \
            v8d x2 = *(const v8d *)(buf + i + 16), x3 = *(const v8d *)(buf + i + 24); \
            a0 = VEXPR(a0, x0);                                                     \
            a1 = VEXPR(a1, x1);                                                     \
            a2 = VEXPR(a2, x2);                                                     \
            a3 = VEXPR(a3, x3);                                                     \
        }                                                                           \
        *(v8d *)(r + 0) = a0;                                                       \
        *(v8d *)(r + 8) = a1;                                                       \
        *(v8d *)(r + 16) = a2;                                                      \
        *(v8d *)(r + 24) = a3;                                                      \
        for (int l = 0; i + l < n; l++) {                                           \
            double a = r[l], v = buf[i + l];                                        \
            r[l] = (EXPR);                                                          \
        }                                                                           \
    } while (0)
#define V_SUM(a, x) ((a) + (x))
#define V_SQDEV(a, x) ((a) + ((x) - s) * ((x) - s))
#define V_SQUARE(a, x) ((a) + (x) * (x))

__attribute__((target_clones("avx512f", "avx2", "default")))
static void fold_row_float(fl_rk op, double *restrict r, const double *restrict buf, int64_t n,
                           double s, double p)
{
    _Static_assert(LANES == 32, "VEC_ROW_LOOP holds 32 lanes");
    if (op == FL_RK_SUM)
        VEC_ROW_LOOP(V_SUM, a + v);
    else if (op == FL_RK_SQDEV)
        VEC_ROW_LOOP(V_SQDEV, a + (v - s) * (v - s));
    else if (op == FL_RK_ABSPOW && p == 2)
        VEC_ROW_LOOP(V_SQUARE, a + v * v);
    else
        FLOAT_OPS(ROW_LOOP)
}

/* Row i of the tile folds buf[i] into acc[i], with shift sh[i]; full tiles get a loop of
 * constant length, which -O2 vectorises. */
#define COL_BODY(EXPR, LEN)                                                         \
    for (int64_t i = 0; i < (LEN); i++) {                                           \
        double a = acc[i], v = buf[i], s = sh[i];                                   \
        (void)s;                                                                    \
        acc[i] = (EXPR);                                                            \
    }
#define COL_LOOP(EXPR)                                                              \
    do {                                                                            \
        if (n == CHUNK) {                                                           \
            COL_BODY(EXPR, CHUNK)                                                   \
        } else {                                                                    \
            COL_BODY(EXPR, n)                                                       \
        }                                                                           \
    } while (0)

static const double zeros[CHUNK];

__attribute__((target_clones("avx512f", "avx2", "default")))
static void fold_col_float(fl_rk op, double *restrict acc, const double *restrict buf, int64_t n,
                           const double *restrict sh, double p)
{
    FLOAT_OPS(COL_LOOP)
}

void fl_cpu_reduce_float(fl_rk op, fl_dtype dt, double *out, const void *x, int64_t n_out,
                         int64_t n_red, int64_t so, int64_t sr, const double *shift, double p)
{
    size_t es = fl_dtype_size(dt);
    const char *X = x;
    double buf[CHUNK], acc[CHUNK];
    double id = identity_float(op);
    if (so != 0 && llabs(so) < llabs(sr)) {
        /* across rows: out accumulates a band of rows, one entry of each at a time */
        for (int64_t b0 = 0; b0 < n_out; b0 += BAND) {
            int64_t bn = n_out - b0 < BAND ? n_out - b0 : BAND;
            for (int64_t i = 0; i < bn; i++) out[b0 + i] = id;
            for (int64_t j = 0; j < n_red; j++)
                for (int64_t i0 = b0; i0 < b0 + bn; i0 += CHUNK) {
                    int64_t m = b0 + bn - i0 < CHUNK ? b0 + bn - i0 : CHUNK;
                    load_f64(buf, dt, X + (i0 * so + j * sr) * (int64_t)es, m, so);
                    fold_col_float(op, out + i0, buf, m, shift ? shift + i0 : zeros, p);
                }
        }
        return;
    }
    for (int64_t i = 0; i < n_out; i++) {
        for (int l = 0; l < LANES; l++) acc[l] = id;
        const char *row = X + i * so * (int64_t)es;
        for (int64_t j = 0; j < n_red; j += CHUNK) {
            int64_t m = n_red - j < CHUNK ? n_red - j : CHUNK;
            load_f64(buf, dt, row + j * sr * (int64_t)es, m, sr);
            fold_row_float(op, acc, buf, m, shift ? shift[i] : 0, p);
        }
        for (int w = LANES / 2; w > 0; w /= 2)   /* pairwise */
            for (int l = 0; l < w; l++)
                acc[l] = combine_float(op, acc[l], acc[l + w]);
        out[i] = acc[0];
    }
}

void fl_cpu_reduce_combine_float(fl_rk op, double *out, const double *part, int64_t n, int64_t nblk)
{
    for (int64_t i = 0; i < n; i++) {
        double a = part[i];
        for (int64_t b = 1; b < nblk; b++)
            a = combine_float(op, a, part[b * n + i]);
        out[i] = a;
    }
}

/* ---------------------------------------------------------------- integer reductions */

static int64_t identity_int(fl_rk op)
{
    switch (op) {
    case FL_RK_PROD: case FL_RK_ALL: return 1;
    case FL_RK_MAX: return INT64_MIN;
    case FL_RK_MIN: return INT64_MAX;
    default: return 0;
    }
}

/* Sums and products go through uint64_t: they wrap around instead of overflowing. */
static int64_t combine_int(fl_rk op, int64_t a, int64_t b)
{
    switch (op) {
    case FL_RK_SUM: return (int64_t)((uint64_t)a + (uint64_t)b);
    case FL_RK_PROD: return (int64_t)((uint64_t)a * (uint64_t)b);
    case FL_RK_MAX: case FL_RK_ANY: return b > a ? b : a;
    case FL_RK_MIN: case FL_RK_ALL: return b < a ? b : a;
    default: return a;
    }
}

/* amask LANES - 1: entry i goes to lane i % LANES of one row; amask -1: one accumulator per
 * entry. */
static void fold_int(fl_rk op, int64_t *restrict acc, int64_t amask, const int64_t *restrict buf, int64_t n)
{
    switch (op) {
    case FL_RK_SUM: for (int64_t i = 0; i < n; i++) acc[i & amask] = (int64_t)((uint64_t)acc[i & amask] + (uint64_t)buf[i]); break;
    case FL_RK_PROD: for (int64_t i = 0; i < n; i++) acc[i & amask] = (int64_t)((uint64_t)acc[i & amask] * (uint64_t)buf[i]); break;
    case FL_RK_MAX: for (int64_t i = 0; i < n; i++) if (buf[i] > acc[i & amask]) acc[i & amask] = buf[i]; break;
    case FL_RK_MIN: for (int64_t i = 0; i < n; i++) if (buf[i] < acc[i & amask]) acc[i & amask] = buf[i]; break;
    case FL_RK_ALL: for (int64_t i = 0; i < n; i++) if (buf[i] == 0) acc[i & amask] = 0; break;
    case FL_RK_ANY: for (int64_t i = 0; i < n; i++) if (buf[i] != 0) acc[i & amask] = 1; break;
    default: break;
    }
}

void fl_cpu_reduce_int(fl_rk op, fl_dtype dt, int64_t *out, const void *x, int64_t n_out,
                       int64_t n_red, int64_t so, int64_t sr)
{
    size_t es = fl_dtype_size(dt);
    const char *X = x;
    int64_t buf[CHUNK], acc[CHUNK];
    int64_t id = identity_int(op);
    if (so != 0 && llabs(so) < llabs(sr)) {
        for (int64_t b0 = 0; b0 < n_out; b0 += BAND) {
            int64_t bn = n_out - b0 < BAND ? n_out - b0 : BAND;
            for (int64_t i = 0; i < bn; i++) out[b0 + i] = id;
            for (int64_t j = 0; j < n_red; j++)
                for (int64_t i0 = b0; i0 < b0 + bn; i0 += CHUNK) {
                    int64_t m = b0 + bn - i0 < CHUNK ? b0 + bn - i0 : CHUNK;
                    load_i64(buf, dt, X + (i0 * so + j * sr) * (int64_t)es, m, so);
                    fold_int(op, out + i0, -1, buf, m);
                }
        }
        return;
    }
    for (int64_t i = 0; i < n_out; i++) {
        for (int l = 0; l < LANES; l++) acc[l] = id;
        const char *row = X + i * so * (int64_t)es;
        for (int64_t j = 0; j < n_red; j += CHUNK) {
            int64_t m = n_red - j < CHUNK ? n_red - j : CHUNK;
            load_i64(buf, dt, row + j * sr * (int64_t)es, m, sr);
            fold_int(op, acc, LANES - 1, buf, m);
        }
        int64_t r = acc[0];
        for (int l = 1; l < LANES; l++)
            r = combine_int(op, r, acc[l]);
        out[i] = r;
    }
}

void fl_cpu_reduce_combine_int(fl_rk op, int64_t *out, const int64_t *part, int64_t n, int64_t nblk)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t a = part[i];
        for (int64_t b = 1; b < nblk; b++)
            a = combine_int(op, a, part[b * n + i]);
        out[i] = a;
    }
}

/* ---------------------------------------------------------------- arg max / min */

/* Does v (at a later index) replace the current best a? Only a strictly better value, or
 * the first NaN. */
static inline int better_f(int want_max, double v, double a)
{
    if (a != a)
        return 0;
    return v != v || (want_max ? v > a : v < a);
}

static inline int better_i(int want_max, int64_t v, int64_t a)
{
    return want_max ? v > a : v < a;
}

void fl_cpu_reduce_arg(int want_max, fl_dtype dt, void *val, int64_t *idx, const void *x,
                       int64_t n_out, int64_t n_red, int64_t so, int64_t sr, int64_t j0)
{
    size_t es = fl_dtype_size(dt);
    const char *X = x;
    bool is_float = fl_dtype_is_float(dt);
    double fbuf[CHUNK];
    int64_t ibuf[CHUNK];
    double *fval = val;
    int64_t *ival = val;
    for (int64_t i = 0; i < n_out; i++)
        idx[i] = -1;
    if (so != 0 && llabs(so) < llabs(sr)) {
        for (int64_t i0 = 0; i0 < n_out; i0 += CHUNK) {
            int64_t m = n_out - i0 < CHUNK ? n_out - i0 : CHUNK;
            for (int64_t j = 0; j < n_red; j++) {
                const char *p = X + (i0 * so + j * sr) * (int64_t)es;
                if (is_float) {
                    load_f64(fbuf, dt, p, m, so);
                    for (int64_t i = 0; i < m; i++)
                        if (idx[i0 + i] < 0 || better_f(want_max, fbuf[i], fval[i0 + i])) {
                            fval[i0 + i] = fbuf[i];
                            idx[i0 + i] = j0 + j;
                        }
                } else {
                    load_i64(ibuf, dt, p, m, so);
                    for (int64_t i = 0; i < m; i++)
                        if (idx[i0 + i] < 0 || better_i(want_max, ibuf[i], ival[i0 + i])) {
                            ival[i0 + i] = ibuf[i];
                            idx[i0 + i] = j0 + j;
                        }
                }
            }
        }
        return;
    }
    for (int64_t i = 0; i < n_out; i++) {
        const char *row = X + i * so * (int64_t)es;
        double fbest = 0;
        int64_t ibest = 0, at = -1;
        for (int64_t j = 0; j < n_red; j += CHUNK) {
            int64_t m = n_red - j < CHUNK ? n_red - j : CHUNK;
            if (is_float) {
                load_f64(fbuf, dt, row + j * sr * (int64_t)es, m, sr);
                for (int64_t k = 0; k < m; k++)
                    if (at < 0 || better_f(want_max, fbuf[k], fbest)) {
                        fbest = fbuf[k];
                        at = j + k;
                    }
            } else {
                load_i64(ibuf, dt, row + j * sr * (int64_t)es, m, sr);
                for (int64_t k = 0; k < m; k++)
                    if (at < 0 || better_i(want_max, ibuf[k], ibest)) {
                        ibest = ibuf[k];
                        at = j + k;
                    }
            }
        }
        if (is_float)
            fval[i] = fbest;
        else
            ival[i] = ibest;
        idx[i] = at < 0 ? -1 : j0 + at;
    }
}

void fl_cpu_reduce_arg_combine(int want_max, fl_dtype dt, void *val, int64_t *idx,
                               const void *pval, const int64_t *pidx, int64_t n, int64_t nblk)
{
    bool is_float = fl_dtype_is_float(dt);
    for (int64_t i = 0; i < n; i++) {
        int64_t at = pidx[i];
        if (is_float) {
            const double *P = pval;
            double best = P[i];
            for (int64_t b = 1; b < nblk; b++)
                if (pidx[b * n + i] >= 0 && (at < 0 || better_f(want_max, P[b * n + i], best))) {
                    best = P[b * n + i];
                    at = pidx[b * n + i];
                }
            ((double *)val)[i] = best;
        } else {
            const int64_t *P = pval;
            int64_t best = P[i];
            for (int64_t b = 1; b < nblk; b++)
                if (pidx[b * n + i] >= 0 && (at < 0 || better_i(want_max, P[b * n + i], best))) {
                    best = P[b * n + i];
                    at = pidx[b * n + i];
                }
            ((int64_t *)val)[i] = best;
        }
        idx[i] = at;
    }
}

/* ---------------------------------------------------------------- scans */

/* One running value per row; rows next to each other in memory (a scan along a leading
 * dim) are walked a tile at a time so that reads stay in order. */
#define SCAN(T, ACC)                                                                \
    do {                                                                            \
        T *O = out;                                                                 \
        const T *X = x;                                                             \
        if (xs_row == 1 && os_row == 1 && n_rows > 1) {                             \
            ACC acc[CHUNK];                                                         \
            for (int64_t r0 = 0; r0 < n_rows; r0 += CHUNK) {                        \
                int64_t m = n_rows - r0 < CHUNK ? n_rows - r0 : CHUNK;              \
                for (int64_t r = 0; r < m; r++) acc[r] = prod ? 1 : 0;              \
                for (int64_t j = 0; j < n; j++)                                     \
                    for (int64_t r = 0; r < m; r++) {                               \
                        ACC v = (ACC)X[r0 + r + j * xs];                            \
                        acc[r] = prod ? acc[r] * v : acc[r] + v;                    \
                        O[r0 + r + j * os] = (T)acc[r];                             \
                    }                                                               \
            }                                                                       \
        } else {                                                                    \
            for (int64_t r = 0; r < n_rows; r++) {                                  \
                ACC a = prod ? 1 : 0;                                               \
                for (int64_t j = 0; j < n; j++) {                                   \
                    ACC v = (ACC)X[r * xs_row + j * xs];                            \
                    a = prod ? a * v : a + v;                                       \
                    O[r * os_row + j * os] = (T)a;                                  \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    } while (0)

void fl_cpu_cumulative(int prod, fl_dtype dt, void *out, const void *x, int64_t n_rows, int64_t n,
                       int64_t os_row, int64_t os, int64_t xs_row, int64_t xs)
{
    switch (dt) {
    case FL_DTYPE_F32: SCAN(float, double); break;
    case FL_DTYPE_F64: SCAN(double, double); break;
    case FL_DTYPE_I64: SCAN(int64_t, uint64_t); break;   /* wraps around */
    default: break;
    }
}
