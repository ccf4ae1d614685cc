/* loss.h: fused softmax, log-softmax and losses (vm/loss.c). Dims are 0-based; class
 * indices in targets are counted from `base` (1 from Lua). */
#ifndef FL_LOSS_H
#define FL_LOSS_H

#include "flare.h"

typedef enum { FL_REDUCE_NONE, FL_REDUCE_MEAN, FL_REDUCE_SUM } fl_reduction;

fl_tensor *fl_softmax(const fl_tensor *x, int dim, bool log);
/* x: (N, C) or (N, C, d...), or (C) for one sample; target: (N) / (N, d...) / () of ints. */
fl_tensor *fl_cross_entropy(const fl_tensor *x, const fl_tensor *target, const fl_tensor *weight,
                            int64_t ignore_index, double smoothing, fl_reduction red, int64_t base);
/* nll over log-probabilities x, same shapes as cross_entropy. */
fl_tensor *fl_nll_loss(const fl_tensor *x, const fl_tensor *target, const fl_tensor *weight,
                       int64_t ignore_index, fl_reduction red, int64_t base);
fl_tensor *fl_bce_with_logits(const fl_tensor *x, const fl_tensor *y, const fl_tensor *weight,
                              const fl_tensor *pos_weight, fl_reduction red);
fl_tensor *fl_mse_loss(const fl_tensor *a, const fl_tensor *b, fl_reduction red);

#endif
