/* blas.h: matrix products on the GPU through cuBLAS (one handle, created on first use, on
 * flare's stream). Matrices are row-major as flare lays them out; an operand stored column by
 * column is passed as a cuBLAS transpose, never copied. */
#ifndef FL_CUDA_BLAS_H
#define FL_CUDA_BLAS_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How float32 products are computed: exactly (float32 in and out), with TF32 tensor cores
 * (allowed by fl_set_allow_tf32), or with the operands rounded to bfloat16 (autocast), always
 * accumulating and returning float32. float64 ignores the mode. */
typedef enum { FL_GEMM_EXACT, FL_GEMM_TF32, FL_GEMM_BF16 } fl_gemm_mode;

/* For p < batch: C_p (m, n) = alpha op(A_p) op(B_p) + beta C_p, C_p not read when beta is 0.
 * A_p = a + p * sa (elements; sa = 0 shares one A), op(A_p) is (m, k): ta = 0: stored by rows
 * with row stride lda; ta = 1: stored by columns (its transpose by rows) with stride lda.
 * Likewise B (k, n); C_p = c + p * sc, rows ldc apart. dt: float32 or float64. Dimensions
 * and leading dimensions fit an int; k may be 0 (C = beta C). */
int fl_cuda_gemm(fl_dtype dt, fl_gemm_mode mode, int ta, int tb, int64_t m, int64_t n, int64_t k,
                 double alpha, const void *a, int64_t lda, int64_t sa, const void *b, int64_t ldb,
                 int64_t sb, double beta, void *c, int64_t ldc, int64_t sc, int64_t batch);

/* The time (seconds per product) of `iters` direct cuBLAS products of two n x n float32
 * matrices on device buffers of its own: mode FL_GEMM_EXACT or _TF32 (float32 inputs), or
 * _BF16 (bfloat16 inputs already converted; with cast = 1 the conversion of both float32
 * operands is timed with each product, as autocast does). The reference for
 * scripts/bench/gpu_gemm.lua. */
int fl_cuda_bench_gemm(int64_t n, fl_gemm_mode mode, int cast, int iters, double *seconds);

#ifdef __cplusplus
}
#endif
#endif
