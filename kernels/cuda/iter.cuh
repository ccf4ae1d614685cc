/* iter.cuh: the device side of an fl_iter (vm/iter.h): its merged shape and strides as a
 * kernel argument, and typed access to an operand's bytes. */
#ifndef FL_CUDA_ITER_CUH
#define FL_CUDA_ITER_CUH

#include "common.cuh"

extern "C" {
#include "../../vm/iter.h"
}

template <int N> fl_offsets<N> fl_offsets_of(const fl_iter *it)
{
    fl_offsets<N> o;
    o.ndim = it->ndim;
    for (int d = 0; d < it->ndim; d++) {
        o.shape[d] = it->shape[d];
        for (int a = 0; a < N; a++)
            o.strides[a][d] = it->strides[a][d];
    }
    return o;
}

template <typename T> __device__ __forceinline__ T &fl_at(char *base, int64_t off)
{
    return ((T *)base)[off];
}

#endif
