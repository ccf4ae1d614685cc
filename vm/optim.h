/* optim.h: fused optimizer steps and gradient clipping over many parameters at once
 * (vm/optim.c). Each step updates n parameters in place from their gradients in one pass
 * (split across the thread pool), with PyTorch's update rules.
 *
 * State arrays hold one tensor per parameter (same shape and dtype). A NULL entry is state
 * not created yet: the step creates it (as PyTorch does on a parameter's first step) and
 * hands the caller a reference in that entry. A NULL array means the state is not used
 * (e.g. bufs when momentum is 0).
 *
 * All checks and allocations happen before the first write, so an error leaves every
 * parameter and state tensor as it was (and the arrays as passed). The writes themselves
 * cannot fail and are not cut short by Ctrl-C: an interrupt arriving meanwhile is
 * delivered when the step ends. Parameters and state tensors that are not contiguous are
 * updated through a contiguous copy, written back at the end. Every tensor written gets
 * its storage version bumped, so autograd notices a parameter saved for a backward pass
 * and changed since. The steps record nothing on the autograd tape. */
#ifndef FL_OPTIM_H
#define FL_OPTIM_H

#include "flare.h"

typedef struct {
    double lr, momentum, dampening, weight_decay;
    bool nesterov, maximize;
} fl_sgd_opts;

/* bufs: the momentum buffers (unused when momentum is 0). */
int fl_sgd_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **bufs,
                const fl_sgd_opts *o);

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad, maximize;
    bool decoupled;          /* AdamW: decay the weights, not the gradient */
} fl_adam_opts;

/* steps[i]: parameter i's step number, counting this one (1 on its first step). max_sq is
 * used only with amsgrad. */
int fl_adam_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **exp_avg,
                 fl_tensor **exp_avg_sq, fl_tensor **max_exp_avg_sq, const int64_t *steps,
                 const fl_adam_opts *o);

typedef struct {
    double lr, lr_decay, weight_decay, eps, initial_accumulator_value;
    bool maximize;
} fl_adagrad_opts;

/* sums start at initial_accumulator_value; steps as for Adam. */
int fl_adagrad_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **sums,
                    const int64_t *steps, const fl_adagrad_opts *o);

typedef struct {
    double lr, alpha, eps, weight_decay, momentum;
    bool centered, maximize;
} fl_rmsprop_opts;

/* grad_avg is used only when centered, bufs only when momentum > 0. */
int fl_rmsprop_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **square_avg,
                    fl_tensor **grad_avg, fl_tensor **bufs, const fl_rmsprop_opts *o);

typedef struct {
    double lr, rho, eps, weight_decay;
    bool maximize;
} fl_adadelta_opts;

int fl_adadelta_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **square_avg,
                     fl_tensor **acc_delta, const fl_adadelta_opts *o);

/* Gradient clipping (nn.utils.clip_grad_norm_ / clip_grad_value_), in place. The total
 * norm is the norm_type-norm of all gradients together (norm_type may be INFINITY);
 * gradients are scaled by min(1, max_norm / (total + 1e-6)), as PyTorch does. With
 * error_if_nonfinite, a NaN or infinite total is an error and nothing is changed. */
int fl_clip_grad_norm(int n, fl_tensor *const *grads, double max_norm, double norm_type,
                      bool error_if_nonfinite, double *total);
int fl_clip_grad_value(int n, fl_tensor *const *grads, double clip_value);

#endif
