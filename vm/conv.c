/* conv.c: conv1d, conv2d and conv_transpose2d, forward and backward, as im2col + GEMM.
 *
 * A convolution is its weight W (C_out, C_in / groups * kH * kW) times the column matrix of
 * its input (kernels/cpu/conv.c), one GEMM per group; the transposed convolution runs the
 * same map the other way (W^T x, then col2im). Several images share each GEMM: their
 * columns lie side by side, (rows, B * P), which costs a (B, C, P) <-> (C, B * P) copy
 * around the product but gives BLAS one wide matrix instead of B thin ones. The batch goes
 * in chunks that keep the column buffer to a few MB. im2col, col2im and the copies run per
 * image on flare's pool; the GEMMs run on the calling thread, where OpenBLAS uses its own
 * threads. A weight gradient over few column rows (a first layer's) is taken as dot
 * products on the images as they lie instead. conv1d is conv2d over (N, C, 1, L).
 *
 * CUDA tensors run the same algorithm in the CUDA library (kernels/cuda/conv.cu: im2col
 * kernels and cuBLAS), under the autocast and TF32 settings of the forward. */
#include "nn.h"
#include "autograd.h"
#include "blas.h"
#include "cuda.h"
#include "../kernels/cpu/conv.h"
#include "../kernels/cuda/conv.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Elements of the column buffer per chunk of images (6 MB of float32: measured best on
 * cnn_train's convolutions, against 1.5 and 16 MB). */
#define COL_BUDGET ((int64_t)3 << 19)

fl_conv_opts fl_conv_opts_default(void)
{
    return (fl_conv_opts){
        .stride = {1, 1}, .padding = {0, 0}, .dilation = {1, 1}, .output_padding = {0, 0},
        .groups = 1, .pad_mode = FL_PAD_EXPLICIT,
    };
}

/* ---------------------------------------------------------------- the problem */

typedef struct {
    fl_dtype dt;
    bool transposed;
    int64_t n, groups;
    int64_t cin, cout;     /* channels of the op's input x and output y */
    int64_t xp, yp;        /* positions per channel of x and of y */
    fl_conv_geom geom;     /* the image side: x for a convolution, y for a transposed one */
} conv_shape;

/* Rows of the column matrix (per image: rows x geom.oh * geom.ow). */
static int64_t col_rows(const conv_shape *s) { return s->geom.c * s->geom.kh * s->geom.kw; }
static int64_t col_cols(const conv_shape *s) { return s->geom.oh * s->geom.ow; }

/* Images per chunk: the column buffer stays near COL_BUDGET elements and every GEMM
 * dimension within an int. */
static int64_t chunk_images(const conv_shape *s)
{
    int64_t per = col_rows(s) * col_cols(s), b = per > 0 ? COL_BUDGET / per : s->n;
    if (col_cols(s) > 0 && b > INT_MAX / col_cols(s))
        b = INT_MAX / col_cols(s);
    if (b > s->n)
        b = s->n;
    return b < 1 ? 1 : b;
}

/* (n, c, h, w) of a tensor with sd spatial dims, batched or not. */
static void dims4(const int64_t *shape, int ndim, int sd, int64_t d[4])
{
    bool batched = ndim == sd + 2;
    d[0] = batched ? shape[0] : 1;
    d[1] = shape[batched ? 1 : 0];
    d[2] = sd == 2 ? shape[ndim - 2] : 1;
    d[3] = shape[ndim - 1];
}

/* xd: x's (n, c, h, w); wd: the weight's 4 dims; st, dil, pad: per spatial dim (h, w);
 * (yh, yw): the output's spatial size. */
static void shape_init(conv_shape *s, fl_dtype dt, bool transposed, const int64_t xd[4], const int64_t wd[4],
                       int64_t groups, const int64_t st[2], const int64_t dil[2], const int64_t pad[2],
                       int64_t yh, int64_t yw)
{
    s->dt = dt;
    s->transposed = transposed;
    s->n = xd[0];
    s->groups = groups;
    s->cin = xd[1];
    s->cout = transposed ? wd[1] * groups : wd[0];
    s->xp = xd[2] * xd[3];
    s->yp = yh * yw;
    fl_conv_geom g = {.kh = wd[2], .kw = wd[3], .sh = st[0], .sw = st[1], .dh = dil[0], .dw = dil[1],
                      .ph = pad[0], .pw = pad[1]};
    if (transposed) {
        g.c = s->cout, g.h = yh, g.w = yw, g.oh = xd[2], g.ow = xd[3];
    } else {
        g.c = s->cin, g.h = xd[2], g.w = xd[3], g.oh = yh, g.ow = yw;
    }
    s->geom = g;
}

/* ---------------------------------------------------------------- GEMM and per-image work */

/* C (m, n) = op(A) . op(B) + beta C, row-major, on BLAS. */
static void gemm(fl_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const char *a, int64_t lda,
                 const char *b, int64_t ldb, double beta, char *c, int64_t ldc)
{
    size_t es = fl_dtype_size(dt);
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        for (int64_t r = 0; r < m && beta == 0; r++)
            memset(c + (size_t)(r * ldc) * es, 0, (size_t)n * es);
        return;
    }
    int TA = ta ? FL_BLAS_TRANS : FL_BLAS_NO_TRANS, TB = tb ? FL_BLAS_TRANS : FL_BLAS_NO_TRANS;
    if (dt == FL_DTYPE_F32)
        fl_blas.sgemm(FL_BLAS_ROW_MAJOR, TA, TB, (int)m, (int)n, (int)k, 1.0f, (const float *)a, (int)lda,
                      (const float *)b, (int)ldb, (float)beta, (float *)c, (int)ldc);
    else
        fl_blas.dgemm(FL_BLAS_ROW_MAJOR, TA, TB, (int)m, (int)n, (int)k, 1.0, (const double *)a, (int)lda,
                      (const double *)b, (int)ldb, beta, (double *)c, (int)ldc);
}

typedef enum { JOB_IM2COL, JOB_COL2IM, JOB_GATHER, JOB_SCATTER } job_kind;

/* One step applied to each image of a chunk: between image b (at img + b * img_elems) and
 * its `cols` columns of the wide matrix `mat` (row stride ld, starting at column b * cols). */
typedef struct {
    job_kind kind;
    fl_dtype dt;
    char *mat;
    int64_t ld, cols;
    char *img;
    int64_t img_elems;
    const fl_conv_geom *geom;   /* im2col / col2im */
    int64_t rows;               /* gather / scatter: the image is (rows, cols) */
    const char *bias;           /* col2im / scatter: added per channel, or NULL */
} image_job;

static void run_images(void *ctx, int64_t b0, int64_t b1)
{
    const image_job *j = ctx;
    size_t es = fl_dtype_size(j->dt);
    bool f32 = j->dt == FL_DTYPE_F32;
    for (int64_t b = b0; b < b1; b++) {
        char *m = j->mat + (size_t)(b * j->cols) * es, *im = j->img + (size_t)(b * j->img_elems) * es;
        const fl_conv_geom *g = j->geom;
        switch (j->kind) {
        case JOB_IM2COL:
            if (f32)
                fl_cpu_im2col_f32((float *)m, j->ld, (const float *)im, g);
            else
                fl_cpu_im2col_f64((double *)m, j->ld, (const double *)im, g);
            break;
        case JOB_COL2IM:
            if (f32)
                fl_cpu_col2im_f32((float *)im, (float *)m, j->ld, g);
            else
                fl_cpu_col2im_f64((double *)im, (double *)m, j->ld, g);
            if (j->bias && f32)
                fl_cpu_add_bias_f32((float *)im, g->c, g->h * g->w, (const float *)j->bias);
            else if (j->bias)
                fl_cpu_add_bias_f64((double *)im, g->c, g->h * g->w, (const double *)j->bias);
            break;
        case JOB_GATHER:
            if (f32)
                fl_cpu_copy_rows_f32((float *)m, j->ld, (const float *)im, j->cols, j->rows, j->cols, NULL);
            else
                fl_cpu_copy_rows_f64((double *)m, j->ld, (const double *)im, j->cols, j->rows, j->cols, NULL);
            break;
        case JOB_SCATTER:
            if (f32)
                fl_cpu_copy_rows_f32((float *)im, j->cols, (const float *)m, j->ld, j->rows, j->cols, (const float *)j->bias);
            else
                fl_cpu_copy_rows_f64((double *)im, j->cols, (const double *)m, j->ld, j->rows, j->cols, (const double *)j->bias);
            break;
        }
    }
}

/* Runs j over `count` images of `work` elements each, on the pool when it pays. */
static void for_images(image_job *j, int64_t count, int64_t work)
{
    int64_t grain = work > 0 ? 32768 / work : count;
    fl_parallel_for(count, grain < 1 ? 1 : grain, run_images, j);
}

typedef struct {
    fl_dtype dt;
    char *out;
    const char *g;
    int64_t n, c, p;
} sum_job;

static void run_sums(void *ctx, int64_t c0, int64_t c1)
{
    const sum_job *j = ctx;
    size_t es = fl_dtype_size(j->dt);
    if (j->dt == FL_DTYPE_F32)
        fl_cpu_channel_sum_f32((float *)(j->out + c0 * es), (const float *)(j->g + (size_t)(c0 * j->p) * es),
                               j->n, c1 - c0, j->p, j->c * j->p);
    else
        fl_cpu_channel_sum_f64((double *)(j->out + c0 * es), (const double *)(j->g + (size_t)(c0 * j->p) * es),
                               j->n, c1 - c0, j->p, j->c * j->p);
}

/* gb (c) = the sum of g (n, c, p) over n and p. */
static void bias_grad(fl_dtype dt, char *gb, const char *g, int64_t n, int64_t c, int64_t p)
{
    sum_job j = {dt, gb, g, n, c, p};
    int64_t grain = n * p > 0 ? 32768 / (n * p) : c;
    fl_parallel_for(c, grain < 1 ? 1 : grain, run_sums, &j);
}

/* A 1-d scratch tensor of `numel` elements (NULL for none). */
static int scratch(fl_dtype dt, int64_t numel, fl_tensor **t)
{
    *t = NULL;
    if (numel <= 0)
        return 0;
    *t = fl_tensor_empty(dt, 1, &numel, FL_CPU);
    return *t ? 0 : -1;
}

/* ---------------------------------------------------------------- forward */

/* y = conv(x, w) + b, all contiguous. */
static int conv_forward(const conv_shape *s, char *y, const char *x, const char *w, const char *b)
{
    size_t es = fl_dtype_size(s->dt);
    int64_t P = s->yp, K = col_rows(s), Kg = K / s->groups, Cog = s->cout / s->groups;
    int64_t ximg = s->cin * s->xp, yimg = s->cout * P, B = chunk_images(s);
    fl_tensor *colt, *tmpt = NULL;
    if (scratch(s->dt, K * B * P, &colt) < 0 || (B > 1 && scratch(s->dt, s->cout * B * P, &tmpt) < 0)) {
        fl_tensor_release(colt);
        return -1;
    }
    char *col = colt ? fl_tensor_data(colt) : NULL, *tmp = tmpt ? fl_tensor_data(tmpt) : NULL;
    for (int64_t n0 = 0; n0 < s->n; n0 += B) {
        int64_t nb = s->n - n0 < B ? s->n - n0 : B, ld = nb * P;
        image_job im = {.kind = JOB_IM2COL, .dt = s->dt, .mat = col, .ld = ld, .cols = P,
                        .img = (char *)x + (size_t)(n0 * ximg) * es, .img_elems = ximg, .geom = &s->geom};
        if (col)
            for_images(&im, nb, K * P);
        char *dst = nb == 1 ? y + (size_t)(n0 * yimg) * es : tmp;
        for (int64_t g = 0; g < s->groups; g++)
            gemm(s->dt, false, false, Cog, ld, Kg, w + (size_t)(g * Cog * Kg) * es, Kg,
                 col + (size_t)(g * Kg * ld) * es, ld, 0, dst + (size_t)(g * Cog * ld) * es, ld);
        if (nb == 1) {
            if (b && s->dt == FL_DTYPE_F32)
                fl_cpu_add_bias_f32((float *)dst, s->cout, P, (const float *)b);
            else if (b)
                fl_cpu_add_bias_f64((double *)dst, s->cout, P, (const double *)b);
        } else {
            image_job sc = {.kind = JOB_SCATTER, .dt = s->dt, .mat = tmp, .ld = ld, .cols = P,
                            .img = y + (size_t)(n0 * yimg) * es, .img_elems = yimg, .rows = s->cout, .bias = b};
            for_images(&sc, nb, yimg);
        }
    }
    fl_tensor_release(colt);
    fl_tensor_release(tmpt);
    return 0;
}

/* y = conv_transpose(x, w) + b, all contiguous. */
static int conv_transpose_forward(const conv_shape *s, char *y, const char *x, const char *w, const char *b)
{
    size_t es = fl_dtype_size(s->dt);
    int64_t P = s->xp, Kc = col_rows(s), Kcg = Kc / s->groups, Cig = s->cin / s->groups;
    int64_t ximg = s->cin * P, yimg = s->cout * s->yp, B = chunk_images(s);
    fl_tensor *colt, *xbt = NULL;
    if (scratch(s->dt, Kc * B * P, &colt) < 0 || (B > 1 && scratch(s->dt, s->cin * B * P, &xbt) < 0)) {
        fl_tensor_release(colt);
        return -1;
    }
    char *col = colt ? fl_tensor_data(colt) : NULL, *xb = xbt ? fl_tensor_data(xbt) : NULL;
    for (int64_t n0 = 0; n0 < s->n; n0 += B) {
        int64_t nb = s->n - n0 < B ? s->n - n0 : B, ld = nb * P;
        const char *xt = x + (size_t)(n0 * ximg) * es;
        if (nb > 1) {
            image_job ga = {.kind = JOB_GATHER, .dt = s->dt, .mat = xb, .ld = ld, .cols = P,
                            .img = (char *)xt, .img_elems = ximg, .rows = s->cin};
            for_images(&ga, nb, ximg);
            xt = xb;
        }
        for (int64_t g = 0; g < s->groups; g++)
            gemm(s->dt, true, false, Kcg, ld, Cig, w + (size_t)(g * Cig * Kcg) * es, Kcg,
                 xt + (size_t)(g * Cig * ld) * es, ld, 0, col + (size_t)(g * Kcg * ld) * es, ld);
        image_job ci = {.kind = JOB_COL2IM, .dt = s->dt, .mat = col, .ld = ld, .cols = P,
                        .img = y + (size_t)(n0 * yimg) * es, .img_elems = yimg, .geom = &s->geom, .bias = b};
        if (col)
            for_images(&ci, nb, Kc * P);
        else
            memset(y + (size_t)(n0 * yimg) * es, 0, (size_t)(nb * yimg) * es);   /* no output channels */
    }
    fl_tensor_release(colt);
    fl_tensor_release(xbt);
    return 0;
}

/* ---------------------------------------------------------------- backward */

/* Gradients of a convolution: gx, gw, gb (each NULL when not wanted) from g (n, cout, yp). */
/* Rows of the column matrix per group up to which the weight gradient is taken as dot
 * products over the images as they lie (fl_cpu_conv_wgrad) instead of a GEMM over g
 * transposed: a first layer's 3x3 kernel over one channel has 9. */
#define SMALL_WGRAD_ROWS 16

typedef struct {
    fl_dtype dt;
    double *gw, *gb;      /* (cout, Kg) and (cout) totals; gb NULL when not wanted */
    const char *g;        /* the chunk's first image of the output gradient */
    const char *col;
    int64_t nb, p, ld, kg, cog, cout;
} wgrad_job;

/* Output channels [c0, c1), one group's run at a time. */
static void run_wgrad(void *ctx, int64_t c0, int64_t c1)
{
    const wgrad_job *j = ctx;
    size_t es = fl_dtype_size(j->dt);
    while (c0 < c1) {
        int64_t gi = c0 / j->cog, end = (gi + 1) * j->cog < c1 ? (gi + 1) * j->cog : c1;
        const char *g = j->g + (size_t)(c0 * j->p) * es, *col = j->col + (size_t)(gi * j->kg * j->ld) * es;
        double *gb = j->gb ? j->gb + c0 : NULL;
        if (j->dt == FL_DTYPE_F32)
            fl_cpu_conv_wgrad_f32(j->gw + c0 * j->kg, gb, (const float *)g, j->nb, end - c0, j->p,
                                  j->cout * j->p, (const float *)col, j->ld, j->kg);
        else
            fl_cpu_conv_wgrad_f64(j->gw + c0 * j->kg, gb, (const double *)g, j->nb, end - c0, j->p,
                                  j->cout * j->p, (const double *)col, j->ld, j->kg);
        c0 = end;
    }
}

/* Gradients of a convolution: gx, gw, gb (each NULL when not wanted) from g (n, cout, yp). */
static int conv_backward_data(const conv_shape *s, const char *g, const char *x, const char *w,
                              char *gx, char *gw, char *gb)
{
    size_t es = fl_dtype_size(s->dt);
    int64_t P = s->yp, K = col_rows(s), Kg = K / s->groups, Cog = s->cout / s->groups;
    int64_t ximg = s->cin * s->xp, yimg = s->cout * P, B = chunk_images(s);
    bool small = gw && Kg <= SMALL_WGRAD_ROWS, gather = gx || (gw && !small);
    int64_t nacc = s->cout * (Kg + 1);
    fl_tensor *colt, *gbt = NULL, *acc = NULL;
    if (scratch(s->dt, K * B * P, &colt) < 0 || (B > 1 && gather && scratch(s->dt, s->cout * B * P, &gbt) < 0) ||
        (small && !(acc = fl_tensor_zeros(FL_DTYPE_F64, 1, &nacc, FL_CPU)))) {
        fl_tensor_release(colt);
        fl_tensor_release(gbt);
        return -1;
    }
    char *col = colt ? fl_tensor_data(colt) : NULL;
    double *wacc = acc ? fl_tensor_data(acc) : NULL;
    for (int64_t n0 = 0; n0 < s->n && (gx || gw); n0 += B) {
        int64_t nb = s->n - n0 < B ? s->n - n0 : B, ld = nb * P;
        const char *g0 = g + (size_t)(n0 * yimg) * es, *gt = g0;
        if (nb > 1 && gather) {
            image_job ga = {.kind = JOB_GATHER, .dt = s->dt, .mat = fl_tensor_data(gbt), .ld = ld, .cols = P,
                            .img = (char *)g0, .img_elems = yimg, .rows = s->cout};
            for_images(&ga, nb, yimg);
            gt = ga.mat;
        }
        if (gw) {
            image_job im = {.kind = JOB_IM2COL, .dt = s->dt, .mat = col, .ld = ld, .cols = P,
                            .img = (char *)x + (size_t)(n0 * ximg) * es, .img_elems = ximg, .geom = &s->geom};
            if (col)
                for_images(&im, nb, K * P);
        }
        if (gw && small) {
            wgrad_job wj = {.dt = s->dt, .gw = wacc, .gb = gb ? wacc + s->cout * Kg : NULL, .g = g0, .col = col,
                            .nb = nb, .p = P, .ld = ld, .kg = Kg, .cog = Cog, .cout = s->cout};
            int64_t work = nb * P * (Kg + 1), grain = work > 0 ? 32768 / work : s->cout;
            if (col)
                fl_parallel_for(s->cout, grain < 1 ? 1 : grain, run_wgrad, &wj);
        } else if (gw) {
            for (int64_t gi = 0; gi < s->groups; gi++)
                gemm(s->dt, false, true, Cog, Kg, ld, gt + (size_t)(gi * Cog * ld) * es, ld,
                     col + (size_t)(gi * Kg * ld) * es, ld, n0 > 0 ? 1 : 0, gw + (size_t)(gi * Cog * Kg) * es, Kg);
        }
        if (gx) {
            for (int64_t gi = 0; gi < s->groups; gi++)
                gemm(s->dt, true, false, Kg, ld, Cog, w + (size_t)(gi * Cog * Kg) * es, Kg,
                     gt + (size_t)(gi * Cog * ld) * es, ld, 0, col + (size_t)(gi * Kg * ld) * es, ld);
            image_job ci = {.kind = JOB_COL2IM, .dt = s->dt, .mat = col, .ld = ld, .cols = P,
                            .img = gx + (size_t)(n0 * ximg) * es, .img_elems = ximg, .geom = &s->geom};
            if (col)
                for_images(&ci, nb, K * P);
            else
                memset(ci.img, 0, (size_t)(nb * ximg) * es);
        }
    }
    if (small) {
        /* the totals, back in the weight's dtype; the bias came with them */
        for (int64_t i = 0; i < s->cout * Kg; i++)
            fl_store_f64(s->dt, gw, i, wacc[i]);
        for (int64_t c = 0; c < s->cout && gb; c++)
            fl_store_f64(s->dt, gb, c, wacc[s->cout * Kg + c]);
    } else if (gb) {
        bias_grad(s->dt, gb, g, s->n, s->cout, P);
    }
    fl_tensor_release(colt);
    fl_tensor_release(gbt);
    fl_tensor_release(acc);
    return 0;
}

/* Gradients of a transposed convolution (g is (n, cout, yp), the image side). */
static int conv_transpose_backward_data(const conv_shape *s, const char *g, const char *x, const char *w,
                                        char *gx, char *gw, char *gb)
{
    size_t es = fl_dtype_size(s->dt);
    int64_t P = s->xp, Kc = col_rows(s), Kcg = Kc / s->groups, Cig = s->cin / s->groups;
    int64_t ximg = s->cin * P, yimg = s->cout * s->yp, B = chunk_images(s);
    fl_tensor *colt, *xbt = NULL;
    if (scratch(s->dt, Kc * B * P, &colt) < 0 || (B > 1 && scratch(s->dt, s->cin * B * P, &xbt) < 0)) {
        fl_tensor_release(colt);
        return -1;
    }
    char *col = colt ? fl_tensor_data(colt) : NULL, *xb = xbt ? fl_tensor_data(xbt) : NULL;
    for (int64_t n0 = 0; n0 < s->n && (gx || gw); n0 += B) {
        int64_t nb = s->n - n0 < B ? s->n - n0 : B, ld = nb * P;
        image_job im = {.kind = JOB_IM2COL, .dt = s->dt, .mat = col, .ld = ld, .cols = P,
                        .img = (char *)g + (size_t)(n0 * yimg) * es, .img_elems = yimg, .geom = &s->geom};
        if (col)
            for_images(&im, nb, Kc * P);
        if (gx) {
            char *dst = nb == 1 ? gx + (size_t)(n0 * ximg) * es : xb;
            for (int64_t gi = 0; gi < s->groups; gi++)
                gemm(s->dt, false, false, Cig, ld, Kcg, w + (size_t)(gi * Cig * Kcg) * es, Kcg,
                     col + (size_t)(gi * Kcg * ld) * es, ld, 0, dst + (size_t)(gi * Cig * ld) * es, ld);
            image_job sc = {.kind = JOB_SCATTER, .dt = s->dt, .mat = xb, .ld = ld, .cols = P,
                            .img = gx + (size_t)(n0 * ximg) * es, .img_elems = ximg, .rows = s->cin};
            if (nb > 1)
                for_images(&sc, nb, ximg);
        }
        if (gw) {
            const char *xt = x + (size_t)(n0 * ximg) * es;
            if (nb > 1) {
                image_job ga = {.kind = JOB_GATHER, .dt = s->dt, .mat = xb, .ld = ld, .cols = P,
                                .img = (char *)xt, .img_elems = ximg, .rows = s->cin};
                for_images(&ga, nb, ximg);
                xt = xb;
            }
            for (int64_t gi = 0; gi < s->groups; gi++)
                gemm(s->dt, false, true, Cig, Kcg, ld, xt + (size_t)(gi * Cig * ld) * es, ld,
                     col + (size_t)(gi * Kcg * ld) * es, ld, n0 > 0 ? 1 : 0, gw + (size_t)(gi * Cig * Kcg) * es, Kcg);
        }
    }
    if (gb)
        bias_grad(s->dt, gb, g, s->n, s->cout, s->yp);
    fl_tensor_release(colt);
    fl_tensor_release(xbt);
    return 0;
}

/* ---------------------------------------------------------------- checks */

static const char *spatial_str(char *buf, size_t len, int sd, int64_t h, int64_t w)
{
    if (sd == 1)
        snprintf(buf, len, "%lld", (long long)w);
    else
        snprintf(buf, len, "%lldx%lld", (long long)h, (long long)w);
    return buf;
}

static int check_dtypes(const fl_tensor *x, const fl_tensor *w, const fl_tensor *b)
{
    const fl_tensor *other = w->storage->device.type != x->storage->device.type ? w
                             : b && b->storage->device.type != x->storage->device.type ? b : NULL;
    if (other) {
        fl_error("expected all tensors on the same device, got %s and %s", fl_is_cuda(x) ? "cuda" : "cpu",
                 fl_is_cuda(other) ? "cuda" : "cpu");
        return -1;
    }
    if (x->dtype != FL_DTYPE_F32 && x->dtype != FL_DTYPE_F64) {
        fl_error("expected a float32 or float64 input, got %s", fl_dtype_name(x->dtype));
        return -1;
    }
    if (w->dtype != x->dtype || (b && b->dtype != x->dtype)) {
        const fl_tensor *t = w->dtype != x->dtype ? w : b;
        fl_error("expected %s of the input's dtype %s, got %s", t == w ? "a weight" : "a bias",
                 fl_dtype_name(x->dtype), fl_dtype_name(t->dtype));
        return -1;
    }
    return 0;
}

/* Options per spatial dim (h, w) from the caller's (for conv1d: entry 0 is the one dim). */
static void spatial_opts(const int64_t *v, int sd, int64_t unit, int64_t out[2])
{
    out[0] = sd == 2 ? v[0] : unit;
    out[1] = sd == 2 ? v[1] : v[0];
}

#define FL_CONV_ARG_MAX INT32_MAX

/* Checks everything about a convolution and works out its shape, the padding before each
 * dim and the output's shape. */
static int conv_setup(conv_shape *s, int *ondim, int64_t *oshape, int64_t pad[2], const fl_tensor *x,
                      const fl_tensor *w, const fl_tensor *b, const fl_conv_opts *o, int sd, bool transposed)
{
    char b1[160], b2[160], b3[64];
    if (check_dtypes(x, w, b) < 0)
        return -1;
    if (x->ndim != sd + 1 && x->ndim != sd + 2) {
        fl_error("expected a %d-D (unbatched) or %d-D (batched) input, got shape %s", sd + 1, sd + 2,
                 fl_shape_str(b1, sizeof b1, x->ndim, x->shape));
        return -1;
    }
    if (w->ndim != sd + 2) {
        fl_error("expected a %d-D weight (%s, %s, %s), got shape %s", sd + 2,
                 transposed ? "in_channels" : "out_channels", transposed ? "out_channels / groups" : "in_channels / groups",
                 sd == 2 ? "kH, kW" : "kW", fl_shape_str(b1, sizeof b1, w->ndim, w->shape));
        return -1;
    }
    int64_t st[2], dil[2], pd[2], op[2] = {0, 0}, g = o->groups;
    spatial_opts(o->stride, sd, 1, st);
    spatial_opts(o->dilation, sd, 1, dil);
    spatial_opts(o->padding, sd, 0, pd);
    if (transposed)
        spatial_opts(o->output_padding, sd, 0, op);
    for (int i = 0; i < 2; i++) {
        if (st[i] < 1 || dil[i] < 1 || g < 1) {
            fl_error("expected a positive %s, got %lld", st[i] < 1 ? "stride" : dil[i] < 1 ? "dilation" : "groups",
                     (long long)(st[i] < 1 ? st[i] : dil[i] < 1 ? dil[i] : g));
            return -1;
        }
        if (pd[i] < 0 || op[i] < 0) {
            fl_error("expected a non-negative %s, got %lld", pd[i] < 0 ? "padding" : "output_padding",
                     (long long)(pd[i] < 0 ? pd[i] : op[i]));
            return -1;
        }
        if (st[i] > FL_CONV_ARG_MAX || dil[i] > FL_CONV_ARG_MAX || pd[i] > FL_CONV_ARG_MAX || g > FL_CONV_ARG_MAX) {
            fl_error("stride, padding, dilation and groups must be below 2^31");
            return -1;
        }
        if (transposed && op[i] >= st[i] && op[i] >= dil[i]) {
            fl_error("output_padding must be smaller than the stride or the dilation, got output_padding %lld, "
                     "stride %lld, dilation %lld", (long long)op[i], (long long)st[i], (long long)dil[i]);
            return -1;
        }
    }
    int64_t xd[4], wd[4];
    dims4(x->shape, x->ndim, sd, xd);
    dims4(w->shape, w->ndim, sd, wd);   /* a weight reads as batched: (d0, d1, kh, kw) */
    if (wd[0] % g != 0) {
        fl_error("the weight's %s (%lld, dim 1 of %s) is not divisible by groups %lld",
                 transposed ? "in_channels" : "out_channels", (long long)wd[0],
                 fl_shape_str(b1, sizeof b1, w->ndim, w->shape), (long long)g);
        return -1;
    }
    int64_t want_c = transposed ? wd[0] : wd[1] * g;
    if (xd[1] != want_c) {
        if (transposed)
            fl_error("expected an input with %lld channels (the weight's dim 1, of %s), got input of shape %s",
                     (long long)want_c, fl_shape_str(b1, sizeof b1, w->ndim, w->shape),
                     fl_shape_str(b2, sizeof b2, x->ndim, x->shape));
        else
            fl_error("expected an input with %lld channels (the weight's in_channels %lld * groups %lld, weight %s), "
                     "got input of shape %s", (long long)want_c, (long long)wd[1], (long long)g,
                     fl_shape_str(b1, sizeof b1, w->ndim, w->shape), fl_shape_str(b2, sizeof b2, x->ndim, x->shape));
        return -1;
    }
    int64_t cout = transposed ? wd[1] * g : wd[0];
    if (b && (b->ndim != 1 || b->shape[0] != cout)) {
        fl_error("expected a bias of shape [%lld] (out_channels), got %s", (long long)cout,
                 fl_shape_str(b1, sizeof b1, b->ndim, b->shape));
        return -1;
    }
    if (wd[2] < 1 || wd[3] < 1) {
        fl_error("expected a kernel of positive size, got weight of shape %s", fl_shape_str(b1, sizeof b1, w->ndim, w->shape));
        return -1;
    }
    if (!transposed && o->pad_mode == FL_PAD_SAME) {
        if (st[0] != 1 || st[1] != 1) {
            fl_error("padding 'same' needs stride 1, got stride %s", spatial_str(b1, sizeof b1, sd, st[0], st[1]));
            return -1;
        }
        pd[0] = dil[0] * (wd[2] - 1) / 2;
        pd[1] = dil[1] * (wd[3] - 1) / 2;
    } else if (!transposed && o->pad_mode == FL_PAD_VALID) {
        pd[0] = pd[1] = 0;
    }
    int64_t y[2];
    for (int i = 0; i < 2; i++) {
        int64_t in = xd[2 + i], k = wd[2 + i], span = dil[i] * (k - 1) + 1;
        if (transposed) {
            y[i] = (in - 1) * st[i] - 2 * pd[i] + span - 1 + op[i] + 1;
        } else if (o->pad_mode == FL_PAD_SAME) {
            y[i] = in;
        } else {
            if (in + 2 * pd[i] < span) {
                fl_error("the input's size %s (padded: %s) is smaller than the kernel's %s (dilated)",
                         spatial_str(b1, sizeof b1, sd, xd[2], xd[3]),
                         spatial_str(b2, sizeof b2, sd, xd[2] + 2 * pd[0], xd[3] + 2 * pd[1]),
                         spatial_str(b3, sizeof b3, sd, dil[0] * (wd[2] - 1) + 1, dil[1] * (wd[3] - 1) + 1));
                return -1;
            }
            y[i] = (in + 2 * pd[i] - span) / st[i] + 1;
        }
    }
    if (transposed && (y[0] < 1 || y[1] < 1)) {
        fl_error("the output's size would be %s: too small for input of shape %s",
                 spatial_str(b1, sizeof b1, sd, y[0], y[1]), fl_shape_str(b2, sizeof b2, x->ndim, x->shape));
        return -1;
    }
    shape_init(s, x->dtype, transposed, xd, wd, g, st, dil, pd, y[0], y[1]);
    if (col_rows(s) > INT_MAX || col_cols(s) > INT_MAX || s->cout > INT_MAX || s->cin > INT_MAX) {
        fl_error("convolution too large for BLAS (a matrix dimension over 2^31)");
        return -1;
    }
    *ondim = x->ndim;
    int k = 0;
    if (x->ndim == sd + 2)
        oshape[k++] = xd[0];
    oshape[k++] = cout;
    if (sd == 2)
        oshape[k++] = y[0];
    oshape[k++] = y[1];
    pad[0] = pd[0];
    pad[1] = pd[1];
    return 0;
}

/* ---------------------------------------------------------------- ops */

static int64_t pack2(int64_t hi, int64_t lo) { return hi << 32 | lo; }
static void unpack2(int64_t v, int64_t out[2])
{
    out[0] = v >> 32;
    out[1] = v & 0xffffffff;
}

/* The CUDA library's description of a convolution, its GEMMs run under autocast mode ac. */
static fl_cuda_conv cuda_desc(const conv_shape *s, fl_autocast_mode ac)
{
    fl_gemm_mode mode = s->dt != FL_DTYPE_F32 ? FL_GEMM_EXACT
                        : ac == FL_AUTOCAST_BF16 ? FL_GEMM_BF16 : fl_allow_tf32() ? FL_GEMM_TF32 : FL_GEMM_EXACT;
    return (fl_cuda_conv){.dt = s->dt, .transposed = s->transposed, .mode = mode, .n = s->n, .groups = s->groups,
                          .cin = s->cin, .cout = s->cout, .xp = s->xp, .yp = s->yp, .geom = s->geom};
}

/* y (n, cout, p) = b broadcast, or zeros: a convolution over no input channels. */
static int fill_bias(fl_tensor *y, int64_t cout, int64_t p, const fl_tensor *b, int sd)
{
    if (fl_is_cuda(y)) {
        if (!b)
            return fl_fill(y, 0);
        /* b as (cout, 1[, 1]): broadcast over the sd spatial dims and the batch */
        int64_t shape[3] = {cout, 1, 1}, strides[3] = {b->strides[0], 0, 0};
        fl_tensor *bv = fl_tensor_view_of(b, 1 + sd, shape, strides, b->offset);
        int rc = bv ? fl_copy(y, bv) : -1;
        fl_tensor_release(bv);
        return rc;
    }
    void *yd = fl_tensor_data(y);
    for (int64_t i = 0; i < y->numel; i++)
        fl_store_f64(y->dtype, yd, i, b ? fl_load_f64(b->dtype, fl_tensor_data(b), i / p % cout) : 0);
    return 0;
}

static fl_tensor *conv_op(const char *name, int sd, bool transposed, const fl_tensor *x, const fl_tensor *w,
                          const fl_tensor *b, const fl_conv_opts *o)
{
    conv_shape s;
    int ondim;
    int64_t oshape[FL_MAX_DIMS], pad[2];
    if (conv_setup(&s, &ondim, oshape, pad, x, w, b, o, sd, transposed) < 0 || (!fl_is_cuda(x) && fl_blas_init() < 0))
        return NULL;
    fl_autocast_mode ac = fl_autocast();
    fl_tensor *xc = fl_contiguous((fl_tensor *)x), *wc = fl_contiguous((fl_tensor *)w);
    fl_tensor *bc = b ? fl_contiguous((fl_tensor *)b) : NULL;
    fl_tensor *y = xc && wc && (bc || !b) ? fl_tensor_empty(x->dtype, ondim, oshape, x->storage->device) : NULL;
    const char *bp = bc ? fl_tensor_data(bc) : NULL;
    int rc = 0;
    if (!y) {
        rc = -1;
    } else if (y->numel > 0 && s.cin == 0) {
        rc = fill_bias(y, s.cout, s.yp, bc, sd);
    } else if (y->numel > 0 && fl_is_cuda(y)) {
        fl_cuda_conv d = cuda_desc(&s, ac);
        rc = fl_cuda_status(FL_CUDA(fl_cuda_conv_forward)(&d, fl_tensor_data(y), fl_tensor_data(xc), fl_tensor_data(wc), bp));
    } else if (y->numel > 0)
        rc = transposed ? conv_transpose_forward(&s, fl_tensor_data(y), fl_tensor_data(xc), fl_tensor_data(wc), bp)
                        : conv_forward(&s, fl_tensor_data(y), fl_tensor_data(xc), fl_tensor_data(wc), bp);
    if (rc == 0 && (fl_needs_grad(x) || fl_needs_grad(w) || (b && fl_needs_grad(b)))) {
        const fl_tensor *in[3] = {x, w, b};
        fl_node *node = fl_node_new(transposed ? FL_GRAD_CONV_TRANSPOSE : FL_GRAD_CONV, name, 3, in);
        if (!node || fl_node_save(node, 0, xc) < 0 || fl_node_save(node, 1, wc) < 0) {
            fl_node_release(node);
            rc = -1;
        } else {
            node->iargs[0] = pack2(s.geom.sh, s.geom.sw);
            node->iargs[1] = pack2(s.geom.dh, s.geom.dw);
            node->iargs[2] = pack2(pad[0], pad[1]);
            node->iargs[3] = s.groups | (int64_t)ac << 32;   /* the backward's autocast above the groups */
            fl_node_attach(node, y);
        }
    }
    fl_tensor_release(xc);
    fl_tensor_release(wc);
    fl_tensor_release(bc);
    if (rc < 0) {
        fl_tensor_release(y);
        return NULL;
    }
    return y;
}

fl_tensor *fl_conv1d(const fl_tensor *x, const fl_tensor *w, const fl_tensor *b, const fl_conv_opts *o)
{
    return conv_op("conv1d", 1, false, x, w, b, o);
}

fl_tensor *fl_conv2d(const fl_tensor *x, const fl_tensor *w, const fl_tensor *b, const fl_conv_opts *o)
{
    return conv_op("conv2d", 2, false, x, w, b, o);
}

fl_tensor *fl_conv_transpose2d(const fl_tensor *x, const fl_tensor *w, const fl_tensor *b, const fl_conv_opts *o)
{
    return conv_op("conv_transpose2d", 2, true, x, w, b, o);
}

/* g contiguous in dtype dt (retained if it already is). */
static fl_tensor *contiguous_as(const fl_tensor *g, fl_dtype dt)
{
    if (g->dtype == dt)
        return fl_contiguous((fl_tensor *)g);
    fl_tensor *c = fl_cast(g, dt), *r = c ? fl_contiguous(c) : NULL;
    fl_tensor_release(c);
    return r;
}

int fl_conv_backward(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *x = n->saved[0], *w = n->saved[1];
    bool transposed = n->rule == FL_GRAD_CONV_TRANSPOSE;
    int sd = w->ndim - 2;
    int64_t xd[4], wd[4] = {w->shape[0], w->shape[1], sd == 2 ? w->shape[2] : 1, w->shape[w->ndim - 1]};
    int64_t st[2], dil[2], pad[2];
    dims4(x->shape, x->ndim, sd, xd);
    unpack2(n->iargs[0], st);
    unpack2(n->iargs[1], dil);
    unpack2(n->iargs[2], pad);
    conv_shape s;
    shape_init(&s, x->dtype, transposed, xd, wd, n->iargs[3] & 0xffffffff, st, dil, pad,
               sd == 2 ? g->shape[g->ndim - 2] : 1, g->shape[g->ndim - 1]);
    fl_device dev = x->storage->device;
    fl_tensor *gc = contiguous_as(g, x->dtype);
    if (!gc)
        return -1;
    fl_tensor *gx = NULL, *gw = NULL, *gb = NULL;
    int rc = 0;
    if (n->next[0] && !(gx = fl_tensor_empty(x->dtype, x->ndim, x->shape, dev)))
        rc = -1;
    /* the weight gradient accumulates over chunks of images: zeros when there are none */
    if (rc == 0 && n->next[1] && !(gw = s.n ? fl_tensor_empty(x->dtype, w->ndim, w->shape, dev)
                                            : fl_tensor_zeros(x->dtype, w->ndim, w->shape, dev)))
        rc = -1;
    if (rc == 0 && n->next[2] && !(gb = fl_tensor_empty(x->dtype, 1, &s.cout, dev)))
        rc = -1;
    char *pgx = gx ? fl_tensor_data(gx) : NULL, *pgw = gw ? fl_tensor_data(gw) : NULL;
    char *pgb = gb ? fl_tensor_data(gb) : NULL;
    if (rc == 0 && (s.n == 0 || s.cin == 0 || s.cout == 0)) {
        /* an empty side: zeros, except the bias gradient of a convolution over no input channels */
        rc = (gx ? fl_fill(gx, 0) : 0) | (gw ? fl_fill(gw, 0) : 0) | (gb ? fl_fill(gb, 0) : 0);
        if (rc == 0 && gb && s.n > 0 && s.cout > 0 && fl_is_cuda(gb))
            rc = fl_cuda_status(FL_CUDA(fl_cuda_conv_bias_grad)(s.dt, pgb, fl_tensor_data(gc), s.n, s.cout, s.yp));
        else if (rc == 0 && gb && s.n > 0 && s.cout > 0)
            bias_grad(s.dt, pgb, fl_tensor_data(gc), s.n, s.cout, s.yp);
    } else if (rc == 0 && fl_is_cuda(gc)) {
        fl_cuda_conv d = cuda_desc(&s, (fl_autocast_mode)(n->iargs[3] >> 32));
        rc = fl_cuda_status(FL_CUDA(fl_cuda_conv_backward)(&d, fl_tensor_data(gc), fl_tensor_data(x), fl_tensor_data(w),
                                                           pgx, pgw, pgb));
    } else if (rc == 0) {
        rc = transposed ? conv_transpose_backward_data(&s, fl_tensor_data(gc), fl_tensor_data(x), fl_tensor_data(w), pgx, pgw, pgb)
                        : conv_backward_data(&s, fl_tensor_data(gc), fl_tensor_data(x), fl_tensor_data(w), pgx, pgw, pgb);
    }
    fl_tensor_release(gc);
    if (rc < 0) {
        fl_tensor_release(gx);
        fl_tensor_release(gw);
        fl_tensor_release(gb);
        return -1;
    }
    grads[0] = gx;
    grads[1] = gw;
    grads[2] = gb;
    return 0;
}
