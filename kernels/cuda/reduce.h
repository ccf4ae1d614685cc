/* reduce.h: CUDA reductions and scans. The engine (vm/reduce.c) folds any layout into the
 * picture of the CPU kernels (kernels/cpu/reduce.h): rows of a strided matrix, row r's entry j
 * at x[off(r) + j*sr]. Operations and results match the CPU's, accumulating in double for
 * float dtypes and in wrapping int64 for the others. */
#ifndef FL_CUDA_REDUCE_H
#define FL_CUDA_REDUCE_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/reduce.h"

/* Row r = o * n_inner + i (o over the outer dims, row-major) starts at element
 * sum_k (o_k * outer_stride[k]) + i * so of x and holds n_red entries sr apart. Results are
 * written in row order. */
typedef struct {
    const void *x;   /* device */
    fl_dtype dt;
    int nouter;
    int64_t outer_shape[FL_MAX_DIMS], outer_stride[FL_MAX_DIMS];
    int64_t n_inner, so, n_red, sr, n_out;
} fl_cuda_rplan;

/* What is done to a row's accumulated value a before it is stored (n: the count given to
 * fl_cuda_reduce, s: the row's shift). */
typedef enum {
    FL_RPOST_NONE,     /* a */
    FL_RPOST_DIV,      /* a / arg */
    FL_RPOST_MEAN,     /* a / n */
    FL_RPOST_VAR,      /* a / max(n - arg, 0) */
    FL_RPOST_STD,      /* sqrt(a / max(n - arg, 0)) */
    FL_RPOST_ROOT,     /* a^(1/arg): sqrt for 2 */
    FL_RPOST_FINITE,   /* a, or 0 where a is infinite (logsumexp's shift) */
    FL_RPOST_LSE,      /* log(a) + s */
} fl_rpost;

/* The post-processing, written once for the host (the CPU path) and the device. */
#if defined(__CUDACC__) || defined(FL_CUDA_EMU)
#define FL_RPOST_FN __host__ __device__ static inline
#else
#include <math.h>
#define FL_RPOST_FN static inline
#endif
FL_RPOST_FN double fl_rpost_apply(fl_rpost post, double a, double n, double arg, double s)
{
    double dof = n - arg > 0 ? n - arg : 0;
    switch (post) {
    case FL_RPOST_DIV: return a / arg;
    case FL_RPOST_MEAN: return a / n;
    case FL_RPOST_VAR: return a / dof;
    case FL_RPOST_STD: return sqrt(a / dof);
    case FL_RPOST_ROOT: return arg == 2 ? sqrt(a) : pow(a, 1 / arg);
    case FL_RPOST_FINITE: return a == INFINITY || a == -INFINITY ? 0 : a;
    case FL_RPOST_LSE: return log(a) + s;
    default: return a;
    }
}

/* out[r] = post(op over row r), stored as out_dt with the CPU's conversion (bool: != 0).
 * shift: float64 per row (device, or NULL for zeros), for SQDEV, EXPSHIFT and LSE; p for
 * ABSPOW. Integer dtypes take SUM, PROD, MAX, MIN, ALL and ANY with post NONE. */
int fl_cuda_reduce(fl_rk op, const fl_cuda_rplan *pl, const double *shift, double p, fl_rpost post,
                   double n, double arg, fl_dtype out_dt, void *out);

/* Arg max/min of each row as the CPU's: the first extreme, or the first NaN. val (of pl->dt)
 * and idx (int64, base + position in the row). */
int fl_cuda_reduce_arg(int want_max, const fl_cuda_rplan *pl, int64_t base, void *val, int64_t *idx);

/* Running sums (prod = 0) or products along n of contiguous (outer, n, inner) tensors: dt is
 * float32 or float64 (accumulated in double) or int64 (wrapping). */
int fl_cuda_cumulative(int prod, fl_dtype dt, void *out, const void *x, int64_t outer, int64_t n,
                       int64_t inner);

#ifdef __cplusplus
}
#endif
#endif
