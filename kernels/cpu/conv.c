/* conv.c: im2col / col2im and the copies around convolution's GEMMs (see conv.h). The
 * range of output columns that read inside the image is worked out once per kernel tap and
 * image row, so the inner loops carry no bounds tests (a plain memcpy at stride 1). */
#include "conv.h"

#include <string.h>

/* The inner loops have run-time trip counts, which -O2's vectorizer leaves alone; the
 * kernels are also built for AVX-512 and AVX2 machines, picked when the library loads. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FL_CLONES
#endif

/* The output positions o in [*lo, *hi) with 0 <= o * s + off < n, clipped to [0, count). */
static void valid_range(int64_t off, int64_t s, int64_t n, int64_t count, int64_t *lo, int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = n - off > 0 ? (n - off - 1) / s + 1 : 0;
    if (b > count)
        b = count;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/* Stride 1 and as many output columns as input columns: consecutive output rows read
 * consecutive input rows, so the rows [ya, yb) of a kernel tap are one run of the plane,
 * shifted by s0; run entries [k0, k1) lie inside the plane, the others (and the columns
 * outside [lo, hi) of each row) read padding. */
static int flat_rows(const fl_conv_geom *g) { return g->sh == 1 && g->sw == 1 && g->ow == g->w; }

static void flat_span(const fl_conv_geom *g, int64_t i, int64_t off, int64_t ya, int64_t yb, int64_t *s0,
                      int64_t *k0, int64_t *k1)
{
    int64_t n = (yb - ya) * g->ow, hw = g->h * g->w;
    *s0 = (ya + i * g->dh - g->ph) * g->w + off;
    *k0 = *s0 < 0 ? -*s0 : 0;
    *k1 = hw - *s0 < n ? hw - *s0 : n;
    if (*k1 < *k0)
        *k1 = *k0;
}

#define CONV_KERNELS(T, SFX)                                                                 \
    /* d[0, lo) = d[hi, n) = 0 */                                                            \
    static inline void zero_edges_##SFX(T *d, int64_t lo, int64_t hi, int64_t n)             \
    {                                                                                        \
        for (int64_t k = 0; k < lo; k++)                                                     \
            d[k] = 0;                                                                        \
        for (int64_t k = hi; k < n; k++)                                                     \
            d[k] = 0;                                                                        \
    }                                                                                        \
    FL_CLONES void fl_cpu_im2col_##SFX(T *col, int64_t ld, const T *im, const fl_conv_geom *g)\
    {                                                                                        \
        int64_t hw = g->h * g->w;                                                            \
        for (int64_t c = 0; c < g->c; c++)                                                   \
            for (int64_t i = 0; i < g->kh; i++)                                              \
                for (int64_t j = 0; j < g->kw; j++) {                                        \
                    T *restrict row = col + ((c * g->kh + i) * g->kw + j) * ld;              \
                    const T *restrict plane = im + c * hw;                                   \
                    int64_t off = j * g->dw - g->pw, lo, hi, ya, yb;                         \
                    valid_range(off, g->sw, g->w, g->ow, &lo, &hi);                          \
                    valid_range(i * g->dh - g->ph, g->sh, g->h, g->oh, &ya, &yb);            \
                    for (int64_t k = 0; k < ya * g->ow; k++)                                 \
                        row[k] = 0;                                                          \
                    for (int64_t k = yb * g->ow; k < g->oh * g->ow; k++)                     \
                        row[k] = 0;                                                          \
                    if (flat_rows(g)) {                                                      \
                        int64_t s0, k0, k1;                                                  \
                        flat_span(g, i, off, ya, yb, &s0, &k0, &k1);                         \
                        T *restrict d = row + ya * g->ow;                                    \
                        for (int64_t k = k0; k < k1; k++)                                    \
                            d[k] = plane[s0 + k];                                            \
                        for (int64_t oy = ya; oy < yb && (lo > 0 || hi < g->ow); oy++)       \
                            zero_edges_##SFX(row + oy * g->ow, lo, hi, g->ow);               \
                        continue;                                                            \
                    }                                                                        \
                    for (int64_t oy = ya; oy < yb; oy++) {                                   \
                        T *restrict d = row + oy * g->ow;                                    \
                        const T *restrict src = plane + (oy * g->sh - g->ph + i * g->dh) * g->w;\
                        zero_edges_##SFX(d, lo, hi, g->ow);                                  \
                        if (g->sw == 1)                                                      \
                            for (int64_t ox = lo; ox < hi; ox++)                             \
                                d[ox] = src[ox + off];                                       \
                        else                                                                 \
                            for (int64_t ox = lo; ox < hi; ox++)                             \
                                d[ox] = src[ox * g->sw + off];                               \
                    }                                                                        \
                }                                                                            \
    }                                                                                        \
                                                                                             \
    FL_CLONES void fl_cpu_col2im_##SFX(T *im, T *col, int64_t ld, const fl_conv_geom *g)     \
    {                                                                                        \
        int64_t hw = g->h * g->w;                                                            \
        for (int64_t k = 0; k < g->c * hw; k++)                                              \
            im[k] = 0;                                                                       \
        for (int64_t c = 0; c < g->c; c++)                                                   \
            for (int64_t i = 0; i < g->kh; i++)                                              \
                for (int64_t j = 0; j < g->kw; j++) {                                        \
                    T *restrict row = col + ((c * g->kh + i) * g->kw + j) * ld;              \
                    T *restrict plane = im + c * hw;                                         \
                    int64_t off = j * g->dw - g->pw, lo, hi, ya, yb;                         \
                    valid_range(off, g->sw, g->w, g->ow, &lo, &hi);                          \
                    valid_range(i * g->dh - g->ph, g->sh, g->h, g->oh, &ya, &yb);            \
                    if (flat_rows(g)) {                                                      \
                        /* entries that read padding add nothing: zero them, then add the    \
                         * rows as one run */                                                \
                        int64_t s0, k0, k1;                                                  \
                        flat_span(g, i, off, ya, yb, &s0, &k0, &k1);                         \
                        for (int64_t oy = ya; oy < yb && (lo > 0 || hi < g->ow); oy++)       \
                            zero_edges_##SFX(row + oy * g->ow, lo, hi, g->ow);               \
                        const T *restrict s = row + ya * g->ow;                              \
                        for (int64_t k = k0; k < k1; k++)                                    \
                            plane[s0 + k] += s[k];                                           \
                        continue;                                                            \
                    }                                                                        \
                    for (int64_t oy = ya; oy < yb; oy++) {                                   \
                        const T *restrict s = row + oy * g->ow;                              \
                        T *restrict dst = plane + (oy * g->sh - g->ph + i * g->dh) * g->w;   \
                        if (g->sw == 1)                                                      \
                            for (int64_t ox = lo; ox < hi; ox++)                             \
                                dst[ox + off] += s[ox];                                      \
                        else                                                                 \
                            for (int64_t ox = lo; ox < hi; ox++)                             \
                                dst[ox * g->sw + off] += s[ox];                              \
                    }                                                                        \
                }                                                                            \
    }                                                                                        \
                                                                                                 \
    FL_CLONES void fl_cpu_copy_rows_##SFX(T *dst, int64_t ldd, const T *src, int64_t lds, int64_t rows,    \
                                int64_t cols, const T *bias)                                     \
    {                                                                                            \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            T *restrict d = dst + r * ldd;                                                       \
            const T *restrict s = src + r * lds;                                                 \
            if (!bias) {                                                                         \
                memcpy(d, s, (size_t)cols * sizeof(T));                                          \
                continue;                                                                        \
            }                                                                                    \
            T b = bias[r];                                                                       \
            for (int64_t k = 0; k < cols; k++)                                                   \
                d[k] = s[k] + b;                                                                 \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    FL_CLONES void fl_cpu_add_bias_##SFX(T *x, int64_t rows, int64_t cols, const T *bias)                  \
    {                                                                                            \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            T b = bias[r], *restrict d = x + r * cols;                                           \
            for (int64_t k = 0; k < cols; k++)                                                   \
                d[k] += b;                                                                       \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    FL_CLONES void fl_cpu_channel_sum_##SFX(T *out, const T *g, int64_t nb, int64_t nc, int64_t np,        \
                                  int64_t bstride)                                               \
    {                                                                                            \
        for (int64_t c = 0; c < nc; c++) {                                                       \
            double acc[8] = {0}, s = 0; /* 8 lanes in double: vectorizes, stays accurate */     \
            for (int64_t n = 0; n < nb; n++) {                                                   \
                const T *p = g + n * bstride + c * np;                                           \
                int64_t k = 0;                                                                   \
                for (; k + 8 <= np; k += 8)                                                      \
                    for (int j = 0; j < 8; j++)                                                  \
                        acc[j] += p[k + j];                                                      \
                for (; k < np; k++)                                                              \
                    s += p[k];                                                                   \
            }                                                                                    \
            for (int j = 0; j < 8; j++)                                                          \
                s += acc[j];                                                                     \
            out[c] = (T)s;                                                                       \
        }                                                                                        \
    }                                                                                            \
                                                                                             \
    /* 16 partial sums of x . y (n elements), then one total: vectorizes and stays accurate */\
    static inline double dot_##SFX(const T *restrict x, const T *restrict y, int64_t n)      \
    {                                                                                        \
        T acc[16] = {0};                                                                     \
        int64_t q = 0;                                                                       \
        for (; q + 16 <= n; q += 16)                                                         \
            for (int l = 0; l < 16; l++)                                                     \
                acc[l] += x[q + l] * y[q + l];                                               \
        double s = 0;                                                                        \
        for (; q < n; q++)                                                                   \
            s += (double)x[q] * y[q];                                                        \
        for (int l = 0; l < 16; l++)                                                         \
            s += acc[l];                                                                     \
        return s;                                                                            \
    }                                                                                        \
                                                                                             \
    static inline double sum_##SFX(const T *restrict x, int64_t n)                           \
    {                                                                                        \
        T acc[16] = {0};                                                                     \
        int64_t q = 0;                                                                       \
        for (; q + 16 <= n; q += 16)                                                         \
            for (int l = 0; l < 16; l++)                                                     \
                acc[l] += x[q + l];                                                          \
        double s = 0;                                                                        \
        for (; q < n; q++)                                                                   \
            s += x[q];                                                                       \
        for (int l = 0; l < 16; l++)                                                         \
            s += acc[l];                                                                     \
        return s;                                                                            \
    }                                                                                        \
                                                                                             \
    FL_CLONES void fl_cpu_conv_wgrad_##SFX(double *gw, double *gb, const T *g, int64_t nb, int64_t nc,\
                                           int64_t np, int64_t gstride, const T *col, int64_t ldc, int64_t k)\
    {                                                                                        \
        for (int64_t n = 0; n < nb; n++)                                                     \
            for (int64_t c = 0; c < nc; c++) {                                               \
                const T *gr = g + n * gstride + c * np;                                      \
                for (int64_t j = 0; j < k; j++)                                              \
                    gw[c * k + j] += dot_##SFX(gr, col + j * ldc + n * np, np);              \
                if (gb)                                                                      \
                    gb[c] += sum_##SFX(gr, np);                                              \
            }                                                                                \
    }

CONV_KERNELS(float, f32)
CONV_KERNELS(double, f64)
