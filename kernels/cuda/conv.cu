/* conv.cu: convolution forward and backward on the GPU (see conv.h): im2col, col2im and the
 * (N, C, P) <-> (C, N * P) copies as kernels, the products on cuBLAS (fl_cuda_gemm, one
 * strided batch over the groups). The column matrix of a chunk of images is (rows, nb * P):
 * image b's P columns start at column b * P, as in vm/conv.c. Index arithmetic runs in 32
 * bits when the arrays allow it (64-bit division is slow on a GPU). */
#include "common.cuh"
#include "conv.h"

#include <limits.h>

namespace {

/* Elements of the column buffer per chunk of images (128 MB of float32): large enough that
 * each GEMM is wide, small enough to leave memory for the model. */
const int64_t COL_BUDGET = (int64_t)1 << 25;

/* The geometry with the sizes the kernels divide by, in the index type I. */
template <typename I> struct geom {
    I c, h, w, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow;
};

template <typename I> geom<I> geom_of(const fl_conv_geom &g)
{
    return geom<I>{(I)g.c, (I)g.h, (I)g.w, (I)g.kh, (I)g.kw, (I)g.sh, (I)g.sw, (I)g.dh, (I)g.dw, (I)g.ph,
                   (I)g.pw, (I)g.oh, (I)g.ow};
}

/* ---------------------------------------------------------------- kernels */

/* col (c * kh * kw, nb * P), P = oh * ow: entry (row, b * P + p) reads image b's pixel under
 * tap row at output position p, or 0 outside. Images are img_elems apart. */
template <typename T, typename I>
__global__ void im2col_kernel(T *col, const T *im, geom<I> g, I nb, I img_elems)
{
    I P = g.oh * g.ow, total = g.c * g.kh * g.kw * nb * P;
    FL_GRID_STRIDE(i64, total) {
        I i = (I)i64, p = i % P, t = i / P, b = t % nb, r = t / nb;
        I kj = r % g.kw, t2 = r / g.kw, ki = t2 % g.kh, c = t2 / g.kh;
        I y = (p / g.ow) * g.sh - g.ph + ki * g.dh, x = (p % g.ow) * g.sw - g.pw + kj * g.dw;
        col[i] = (y >= 0 && y < g.h && x >= 0 && x < g.w) ? im[b * img_elems + (c * g.h + y) * g.w + x] : (T)0;
    }
}

/* The adjoint: each pixel of image b (overwritten) = the sum of the col entries that read it,
 * plus bias[c] when bias is not NULL. */
template <typename T, typename I>
__global__ void col2im_kernel(T *im, const T *col, geom<I> g, I nb, I img_elems, const T *bias)
{
    I P = g.oh * g.ow, ld = nb * P, hw = g.h * g.w, total = nb * g.c * hw;
    FL_GRID_STRIDE(i64, total) {
        I i = (I)i64, x = i % g.w, t = i / g.w, y = t % g.h, t2 = t / g.h, c = t2 % g.c, b = t2 / g.c;
        T s = bias ? bias[c] : (T)0;
        for (I ki = 0; ki < g.kh; ki++) {
            I yy = y + g.ph - ki * g.dh;
            if (yy < 0 || yy % g.sh != 0 || yy / g.sh >= g.oh)
                continue;
            for (I kj = 0; kj < g.kw; kj++) {
                I xx = x + g.pw - kj * g.dw;
                if (xx < 0 || xx % g.sw != 0 || xx / g.sw >= g.ow)
                    continue;
                s += col[((c * g.kh + ki) * g.kw + kj) * ld + b * P + (yy / g.sh) * g.ow + xx / g.sw];
            }
        }
        im[b * img_elems + (c * hw + y * g.w + x)] = s;
    }
}

/* mat (rows, nb * cols) <- nb images (rows, cols) (gather), or back, plus bias[r] (scatter).
 * Each thread owns one element of the destination, in its memory order. */
template <typename T, typename I>
__global__ void gather_kernel(T *mat, const T *img, I rows, I cols, I nb)
{
    I total = rows * nb * cols;
    FL_GRID_STRIDE(i64, total) {
        I i = (I)i64, p = i % cols, t = i / cols, b = t % nb, r = t / nb;
        mat[i] = img[(b * rows + r) * cols + p];
    }
}

template <typename T, typename I>
__global__ void scatter_kernel(T *img, const T *mat, I rows, I cols, I nb, const T *bias)
{
    I total = nb * rows * cols;
    FL_GRID_STRIDE(i64, total) {
        I i = (I)i64, p = i % cols, t = i / cols, r = t % rows, b = t / rows;
        T v = mat[(r * nb + b) * cols + p];
        img[i] = bias ? v + bias[r] : v;
    }
}

/* x (nb, c, p) += bias[c] */
template <typename T, typename I> __global__ void add_bias_kernel(T *x, const T *bias, I c, I p, I total)
{
    FL_GRID_STRIDE(i64, total) {
        I i = (I)i64;
        x[i] += bias[(i / p) % c];
    }
}

/* out[c] = sum over n, p of g (n, C, P)[n, c, p]: one block per channel (grid-stride), a
 * tree over the block's partial sums in double. */
template <typename T> __global__ void channel_sum_kernel(T *out, const T *g, int64_t n, int64_t C, int64_t P)
{
    __shared__ double part[FL_THREADS];
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        double s = 0;
        for (int64_t j = threadIdx.x; j < n * P; j += blockDim.x)
            s += (double)g[(j / P) * C * P + c * P + j % P];
        part[threadIdx.x] = s;
        __syncthreads();
        for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
            if (threadIdx.x < half)
                part[threadIdx.x] += part[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0)
            out[c] = (T)part[0];
        __syncthreads();
    }
}

/* ---------------------------------------------------------------- launchers */

bool small(int64_t v) { return v < INT_MAX; }

template <typename T>
int im2col(T *col, const T *im, const fl_conv_geom &g, int64_t nb, int64_t img_elems)
{
    int64_t total = g.c * g.kh * g.kw * nb * g.oh * g.ow;
    if (small(total) && small(nb * img_elems))
        FL_LAUNCH(im2col_kernel, fl_blocks(total), FL_THREADS, col, im, geom_of<int32_t>(g),
                  (int32_t)nb, (int32_t)img_elems);
    else
        FL_LAUNCH(im2col_kernel, fl_blocks(total), FL_THREADS, col, im, geom_of<int64_t>(g), nb,
                  img_elems);
    return FL_CHECK_LAUNCH("im2col");
}

template <typename T>
int col2im(T *im, const T *col, const fl_conv_geom &g, int64_t nb, int64_t img_elems, const T *bias)
{
    int64_t cols = g.c * g.kh * g.kw * nb * g.oh * g.ow, total = nb * g.c * g.h * g.w;
    if (small(cols) && small(total) && small(nb * img_elems))
        FL_LAUNCH(col2im_kernel, fl_blocks(total), FL_THREADS, im, col, geom_of<int32_t>(g),
                  (int32_t)nb, (int32_t)img_elems, bias);
    else
        FL_LAUNCH(col2im_kernel, fl_blocks(total), FL_THREADS, im, col, geom_of<int64_t>(g), nb,
                  img_elems, bias);
    return FL_CHECK_LAUNCH("col2im");
}

template <typename T> int gather(T *mat, const T *img, int64_t rows, int64_t cols, int64_t nb)
{
    int64_t total = rows * cols * nb;
    if (small(total))
        FL_LAUNCH(gather_kernel, fl_blocks(total), FL_THREADS, mat, img, (int32_t)rows, (int32_t)cols,
                  (int32_t)nb);
    else
        FL_LAUNCH(gather_kernel, fl_blocks(total), FL_THREADS, mat, img, rows, cols, nb);
    return FL_CHECK_LAUNCH("conv gather");
}

template <typename T> int scatter(T *img, const T *mat, int64_t rows, int64_t cols, int64_t nb, const T *bias)
{
    int64_t total = rows * cols * nb;
    if (small(total))
        FL_LAUNCH(scatter_kernel, fl_blocks(total), FL_THREADS, img, mat, (int32_t)rows, (int32_t)cols,
                  (int32_t)nb, bias);
    else
        FL_LAUNCH(scatter_kernel, fl_blocks(total), FL_THREADS, img, mat, rows, cols, nb, bias);
    return FL_CHECK_LAUNCH("conv scatter");
}

template <typename T> int add_bias(T *x, const T *bias, int64_t nb, int64_t c, int64_t p)
{
    int64_t total = nb * c * p;
    if (small(total))
        FL_LAUNCH(add_bias_kernel, fl_blocks(total), FL_THREADS, x, bias, (int32_t)c, (int32_t)p,
                  (int32_t)total);
    else
        FL_LAUNCH(add_bias_kernel, fl_blocks(total), FL_THREADS, x, bias, c, p, total);
    return FL_CHECK_LAUNCH("conv bias");
}

template <typename T> int channel_sum(T *out, const T *g, int64_t n, int64_t c, int64_t p)
{
    FL_LAUNCH(channel_sum_kernel<T>, (unsigned)(c < 65535 ? c : 65535), FL_THREADS, out, g, n, c, p);
    return FL_CHECK_LAUNCH("conv bias gradient");
}

/* Rows of the column matrix and positions per image on the image side. */
int64_t col_rows(const fl_cuda_conv *s) { return s->geom.c * s->geom.kh * s->geom.kw; }
int64_t col_cols(const fl_cuda_conv *s) { return s->geom.oh * s->geom.ow; }

int64_t chunk_images(const fl_cuda_conv *s)
{
    int64_t per = col_rows(s) * col_cols(s), b = per > 0 ? COL_BUDGET / per : s->n;
    if (col_cols(s) > 0 && b > INT_MAX / col_cols(s))
        b = INT_MAX / col_cols(s);
    if (b > s->n)
        b = s->n;
    return b < 1 ? 1 : b;
}

/* A scratch device buffer of n elements of T, freed on scope exit. */
template <typename T> struct scratch {
    T *p = nullptr;
    size_t bytes = 0;
    int alloc(int64_t n)
    {
        bytes = (size_t)(n > 0 ? n : 1) * sizeof(T);
        p = (T *)fl_cuda_malloc(bytes);
        return p ? 0 : -1;
    }
    ~scratch() { fl_cuda_free(p, bytes); }
};

/* C_g (m, n) = op(A_g) op(B_g) (+ C_g when accumulate) for each group g, all row-major with
 * their natural leading dims, groups sa, sb, sc elements apart. */
template <typename T>
int gemm_groups(const fl_cuda_conv *s, int ta, int tb, int64_t m, int64_t n, int64_t k, const T *a, int64_t sa,
                const T *b, int64_t sb, T *c, int64_t sc, bool accumulate)
{
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    return fl_cuda_gemm(s->dt, s->mode, ta, tb, m, n, k, 1.0, a, lda, sa, b, ldb, sb, accumulate ? 1.0 : 0.0, c, n,
                        sc, s->groups);
}

/* ---------------------------------------------------------------- the passes */

template <typename T> int forward(const fl_cuda_conv *s, T *y, const T *x, const T *w, const T *b)
{
    int64_t P = s->yp, K = col_rows(s), Kg = K / s->groups, Cog = s->cout / s->groups;
    int64_t ximg = s->cin * s->xp, yimg = s->cout * P, B = chunk_images(s);
    scratch<T> col, tmp;
    if (col.alloc(K * B * P) < 0 || (B > 1 && tmp.alloc(s->cout * B * P) < 0))
        return -1;
    for (int64_t n0 = 0; n0 < s->n; n0 += B) {
        int64_t nb = s->n - n0 < B ? s->n - n0 : B, ld = nb * P;
        T *yc = y + n0 * yimg, *dst = nb == 1 ? yc : tmp.p;
        if (im2col(col.p, x + n0 * ximg, s->geom, nb, ximg) < 0 ||
            gemm_groups<T>(s, 0, 0, Cog, ld, Kg, w, Cog * Kg, col.p, Kg * ld, dst, Cog * ld, false) < 0)
            return -1;
        if (nb == 1 && b && add_bias(yc, b, 1, s->cout, P) < 0)
            return -1;
        if (nb > 1 && scatter(yc, tmp.p, s->cout, P, nb, b) < 0)
            return -1;
    }
    return 0;
}

template <typename T> int transpose_forward(const fl_cuda_conv *s, T *y, const T *x, const T *w, const T *b)
{
    int64_t P = s->xp, Kc = col_rows(s), Kcg = Kc / s->groups, Cig = s->cin / s->groups;
    int64_t ximg = s->cin * P, yimg = s->cout * s->yp, B = chunk_images(s);
    scratch<T> col, xb;
    if (col.alloc(Kc * B * P) < 0 || (B > 1 && xb.alloc(s->cin * B * P) < 0))
        return -1;
    for (int64_t n0 = 0; n0 < s->n; n0 += B) {
        int64_t nb = s->n - n0 < B ? s->n - n0 : B, ld = nb * P;
        const T *xt = x + n0 * ximg;
        if (nb > 1) {
            if (gather(xb.p, xt, s->cin, P, nb) < 0)
                return -1;
            xt = xb.p;
        }
        /* col_g (Kcg, ld) = W_g^T x_g, W_g stored (Cig, Kcg) */
        if (gemm_groups<T>(s, 1, 0, Kcg, ld, Cig, w, Cig * Kcg, xt, Cig * ld, col.p, Kcg * ld, false) < 0 ||
            col2im(y + n0 * yimg, col.p, s->geom, nb, yimg, b) < 0)
            return -1;
    }
    return 0;
}

template <typename T>
int backward(const fl_cuda_conv *s, const T *g, const T *x, const T *w, T *gx, T *gw, T *gb)
{
    int64_t P = s->yp, K = col_rows(s), Kg = K / s->groups, Cog = s->cout / s->groups;
    int64_t ximg = s->cin * s->xp, yimg = s->cout * P, B = chunk_images(s);
    scratch<T> col, gbuf;
    if (col.alloc(K * B * P) < 0 || (B > 1 && gbuf.alloc(s->cout * B * P) < 0))
        return -1;
    for (int64_t n0 = 0; n0 < s->n && (gx || gw); n0 += B) {
        int64_t nb = s->n - n0 < B ? s->n - n0 : B, ld = nb * P;
        const T *gt = g + n0 * yimg;
        if (nb > 1) {
            if (gather(gbuf.p, gt, s->cout, P, nb) < 0)
                return -1;
            gt = gbuf.p;
        }
        /* gw_g (Cog, Kg) (+)= g_g (Cog, ld) . col_g^T */
        if (gw && (im2col(col.p, x + n0 * ximg, s->geom, nb, ximg) < 0 ||
                   gemm_groups<T>(s, 0, 1, Cog, Kg, ld, gt, Cog * ld, col.p, Kg * ld, gw, Cog * Kg, n0 > 0) < 0))
            return -1;
        /* col_g (Kg, ld) = W_g^T g_g, then back onto the images */
        if (gx && (gemm_groups<T>(s, 1, 0, Kg, ld, Cog, w, Cog * Kg, gt, Cog * ld, col.p, Kg * ld, false) < 0 ||
                   col2im(gx + n0 * ximg, col.p, s->geom, nb, ximg, (const T *)nullptr) < 0))
            return -1;
    }
    return gb ? channel_sum(gb, g, s->n, s->cout, P) : 0;
}

template <typename T>
int transpose_backward(const fl_cuda_conv *s, const T *g, const T *x, const T *w, T *gx, T *gw, T *gb)
{
    int64_t P = s->xp, Kc = col_rows(s), Kcg = Kc / s->groups, Cig = s->cin / s->groups;
    int64_t ximg = s->cin * P, yimg = s->cout * s->yp, B = chunk_images(s);
    scratch<T> col, xb;
    if (col.alloc(Kc * B * P) < 0 || (B > 1 && xb.alloc(s->cin * B * P) < 0))
        return -1;
    for (int64_t n0 = 0; n0 < s->n && (gx || gw); n0 += B) {
        int64_t nb = s->n - n0 < B ? s->n - n0 : B, ld = nb * P;
        if (im2col(col.p, g + n0 * yimg, s->geom, nb, yimg) < 0)
            return -1;
        if (gx) {
            /* gx_g (Cig, ld) = W_g (Cig, Kcg) . col_g */
            T *dst = nb == 1 ? gx + n0 * ximg : xb.p;
            if (gemm_groups<T>(s, 0, 0, Cig, ld, Kcg, w, Cig * Kcg, col.p, Kcg * ld, dst, Cig * ld, false) < 0 ||
                (nb > 1 && scatter(gx + n0 * ximg, xb.p, s->cin, P, nb, (const T *)nullptr) < 0))
                return -1;
        }
        if (gw) {
            /* gw_g (Cig, Kcg) (+)= x_g (Cig, ld) . col_g^T */
            const T *xt = x + n0 * ximg;
            if (nb > 1) {
                if (gather(xb.p, xt, s->cin, P, nb) < 0)
                    return -1;
                xt = xb.p;
            }
            if (gemm_groups<T>(s, 0, 1, Cig, Kcg, ld, xt, Cig * ld, col.p, Kcg * ld, gw, Cig * Kcg, n0 > 0) < 0)
                return -1;
        }
    }
    return gb ? channel_sum(gb, g, s->n, s->cout, s->yp) : 0;
}

}  // namespace

extern "C" int fl_cuda_conv_forward(const fl_cuda_conv *s, void *y, const void *x, const void *w, const void *b)
{
    if (s->n == 0 || s->cout == 0 || s->yp == 0)
        return 0;
    FL_DISPATCH_FLOAT(s->dt, T,
        return s->transposed ? transpose_forward<T>(s, (T *)y, (const T *)x, (const T *)w, (const T *)b)
                             : forward<T>(s, (T *)y, (const T *)x, (const T *)w, (const T *)b));
    return 0;
}

extern "C" int fl_cuda_conv_backward(const fl_cuda_conv *s, const void *g, const void *x, const void *w, void *gx,
                                     void *gw, void *gb)
{
    FL_DISPATCH_FLOAT(s->dt, T,
        return s->transposed ? transpose_backward<T>(s, (const T *)g, (const T *)x, (const T *)w, (T *)gx, (T *)gw, (T *)gb)
                             : backward<T>(s, (const T *)g, (const T *)x, (const T *)w, (T *)gx, (T *)gw, (T *)gb));
    return 0;
}

extern "C" int fl_cuda_conv_bias_grad(fl_dtype dt, void *gb, const void *g, int64_t n, int64_t c, int64_t p)
{
    if (c == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T, return channel_sum((T *)gb, (const T *)g, n, c, p));
    return 0;
}
