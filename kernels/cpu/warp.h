/* warp.h: affine resampling of image planes (see warp.c), for data augmentation. */
#ifndef FL_CPU_WARP_H
#define FL_CPU_WARP_H

#include <stdint.h>

/* out (oh, ow) = in (h, w) read at the source point of each output pixel (y, x): with
 * u = x - (ow - 1) / 2 and v = y - (oh - 1) / 2, the source is (theta[0] u + theta[1] v +
 * theta[2], theta[3] u + theta[4] v + theta[5]) in pixel coordinates from the centre of the
 * input. Nearest rounds half up; bilinear weighs the four neighbours. Taps outside read fill. */
void fl_cpu_warp_affine_f32(float *out, int64_t oh, int64_t ow, const float *in, int64_t h, int64_t w,
                            const double *theta, int bilinear, float fill);
void fl_cpu_warp_affine_f64(double *out, int64_t oh, int64_t ow, const double *in, int64_t h, int64_t w,
                            const double *theta, int bilinear, double fill);

#endif
