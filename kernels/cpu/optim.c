/* optim.c: fused optimizer update kernels and the gradient clipping helpers (see optim.h).
 * One pass over each parameter instead of PyTorch's three to six elementwise passes; the
 * per-element arithmetic is PyTorch's, in the same order. Each kernel is written once for
 * T and instantiated for float and double by the macros at the end of its section. */
#include "optim.h"

#include <math.h>

/* Every kernel is cloned for AVX-512, AVX2 and plain x86-64 (the loader picks one); the
 * Makefile compiles kernels at -O3 (loop unswitching turns the branches on options into
 * straight loops that vectorise) with -fno-math-errno (so sqrt becomes sqrtps). Results do
 * not depend on the clone: the same IEEE operations run in the same order (no contraction
 * into FMA under -std=c11). */
#if defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* ---------------------------------------------------------------- SGD */

#define SGD_KERNEL(T, SFX)                                                                      \
    CLONES void fl_cpu_sgd_##SFX(T *restrict p, T *restrict buf, const T *restrict g, int64_t n, \
                                 const fl_cpu_sgd_args *a)                                      \
    {                                                                                           \
        const T lr = (T)a->lr, wd = (T)a->weight_decay, mom = (T)a->momentum;                   \
        const T keep = (T)(1 - a->dampening), sign = a->maximize ? -1 : 1;                      \
        const int use_wd = a->weight_decay != 0, nesterov = a->nesterov, init = a->init;       \
        if (!buf || a->momentum == 0) {                                                         \
            for (int64_t i = 0; i < n; i++) {                                                   \
                T d = sign * g[i];                                                              \
                d = use_wd ? d + wd * p[i] : d;                                                 \
                p[i] = p[i] - lr * d;                                                           \
            }                                                                                   \
            return;                                                                             \
        }                                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                       \
            T d = sign * g[i];                                                                  \
            d = use_wd ? d + wd * p[i] : d;                                                     \
            T b = init ? d : buf[i] * mom + keep * d;                                           \
            buf[i] = b;                                                                         \
            d = nesterov ? d + mom * b : b;                                                     \
            p[i] = p[i] - lr * d;                                                               \
        }                                                                                       \
    }

SGD_KERNEL(float, f32)
SGD_KERNEL(double, f64)

/* ---------------------------------------------------------------- Adam, AdamW */

#define ADAM_KERNEL(T, SFX, SQRT)                                                               \
    CLONES void fl_cpu_adam_##SFX(T *restrict p, T *restrict m, T *restrict v, T *restrict vmax, \
                                  const T *restrict g, int64_t n, const fl_cpu_adam_args *a)    \
    {                                                                                           \
        const T b1 = (T)a->beta1, b2 = (T)a->beta2, c1 = (T)(1 - a->beta1), c2 = (T)(1 - a->beta2); \
        const T wd = (T)a->weight_decay, eps = (T)a->eps, bc2 = (T)a->bc2_sqrt;                 \
        const T step = (T)-a->step_size, shrink = (T)(1 - a->lr * a->weight_decay);             \
        const T sign = a->maximize ? -1 : 1;                                                    \
        const int coupled_wd = !a->decoupled && a->weight_decay != 0;                           \
        const int decoupled_wd = a->decoupled && a->weight_decay != 0;                          \
        if (!(a->amsgrad && vmax)) {                                                            \
            for (int64_t i = 0; i < n; i++) {                                                   \
                T gi = sign * g[i], pi = p[i];                                                  \
                gi = coupled_wd ? gi + wd * pi : gi;                                            \
                pi = decoupled_wd ? pi * shrink : pi;                                           \
                T mi = m[i] * b1 + c1 * gi;                                                     \
                T vi = v[i] * b2 + c2 * gi * gi;                                                \
                m[i] = mi;                                                                      \
                v[i] = vi;                                                                      \
                p[i] = pi + step * (mi / (SQRT(vi) / bc2 + eps));                               \
            }                                                                                   \
            return;                                                                             \
        }                                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                       \
            T gi = sign * g[i], pi = p[i];                                                      \
            gi = coupled_wd ? gi + wd * pi : gi;                                                \
            pi = decoupled_wd ? pi * shrink : pi;                                               \
            T mi = m[i] * b1 + c1 * gi;                                                         \
            T vi = v[i] * b2 + c2 * gi * gi;                                                    \
            m[i] = mi;                                                                          \
            v[i] = vi;                                                                          \
            T vm = vmax[i];                                                                     \
            vm = (vi > vm || vi != vi) ? vi : vm;   /* torch.maximum: NaN wins */               \
            vmax[i] = vm;                                                                       \
            p[i] = pi + step * (mi / (SQRT(vm) / bc2 + eps));                                   \
        }                                                                                       \
    }

ADAM_KERNEL(float, f32, sqrtf)
ADAM_KERNEL(double, f64, sqrt)

/* ---------------------------------------------------------------- Adagrad */

#define ADAGRAD_KERNEL(T, SFX, SQRT)                                                            \
    CLONES void fl_cpu_adagrad_##SFX(T *restrict p, T *restrict sum, const T *restrict g, int64_t n, \
                                     const fl_cpu_adagrad_args *a)                              \
    {                                                                                           \
        const T clr = (T)-a->clr, wd = (T)a->weight_decay, eps = (T)a->eps;                     \
        const T sign = a->maximize ? -1 : 1;                                                    \
        const int use_wd = a->weight_decay != 0;                                                \
        for (int64_t i = 0; i < n; i++) {                                                       \
            T gi = sign * g[i];                                                                 \
            gi = use_wd ? gi + wd * p[i] : gi;                                                  \
            T s = sum[i] + gi * gi;                                                             \
            sum[i] = s;                                                                         \
            p[i] = p[i] + clr * (gi / (SQRT(s) + eps));                                         \
        }                                                                                       \
    }

ADAGRAD_KERNEL(float, f32, sqrtf)
ADAGRAD_KERNEL(double, f64, sqrt)

/* ---------------------------------------------------------------- RMSprop */

/* One RMSprop loop; CENTERED and MOMENTUM are 0/1 literals, so each variant is its own
 * branch-free loop. */
#define RMSPROP_LOOP(T, SQRT, CENTERED, MOMENTUM)                                               \
    for (int64_t i = 0; i < n; i++) {                                                           \
        T gi = sign * g[i];                                                                     \
        gi = use_wd ? gi + wd * p[i] : gi;                                                      \
        T s = sq[i] * alpha + c * gi * gi;                                                      \
        sq[i] = s;                                                                              \
        T avg;                                                                                  \
        if (CENTERED) {                                                                         \
            T ga = gavg[i] * alpha + c * gi;                                                    \
            gavg[i] = ga;                                                                       \
            avg = SQRT(s - ga * ga) + eps;                                                      \
        } else {                                                                                \
            avg = SQRT(s) + eps;                                                                \
        }                                                                                       \
        if (MOMENTUM) {                                                                         \
            T b = buf[i] * mom + gi / avg;                                                      \
            buf[i] = b;                                                                         \
            p[i] = p[i] + lr * b;                                                               \
        } else {                                                                                \
            p[i] = p[i] + lr * (gi / avg);                                                      \
        }                                                                                       \
    }

#define RMSPROP_KERNEL(T, SFX, SQRT)                                                            \
    CLONES void fl_cpu_rmsprop_##SFX(T *restrict p, T *restrict sq, T *restrict gavg, T *restrict buf, \
                                     const T *restrict g, int64_t n, const fl_cpu_rmsprop_args *a) \
    {                                                                                           \
        const T alpha = (T)a->alpha, c = (T)(1 - a->alpha), eps = (T)a->eps;                    \
        const T wd = (T)a->weight_decay, mom = (T)a->momentum, lr = (T)-a->lr;                  \
        const T sign = a->maximize ? -1 : 1;                                                    \
        const int use_wd = a->weight_decay != 0;                                                \
        const int centered = gavg && a->centered, use_mom = buf && a->momentum > 0;            \
        if (centered && use_mom)                                                                \
            RMSPROP_LOOP(T, SQRT, 1, 1)                                                         \
        else if (centered)                                                                      \
            RMSPROP_LOOP(T, SQRT, 1, 0)                                                         \
        else if (use_mom)                                                                       \
            RMSPROP_LOOP(T, SQRT, 0, 1)                                                         \
        else                                                                                    \
            RMSPROP_LOOP(T, SQRT, 0, 0)                                                         \
    }

RMSPROP_KERNEL(float, f32, sqrtf)
RMSPROP_KERNEL(double, f64, sqrt)

/* ---------------------------------------------------------------- Adadelta */

#define ADADELTA_KERNEL(T, SFX, SQRT)                                                           \
    CLONES void fl_cpu_adadelta_##SFX(T *restrict p, T *restrict sq, T *restrict acc, const T *restrict g, \
                                      int64_t n, const fl_cpu_adadelta_args *a)                 \
    {                                                                                           \
        const T rho = (T)a->rho, c = (T)(1 - a->rho), eps = (T)a->eps;                          \
        const T wd = (T)a->weight_decay, lr = (T)-a->lr, sign = a->maximize ? -1 : 1;          \
        const int use_wd = a->weight_decay != 0;                                                \
        for (int64_t i = 0; i < n; i++) {                                                       \
            T gi = sign * g[i];                                                                 \
            gi = use_wd ? gi + wd * p[i] : gi;                                                  \
            T s = sq[i] * rho + c * gi * gi;                                                    \
            sq[i] = s;                                                                          \
            T delta = SQRT(acc[i] + eps) / SQRT(s + eps) * gi;                                  \
            acc[i] = acc[i] * rho + c * delta * delta;                                          \
            p[i] = p[i] + lr * delta;                                                           \
        }                                                                                       \
    }

ADADELTA_KERNEL(float, f32, sqrtf)
ADADELTA_KERNEL(double, f64, sqrt)

/* ---------------------------------------------------------------- clipping */

#define CLIP_KERNELS(T, SFX)                                                                    \
    double fl_cpu_norm_part_##SFX(const T *x, int64_t n, double p)                              \
    {                                                                                           \
        double r = 0;                                                                           \
        if (isinf(p)) {                                                                         \
            r = p > 0 ? 0 : INFINITY;                                                           \
            for (int64_t i = 0; i < n; i++) {                                                   \
                double v = fabs((double)x[i]);                                                  \
                if (v != v)                                                                     \
                    return NAN;                                                                 \
                if (p > 0 ? v > r : v < r)                                                      \
                    r = v;                                                                      \
            }                                                                                   \
        } else if (p == 0) {                                                                    \
            for (int64_t i = 0; i < n; i++)                                                     \
                r += x[i] != 0;                                                                 \
        } else if (p == 2) {                                                                    \
            for (int64_t i = 0; i < n; i++)                                                     \
                r += (double)x[i] * x[i];                                                       \
        } else if (p == 1) {                                                                    \
            for (int64_t i = 0; i < n; i++)                                                     \
                r += fabs((double)x[i]);                                                        \
        } else {                                                                                \
            for (int64_t i = 0; i < n; i++)                                                     \
                r += pow(fabs((double)x[i]), p);                                                \
        }                                                                                       \
        return r;                                                                               \
    }                                                                                           \
                                                                                                \
    void fl_cpu_scale_##SFX(T *x, int64_t n, T c)                                               \
    {                                                                                           \
        for (int64_t i = 0; i < n; i++)                                                         \
            x[i] = x[i] * c;                                                                    \
    }                                                                                           \
                                                                                                \
    void fl_cpu_clip_value_##SFX(T *x, int64_t n, T v)                                          \
    {                                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                       \
            if (x[i] > v)                                                                       \
                x[i] = v;                                                                       \
            else if (x[i] < -v)                                                                 \
                x[i] = -v;                                                                      \
        }                                                                                       \
    }

CLIP_KERNELS(float, f32)
CLIP_KERNELS(double, f64)
