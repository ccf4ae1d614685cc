/* philox.h: the Philox4x32-10 counter-based generator (Salmon et al. 2011) and the mapping of
 * two of its words to a uniform double. Shared by vm/random.c and kernels/cuda/random.cu, so
 * that both devices draw the same numbers from the same (seed, counter). */
#ifndef FL_PHILOX_H
#define FL_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__) || defined(FL_CUDA_EMU)
#define FL_PHILOX_FN static __host__ __device__ __forceinline__
#else
#define FL_PHILOX_FN static inline
#endif

FL_PHILOX_FN void fl_philox(uint64_t key, uint64_t counter, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Uniform double in [0, 1) with 53 random bits, from two 32-bit words (exact: no rounding). */
FL_PHILOX_FN double fl_u01(uint32_t hi, uint32_t lo)
{
    return (double)(((uint64_t)hi << 21) ^ (lo >> 11)) * 0x1.0p-53;
}

#endif
