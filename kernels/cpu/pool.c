/* pool.c: pooling kernels (see pool.h). The window bounds follow PyTorch's CPU kernels
 * exactly (padding clipped, dilation stepped over the clipped start), so ties, NaNs and
 * divisors come out the same; sums are taken in double. */
#include "pool.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* The inner loops have run-time trip counts, which -O2's vectorizer leaves alone; the hot
 * kernels are also built for AVX-512 and AVX2 machines, picked when the library loads. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FL_CLONES
#endif

/* The first tap inside [0, n) of a window starting at `start` with dilation d, and the end
 * of the window's span clipped to n. */
static void dilated_window(int64_t start, int64_t k, int64_t d, int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t end = start + (k - 1) * d + 1;
    *hi = end < n ? end : n;
    while (start < 0)
        start += d;
    *lo = start;
}

/* avg_pool2d's window [lo, hi) along one dim, and its size clipped only to the padded
 * image (for count_include_pad). */
static void avg_window(int64_t o, int64_t s, int64_t p, int64_t k, int64_t n, int64_t *lo, int64_t *hi,
                       int64_t *padded)
{
    int64_t a = o * s - p, b = a + k < n + p ? a + k : n + p;
    *padded = b - a;
    *lo = a > 0 ? a : 0;
    *hi = b < n ? b : n;
}

static int64_t avg_divisor(int64_t y0, int64_t y1, int64_t x0, int64_t x1, int64_t padded,
                           int count_include_pad, int64_t divisor)
{
    if (divisor > 0)
        return divisor;
    return count_include_pad ? padded : (y1 - y0) * (x1 - x0);
}

#define POOL_KERNELS(T, SFX)                                                                      \
    /* Outputs [a, b) of one row of 2x2 windows (stride sw) that lie inside the plane; r0 \
     * is the window row's start, i0 its index in the plane. Branch-free selects, so that  \
     * the loop vectorizes and random data does not mispredict. */                          \
    static inline __attribute__((always_inline)) void max_row22_##SFX(T *restrict o, int64_t *restrict ix, const T *restrict r0, int64_t i0,  \
                                int64_t w, int64_t sw, int64_t a, int64_t b, int64_t base)      \
    {                                                                                            \
        const T *restrict r1 = r0 + w;                                                           \
        for (int64_t ox = a; ox < b; ox++) {                                                     \
            int64_t k = ox * sw, i = i0 + k + base, bi = i;                                      \
            T m = r0[k], v = r0[k + 1];                                                          \
            bool t = v > m || v != v;                                                            \
            m = t ? v : m;                                                                       \
            bi = t ? i + 1 : bi;                                                                 \
            v = r1[k];                                                                           \
            t = v > m || v != v;                                                                 \
            m = t ? v : m;                                                                       \
            bi = t ? i + w : bi;                                                                 \
            v = r1[k + 1];                                                                       \
            t = v > m || v != v;                                                                 \
            m = t ? v : m;                                                                       \
            bi = t ? i + w + 1 : bi;                                                             \
            o[ox] = m;                                                                           \
            ix[ox] = bi;                                                                         \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    FL_CLONES void fl_cpu_max_pool2d_##SFX(T *out, int64_t *idx, const T *in, int64_t planes,    \
                                           const fl_conv_geom *g, int64_t base)                  \
    {                                                                                            \
        bool k22 = g->kh == 2 && g->kw == 2 && g->dh == 1 && g->dw == 1;                         \
        /* the columns whose 2x2 window lies inside the plane */                                 \
        int64_t a = (g->pw + g->sw - 1) / g->sw, b = g->w + g->pw >= 2 ? (g->w + g->pw - 2) / g->sw + 1 : 0; \
        b = b < g->ow ? b : g->ow;                                                               \
        a = a < b ? a : b;                                                                       \
        for (int64_t p = 0; p < planes; p++) {                                                   \
            const T *x = in + p * g->h * g->w;                                                   \
            for (int64_t oy = 0; oy < g->oh; oy++) {                                             \
                T *o = out + (p * g->oh + oy) * g->ow;                                           \
                int64_t *ix = idx + (p * g->oh + oy) * g->ow, y0, y1;                            \
                dilated_window(oy * g->sh - g->ph, g->kh, g->dh, g->h, &y0, &y1);                \
                bool fast = k22 && y1 - y0 == 2;                                                 \
                if (fast) {                                                                      \
                    int64_t i0 = y0 * g->w - g->pw;                                              \
                    if (g->sw == 2) /* constant stride: loads the compiler can vectorize */      \
                        max_row22_##SFX(o, ix, x + i0, i0, g->w, 2, a, b, base);                 \
                    else                                                                         \
                        max_row22_##SFX(o, ix, x + i0, i0, g->w, g->sw, a, b, base);             \
                }                                                                                \
                for (int64_t ox = 0; ox < g->ow; ox++) {                                         \
                    if (fast && ox == a)                                                         \
                        ox = b;                                                                  \
                    if (ox >= g->ow)                                                             \
                        break;                                                                   \
                    int64_t x0, x1;                                                              \
                    dilated_window(ox * g->sw - g->pw, g->kw, g->dw, g->w, &x0, &x1);            \
                    int64_t best = y0 * g->w + x0;                                               \
                    T m = -INFINITY;                                                             \
                    for (int64_t y = y0; y < y1; y += g->dh)                                     \
                        for (int64_t xx = x0; xx < x1; xx += g->dw) {                            \
                            T v = x[y * g->w + xx];                                              \
                            if (v > m || isnan(v)) {                                             \
                                m = v;                                                           \
                                best = y * g->w + xx;                                            \
                            }                                                                    \
                        }                                                                        \
                    o[ox] = m;                                                                   \
                    ix[ox] = best + base;                                                        \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_max_pool2d_backward_##SFX(T *gin, const T *gout, const int64_t *idx,             \
                                          int64_t planes, int64_t hw, int64_t ohw, int64_t base) \
    {                                                                                            \
        memset(gin, 0, (size_t)(planes * hw) * sizeof(T));                                       \
        for (int64_t p = 0; p < planes; p++) {                                                   \
            T *gi = gin + p * hw;                                                                \
            const T *go = gout + p * ohw;                                                        \
            const int64_t *ix = idx + p * ohw;                                                   \
            for (int64_t k = 0; k < ohw; k++) {                                                  \
                int64_t at = ix[k] - base;                                                       \
                if (at >= 0 && at < hw)                                                          \
                    gi[at] += go[k];                                                             \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_avg_pool2d_##SFX(T *out, const T *in, int64_t planes, const fl_conv_geom *g,     \
                                 int count_include_pad, int64_t divisor)                         \
    {                                                                                            \
        for (int64_t p = 0; p < planes; p++) {                                                   \
            const T *x = in + p * g->h * g->w;                                                   \
            T *o = out + p * g->oh * g->ow;                                                      \
            for (int64_t oy = 0; oy < g->oh; oy++) {                                             \
                int64_t y0, y1, py;                                                              \
                avg_window(oy, g->sh, g->ph, g->kh, g->h, &y0, &y1, &py);                        \
                for (int64_t ox = 0; ox < g->ow; ox++) {                                         \
                    int64_t x0, x1, px;                                                          \
                    avg_window(ox, g->sw, g->pw, g->kw, g->w, &x0, &x1, &px);                    \
                    if (y0 >= y1 || x0 >= x1) {                                                  \
                        o[oy * g->ow + ox] = 0;                                                  \
                        continue;                                                                \
                    }                                                                            \
                    double s = 0;                                                                \
                    for (int64_t y = y0; y < y1; y++)                                            \
                        for (int64_t xx = x0; xx < x1; xx++)                                     \
                            s += x[y * g->w + xx];                                               \
                    int64_t d = avg_divisor(y0, y1, x0, x1, py * px, count_include_pad, divisor); \
                    o[oy * g->ow + ox] = (T)(s / (double)d);                                     \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_avg_pool2d_backward_##SFX(T *gin, const T *gout, int64_t planes,                 \
                                          const fl_conv_geom *g, int count_include_pad,          \
                                          int64_t divisor)                                       \
    {                                                                                            \
        memset(gin, 0, (size_t)(planes * g->h * g->w) * sizeof(T));                              \
        for (int64_t p = 0; p < planes; p++) {                                                   \
            T *gi = gin + p * g->h * g->w;                                                       \
            const T *go = gout + p * g->oh * g->ow;                                              \
            for (int64_t oy = 0; oy < g->oh; oy++) {                                             \
                int64_t y0, y1, py;                                                              \
                avg_window(oy, g->sh, g->ph, g->kh, g->h, &y0, &y1, &py);                        \
                for (int64_t ox = 0; ox < g->ow; ox++) {                                         \
                    int64_t x0, x1, px;                                                          \
                    avg_window(ox, g->sw, g->pw, g->kw, g->w, &x0, &x1, &px);                    \
                    if (y0 >= y1 || x0 >= x1)                                                    \
                        continue;                                                                \
                    int64_t d = avg_divisor(y0, y1, x0, x1, py * px, count_include_pad, divisor); \
                    T v = (T)(go[oy * g->ow + ox] / (double)d);                                  \
                    for (int64_t y = y0; y < y1; y++)                                            \
                        for (int64_t xx = x0; xx < x1; xx++)                                     \
                            gi[y * g->w + xx] += v;                                              \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_adaptive_avg_pool2d_##SFX(T *out, const T *in, int64_t planes, int64_t h,        \
                                          int64_t w, int64_t oh, int64_t ow)                     \
    {                                                                                            \
        for (int64_t p = 0; p < planes; p++)                                                     \
            for (int64_t oy = 0; oy < oh; oy++) {                                                \
                int64_t y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;                     \
                for (int64_t ox = 0; ox < ow; ox++) {                                            \
                    int64_t x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;                 \
                    double s = 0;                                                                \
                    for (int64_t y = y0; y < y1; y++)                                            \
                        for (int64_t xx = x0; xx < x1; xx++)                                     \
                            s += in[(p * h + y) * w + xx];                                       \
                    out[(p * oh + oy) * ow + ox] = (T)(s / (double)((y1 - y0) * (x1 - x0)));     \
                }                                                                                \
            }                                                                                    \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_adaptive_avg_pool2d_backward_##SFX(T *gin, const T *gout, int64_t planes,        \
                                                   int64_t h, int64_t w, int64_t oh, int64_t ow) \
    {                                                                                            \
        memset(gin, 0, (size_t)(planes * h * w) * sizeof(T));                                   \
        for (int64_t p = 0; p < planes; p++)                                                     \
            for (int64_t oy = 0; oy < oh; oy++) {                                                \
                int64_t y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;                     \
                for (int64_t ox = 0; ox < ow; ox++) {                                            \
                    int64_t x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;                 \
                    T v = (T)(gout[(p * oh + oy) * ow + ox] / (double)((y1 - y0) * (x1 - x0)));  \
                    for (int64_t y = y0; y < y1; y++)                                            \
                        for (int64_t xx = x0; xx < x1; xx++)                                     \
                            gin[(p * h + y) * w + xx] += v;                                      \
                }                                                                                \
            }                                                                                    \
    }

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)
