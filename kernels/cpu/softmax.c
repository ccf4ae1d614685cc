/* softmax.c: fused softmax, log-softmax and cross-entropy kernels (see softmax.h). Each
 * works on one (outer, inner) position at a time, with the max subtracted first so that
 * logits of 1e4 neither overflow nor lose the answer. */
#include "softmax.h"

#include <math.h>
#include <string.h>

#define SOFTMAX_KERNELS(T, SFX, EXP, LOG)                                                        \
    void fl_cpu_softmax_##SFX(T *y, const T *x, int64_t outer, int64_t n, int64_t inner, int want_log) \
    {                                                                                            \
        for (int64_t o = 0; o < outer; o++)                                                      \
            for (int64_t i = 0; i < inner; i++) {                                                \
                const T *xs = x + o * n * inner + i;                                             \
                T *ys = y + o * n * inner + i;                                                   \
                T m = -INFINITY;                                                                 \
                for (int64_t c = 0; c < n; c++)                                                  \
                    if (xs[c * inner] > m || xs[c * inner] != xs[c * inner]) m = xs[c * inner];  \
                if (m == -INFINITY) m = 0;                                                       \
                double s = 0;                                                                    \
                for (int64_t c = 0; c < n; c++) s += EXP(xs[c * inner] - m);                     \
                if (want_log) {                                                                     \
                    T lse = m + (T)LOG((T)s);                                                    \
                    for (int64_t c = 0; c < n; c++) ys[c * inner] = xs[c * inner] - lse;         \
                } else {                                                                         \
                    T inv = (T)(1.0 / s);                                                        \
                    for (int64_t c = 0; c < n; c++) ys[c * inner] = EXP(xs[c * inner] - m) * inv; \
                }                                                                                \
            }                                                                                    \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_softmax_backward_##SFX(T *gx, const T *g, const T *y, int64_t outer, int64_t n,  \
                                       int64_t inner, int want_log)                                   \
    {                                                                                            \
        for (int64_t o = 0; o < outer; o++)                                                      \
            for (int64_t i = 0; i < inner; i++) {                                                \
                int64_t base = o * n * inner + i;                                                \
                double s = 0;                                                                    \
                for (int64_t c = 0; c < n; c++)                                                  \
                    s += want_log ? g[base + c * inner] : g[base + c * inner] * y[base + c * inner];  \
                for (int64_t c = 0; c < n; c++) {                                                \
                    int64_t k = base + c * inner;                                                \
                    gx[k] = want_log ? g[k] - EXP(y[k]) * (T)s : y[k] * (g[k] - (T)s);                \
                }                                                                                \
            }                                                                                    \
    }                                                                                            \
                                                                                                 \
    /* the log-sum-exp of column (o, i) */                                                      \
    static double lse_##SFX(const T *xs, int64_t n, int64_t inner)                               \
    {                                                                                            \
        double m = -INFINITY, s = 0;                                                             \
        for (int64_t c = 0; c < n; c++) if (xs[c * inner] > m) m = xs[c * inner];                \
        if (m == -INFINITY) return m;                                                            \
        for (int64_t c = 0; c < n; c++) s += exp((double)xs[c * inner] - m);                     \
        return m + log(s);                                                                       \
    }                                                                                            \
                                                                                                 \
    int64_t fl_cpu_cross_entropy_##SFX(T *loss, double *total_weight, const T *x, int64_t outer, \
                                       int64_t n, int64_t inner, const fl_ce_args *a)            \
    {                                                                                            \
        double tw = 0, eps = a->smoothing;                                                       \
        for (int64_t o = 0; o < outer; o++)                                                      \
            for (int64_t i = 0; i < inner; i++) {                                                \
                int64_t pos = o * inner + i, raw = a->target[pos];                               \
                if (raw == a->ignore_index) { loss[pos] = 0; continue; }                         \
                int64_t t = raw - a->base;                                                       \
                if (t < 0 || t >= n) return -1 - pos;                                            \
                const T *xs = x + o * n * inner + i;                                             \
                double lse = lse_##SFX(xs, n, inner);                                            \
                double wt = a->weight ? a->weight[t] : 1.0;                                      \
                double l = (1 - eps) * wt * (lse - xs[t * inner]);                               \
                if (eps > 0) {                                                                   \
                    double sm = 0;                                                               \
                    for (int64_t c = 0; c < n; c++)                                              \
                        sm += (a->weight ? a->weight[c] : 1.0) * (lse - xs[c * inner]);          \
                    l += eps / (double)n * sm;                                                   \
                }                                                                                \
                loss[pos] = (T)l;                                                                \
                tw += wt;                                                                        \
            }                                                                                    \
        *total_weight = tw;                                                                      \
        return 0;                                                                                \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_cross_entropy_backward_##SFX(T *gx, const T *x, const T *gscale,                 \
                                             int64_t gscale_stride, int64_t outer, int64_t n,    \
                                             int64_t inner, const fl_ce_args *a)                 \
    {                                                                                            \
        double eps = a->smoothing, wsum = 0;                                                     \
        for (int64_t c = 0; c < n; c++) wsum += a->weight ? a->weight[c] : 1.0;                  \
        for (int64_t o = 0; o < outer; o++)                                                      \
            for (int64_t i = 0; i < inner; i++) {                                                \
                int64_t pos = o * inner + i, raw = a->target[pos], t = raw - a->base;            \
                const T *xs = x + o * n * inner + i;                                             \
                T *gs = gx + o * n * inner + i;                                                  \
                if (raw == a->ignore_index) {                                                    \
                    for (int64_t c = 0; c < n; c++) gs[c * inner] = 0;                           \
                    continue;                                                                    \
                }                                                                                \
                double lse = lse_##SFX(xs, n, inner), gsc = gscale[pos * gscale_stride];         \
                double wt = a->weight ? a->weight[t] : 1.0;                                      \
                for (int64_t c = 0; c < n; c++) {                                                \
                    double p = exp((double)xs[c * inner] - lse);                                 \
                    double wc = a->weight ? a->weight[c] : 1.0;                                  \
                    double d = (1 - eps) * wt * (p - (c == t));                                  \
                    if (eps > 0) d += eps / (double)n * (wsum * p - wc);                         \
                    gs[c * inner] = (T)(gsc * d);                                                \
                }                                                                                \
            }                                                                                    \
    }

SOFTMAX_KERNELS(float, f32, expf, logf)
SOFTMAX_KERNELS(double, f64, exp, log)
