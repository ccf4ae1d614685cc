/* blas.cu: matrix products on cuBLAS (see blas.h). flare's matrices are row-major and cuBLAS's
 * column-major, so C = A B is computed as C^T = B^T A^T: the same memory read the other way,
 * with B passed first. A row-major operand is a column-major transpose (op N gives its
 * transpose), and one stored by columns is passed with op T. Under autocast the float32
 * operands are first rounded to bfloat16 device buffers (kernel below) and multiplied with
 * cublasGemmEx, accumulating in float32. */
#include "common.cuh"
#include "blas.h"

#ifdef FL_CUDA_EMU
#include "emu/cublas_v2.h"
#else
#include <cublas_v2.h>
#endif

#include <chrono>
#include <limits.h>
#include <mutex>

namespace {

/* ---------------------------------------------------------------- kernels */

/* dst (rows, inner) contiguous bfloat16 = src's rows, each `inner` floats at stride 1; row r
 * is src + (r / outer) * bstride + (r % outer) * ld (batches of `outer` rows). */
__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int64_t rows, int64_t outer,
                               int64_t inner, int64_t ld, int64_t bstride)
{
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *s = src + (r / outer) * bstride + (r % outer) * ld;
        __nv_bfloat16 *d = dst + r * inner;
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < inner; i += (int64_t)blockDim.x * gridDim.x)
            d[i] = __float2bfloat16(s[i]);
    }
}

/* C_p = beta C_p (0 when beta is 0: C may hold garbage), for a product over k = 0. */
template <typename T>
__global__ void scale_kernel(T *c, int64_t m, int64_t n, int64_t ldc, int64_t sc, int64_t batch, T beta)
{
    FL_GRID_STRIDE(i, batch * m * n) {
        int64_t j = i % n, r = i / n, p = r / m;
        T *at = c + p * sc + (r % m) * ldc + j;
        *at = beta == (T)0 ? (T)0 : beta * *at;
    }
}

/* Values in [-1, 1) from a hash of the index: the benchmark's operands. */
__global__ void pattern_kernel(float *x, int64_t n, uint32_t seed)
{
    FL_GRID_STRIDE(i, n) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        x[i] = (float)(h & 0xffffff) / 8388608.0f - 1.0f;
    }
}

/* ---------------------------------------------------------------- the handle */

std::mutex handle_lock;
cublasHandle_t the_handle;

int cublas_check(cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    return fl_cuda_fail("%s: cuBLAS error: %s", what, cublasGetStatusString(s));
}

/* The library's one handle, on flare's stream, in default (non-TF32) math: TF32 is asked
 * for per call through the compute type. */
int get_handle(cublasHandle_t *h)
{
    std::lock_guard<std::mutex> g(handle_lock);
    if (!the_handle) {
        cublasHandle_t nh;
        if (cublas_check(cublasCreate(&nh), "creating the cuBLAS handle") < 0)
            return -1;
        if (cublas_check(cublasSetStream(nh, FL_STREAM), "cublasSetStream") < 0 ||
            cublas_check(cublasSetMathMode(nh, CUBLAS_DEFAULT_MATH), "cublasSetMathMode") < 0) {
            cublasDestroy(nh);
            return -1;
        }
        the_handle = nh;
    }
    *h = the_handle;
    return 0;
}

/* ---------------------------------------------------------------- operands in bfloat16 */

/* An operand of a strided batch: `outer` runs of `inner` elements at stride 1, runs ld
 * apart, batches s apart (0: one matrix for all). */
struct operand {
    const void *p;
    int64_t outer, inner, ld, s;
};

/* x as a contiguous bfloat16 copy in *buf (freed by the caller with bf16_free); x's ld and
 * s are rewritten for the copy. */
int to_bf16(operand *x, int64_t batch, void **buf, size_t *bytes)
{
    int64_t nb = x->s == 0 ? 1 : batch, rows = nb * x->outer;
    *bytes = (size_t)(rows * x->inner) * sizeof(__nv_bfloat16);
    *buf = fl_cuda_malloc(*bytes ? *bytes : 1);
    if (!*buf)
        return -1;
    if (rows > 0 && x->inner > 0) {
        unsigned gx = fl_blocks(x->inner), gy = (unsigned)(rows < 65535 ? rows : 65535);
        FL_LAUNCH(to_bf16_kernel, dim3(gx, gy), FL_THREADS, (__nv_bfloat16 *)*buf, (const float *)x->p, rows,
                  x->outer, x->inner, x->ld, x->s);
        if (FL_CHECK_LAUNCH("conversion to bfloat16") < 0) {
            fl_cuda_free(*buf, *bytes);
            *buf = nullptr;
            return -1;
        }
    }
    x->p = *buf;
    x->ld = x->inner > 1 ? x->inner : 1;
    x->s = x->s == 0 ? 0 : x->outer * x->inner;
    return 0;
}

/* ---------------------------------------------------------------- the product */

/* cuBLAS's call, operands already in their final type (bf16 set: A and B are bfloat16). */
int product(cublasHandle_t h, fl_dtype dt, fl_gemm_mode mode, cublasOperation_t opa, cublasOperation_t opb,
            int m, int n, int k, double alpha, const void *a, int lda, long long sa, const void *b, int ldb,
            long long sb, double beta, void *c, int ldc, long long sc, int batch)
{
    /* column-major view: C^T (n, m) = op(B)^T (n, k) . op(A)^T (k, m) */
    if (dt == FL_DTYPE_F64) {
        const double al = alpha, be = beta;
        if (batch == 1)
            return cublas_check(cublasDgemm(h, opb, opa, n, m, k, &al, (const double *)b, ldb, (const double *)a,
                                            lda, &be, (double *)c, ldc), "cublasDgemm");
        return cublas_check(cublasDgemmStridedBatched(h, opb, opa, n, m, k, &al, (const double *)b, ldb, sb,
                                                      (const double *)a, lda, sa, &be, (double *)c, ldc, sc, batch),
                            "cublasDgemmStridedBatched");
    }
    const float al = (float)alpha, be = (float)beta;
    cudaDataType in = mode == FL_GEMM_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t ct = mode == FL_GEMM_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    if (batch == 1)
        return cublas_check(cublasGemmEx(h, opb, opa, n, m, k, &al, b, in, ldb, a, in, lda, &be, c, CUDA_R_32F, ldc,
                                         ct, CUBLAS_GEMM_DEFAULT), "cublasGemmEx");
    return cublas_check(cublasGemmStridedBatchedEx(h, opb, opa, n, m, k, &al, b, in, ldb, sb, a, in, lda, sa, &be,
                                                   c, CUDA_R_32F, ldc, sc, batch, ct, CUBLAS_GEMM_DEFAULT),
                        "cublasGemmStridedBatchedEx");
}

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

double now(void)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

extern "C" int fl_cuda_gemm(fl_dtype dt, fl_gemm_mode mode, int ta, int tb, int64_t m, int64_t n, int64_t k,
                            double alpha, const void *a, int64_t lda, int64_t sa, const void *b, int64_t ldb,
                            int64_t sb, double beta, void *c, int64_t ldc, int64_t sc, int64_t batch)
{
    if (dt != FL_DTYPE_F32 && dt != FL_DTYPE_F64)
        return fl_cuda_fail("matrix products on the GPU need float32 or float64, got dtype %d", (int)dt);
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc) ||
        !fits_int(batch))
        return fl_cuda_fail("matrix product too large for cuBLAS (a dimension over 2^31)");
    if (m == 0 || n == 0 || batch == 0)
        return 0;
    if (k == 0) {
        FL_DISPATCH_FLOAT(dt, T, FL_LAUNCH(scale_kernel<T>, fl_blocks(batch * m * n), FL_THREADS, (T *)c, m, n, ldc,
                                           sc, batch, (T)beta));
        return FL_CHECK_LAUNCH("scaling a product over no terms");
    }
    cublasHandle_t h;
    if (get_handle(&h) < 0)
        return -1;
    if (dt == FL_DTYPE_F64)
        mode = FL_GEMM_EXACT;
    void *abuf = nullptr, *bbuf = nullptr;
    size_t abytes = 0, bbytes = 0;
    operand A = {a, ta ? k : m, ta ? m : k, lda, sa}, B = {b, tb ? n : k, tb ? k : n, ldb, sb};
    if (mode == FL_GEMM_BF16 && (to_bf16(&A, batch, &abuf, &abytes) < 0 || to_bf16(&B, batch, &bbuf, &bbytes) < 0)) {
        fl_cuda_free(abuf, abytes);
        return -1;
    }
    int rc = product(h, dt, mode, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, (int)m, (int)n,
                     (int)k, alpha, A.p, (int)A.ld, A.s, B.p, (int)B.ld, B.s, beta, c, (int)ldc, sc, (int)batch);
    /* the buffers go back to the cache; later work on the same stream runs after this product */
    fl_cuda_free(abuf, abytes);
    fl_cuda_free(bbuf, bbytes);
    return rc;
}

extern "C" int fl_cuda_bench_gemm(int64_t n, fl_gemm_mode mode, int cast, int iters, double *seconds)
{
    if (n < 1 || n > 65536 || iters < 1)
        return fl_cuda_fail("bench_gemm: expected 1 <= n <= 65536 and iters >= 1");
    cublasHandle_t h;
    if (get_handle(&h) < 0)
        return -1;
    size_t bytes = (size_t)(n * n) * sizeof(float);
    float *x[3] = {nullptr, nullptr, nullptr};
    void *bf[2] = {nullptr, nullptr};
    size_t bfbytes[2] = {0, 0};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        x[i] = (float *)fl_cuda_malloc(bytes);
        if (!x[i])
            rc = -1;
        else if (i < 2) {
            FL_LAUNCH(pattern_kernel, fl_blocks(n * n), FL_THREADS, x[i], n * n, 12345u + (uint32_t)i);
            rc = FL_CHECK_LAUNCH("bench_gemm operands");
        }
    }
    operand A = {x[0], n, n, n, 0}, B = {x[1], n, n, n, 0};
    if (rc == 0 && mode == FL_GEMM_BF16 && (to_bf16(&A, 1, &bf[0], &bfbytes[0]) < 0 || to_bf16(&B, 1, &bf[1], &bfbytes[1]) < 0))
        rc = -1;
    double t0 = 0;
    for (int it = -1; it < iters && rc == 0; it++) {   /* it = -1: warm-up, untimed */
        if (it == 0) {
            rc = fl_cuda_check(cudaDeviceSynchronize(), "bench_gemm warm-up");
            t0 = now();
        }
        if (rc == 0 && cast && mode == FL_GEMM_BF16) {
            unsigned gx = fl_blocks(n), gy = (unsigned)(n < 65535 ? n : 65535);
            for (int i = 0; i < 2; i++)
                FL_LAUNCH(to_bf16_kernel, dim3(gx, gy), FL_THREADS, (__nv_bfloat16 *)bf[i], (const float *)x[i], n, n,
                          n, n, (int64_t)0);
            rc = FL_CHECK_LAUNCH("bench_gemm conversion");
        }
        if (rc == 0)
            rc = product(h, FL_DTYPE_F32, mode, CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)n, (int)n, 1.0, A.p, (int)A.ld, 0,
                         B.p, (int)B.ld, 0, 0.0, x[2], (int)n, 0, 1);
    }
    if (rc == 0)
        rc = fl_cuda_check(cudaDeviceSynchronize(), "bench_gemm");
    if (rc == 0)
        *seconds = (now() - t0) / iters;
    for (int i = 0; i < 3; i++)
        fl_cuda_free(x[i], bytes);
    for (int i = 0; i < 2; i++)
        fl_cuda_free(bf[i], bfbytes[i]);
    return rc;
}
