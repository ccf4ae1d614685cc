/* softmax.h: fused softmax / log-softmax and the losses built on them. All tensors are
 * contiguous and seen as (outer, n, inner): the reduced dimension n sits between the
 * dimensions before it (outer) and after it (inner). T is float or double (suffix f32/f64). */
#ifndef FL_CPU_SOFTMAX_H
#define FL_CPU_SOFTMAX_H

#include <stdint.h>

/* y = softmax(x) or log_softmax(x) along n. */
void fl_cpu_softmax_f32(float *y, const float *x, int64_t outer, int64_t n, int64_t inner, int log);
void fl_cpu_softmax_f64(double *y, const double *x, int64_t outer, int64_t n, int64_t inner, int log);
/* gx = y * (g - sum(g * y))  (softmax), or g - exp(y) * sum(g)  (log_softmax). */
void fl_cpu_softmax_backward_f32(float *gx, const float *g, const float *y, int64_t outer, int64_t n, int64_t inner, int log);
void fl_cpu_softmax_backward_f64(double *gx, const double *g, const double *y, int64_t outer, int64_t n, int64_t inner, int log);

/* Cross-entropy over logits x (outer = N, n = C classes, inner = extra dims) with class
 * indices target (outer * inner, value - base in [0, C)). weight: per-class (C) or NULL.
 * Per-position losses go to loss (outer * inner); *total_weight gets the sum of weight[t]
 * over positions not equal to ignore_index. Returns -1 - position of a bad target, or 0.
 * If gx is non-NULL, also writes the gradient of sum_i(gscale[i or 0] * loss[i]) w.r.t. x,
 * where gscale has one value per position (gscale_stride 1) or one for all (stride 0). */
typedef struct {
    const int64_t *target;
    int64_t base, ignore_index;
    const double *weight;
    double smoothing;
} fl_ce_args;
int64_t fl_cpu_cross_entropy_f32(float *loss, double *total_weight, const float *x, int64_t outer, int64_t n,
                                 int64_t inner, const fl_ce_args *a);
int64_t fl_cpu_cross_entropy_f64(double *loss, double *total_weight, const double *x, int64_t outer, int64_t n,
                                 int64_t inner, const fl_ce_args *a);
void fl_cpu_cross_entropy_backward_f32(float *gx, const float *x, const float *gscale, int64_t gscale_stride,
                                       int64_t outer, int64_t n, int64_t inner, const fl_ce_args *a);
void fl_cpu_cross_entropy_backward_f64(double *gx, const double *x, const double *gscale, int64_t gscale_stride,
                                       int64_t outer, int64_t n, int64_t inner, const fl_ce_args *a);

#endif
