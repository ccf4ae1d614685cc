/* optim.h: fused optimizer updates and gradient clipping helpers. Each update kernel walks
 * n contiguous elements of one parameter once, reading its gradient and writing the
 * parameter and its state in place. The arithmetic follows PyTorch's single-tensor
 * implementation step by step (same operations, same order, scalars rounded to T first),
 * so float32 trajectories agree with torch.optim to rounding. T is float or double
 * (suffix f32/f64). Scalars that depend on the step count are computed by the caller. */
#ifndef FL_CPU_OPTIM_H
#define FL_CPU_OPTIM_H

#include <stdint.h>

/* SGD. buf is NULL when momentum == 0; `init` marks a buffer's first step (buf = d_p). */
typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov, maximize, init;
} fl_cpu_sgd_args;
/* p, buf, g are (n). */
void fl_cpu_sgd_f32(float *p, float *buf, const float *g, int64_t n, const fl_cpu_sgd_args *a);
void fl_cpu_sgd_f64(double *p, double *buf, const double *g, int64_t n, const fl_cpu_sgd_args *a);

/* Adam and AdamW (decoupled: p *= 1 - lr * weight_decay instead of adding it to the
 * gradient). step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t). vmax is NULL
 * unless amsgrad. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt;
    int amsgrad, maximize, decoupled;
} fl_cpu_adam_args;
/* p, m, v, vmax, g are (n). */
void fl_cpu_adam_f32(float *p, float *m, float *v, float *vmax, const float *g, int64_t n, const fl_cpu_adam_args *a);
void fl_cpu_adam_f64(double *p, double *m, double *v, double *vmax, const double *g, int64_t n, const fl_cpu_adam_args *a);

/* Adagrad; clr = lr / (1 + (t - 1) * lr_decay). */
typedef struct {
    double clr, weight_decay, eps;
    int maximize;
} fl_cpu_adagrad_args;
/* p, sum, g are (n). */
void fl_cpu_adagrad_f32(float *p, float *sum, const float *g, int64_t n, const fl_cpu_adagrad_args *a);
void fl_cpu_adagrad_f64(double *p, double *sum, const double *g, int64_t n, const fl_cpu_adagrad_args *a);

/* RMSprop. gavg is NULL unless centered, buf NULL unless momentum > 0. */
typedef struct {
    double lr, alpha, eps, weight_decay, momentum;
    int centered, maximize;
} fl_cpu_rmsprop_args;
/* p, sq, gavg, buf, g are (n). */
void fl_cpu_rmsprop_f32(float *p, float *sq, float *gavg, float *buf, const float *g, int64_t n,
                        const fl_cpu_rmsprop_args *a);
void fl_cpu_rmsprop_f64(double *p, double *sq, double *gavg, double *buf, const double *g, int64_t n,
                        const fl_cpu_rmsprop_args *a);

/* Adadelta. */
typedef struct {
    double lr, rho, eps, weight_decay;
    int maximize;
} fl_cpu_adadelta_args;
/* p, sq, acc, g are (n). */
void fl_cpu_adadelta_f32(float *p, float *sq, float *acc, const float *g, int64_t n, const fl_cpu_adadelta_args *a);
void fl_cpu_adadelta_f64(double *p, double *sq, double *acc, const double *g, int64_t n, const fl_cpu_adadelta_args *a);

/* x is (n). Returns sum |x|^p (p finite, p != 0), the count of non-zeros (p == 0), or
 * max |x| (p == +inf) / min |x| (p == -inf; +inf when n == 0), accumulated in double. A
 * NaN element makes the result NaN. */
double fl_cpu_norm_part_f32(const float *x, int64_t n, double p);
double fl_cpu_norm_part_f64(const double *x, int64_t n, double p);

/* x = x * c, in place; x is (n). */
void fl_cpu_scale_f32(float *x, int64_t n, float c);
void fl_cpu_scale_f64(double *x, int64_t n, double c);
/* x = min(max(x, -v), v), in place (NaN stays NaN); x is (n). */
void fl_cpu_clip_value_f32(float *x, int64_t n, float v);
void fl_cpu_clip_value_f64(double *x, int64_t n, double v);

#endif
