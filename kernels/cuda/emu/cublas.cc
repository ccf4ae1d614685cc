/* cublas.cc: the emulator's cuBLAS (see cublas_v2.h): column-major GEMMs written from the
 * cuBLAS documentation, argument checks included, run on the CPU over the emulated device
 * memory (opened for the length of each call). Slow and obviously correct: the oracle the
 * CUDA specs measure flare's use of cuBLAS against. */
#include "cublas_v2.h"

#include <algorithm>
#include <cstring>
#include <vector>

struct fl_emu_cublas {
    cudaStream_t stream;
    cublasMath_t math;
};

namespace {

/* x rounded to TF32 (10 mantissa bits, to nearest even), as tensor cores read float32. */
float to_tf32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u = (u + 0xfffu + ((u >> 13) & 1)) & ~0x1fffu;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Element i of an array of type t, in the compute type ACC. */
template <typename ACC> ACC load(cudaDataType t, const void *p, int64_t i, bool tf32)
{
    switch (t) {
    case CUDA_R_64F: return (ACC)((const double *)p)[i];
    case CUDA_R_16BF: return (ACC)__bfloat162float(((const __nv_bfloat16 *)p)[i]);
    default: {
        float v = ((const float *)p)[i];
        return (ACC)(tf32 ? to_tf32(v) : v);
    }
    }
}

template <typename ACC> void store(cudaDataType t, void *p, int64_t i, ACC v)
{
    switch (t) {
    case CUDA_R_64F: ((double *)p)[i] = (double)v; break;
    case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __float2bfloat16((float)v); break;
    default: ((float *)p)[i] = (float)v; break;
    }
}

size_t type_size(cudaDataType t)
{
    return t == CUDA_R_64F ? 8 : t == CUDA_R_16BF || t == CUDA_R_16F ? 2 : 4;
}

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

/* C = alpha op(A) op(B) + beta C for each of batch matrices, column-major; C is not read
 * when beta is 0. */
template <typename ACC>
cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, ACC alpha,
                    const void *A, cudaDataType at, int lda, long long sa, const void *B, cudaDataType bt,
                    int ldb, long long sb, ACC beta, void *C, cudaDataType ct, int ldc, long long sc,
                    int batch, bool tf32)
{
    if (!valid_op(ta) || !valid_op(tb) || m < 0 || n < 0 || k < 0 || batch < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    int arows = ta == CUBLAS_OP_N ? m : k, brows = tb == CUBLAS_OP_N ? k : n;
    if (lda < (arows > 1 ? arows : 1) || ldb < (brows > 1 ? brows : 1) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0)
        return CUBLAS_STATUS_SUCCESS;
    fl_emu_device_scope open;
    std::vector<ACC> acc((size_t)m);
    size_t ea = type_size(at), eb = type_size(bt), ec = type_size(ct);
    for (int p = 0; p < batch; p++) {
        const char *a = (const char *)A + (size_t)(p * sa) * ea, *b = (const char *)B + (size_t)(p * sb) * eb;
        char *c = (char *)C + (size_t)(p * sc) * ec;
        for (int j = 0; j < n; j++) {
            std::fill(acc.begin(), acc.end(), (ACC)0);
            for (int l = 0; l < k; l++) {
                ACC bv = load<ACC>(bt, b, tb == CUBLAS_OP_N ? l + (int64_t)j * ldb : j + (int64_t)l * ldb, tf32);
                for (int i = 0; i < m; i++)
                    acc[i] += load<ACC>(at, a, ta == CUBLAS_OP_N ? i + (int64_t)l * lda : l + (int64_t)i * lda, tf32) * bv;
            }
            for (int i = 0; i < m; i++) {
                int64_t at_c = i + (int64_t)j * ldc;
                ACC v = alpha * acc[i];
                if (beta != (ACC)0)
                    v += beta * load<ACC>(ct, c, at_c, false);
                store<ACC>(ct, c, at_c, v);
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* The Ex entry points: the compute type picks the accumulator and the scalars' type. */
cublasStatus_t gemm_ex(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha,
                       const void *A, cudaDataType at, int lda, long long sa, const void *B, cudaDataType bt,
                       int ldb, long long sb, const void *beta, void *C, cudaDataType ct, int ldc,
                       long long sc, int batch, cublasComputeType_t compute)
{
    switch (compute) {
    case CUBLAS_COMPUTE_64F:
        if (at != CUDA_R_64F || bt != CUDA_R_64F || ct != CUDA_R_64F)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        return gemm<double>(ta, tb, m, n, k, *(const double *)alpha, A, at, lda, sa, B, bt, ldb, sb,
                            *(const double *)beta, C, ct, ldc, sc, batch, false);
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_FAST_TF32:
        /* float32 or bf16 inputs (one type for both), float32 or bf16 output */
        if (at != bt || (at != CUDA_R_32F && at != CUDA_R_16BF) || (ct != CUDA_R_32F && ct != CUDA_R_16BF))
            return CUBLAS_STATUS_NOT_SUPPORTED;
        return gemm<float>(ta, tb, m, n, k, *(const float *)alpha, A, at, lda, sa, B, bt, ldb, sb,
                           *(const float *)beta, C, ct, ldc, sc, batch,
                           compute == CUBLAS_COMPUTE_32F_FAST_TF32 && at == CUDA_R_32F);
    default:
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    *handle = new fl_emu_cublas{nullptr, CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

/* Sgemm and Dgemm follow the handle's math mode: TF32 tensor-op math rounds float32 inputs. */
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                           int m, int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc)
{
    return cublasSgemmStridedBatched(handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta,
                                     C, ldc, 0, 1);
}

cublasStatus_t cublasDgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                           int m, int n, int k, const double *alpha, const double *A, int lda,
                           const double *B, int ldb, const double *beta, double *C, int ldc)
{
    return cublasDgemmStridedBatched(handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta,
                                     C, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long strideA, const float *B, int ldb,
                                         long long strideB, const float *beta, float *C, int ldc,
                                         long long strideC, int batchCount)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    return gemm<float>(transa, transb, m, n, k, *alpha, A, CUDA_R_32F, lda, strideA, B, CUDA_R_32F, ldb,
                       strideB, *beta, C, CUDA_R_32F, ldc, strideC, batchCount,
                       handle->math == CUBLAS_TF32_TENSOR_OP_MATH);
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const double *alpha, const double *A, int lda,
                                         long long strideA, const double *B, int ldb,
                                         long long strideB, const double *beta, double *C, int ldc,
                                         long long strideC, int batchCount)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    return gemm<double>(transa, transb, m, n, k, *alpha, A, CUDA_R_64F, lda, strideA, B, CUDA_R_64F, ldb,
                        strideB, *beta, C, CUDA_R_64F, ldc, strideC, batchCount, false);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                            int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                            int lda, const void *B, cudaDataType Btype, int ldb, const void *beta,
                            void *C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    return gemm_ex(transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc,
                   0, 1, computeType);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long strideA, const void *B,
                                          cudaDataType Btype, int ldb, long long strideB,
                                          const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    return gemm_ex(transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C,
                   Ctype, ldc, strideC, batchCount, computeType);
}
