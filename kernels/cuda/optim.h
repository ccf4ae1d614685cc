/* optim.h: CUDA optimizer steps and gradient clipping over many tensors at once, with the
 * arithmetic of kernels/cpu/optim.h (same operations, same order, scalars rounded to the
 * element type first). The tensors of one call are updated by a few launches (each covers a
 * batch of tensors, handed to the kernel by value), not one launch per tensor. */
#ifndef FL_CUDA_OPTIM_H
#define FL_CUDA_OPTIM_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FL_CUDA_OPTIM_SGD,
    FL_CUDA_OPTIM_ADAM,          /* Adam and AdamW (decoupled) */
    FL_CUDA_OPTIM_ADAGRAD,
    FL_CUDA_OPTIM_RMSPROP,
    FL_CUDA_OPTIM_ADADELTA,
    FL_CUDA_OPTIM_SCALE,         /* p = p * lr (clip_grad_norm_'s scaling) */
    FL_CUDA_OPTIM_CLIP_VALUE,    /* p = min(max(p, -lr), lr), NaN kept (clip_grad_value_) */
} fl_cuda_optim_kind;

/* One tensor to update: n contiguous elements of dtype (float32 or float64), device pointers.
 * state by kind: SGD buf; Adam exp_avg, exp_avg_sq, max_exp_avg_sq; Adagrad sum; RMSprop
 * square_avg, grad_avg, buf; Adadelta square_avg, acc_delta. Unused state is NULL, and so
 * is g for SCALE and CLIP_VALUE. */
typedef struct {
    fl_dtype dtype;
    int64_t n;
    void *p;
    void *state[3];
    const void *g;
    double s1, s2;      /* Adam: step size and sqrt(bias correction 2); Adagrad: clr */
    int init;           /* SGD: the momentum buffer's first step (buf = d_p) */
} fl_cuda_optim_tensor;

/* The options of every kind, as the CPU kernels' argument structs; SCALE and CLIP_VALUE
 * read lr (the factor, the bound). */
typedef struct {
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps, alpha, rho;
    int nesterov, maximize, amsgrad, decoupled, centered;
} fl_cuda_optim_opts;

int fl_cuda_optim_step(fl_cuda_optim_kind kind, const fl_cuda_optim_opts *o, const fl_cuda_optim_tensor *ts, int n);

/* For each tensor k (reading ts[k].g, n, dtype), parts[k] (host memory) = the value of
 * fl_cpu_norm_part for order p: sum |x|^p, the count of non-zeros (p == 0), max |x|
 * (p == +inf) or min |x| (p == -inf), accumulated in double; a NaN element makes it NaN
 * (with p == 0 it counts as a non-zero, as on the CPU).
 * One device-to-host copy of n doubles at the end: the only synchronisation. */
int fl_cuda_grad_norm_parts(const fl_cuda_optim_tensor *ts, int n, double p, double *parts);

#ifdef __cplusplus
}
#endif
#endif
