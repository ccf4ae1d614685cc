/* pool.h: pooling on the GPU, element for element as kernels/cpu/pool.h (the same window
 * bounds, NaN rule, divisors and index base). Arrays are contiguous device arrays of
 * `planes` planes (one channel of one image): inputs (h, w), outputs (oh, ow); dt is
 * float32 or float64. The geometry is read on the host. */
#ifndef FL_CUDA_POOL_H
#define FL_CUDA_POOL_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/conv.h"

/* out and idx (int64: h * W + w of each window's max, plus base). */
int fl_cuda_max_pool2d(fl_dtype dt, void *out, int64_t *idx, const void *in, int64_t planes,
                       const fl_conv_geom *g, int64_t base);
/* gin (planes, hw) = the sum of gout (planes, ohw) at each idx (overwritten, not added to). */
int fl_cuda_max_pool2d_backward(fl_dtype dt, void *gin, const void *gout, const int64_t *idx,
                                int64_t planes, int64_t hw, int64_t ohw, int64_t base);
int fl_cuda_avg_pool2d(fl_dtype dt, void *out, const void *in, int64_t planes, const fl_conv_geom *g,
                       int count_include_pad, int64_t divisor);
int fl_cuda_avg_pool2d_backward(fl_dtype dt, void *gin, const void *gout, int64_t planes,
                                const fl_conv_geom *g, int count_include_pad, int64_t divisor);
int fl_cuda_adaptive_avg_pool2d(fl_dtype dt, void *out, const void *in, int64_t planes, int64_t h,
                                int64_t w, int64_t oh, int64_t ow);
int fl_cuda_adaptive_avg_pool2d_backward(fl_dtype dt, void *gin, const void *gout, int64_t planes,
                                         int64_t h, int64_t w, int64_t oh, int64_t ow);

#ifdef __cplusplus
}
#endif
#endif
