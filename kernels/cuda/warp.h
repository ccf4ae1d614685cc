/* warp.h: affine resampling of image planes on the device (kernels/cpu/warp.h's op, with its
 * arithmetic, so results match the CPU's). */
#ifndef FL_CUDA_WARP_H
#define FL_CUDA_WARP_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out (planes, oh, ow) from in (planes, h, w), both contiguous of dtype dt (float32 or
 * float64). Plane p belongs to image p / channels, whose six coefficients (see
 * kernels/cpu/warp.h) are theta[p / channels * theta_stride ...] in device memory (double;
 * theta_stride 0 shares one set). */
int fl_cuda_warp_affine(fl_dtype dt, void *out, int64_t oh, int64_t ow, const void *in, int64_t h, int64_t w,
                        int64_t planes, int64_t channels, const double *theta, int64_t theta_stride,
                        int bilinear, double fill);

#ifdef __cplusplus
}
#endif
#endif
