/* kernels.h: CPU compute kernels. They see raw pointers, element counts and element strides,
 * nothing else: no tensors, no errors beyond a status, no allocation. Outputs come first. */
#ifndef FL_CPU_KERNELS_H
#define FL_CPU_KERNELS_H

#include <stdint.h>

#include "../../vm/flare.h"

/* out[i*so] = a[i*sa] op b[i*sb], i < n. a and b are of dtype dt; out is dt, or bool for
 * comparisons and logical ops. Returns -1 (integer division by zero) on bad input. */
int fl_cpu_binary(fl_binop op, fl_dtype dt, void *out, const void *a, const void *b,
                  int64_t n, int64_t so, int64_t sa, int64_t sb);

/* out[i*so] = op(a[i*sa]); a is of dtype in, out of fl_unop_result_dtype(op, in). */
void fl_cpu_unary(fl_unop op, fl_dtype in, void *out, const void *a, int64_t n, int64_t so, int64_t sa);

/* out[i*so] = (dst dtype) a[i*sa]: dtype conversion and strided copy. */
void fl_cpu_cast(fl_dtype dst, void *out, fl_dtype src, const void *a, int64_t n, int64_t so, int64_t sa);

/* out[i*so] = clamp(a[i*sa], lo, hi); has_lo/has_hi select the bounds. */
void fl_cpu_clamp(fl_dtype dt, void *out, const void *a, int64_t n, int64_t so, int64_t sa,
                  double lo, double hi, int has_lo, int has_hi);

/* out[i*so] = cond[i*sc] ? a[i*sa] : b[i*sb]; cond is bool, a/b/out of dt. */
void fl_cpu_where(fl_dtype dt, void *out, const uint8_t *cond, const void *a, const void *b,
                  int64_t n, int64_t so, int64_t sc, int64_t sa, int64_t sb);



/* out[i*so] = v, cast to dt. */
void fl_cpu_fill(fl_dtype dt, void *out, int64_t n, int64_t so, double v);
#endif
