/* loss.h: CUDA softmax, log-softmax and losses, forward and backward (vm/loss.c), with the
 * formulas of kernels/cpu/softmax.h. Tensors are contiguous device arrays seen as
 * (outer, n, inner) around the softmax or class dimension n; dt is float32 or float64. */
#ifndef FL_CUDA_LOSS_H
#define FL_CUDA_LOSS_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/softmax.h"

/* y = softmax(x) or log_softmax(x) along n. */
int fl_cuda_softmax(fl_dtype dt, void *y, const void *x, int64_t outer, int64_t n, int64_t inner, int log);
/* gx = y * (g - sum(g * y)), or g - exp(y) * sum(g) for log_softmax. */
int fl_cuda_softmax_backward(fl_dtype dt, void *gx, const void *g, const void *y, int64_t outer, int64_t n,
                             int64_t inner, int log);

/* Per-position cross-entropy (nll = 0) over logits x, or nll over log-probabilities (nll = 1),
 * into loss (outer * inner, dtype dt). a's target and weight are device pointers. On the
 * host: *total_weight (sum of weight[t] over positions not ignored) and *bad (-1 - the first
 * position whose target is out of range, or 0); reading them back waits for the device. */
int fl_cuda_class_loss(int nll, fl_dtype dt, void *loss, const void *x, int64_t outer, int64_t n, int64_t inner,
                       const fl_ce_args *a, double *total_weight, int64_t *bad);
/* gx (shape of x, every element written) = the gradient of sum_i (gscale[i * gstride] / gdiv)
 * * loss[i] with respect to x. gscale: float64 on the device. */
int fl_cuda_class_loss_backward(int nll, fl_dtype dt, void *gx, const void *x, const double *gscale,
                                int64_t gstride, double gdiv, int64_t outer, int64_t n, int64_t inner,
                                const fl_ce_args *a);

typedef enum { FL_PLOSS_MSE, FL_PLOSS_BCE_LOGITS } fl_ploss;

/* Elementwise losses over n positions: x of dtype xdt, y of ydt, loss of xdt; w and pw
 * (float64, n of them, or NULL for ones) weigh BCE's terms. */
int fl_cuda_pointwise_loss(fl_ploss kind, fl_dtype xdt, fl_dtype ydt, void *loss, const void *x, const void *y,
                           const double *w, const double *pw, int64_t n);
/* gx (xdt) and gy (ydt), either NULL when not wanted, scaled by gscale[i * gstride] / gdiv. */
int fl_cuda_pointwise_loss_backward(fl_ploss kind, fl_dtype xdt, fl_dtype ydt, void *gx, void *gy, const void *x,
                                    const void *y, const double *w, const double *pw, const double *gscale,
                                    int64_t gstride, double gdiv, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
