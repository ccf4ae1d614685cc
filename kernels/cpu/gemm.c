/* gemm.c: the plain matrix-product loop for integer tensors (float32 and float64 go to BLAS,
 * see vm/linalg.c). The i-p-j order reads b and writes out along rows. */
#include "gemm.h"

#include <string.h>

void fl_cpu_gemm_i64(int64_t *out, const int64_t *a, const int64_t *b, int64_t m, int64_t n,
                     int64_t k, int64_t rsa, int64_t csa, int64_t rsb, int64_t csb)
{
    uint64_t *O = (uint64_t *)out;
    if (m > 0 && n > 0)
        memset(out, 0, (size_t)(m * n) * sizeof *out);
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++) {
            uint64_t x = (uint64_t)a[i * rsa + p * csa];
            const int64_t *brow = b + p * rsb;
            for (int64_t j = 0; j < n; j++)
                O[i * n + j] += x * (uint64_t)brow[j * csb];
        }
}
