/* reduce.h: CPU reduction and scan kernels. Each reduces the rows of a strided matrix: row i,
 * entry j lives at x[i*so + j*sr] (element strides). The caller (vm/reduce.c) folds any
 * tensor layout into that picture and splits long rows into blocks whose partial results
 * the combine functions fold, always in the same order. */
#ifndef FL_CPU_REDUCE_H
#define FL_CPU_REDUCE_H

#include <stdint.h>

#include "../../vm/flare.h"

typedef enum {
    FL_RK_SUM,        /* sum x */
    FL_RK_PROD,       /* product x */
    FL_RK_MAX,        /* max x, NaN wins */
    FL_RK_MIN,        /* min x, NaN wins */
    FL_RK_ALL,        /* 1 if every x != 0 */
    FL_RK_ANY,        /* 1 if some x != 0 */
    FL_RK_SQDEV,      /* sum (x - shift)^2 (variance) */
    FL_RK_EXPSHIFT,   /* sum exp(x - shift) (logsumexp) */
    FL_RK_ABSPOW,     /* sum |x|^p */
    FL_RK_ABSMAX,     /* max |x|, NaN wins */
    FL_RK_ABSMIN,     /* min |x|, NaN wins */
    FL_RK_NONZERO,    /* count of x != 0 */
    FL_RK_COUNT
} fl_rk;

/* x is (n_out, n_red) of float dtype dt; out[i] = the reduction of row i, in double.
 * shift (one per row, or NULL for zeros) is used by SQDEV and EXPSHIFT, p by ABSPOW.
 * An empty row gives the identity (0, 1, -inf, +inf, ...). */
void fl_cpu_reduce_float(fl_rk op, fl_dtype dt, double *out, const void *x, int64_t n_out,
                         int64_t n_red, int64_t so, int64_t sr, const double *shift, double p);

/* The same for integer and bool dtypes, exactly in int64 (sums and products wrap around):
 * SUM, PROD, MAX, MIN, ALL and ANY only. */
void fl_cpu_reduce_int(fl_rk op, fl_dtype dt, int64_t *out, const void *x, int64_t n_out,
                       int64_t n_red, int64_t so, int64_t sr);

/* out[i] = part[0*n + i] op part[1*n + i] op ... op part[(nblk-1)*n + i], in that order. */
void fl_cpu_reduce_combine_float(fl_rk op, double *out, const double *part, int64_t n, int64_t nblk);
void fl_cpu_reduce_combine_int(fl_rk op, int64_t *out, const int64_t *part, int64_t n, int64_t nblk);

/* Arg max/min of each row: idx[i] = j0 + the first j holding the extreme (a NaN is the
 * extreme), val[i] = that value: double for float dtypes, int64 for the others. */
void fl_cpu_reduce_arg(int want_max, fl_dtype dt, void *val, int64_t *idx, const void *x,
                       int64_t n_out, int64_t n_red, int64_t so, int64_t sr, int64_t j0);
/* Folds nblk partial (val, idx) results per row, earlier blocks winning ties. */
void fl_cpu_reduce_arg_combine(int want_max, fl_dtype dt, void *val, int64_t *idx,
                               const void *pval, const int64_t *pidx, int64_t n, int64_t nblk);

/* Running sums (prod = 0) or products along rows: out and x are (n_rows, n) with strides
 * (os_row, os) and (xs_row, xs). dt is float32 or float64 (accumulated in double) or int64
 * (wraps around). */
void fl_cpu_cumulative(int prod, fl_dtype dt, void *out, const void *x, int64_t n_rows, int64_t n,
                       int64_t os_row, int64_t os, int64_t xs_row, int64_t xs);

#endif
