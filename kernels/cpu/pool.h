/* pool.h: max, average and adaptive average pooling over planes, forward and backward (see
 * pool.c). Each call handles `planes` consecutive planes (one channel of one image each):
 * inputs of (h, w) and outputs of (oh, ow) back to back. The window geometry is conv.h's
 * (with c unused): window (kh, kw), stride, dilation, padding before each dim. T is float or
 * double (suffix f32/f64). */
#ifndef FL_CPU_POOL_H
#define FL_CPU_POOL_H

#include <stdint.h>

#include "conv.h"

/* out = the max of each window; idx = iy * w + ix + base of that max, as PyTorch picks it:
 * the first largest value, or the last NaN. Padding never wins. */
void fl_cpu_max_pool2d_f32(float *out, int64_t *idx, const float *in, int64_t planes,
                           const fl_conv_geom *g, int64_t base);
void fl_cpu_max_pool2d_f64(double *out, int64_t *idx, const double *in, int64_t planes,
                           const fl_conv_geom *g, int64_t base);
/* gin (h, w per plane, overwritten) = the sum of gout at the positions idx - base. */
void fl_cpu_max_pool2d_backward_f32(float *gin, const float *gout, const int64_t *idx, int64_t planes,
                                    int64_t hw, int64_t ohw, int64_t base);
void fl_cpu_max_pool2d_backward_f64(double *gin, const double *gout, const int64_t *idx, int64_t planes,
                                    int64_t hw, int64_t ohw, int64_t base);

/* out = the mean of each window (PyTorch's avg_pool2d): divided by `divisor` when > 0, else
 * by the window's size clipped to the padded image (count_include_pad) or to the image. */
void fl_cpu_avg_pool2d_f32(float *out, const float *in, int64_t planes, const fl_conv_geom *g,
                           int count_include_pad, int64_t divisor);
void fl_cpu_avg_pool2d_f64(double *out, const double *in, int64_t planes, const fl_conv_geom *g,
                           int count_include_pad, int64_t divisor);
/* gin (overwritten) = the adjoint of the above applied to gout. */
void fl_cpu_avg_pool2d_backward_f32(float *gin, const float *gout, int64_t planes, const fl_conv_geom *g,
                                    int count_include_pad, int64_t divisor);
void fl_cpu_avg_pool2d_backward_f64(double *gin, const double *gout, int64_t planes, const fl_conv_geom *g,
                                    int count_include_pad, int64_t divisor);

/* out (oh, ow): the mean of rows [floor(i h / oh), ceil((i + 1) h / oh)) and likewise for
 * columns, of each plane in (h, w). */
void fl_cpu_adaptive_avg_pool2d_f32(float *out, const float *in, int64_t planes, int64_t h, int64_t w,
                                    int64_t oh, int64_t ow);
void fl_cpu_adaptive_avg_pool2d_f64(double *out, const double *in, int64_t planes, int64_t h, int64_t w,
                                    int64_t oh, int64_t ow);
void fl_cpu_adaptive_avg_pool2d_backward_f32(float *gin, const float *gout, int64_t planes, int64_t h,
                                             int64_t w, int64_t oh, int64_t ow);
void fl_cpu_adaptive_avg_pool2d_backward_f64(double *gin, const double *gout, int64_t planes, int64_t h,
                                             int64_t w, int64_t oh, int64_t ow);

#endif
