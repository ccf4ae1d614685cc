/* rnn.c: fused LSTM and GRU cells and whole recurrent layers (see rnn.h), forward and
 * backward. The elementwise gate math is in kernels/cpu/rnn.c (kernels/cuda/rnn.cu on the
 * GPU); the matrix products of the layer go to BLAS: one per step forward (h W_hhᵀ), one per
 * step backward (dgates W_hh), and two for the whole sequence's weight gradient. On the GPU
 * the same products are the engine's own fl_mm / fl_addmm, which run on the device. */
#include "rnn.h"
#include "autograd.h"
#include "blas.h"
#include "cuda.h"
#include "../kernels/cpu/rnn.h"
#include "../kernels/cuda/rnn.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

#define AT(p, dt, off) ((void *)((char *)(p) + (size_t)(off) * fl_dtype_size(dt)))

static int check_float(const char *what, const fl_tensor *t, const fl_tensor *like)
{
    if (like && t->storage->device.type != like->storage->device.type) {
        fl_error("expected all tensors on the same device, got %s and %s", fl_is_cuda(like) ? "cuda" : "cpu",
                 fl_is_cuda(t) ? "cuda" : "cpu");
        return -1;
    }
    if (t->dtype != FL_DTYPE_F32 && t->dtype != FL_DTYPE_F64) {
        fl_error("expected %s of dtype float32 or float64, got %s", what, fl_dtype_name(t->dtype));
        return -1;
    }
    if (like && t->dtype != like->dtype) {
        fl_error("expected %s of dtype %s (as the input projection), got %s", what, fl_dtype_name(like->dtype),
                 fl_dtype_name(t->dtype));
        return -1;
    }
    return 0;
}

/* t must have shape (ndim, want); `what` names it. */
static int check_shape(const char *what, const fl_tensor *t, int ndim, const int64_t *want)
{
    bool ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = t->shape[d] == want[d];
    if (!ok) {
        char b1[160], b2[160];
        fl_error("expected %s of shape %s, got %s", what, fl_shape_str(b1, sizeof b1, ndim, want),
                 fl_shape_str(b2, sizeof b2, t->ndim, t->shape));
        return -1;
    }
    return 0;
}

/* c (m, n), row stride ldc, = a . b (+ c when accumulate); ta/tb as in BLAS. */
static void gemm(fl_dtype dt, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a, int64_t lda,
                 const void *b, int64_t ldb, bool accumulate, void *c, int64_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; i++)
                memset(AT(c, dt, i * ldc), 0, (size_t)n * fl_dtype_size(dt));
        return;
    }
    if (dt == FL_DTYPE_F32)
        fl_blas.sgemm(FL_BLAS_ROW_MAJOR, ta, tb, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb,
                      accumulate ? 1.0f : 0.0f, c, (int)ldc);
    else
        fl_blas.dgemm(FL_BLAS_ROW_MAJOR, ta, tb, (int)m, (int)n, (int)k, 1.0, a, (int)lda, b, (int)ldb,
                      accumulate ? 1.0 : 0.0, c, (int)ldc);
}

/* The kernels of kernels/cpu/rnn.c for either dtype. */
static void lstm_forward(fl_dtype dt, void *h, void *c_out, void *act, const void *gi, const void *gh,
                         const void *b, const void *c, int64_t N, int64_t H)
{
    if (dt == FL_DTYPE_F32)
        fl_cpu_lstm_forward_f32(h, c_out, act, gi, gh, b, c, N, H);
    else
        fl_cpu_lstm_forward_f64(h, c_out, act, gi, gh, b, c, N, H);
}

static void lstm_backward(fl_dtype dt, void *dgates, void *dc_prev, const void *act, const void *c,
                          const void *c_new, const void *dh, const void *dc, int64_t N, int64_t H)
{
    if (dt == FL_DTYPE_F32)
        fl_cpu_lstm_backward_f32(dgates, dc_prev, act, c, c_new, dh, dc, N, H);
    else
        fl_cpu_lstm_backward_f64(dgates, dc_prev, act, c, c_new, dh, dc, N, H);
}

static void gru_forward(fl_dtype dt, void *h_out, void *ws, const void *gi, const void *gh, const void *b,
                        const void *h, int64_t N, int64_t H)
{
    if (dt == FL_DTYPE_F32)
        fl_cpu_gru_forward_f32(h_out, ws, gi, gh, b, h, N, H);
    else
        fl_cpu_gru_forward_f64(h_out, ws, gi, gh, b, h, N, H);
}

static void gru_backward(fl_dtype dt, void *dgi, void *dgh, void *dh_prev, const void *ws, const void *h,
                         const void *dh, int64_t N, int64_t H)
{
    if (dt == FL_DTYPE_F32)
        fl_cpu_gru_backward_f32(dgi, dgh, dh_prev, ws, h, dh, N, H);
    else
        fl_cpu_gru_backward_f64(dgi, dgh, dh_prev, ws, h, dh, N, H);
}

static void elman_forward(fl_dtype dt, void *h_out, const void *gi, const void *gh, const void *b, int64_t N,
                          int64_t H, int relu)
{
    if (dt == FL_DTYPE_F32)
        fl_cpu_rnn_forward_f32(h_out, gi, gh, b, N, H, relu);
    else
        fl_cpu_rnn_forward_f64(h_out, gi, gh, b, N, H, relu);
}

static void elman_backward(fl_dtype dt, void *dgates, const void *h_new, const void *dh, int64_t N, int64_t H,
                           int relu)
{
    if (dt == FL_DTYPE_F32)
        fl_cpu_rnn_backward_f32(dgates, h_new, dh, N, H, relu);
    else
        fl_cpu_rnn_backward_f64(dgates, h_new, dh, N, H, relu);
}

/* g as a contiguous tensor of dtype dt (retained when it already is one). */
static fl_tensor *grad_as(const fl_tensor *g, fl_dtype dt)
{
    return g->dtype == dt ? fl_contiguous((fl_tensor *)g) : fl_cast(g, dt);
}

/* Records node n (already made) on out, saving save[0..nsave) (NULL entries skipped); on
 * failure releases n and returns -1. */
static int record(fl_node *n, fl_tensor *out, fl_tensor *const *save, int nsave)
{
    if (!n)
        return -1;
    for (int i = 0; i < nsave; i++)
        if (save[i] && fl_node_save(n, i, save[i]) < 0) {
            fl_node_release(n);
            return -1;
        }
    fl_node_attach(n, out);
    return 0;
}

static bool any_needs_grad(int n, const fl_tensor *const *ts)
{
    for (int i = 0; i < n; i++)
        if (ts[i] && fl_needs_grad(ts[i]))
            return true;
    return false;
}

/* ---------------------------------------------------------------- cells */

/* Checks gi, gh (N, gates H) and the state s (N, H); sets N and H. */
static int check_cell(const char *state_name, int gates, const fl_tensor *gi, const fl_tensor *gh,
                      const fl_tensor *s, int64_t *N, int64_t *H)
{
    if (check_float("the input projection gi", gi, NULL) < 0 || check_float("the hidden projection gh", gh, gi) < 0 ||
        check_float(state_name, s, gi) < 0)
        return -1;
    if (s->ndim != 2) {
        char b[160];
        fl_error("expected %s of shape (N, H), got %s", state_name, fl_shape_str(b, sizeof b, s->ndim, s->shape));
        return -1;
    }
    *N = s->shape[0];
    *H = s->shape[1];
    int64_t want[2] = {*N, gates * *H};
    if (check_shape("the input projection gi", gi, 2, want) < 0 || check_shape("the hidden projection gh", gh, 2, want) < 0)
        return -1;
    return 0;
}

/* A zero bias of g elements (the kernels always add one). */
static void *zero_bias(fl_dtype dt, int64_t g)
{
    void *b = calloc((size_t)(g ? g : 1), fl_dtype_size(dt));
    if (!b)
        fl_error("out of memory");
    return b;
}

fl_tensor *fl_lstm_cell(const fl_tensor *gi, const fl_tensor *gh, const fl_tensor *c)
{
    int64_t N, H;
    if (check_cell("the cell state c", 4, gi, gh, c, &N, &H) < 0)
        return NULL;
    fl_device dev = gi->storage->device;
    bool gpu = fl_is_cuda(gi);
    void *zb = gpu ? NULL : zero_bias(gi->dtype, 4 * H);   /* the GPU kernels take no bias as NULL */
    if (!gpu && !zb)
        return NULL;
    fl_tensor *gic = fl_contiguous((fl_tensor *)gi), *ghc = gic ? fl_contiguous((fl_tensor *)gh) : NULL;
    fl_tensor *cc = ghc ? fl_contiguous((fl_tensor *)c) : NULL;
    int64_t oshape[3] = {2, N, H}, ashape[2] = {N, 4 * H};
    fl_tensor *out = cc ? fl_tensor_empty(gi->dtype, 3, oshape, dev) : NULL;
    fl_tensor *act = out ? fl_tensor_empty(gi->dtype, 2, ashape, dev) : NULL;
    int rc = act ? 0 : -1;
    if (act) {
        fl_dtype dt = gi->dtype;
        void *h_out = fl_tensor_data(out), *c_out = AT(h_out, dt, N * H);
        if (gpu)
            rc = fl_cuda_status(FL_CUDA(fl_cuda_lstm_forward)(dt, h_out, c_out, fl_tensor_data(act), fl_tensor_data(gic),
                                                              fl_tensor_data(ghc), NULL, 0, fl_tensor_data(cc), N, H));
        else
            lstm_forward(dt, h_out, c_out, fl_tensor_data(act), fl_tensor_data(gic), fl_tensor_data(ghc), zb,
                         fl_tensor_data(cc), N, H);
        const fl_tensor *ins[3] = {gi, gh, c};
        if (rc == 0 && any_needs_grad(3, ins)) {
            fl_tensor *save[3] = {act, cc, out};
            rc = record(fl_node_new(FL_GRAD_LSTM_CELL, "fused_lstm_cell", 3, ins), out, save, 3);
        }
    }
    if (rc < 0) {
        fl_tensor_release(out);
        out = NULL;
    }
    fl_tensor_release(gic);
    fl_tensor_release(ghc);
    fl_tensor_release(cc);
    fl_tensor_release(act);
    free(zb);
    return out;
}

fl_tensor *fl_gru_cell(const fl_tensor *gi, const fl_tensor *gh, const fl_tensor *h)
{
    int64_t N, H;
    if (check_cell("the state h", 3, gi, gh, h, &N, &H) < 0)
        return NULL;
    fl_device dev = gi->storage->device;
    bool gpu = fl_is_cuda(gi);
    void *zb = gpu ? NULL : zero_bias(gi->dtype, 3 * H);
    if (!gpu && !zb)
        return NULL;
    fl_tensor *gic = fl_contiguous((fl_tensor *)gi), *ghc = gic ? fl_contiguous((fl_tensor *)gh) : NULL;
    fl_tensor *hc = ghc ? fl_contiguous((fl_tensor *)h) : NULL;
    int64_t oshape[2] = {N, H}, wshape[2] = {N, 4 * H};
    fl_tensor *out = hc ? fl_tensor_empty(gi->dtype, 2, oshape, dev) : NULL;
    fl_tensor *ws = out ? fl_tensor_empty(gi->dtype, 2, wshape, dev) : NULL;
    int rc = ws ? 0 : -1;
    if (ws) {
        if (gpu)
            rc = fl_cuda_status(FL_CUDA(fl_cuda_gru_forward)(gi->dtype, fl_tensor_data(out), fl_tensor_data(ws),
                                                             fl_tensor_data(gic), fl_tensor_data(ghc), NULL, 0,
                                                             fl_tensor_data(hc), N, H));
        else
            gru_forward(gi->dtype, fl_tensor_data(out), fl_tensor_data(ws), fl_tensor_data(gic), fl_tensor_data(ghc),
                        zb, fl_tensor_data(hc), N, H);
        const fl_tensor *ins[3] = {gi, gh, h};
        if (rc == 0 && any_needs_grad(3, ins)) {
            fl_tensor *save[2] = {ws, hc};
            rc = record(fl_node_new(FL_GRAD_GRU_CELL, "fused_gru_cell", 3, ins), out, save, 2);
        }
    }
    if (rc < 0) {
        fl_tensor_release(out);
        out = NULL;
    }
    fl_tensor_release(gic);
    fl_tensor_release(ghc);
    fl_tensor_release(hc);
    fl_tensor_release(ws);
    free(zb);
    return out;
}

/* saved: act, c, out (h', c') */
static int lstm_cell_backward(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *act = n->saved[0], *c = n->saved[1], *out = n->saved[2];
    fl_dtype dt = act->dtype;
    fl_device dev = act->storage->device;
    int64_t N = c->shape[0], H = c->shape[1];
    int64_t dshape[2] = {N, 4 * H};
    fl_tensor *gc = grad_as(g, dt);
    fl_tensor *dgates = gc ? fl_tensor_empty(dt, 2, dshape, dev) : NULL;
    fl_tensor *dc = dgates ? fl_tensor_empty(dt, 2, c->shape, dev) : NULL;
    int rc = -1;
    if (dc) {
        const void *gd = fl_tensor_data(gc), *c_new = AT(fl_tensor_data(out), dt, N * H);
        rc = 0;
        if (fl_is_cuda(act))
            rc = fl_cuda_status(FL_CUDA(fl_cuda_lstm_backward)(dt, fl_tensor_data(dgates), fl_tensor_data(dc),
                                                               fl_tensor_data(act), fl_tensor_data(c), c_new, gd,
                                                               NULL, AT(gd, dt, N * H), N, H));
        else
            lstm_backward(dt, fl_tensor_data(dgates), fl_tensor_data(dc), fl_tensor_data(act), fl_tensor_data(c),
                          c_new, gd, AT(gd, dt, N * H), N, H);
    }
    if (rc == 0) {
        grads[0] = fl_tensor_retain(dgates);
        grads[1] = fl_tensor_retain(dgates);
        grads[2] = fl_tensor_retain(dc);
    }
    fl_tensor_release(gc);
    fl_tensor_release(dgates);
    fl_tensor_release(dc);
    return rc;
}

/* saved: ws, h */
static int gru_cell_backward(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *ws = n->saved[0], *h = n->saved[1];
    fl_dtype dt = ws->dtype;
    fl_device dev = ws->storage->device;
    int64_t N = h->shape[0], H = h->shape[1];
    int64_t dshape[2] = {N, 3 * H};
    fl_tensor *gc = grad_as(g, dt);
    fl_tensor *dgi = gc ? fl_tensor_empty(dt, 2, dshape, dev) : NULL;
    fl_tensor *dgh = dgi ? fl_tensor_empty(dt, 2, dshape, dev) : NULL;
    fl_tensor *dh = dgh ? fl_tensor_empty(dt, 2, h->shape, dev) : NULL;
    int rc = -1;
    if (dh) {
        rc = 0;
        if (fl_is_cuda(ws))
            rc = fl_cuda_status(FL_CUDA(fl_cuda_gru_backward)(dt, fl_tensor_data(dgi), fl_tensor_data(dgh),
                                                              fl_tensor_data(dh), fl_tensor_data(ws), fl_tensor_data(h),
                                                              fl_tensor_data(gc), NULL, N, H));
        else
            gru_backward(dt, fl_tensor_data(dgi), fl_tensor_data(dgh), fl_tensor_data(dh), fl_tensor_data(ws),
                         fl_tensor_data(h), fl_tensor_data(gc), N, H);
    }
    if (rc == 0) {
        grads[0] = fl_tensor_retain(dgi);
        grads[1] = fl_tensor_retain(dgh);
        grads[2] = fl_tensor_retain(dh);
    }
    fl_tensor_release(gc);
    fl_tensor_release(dgi);
    fl_tensor_release(dgh);
    fl_tensor_release(dh);
    return rc;
}

/* ---------------------------------------------------------------- layers */

static int gates_of(fl_rnn_mode mode)
{
    return mode == FL_RNN_LSTM ? 4 : mode == FL_RNN_GRU ? 3 : 1;
}

/* Per-step workspace elements (LSTM: the activations, then the cell state). */
static int64_t ws_per_step(fl_rnn_mode mode, int64_t N, int64_t H)
{
    return mode == FL_RNN_LSTM ? N * 5 * H : mode == FL_RNN_GRU ? N * 4 * H : 0;
}

/* A layer's sizes, from its inputs (checked by check_layer). */
typedef struct {
    fl_rnn_mode mode;
    bool reverse;
    int64_t T, N, H, G;
    int64_t ldw;        /* row length of hh: H, or H + 1 with the bias column */
    fl_dtype dt;
} layer_dims;

static int check_layer(fl_rnn_mode mode, const fl_tensor *gi, const fl_tensor *hh, const fl_tensor *s0, layer_dims *d)
{
    if ((int)mode < FL_RNN_TANH || mode > FL_RNN_GRU) {
        fl_error("unknown recurrent mode %d", (int)mode);
        return -1;
    }
    if (check_float("the input projection gi", gi, NULL) < 0 || check_float("the hidden weights hh", hh, gi) < 0 ||
        check_float("the initial state", s0, gi) < 0)
        return -1;
    bool lstm = mode == FL_RNN_LSTM;
    if (s0->ndim != (lstm ? 3 : 2) || (lstm && s0->shape[0] != 2)) {
        char b[160];
        fl_error("expected the initial state of shape %s, got %s", lstm ? "(2, N, H): h0 and c0" : "(N, H)",
                 fl_shape_str(b, sizeof b, s0->ndim, s0->shape));
        return -1;
    }
    d->mode = mode;
    d->dt = gi->dtype;
    d->N = s0->shape[s0->ndim - 2];
    d->H = s0->shape[s0->ndim - 1];
    d->G = gates_of(mode) * d->H;
    if (gi->ndim != 3 || gi->shape[1] != d->N || gi->shape[2] != d->G) {
        char b[160];
        fl_error("expected the input projection gi of shape (T, %lld, %lld), got %s", (long long)d->N,
                 (long long)d->G, fl_shape_str(b, sizeof b, gi->ndim, gi->shape));
        return -1;
    }
    d->T = gi->shape[0];
    if (d->T < 1) {
        fl_error("expected a sequence of at least one step, got length 0");
        return -1;
    }
    if (hh->ndim != 2 || hh->shape[0] != d->G || (hh->shape[1] != d->H && hh->shape[1] != d->H + 1)) {
        char b[160];
        fl_error("expected the hidden weights hh of shape (%lld, %lld), or (%lld, %lld) with the bias as last column, got %s",
                 (long long)d->G, (long long)d->H, (long long)d->G, (long long)d->H + 1,
                 fl_shape_str(b, sizeof b, hh->ndim, hh->shape));
        return -1;
    }
    d->ldw = hh->shape[1];
    if (d->T * d->N > INT_MAX || d->G > INT_MAX / 2 || d->ldw > INT_MAX) {
        fl_error("recurrent layer too large for BLAS (T * N = %lld, gates %lld)", (long long)(d->T * d->N),
                 (long long)d->G);
        return -1;
    }
    return 0;
}

/* The hidden bias (G) out of hh's last column, or zeros when hh has none. */
static void *bias_of(const layer_dims *d, const fl_tensor *hh, int *failed)
{
    size_t es = fl_dtype_size(d->dt);
    void *b = zero_bias(d->dt, d->G);
    if (!b) {
        *failed = 1;
        return NULL;
    }
    const char *w = fl_tensor_data(hh);
    for (int64_t k = 0; d->ldw == d->H + 1 && k < d->G; k++)
        memcpy((char *)b + k * es, w + (size_t)(k * d->ldw + d->H) * es, es);
    return b;
}

/* The time index of the p-th step processed. */
static int64_t step_time(const layer_dims *d, int64_t p)
{
    return d->reverse ? d->T - 1 - p : p;
}

/* What the rows of a layer need, forward and backward. The batch rows of a recurrence are
 * independent, so the layer splits them among the pool's threads, each running every time
 * step of its rows with single-threaded BLAS: no synchronisation per step, where a
 * multi-threaded BLAS call of these small sizes spends much of its time. */
typedef struct {
    const layer_dims *d;
    const void *gi, *w, *bias, *s0, *Y_in, *ws_in, *g;
    void *Y, *ws;        /* forward outputs */
    bool keep_all;       /* every step's workspace (for the backward), else two in turn */
    void *dgi, *dgh, *buf, *ds0;   /* backward outputs and scratch (buf: 4 (N, H) blocks) */
    _Atomic int failed;
} layer_job;

/* Runs fn over the batch rows, split among the threads. */
static void split_rows(layer_job *job, fl_range_fn fn)
{
    if (job->d->N == 0 || job->d->H == 0)
        return;   /* no rows, or rows of nothing */
    int threads = fl_get_num_threads();
    if (threads < 2 || job->d->N < 2 || !fl_blas.set_num_threads) {
        fn(job, 0, job->d->N);   /* one call, BLAS threads as they are */
        return;
    }
    fl_blas.set_num_threads(1);
    fl_parallel_for(job->d->N, 1, fn, job);
    fl_blas.set_num_threads(threads);
}

/* The forward recurrence of rows [b, e): writes their rows of Y (T or T + 1, N, H) and of
 * the workspace. Per step the workspace holds (N, 4H) activations (LSTM: then the new cell
 * state (N, H)); GRU: r, z, n, gh_n. */
static void forward_rows(void *ctx, int64_t b, int64_t e)
{
    layer_job *job = ctx;
    const layer_dims *d = job->d;
    fl_dtype dt = d->dt;
    int64_t N = d->N, H = d->H, G = d->G, NH = N * H, R = e - b, per = ws_per_step(d->mode, N, H);
    void *gh = malloc((size_t)(R * G > 0 ? R * G : 1) * fl_dtype_size(dt));
    if (!gh) {
        job->failed = 1;
        return;
    }
    const void *hprev = AT(job->s0, dt, b * H), *cprev = AT(job->s0, dt, NH + b * H);
    for (int64_t p = 0; p < d->T; p++) {
        int64_t t = step_time(d, p);
        void *h = AT(job->Y, dt, t * NH + b * H), *wsp = AT(job->ws, dt, (job->keep_all ? p : p % 2) * per);
        const void *git = AT(job->gi, dt, (t * N + b) * G);
        gemm(dt, FL_BLAS_NO_TRANS, FL_BLAS_TRANS, R, G, H, hprev, H, job->w, d->ldw, false, gh, G);
        switch (d->mode) {
        case FL_RNN_LSTM: {
            void *cnew = AT(wsp, dt, N * 4 * H + b * H);
            lstm_forward(dt, h, cnew, AT(wsp, dt, b * 4 * H), git, gh, job->bias, cprev, R, H);
            cprev = cnew;
            break;
        }
        case FL_RNN_GRU: gru_forward(dt, h, AT(wsp, dt, b * 4 * H), git, gh, job->bias, hprev, R, H); break;
        default: elman_forward(dt, h, git, gh, job->bias, R, H, d->mode == FL_RNN_RELU); break;
        }
        hprev = h;
    }
    if (d->mode == FL_RNN_LSTM)   /* the final cell state follows the outputs */
        memcpy(AT(job->Y, dt, d->T * NH + b * H), cprev, (size_t)(R * H) * fl_dtype_size(dt));
    free(gh);
}

/* ---------------------------------------------------------------- layers on the GPU
 *
 * The GPU runs every batch row of a step at once: per step one matrix product (fl_mm /
 * fl_addmm, on the device) and one gate kernel, all queued without a host synchronisation.
 * The products run with autograd off: the layer's own node carries the gradient. */

/* A (rows, cols) view of t's storage starting `off` elements past t's own start, rows `ld`
 * apart (cols_stride 1), or transposed (row stride 1, column stride ld) when `t_view`. */
static fl_tensor *mat_view(const fl_tensor *t, int64_t off, int64_t rows, int64_t cols, int64_t ld, bool t_view)
{
    int64_t shape[2] = {rows, cols}, strides[2] = {t_view ? 1 : ld, t_view ? ld : 1};
    return fl_tensor_view_of(t, 2, shape, strides, t->offset + off);
}

static int copy_device(void *dst, const void *src, int64_t n, fl_dtype dt)
{
    return n <= 0 ? 0 : fl_cuda_status(FL_CUDA(fl_cuda_memcpy)(dst, src, (size_t)n * fl_dtype_size(dt), FL_COPY_D2D));
}

/* The hidden bias on the device: hh's last column (stride ldw), or NULL. */
static const void *device_bias(const layer_dims *d, const fl_tensor *hh)
{
    return d->ldw == d->H + 1 ? AT(fl_tensor_data(hh), d->dt, d->H) : NULL;
}

/* The forward recurrence over the whole batch (see forward_rows for the layout of Y and ws). */
static int cuda_layer_forward(const layer_dims *d, const fl_tensor *gi, const fl_tensor *hh, const fl_tensor *s0,
                              fl_tensor *Y, fl_tensor *ws, bool keep_all)
{
    fl_dtype dt = d->dt;
    int64_t N = d->N, H = d->H, G = d->G, NH = N * H, per = ws_per_step(d->mode, N, H);
    if (N == 0 || H == 0)
        return 0;
    const void *bias = device_bias(d, hh);
    fl_tensor *wt = mat_view(hh, 0, H, G, d->ldw, true);   /* W_hhᵀ (H, G) */
    fl_tensor *hprev = wt ? mat_view(s0, 0, N, H, H, false) : NULL;
    const void *cprev = AT(fl_tensor_data(s0), dt, NH);
    int rc = hprev ? 0 : -1;
    for (int64_t p = 0; rc == 0 && p < d->T; p++) {
        int64_t t = step_time(d, p);
        void *h = AT(fl_tensor_data(Y), dt, t * NH);
        char *wsp = ws ? AT(fl_tensor_data(ws), dt, (keep_all ? p : p % 2) * per) : NULL;
        const void *git = AT(fl_tensor_data(gi), dt, t * N * G);
        fl_tensor *gh = fl_mm(hprev, wt), *ghc = gh ? fl_contiguous(gh) : NULL;
        fl_tensor_release(gh);
        if (!ghc) {
            rc = -1;
            break;
        }
        const void *ghp = fl_tensor_data(ghc);
        switch (d->mode) {
        case FL_RNN_LSTM: {
            void *cnew = AT(wsp, dt, N * 4 * H);
            rc = fl_cuda_status(FL_CUDA(fl_cuda_lstm_forward)(dt, h, cnew, wsp, git, ghp, bias, d->ldw, cprev, N, H));
            cprev = cnew;
            break;
        }
        case FL_RNN_GRU:
            rc = fl_cuda_status(FL_CUDA(fl_cuda_gru_forward)(dt, h, wsp, git, ghp, bias, d->ldw,
                                                             fl_tensor_data(hprev), N, H));
            break;
        default:
            rc = fl_cuda_status(FL_CUDA(fl_cuda_rnn_forward)(dt, h, git, ghp, bias, d->ldw, N, H,
                                                             d->mode == FL_RNN_RELU));
            break;
        }
        fl_tensor_release(ghc);
        fl_tensor_release(hprev);
        hprev = mat_view(Y, t * NH, N, H, H, false);
        if (!hprev)
            rc = -1;
    }
    if (rc == 0 && d->mode == FL_RNN_LSTM)   /* the final cell state follows the outputs */
        rc = copy_device(AT(fl_tensor_data(Y), dt, d->T * NH), cprev, NH, dt);
    fl_tensor_release(hprev);
    fl_tensor_release(wt);
    return rc;
}

/* Backpropagation through time over the whole batch: as layer_backward, with tensors. */
static int cuda_layer_backward(const layer_dims *d, const fl_tensor *g, const fl_tensor *ws, const fl_tensor *Y,
                               const fl_tensor *hh, const fl_tensor *s0, fl_tensor *dgi, fl_tensor *dhh, fl_tensor *ds0)
{
    fl_dtype dt = d->dt;
    fl_device dev = Y->storage->device;
    int64_t T = d->T, N = d->N, H = d->H, G = d->G, NH = N * H, per = ws_per_step(d->mode, N, H);
    bool gru = d->mode == FL_RNN_GRU, lstm = d->mode == FL_RNN_LSTM;
    if (H == 0)
        return 0;   /* every output is empty */
    if (N == 0)
        return dhh ? fl_fill(dhh, 0) : 0;   /* no rows: the weights get no gradient */
    int64_t gshape[3] = {T, N, G}, hshape[2] = {N, H};
    fl_tensor *dgh = gru ? fl_tensor_empty(dt, 3, gshape, dev) : fl_tensor_retain(dgi);
    fl_tensor *direct = gru && dgh ? fl_tensor_empty(dt, 2, hshape, dev) : NULL;   /* GRU: dh' z */
    fl_tensor *dcbuf[2] = {NULL, NULL};
    for (int k = 0; lstm && k < 2; k++)
        dcbuf[k] = fl_tensor_empty(dt, 2, hshape, dev);
    fl_tensor *w = mat_view(hh, 0, G, H, d->ldw, false);   /* W_hh (G, H) */
    int rc = !dgh || (gru && !direct) || (lstm && (!dcbuf[0] || !dcbuf[1])) || !w ? -1 : 0;
    fl_tensor *dh = NULL;   /* the gradient reaching h_t from later steps; NULL: none yet */
    const char *gp = fl_tensor_data(g), *wsd = ws ? fl_tensor_data(ws) : NULL;
    const void *dc = lstm ? AT(gp, dt, T * NH) : NULL;   /* the final cell state's gradient */
    for (int64_t p = T - 1; rc == 0 && p >= 0; p--) {
        int64_t t = step_time(d, p);
        const void *dy = AT(gp, dt, t * NH), *dhp = dh ? fl_tensor_data(dh) : NULL;
        const void *hprev = p == 0 ? fl_tensor_data(s0) : AT(fl_tensor_data(Y), dt, step_time(d, p - 1) * NH);
        void *dgt = AT(fl_tensor_data(dgi), dt, t * N * G), *dght = AT(fl_tensor_data(dgh), dt, t * N * G);
        switch (d->mode) {
        case FL_RNN_LSTM: {
            const void *cprev = p == 0 ? AT(fl_tensor_data(s0), dt, NH) : AT(wsd, dt, (p - 1) * per + N * 4 * H);
            void *dc_next = fl_tensor_data(dcbuf[p % 2]);
            rc = fl_cuda_status(FL_CUDA(fl_cuda_lstm_backward)(dt, dgt, dc_next, AT(wsd, dt, p * per), cprev,
                                                               AT(wsd, dt, p * per + N * 4 * H), dhp, dy, dc, N, H));
            dc = dc_next;
            break;
        }
        case FL_RNN_GRU:
            rc = fl_cuda_status(FL_CUDA(fl_cuda_gru_backward)(dt, dgt, dght, fl_tensor_data(direct),
                                                              AT(wsd, dt, p * per), hprev, dhp, dy, N, H));
            break;
        default:
            rc = fl_cuda_status(FL_CUDA(fl_cuda_rnn_backward)(dt, dgt, AT(fl_tensor_data(Y), dt, t * NH), dhp, dy, N,
                                                              H, d->mode == FL_RNN_RELU));
            break;
        }
        /* dh_prev = dgates W_hh (+ GRU's direct part) */
        fl_tensor *dgv = rc == 0 ? mat_view(dgh, t * N * G, N, G, G, false) : NULL;
        fl_tensor *next = !dgv ? NULL : gru ? fl_addmm(direct, dgv, w, 1, 1) : fl_mm(dgv, w);
        fl_tensor *nextc = next ? fl_contiguous(next) : NULL;
        fl_tensor_release(next);
        fl_tensor_release(dgv);
        fl_tensor_release(dh);
        dh = nextc;
        if (!dh)
            rc = -1;
    }
    if (rc == 0 && ds0) {
        rc = copy_device(fl_tensor_data(ds0), fl_tensor_data(dh), NH, dt);
        if (rc == 0 && lstm)
            rc = copy_device(AT(fl_tensor_data(ds0), dt, NH), dc, NH, dt);
    }
    if (rc == 0 && dhh) {
        /* dW = sum over steps of dgates_tᵀ h_prev(t), as layer_backward */
        int64_t first = step_time(d, 0), gfrom = d->reverse ? 0 : 1, yfrom = d->reverse ? 1 : 0;
        fl_tensor *a = mat_view(dgh, first * N * G, G, N, G, true), *b = a ? mat_view(s0, 0, N, H, H, false) : NULL;
        fl_tensor *dw = b ? fl_mm(a, b) : NULL;
        fl_tensor_release(a);
        fl_tensor_release(b);
        if (dw && T > 1) {
            a = mat_view(dgh, gfrom * N * G, G, (T - 1) * N, G, true);
            b = a ? mat_view(Y, yfrom * NH, (T - 1) * N, H, H, false) : NULL;
            fl_tensor *sum = b ? fl_addmm(dw, a, b, 1, 1) : NULL;
            fl_tensor_release(a);
            fl_tensor_release(b);
            fl_tensor_release(dw);
            dw = sum;
        }
        fl_tensor *dst = dw ? mat_view(dhh, 0, G, H, d->ldw, false) : NULL;
        rc = dst ? fl_copy(dst, dw) : -1;
        fl_tensor_release(dst);
        fl_tensor_release(dw);
        if (rc == 0 && d->ldw == H + 1)   /* the bias column: the gate gradients summed over steps and batch */
            rc = fl_cuda_status(FL_CUDA(fl_cuda_rnn_bias_grad)(dt, AT(fl_tensor_data(dhh), dt, H), d->ldw,
                                                               fl_tensor_data(dgh), T * N, G));
    }
    fl_tensor_release(dh);
    fl_tensor_release(w);
    fl_tensor_release(dgh);
    fl_tensor_release(direct);
    fl_tensor_release(dcbuf[0]);
    fl_tensor_release(dcbuf[1]);
    return rc;
}

fl_tensor *fl_rnn_layer(fl_rnn_mode mode, const fl_tensor *gi, const fl_tensor *hh, const fl_tensor *state0,
                         bool reverse)
{
    layer_dims d;
    if (check_layer(mode, gi, hh, state0, &d) < 0)
        return NULL;
    d.reverse = reverse;
    fl_device dev = gi->storage->device;
    bool gpu = fl_is_cuda(gi);
    const fl_tensor *ins[3] = {gi, hh, state0};
    bool grad = any_needs_grad(3, ins);
    fl_tensor *gic = fl_contiguous((fl_tensor *)gi), *hhc = gic ? fl_contiguous((fl_tensor *)hh) : NULL;
    fl_tensor *s0c = hhc ? fl_contiguous((fl_tensor *)state0) : NULL;
    int64_t yshape[3] = {d.T + (mode == FL_RNN_LSTM), d.N, d.H};
    fl_tensor *Y = s0c ? fl_tensor_empty(d.dt, 3, yshape, dev) : NULL;
    /* the workspace keeps every step for the backward; without grad two steps are used in turn */
    int64_t per = ws_per_step(mode, d.N, d.H), wsn = (grad ? d.T : 2) * per;
    fl_tensor *ws = Y && per ? fl_tensor_empty(d.dt, 1, &wsn, dev) : NULL;
    int failed = !Y || (per && !ws);
    void *bias = NULL;
    if (!failed && gpu) {
        bool grad_mode = fl_grad_enabled();
        fl_set_grad_enabled(false);
        failed = cuda_layer_forward(&d, gic, hhc, s0c, Y, ws, grad) < 0;
        fl_set_grad_enabled(grad_mode);
    } else if (!failed) {
        bias = bias_of(&d, hhc, &failed);
        layer_job job = {.d = &d, .gi = fl_tensor_data(gic), .w = fl_tensor_data(hhc), .bias = bias,
                         .s0 = fl_tensor_data(s0c), .Y = fl_tensor_data(Y), .ws = ws ? fl_tensor_data(ws) : NULL,
                         .keep_all = grad};
        if (!failed)
            split_rows(&job, forward_rows);
        if (!failed && job.failed) {
            failed = 1;
            fl_error("out of memory");
        }
    }
    if (!failed && grad) {
        fl_node *n = fl_node_new(FL_GRAD_RNN_LAYER, "fused_rnn_layer", 3, ins);
        if (n) {
            n->iargs[0] = mode;
            n->iargs[1] = reverse;
        }
        fl_tensor *save[4] = {ws, Y, hhc, s0c};
        failed = record(n, Y, save, 4) < 0;
    }
    free(bias);
    fl_tensor_release(gic);
    fl_tensor_release(hhc);
    fl_tensor_release(s0c);
    fl_tensor_release(ws);
    if (failed) {
        fl_tensor_release(Y);
        return NULL;
    }
    return Y;
}

/* Column sums of dg (rows, G) into column `col` of out (G, ld): the bias gradient. */
static void bias_grad(fl_dtype dt, void *out, int64_t ld, int64_t col, const void *dg, int64_t rows, int64_t G)
{
    if (dt == FL_DTYPE_F32) {
        float *o = out;
        const float *g = dg;
        for (int64_t k = 0; k < G; k++)
            o[k * ld + col] = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < G; k++)
                o[k * ld + col] += g[r * G + k];
    } else {
        double *o = out;
        const double *g = dg;
        for (int64_t k = 0; k < G; k++)
            o[k * ld + col] = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < G; k++)
                o[k * ld + col] += g[r * G + k];
    }
}

/* Backpropagation through time for rows [b, e): from the gradient g of Y, their rows of
 * dgi (T, N, G), dgh (GRU's hidden-side gate gradients; dgi itself for the others) and ds0
 * (when wanted). buf holds four (N, H) blocks: dh and dc of the step being processed and of
 * the one before it, used in turn. */
static void backward_rows(void *ctx, int64_t b, int64_t e)
{
    layer_job *job = ctx;
    const layer_dims *d = job->d;
    fl_dtype dt = d->dt;
    size_t es = fl_dtype_size(dt);
    int64_t T = d->T, N = d->N, H = d->H, G = d->G, NH = N * H, R = e - b, per = ws_per_step(d->mode, N, H);
    bool gru = d->mode == FL_RNN_GRU, lstm = d->mode == FL_RNN_LSTM;
    void *dh = AT(job->buf, dt, b * H), *dc = AT(job->buf, dt, NH + b * H);
    void *dh_next = AT(job->buf, dt, 2 * NH + b * H), *dc_next = AT(job->buf, dt, 3 * NH + b * H);
    if (lstm)   /* the final cell state's gradient */
        memcpy(dc, AT(job->g, dt, T * NH + b * H), (size_t)(R * H) * es);
    for (int64_t p = T - 1; p >= 0; p--) {
        int64_t t = step_time(d, p);
        const void *hprev = p == 0 ? AT(job->s0, dt, b * H) : AT(job->Y_in, dt, step_time(d, p - 1) * NH + b * H);
        const char *wsp = AT(job->ws_in, dt, p * per);
        /* dh += the gradient reaching h_t from the output */
        if (dt == FL_DTYPE_F32) {
            float *a = dh;
            const float *g = AT(job->g, dt, t * NH + b * H);
            for (int64_t k = 0; k < R * H; k++)
                a[k] += g[k];
        } else {
            double *a = dh;
            const double *g = AT(job->g, dt, t * NH + b * H);
            for (int64_t k = 0; k < R * H; k++)
                a[k] += g[k];
        }
        void *dgt = AT(job->dgi, dt, (t * N + b) * G), *dght = AT(job->dgh, dt, (t * N + b) * G);
        switch (d->mode) {
        case FL_RNN_LSTM: {
            const void *cprev = p == 0 ? AT(job->s0, dt, NH + b * H) : AT(job->ws_in, dt, (p - 1) * per + N * 4 * H + b * H);
            lstm_backward(dt, dgt, dc_next, AT(wsp, dt, b * 4 * H), cprev, AT(wsp, dt, N * 4 * H + b * H), dh, dc, R, H);
            break;
        }
        case FL_RNN_GRU: gru_backward(dt, dgt, dght, dh_next, AT(wsp, dt, b * 4 * H), hprev, dh, R, H); break;
        default: elman_backward(dt, dgt, AT(job->Y_in, dt, t * NH + b * H), dh, R, H, d->mode == FL_RNN_RELU); break;
        }
        /* dh_prev = dgates W_hh (+ GRU's direct part, already in dh_next) */
        gemm(dt, FL_BLAS_NO_TRANS, FL_BLAS_NO_TRANS, R, H, G, dght, G, job->w, d->ldw, gru, dh_next, H);
        void *swap = dh;
        dh = dh_next;
        dh_next = swap;
        swap = dc;
        dc = dc_next;
        dc_next = swap;
    }
    if (job->ds0) {
        memcpy(AT(job->ds0, dt, b * H), dh, (size_t)(R * H) * es);
        if (lstm)
            memcpy(AT(job->ds0, dt, NH + b * H), dc, (size_t)(R * H) * es);
    }
}

/* Backpropagation through time. g is the gradient of Y; fills dgi (T, N, G), and dhh
 * (G, ldw) and ds0 (state0's shape) when not NULL. */
static int layer_backward(const layer_dims *d, const void *g, const void *ws, const void *Y, const void *w,
                          const void *s0, void *dgi, void *dhh, void *ds0)
{
    fl_dtype dt = d->dt;
    size_t es = fl_dtype_size(dt);
    int64_t T = d->T, N = d->N, H = d->H, G = d->G, NH = N * H;
    bool gru = d->mode == FL_RNN_GRU;
    /* GRU's hidden-side gate gradients differ from the input side's (the n gate's is scaled
     * by r); the other cells share one */
    void *dgh = gru ? malloc((size_t)(T * N * G > 0 ? T * N * G : 1) * es) : dgi;
    void *buf = calloc((size_t)(NH > 0 ? 4 * NH : 1), es);
    if (!dgh || !buf) {
        if (gru)
            free(dgh);
        free(buf);
        fl_error("out of memory");
        return -1;
    }
    layer_job job = {.d = d, .g = g, .ws_in = ws, .Y_in = Y, .w = w, .s0 = s0, .dgi = dgi, .dgh = dgh,
                     .buf = buf, .ds0 = ds0};
    split_rows(&job, backward_rows);
    if (dhh) {
        /* dW = sum over steps of dgates_tᵀ h_prev(t): the first step processed reads state0,
         * the others read Y at the neighbouring time, which lies in one block */
        int64_t first = step_time(d, 0);
        gemm(dt, FL_BLAS_TRANS, FL_BLAS_NO_TRANS, G, H, N, AT(dgh, dt, first * N * G), G, s0, H, false, dhh, d->ldw);
        if (T > 1) {
            int64_t gfrom = d->reverse ? 0 : 1, yfrom = d->reverse ? 1 : 0;
            gemm(dt, FL_BLAS_TRANS, FL_BLAS_NO_TRANS, G, H, (T - 1) * N, AT(dgh, dt, gfrom * N * G), G,
                 AT(Y, dt, yfrom * NH), H, true, dhh, d->ldw);
        }
        if (d->ldw == H + 1)   /* the bias column: the gate gradients summed over steps and batch */
            bias_grad(dt, dhh, d->ldw, H, dgh, T * N, G);
    }
    if (gru)
        free(dgh);
    free(buf);
    return 0;
}

/* saved: ws (NULL for the Elman modes), Y, hh, state0 */
static int rnn_layer_backward(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *ws = n->saved[0], *Y = n->saved[1], *hh = n->saved[2], *s0 = n->saved[3];
    layer_dims d;
    d.mode = (fl_rnn_mode)n->iargs[0];
    d.reverse = n->iargs[1];
    d.dt = Y->dtype;
    d.N = Y->shape[1];
    d.H = Y->shape[2];
    d.T = Y->shape[0] - (d.mode == FL_RNN_LSTM);
    d.G = gates_of(d.mode) * d.H;
    d.ldw = hh->shape[1];
    int64_t gshape[3] = {d.T, d.N, d.G};
    fl_device dev = Y->storage->device;
    fl_tensor *gc = grad_as(g, d.dt);
    fl_tensor *dgi = gc ? fl_tensor_empty(d.dt, 3, gshape, dev) : NULL;
    fl_tensor *dhh = dgi && n->next[1] ? fl_tensor_empty(d.dt, 2, hh->shape, dev) : NULL;
    fl_tensor *ds0 = dgi && n->next[2] ? fl_tensor_empty(d.dt, s0->ndim, s0->shape, dev) : NULL;
    int rc = -1;
    bool ready = dgi && (dhh || !n->next[1]) && (ds0 || !n->next[2]);
    if (ready && fl_is_cuda(Y)) {
        bool grad_mode = fl_grad_enabled();
        fl_set_grad_enabled(false);
        rc = cuda_layer_backward(&d, gc, ws, Y, hh, s0, dgi, dhh, ds0);
        fl_set_grad_enabled(grad_mode);
    } else if (ready)
        rc = layer_backward(&d, fl_tensor_data(gc), ws ? fl_tensor_data(ws) : NULL, fl_tensor_data(Y),
                            fl_tensor_data(hh), fl_tensor_data(s0), fl_tensor_data(dgi),
                            dhh ? fl_tensor_data(dhh) : NULL, ds0 ? fl_tensor_data(ds0) : NULL);
    if (rc == 0) {
        grads[0] = fl_tensor_retain(dgi);
        grads[1] = dhh ? fl_tensor_retain(dhh) : NULL;
        grads[2] = ds0 ? fl_tensor_retain(ds0) : NULL;
    }
    fl_tensor_release(gc);
    fl_tensor_release(dgi);
    fl_tensor_release(dhh);
    fl_tensor_release(ds0);
    return rc;
}

int fl_rnn_backward(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    switch (n->rule) {
    case FL_GRAD_LSTM_CELL: return lstm_cell_backward(n, g, grads);
    case FL_GRAD_GRU_CELL: return gru_cell_backward(n, g, grads);
    case FL_GRAD_RNN_LAYER: return rnn_layer_backward(n, g, grads);
    default:
        fl_error("no backward rule for '%s'", n->name);
        return -1;
    }
}
