/* gemm.h: matrix-product loops for the dtypes BLAS does not cover (see gemm.c). */
#ifndef FL_CPU_GEMM_H
#define FL_CPU_GEMM_H

#include <stdint.h>

/* out (m, n), contiguous, = a (m, k) . b (k, n); a and b have any element strides
 * (rsa, csa), (rsb, csb). int64 arithmetic that wraps around, as PyTorch's. */
void fl_cpu_gemm_i64(int64_t *out, const int64_t *a, const int64_t *b, int64_t m, int64_t n,
                     int64_t k, int64_t rsa, int64_t csa, int64_t rsb, int64_t csb);

#endif
