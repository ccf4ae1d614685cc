/* conv.c: im2col / col2im and the copies around convolution's GEMMs (see conv.h). The
 * range of output columns that read inside the image is worked out once per kernel tap and
 * image row, so the inner loops carry no bounds tests (a plain memcpy at stride 1). */
#include "conv.h"

#include <string.h>

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

#define CONV_KERNELS(T, SFX)                                                                     \
    void fl_cpu_im2col_##SFX(T *col, int64_t ld, const T *im, const fl_conv_geom *g)             \
    {                                                                                            \
        for (int64_t c = 0; c < g->c; c++)                                                       \
            for (int64_t i = 0; i < g->kh; i++)                                                  \
                for (int64_t j = 0; j < g->kw; j++) {                                            \
                    T *row = col + ((c * g->kh + i) * g->kw + j) * ld;                           \
                    int64_t off = j * g->dw - g->pw, lo, hi;                                     \
                    valid_range(off, g->sw, g->w, g->ow, &lo, &hi);                              \
                    for (int64_t oy = 0; oy < g->oh; oy++) {                                     \
                        T *d = row + oy * g->ow;                                                 \
                        int64_t iy = oy * g->sh - g->ph + i * g->dh;                             \
                        if (iy < 0 || iy >= g->h) {                                              \
                            memset(d, 0, (size_t)g->ow * sizeof(T));                             \
                            continue;                                                            \
                        }                                                                        \
                        const T *src = im + (c * g->h + iy) * g->w;                              \
                        memset(d, 0, (size_t)lo * sizeof(T));                                    \
                        if (g->sw == 1 && hi > lo)                                               \
                            memcpy(d + lo, src + lo + off, (size_t)(hi - lo) * sizeof(T));       \
                        else                                                                     \
                            for (int64_t ox = lo; ox < hi; ox++)                                 \
                                d[ox] = src[ox * g->sw + off];                                   \
                        memset(d + hi, 0, (size_t)(g->ow - hi) * sizeof(T));                     \
                    }                                                                            \
                }                                                                                \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_col2im_##SFX(T *im, const T *col, int64_t ld, const fl_conv_geom *g)             \
    {                                                                                            \
        memset(im, 0, (size_t)(g->c * g->h * g->w) * sizeof(T));                                 \
        for (int64_t c = 0; c < g->c; c++)                                                       \
            for (int64_t i = 0; i < g->kh; i++)                                                  \
                for (int64_t j = 0; j < g->kw; j++) {                                            \
                    const T *row = col + ((c * g->kh + i) * g->kw + j) * ld;                     \
                    int64_t off = j * g->dw - g->pw, lo, hi;                                     \
                    valid_range(off, g->sw, g->w, g->ow, &lo, &hi);                              \
                    for (int64_t oy = 0; oy < g->oh; oy++) {                                     \
                        int64_t iy = oy * g->sh - g->ph + i * g->dh;                             \
                        if (iy < 0 || iy >= g->h)                                                \
                            continue;                                                            \
                        const T *s = row + oy * g->ow;                                           \
                        T *dst = im + (c * g->h + iy) * g->w;                                    \
                        if (g->sw == 1)                                                          \
                            for (int64_t ox = lo; ox < hi; ox++)                                 \
                                dst[ox + off] += s[ox];                                          \
                        else                                                                     \
                            for (int64_t ox = lo; ox < hi; ox++)                                 \
                                dst[ox * g->sw + off] += s[ox];                                  \
                    }                                                                            \
                }                                                                                \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_copy_rows_##SFX(T *dst, int64_t ldd, const T *src, int64_t lds, int64_t rows,    \
                                int64_t cols, const T *bias)                                     \
    {                                                                                            \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            T *d = dst + r * ldd;                                                                \
            const T *s = src + r * lds;                                                          \
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
    void fl_cpu_add_bias_##SFX(T *x, int64_t rows, int64_t cols, const T *bias)                  \
    {                                                                                            \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            T b = bias[r], *d = x + r * cols;                                                    \
            for (int64_t k = 0; k < cols; k++)                                                   \
                d[k] += b;                                                                       \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void fl_cpu_channel_sum_##SFX(T *out, const T *g, int64_t nb, int64_t nc, int64_t np,        \
                                  int64_t bstride)                                               \
    {                                                                                            \
        for (int64_t c = 0; c < nc; c++) {                                                       \
            double s = 0;                                                                        \
            for (int64_t n = 0; n < nb; n++) {                                                   \
                const T *p = g + n * bstride + c * np;                                           \
                for (int64_t k = 0; k < np; k++)                                                 \
                    s += p[k];                                                                   \
            }                                                                                    \
            out[c] = (T)s;                                                                       \
        }                                                                                        \
    }

CONV_KERNELS(float, f32)
CONV_KERNELS(double, f64)
