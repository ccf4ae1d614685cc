/* pool.c: max_pool1d/2d, avg_pool2d and adaptive_avg_pool2d, forward and backward. Planes
 * (one channel of one image) are independent, so the kernels run over ranges of planes on
 * the pool. Max pooling keeps the argmax of each window for its backward; the average
 * poolings need only the shapes. Output sizes and checks follow PyTorch's. CUDA tensors run
 * the same passes as kernels of kernels/cuda/pool.cu. */
#include "nn.h"
#include "autograd.h"
#include "cuda.h"
#include "../kernels/cpu/pool.h"
#include "../kernels/cuda/pool.h"

#include <stdio.h>

typedef enum { POOL_MAX, POOL_AVG, POOL_ADAPTIVE } pool_kind;

/* One pass over planes: forward (dst = output, src = input) or backward (dst = input
 * gradient, src = output gradient). */
typedef struct {
    pool_kind kind;
    bool backward;
    fl_dtype dt;
    char *dst;
    const char *src;
    int64_t *idx;            /* max: written forward, read backward */
    fl_conv_geom geom;       /* plane (h, w), window, output (oh, ow) */
    int64_t base;
    int count_include_pad;
    int64_t divisor;
    bool cuda;               /* dst and src are device pointers */
} pool_job;

static void run_planes(void *ctx, int64_t p0, int64_t p1)
{
    const pool_job *j = ctx;
    const fl_conv_geom *g = &j->geom;
    size_t es = fl_dtype_size(j->dt);
    int64_t hw = g->h * g->w, ohw = g->oh * g->ow, np = p1 - p0;
    bool f32 = j->dt == FL_DTYPE_F32;
    int64_t *idx = j->idx ? j->idx + p0 * ohw : NULL;
    if (!j->backward) {
        char *out = j->dst + (size_t)(p0 * ohw) * es;
        const char *in = j->src + (size_t)(p0 * hw) * es;
        if (j->kind == POOL_MAX && f32)
            fl_cpu_max_pool2d_f32((float *)out, idx, (const float *)in, np, g, j->base);
        else if (j->kind == POOL_MAX)
            fl_cpu_max_pool2d_f64((double *)out, idx, (const double *)in, np, g, j->base);
        else if (j->kind == POOL_AVG && f32)
            fl_cpu_avg_pool2d_f32((float *)out, (const float *)in, np, g, j->count_include_pad, j->divisor);
        else if (j->kind == POOL_AVG)
            fl_cpu_avg_pool2d_f64((double *)out, (const double *)in, np, g, j->count_include_pad, j->divisor);
        else if (f32)
            fl_cpu_adaptive_avg_pool2d_f32((float *)out, (const float *)in, np, g->h, g->w, g->oh, g->ow);
        else
            fl_cpu_adaptive_avg_pool2d_f64((double *)out, (const double *)in, np, g->h, g->w, g->oh, g->ow);
        return;
    }
    char *gin = j->dst + (size_t)(p0 * hw) * es;
    const char *gout = j->src + (size_t)(p0 * ohw) * es;
    if (j->kind == POOL_MAX && f32)
        fl_cpu_max_pool2d_backward_f32((float *)gin, (const float *)gout, idx, np, hw, ohw, j->base);
    else if (j->kind == POOL_MAX)
        fl_cpu_max_pool2d_backward_f64((double *)gin, (const double *)gout, idx, np, hw, ohw, j->base);
    else if (j->kind == POOL_AVG && f32)
        fl_cpu_avg_pool2d_backward_f32((float *)gin, (const float *)gout, np, g, j->count_include_pad, j->divisor);
    else if (j->kind == POOL_AVG)
        fl_cpu_avg_pool2d_backward_f64((double *)gin, (const double *)gout, np, g, j->count_include_pad, j->divisor);
    else if (f32)
        fl_cpu_adaptive_avg_pool2d_backward_f32((float *)gin, (const float *)gout, np, g->h, g->w, g->oh, g->ow);
    else
        fl_cpu_adaptive_avg_pool2d_backward_f64((double *)gin, (const double *)gout, np, g->h, g->w, g->oh, g->ow);
}

/* The pass of j on the GPU. */
static int run_cuda(const pool_job *j, int64_t planes)
{
    const fl_conv_geom *g = &j->geom;
    int rc;
    if (!j->backward && j->kind == POOL_MAX)
        rc = FL_CUDA(fl_cuda_max_pool2d)(j->dt, j->dst, j->idx, j->src, planes, g, j->base);
    else if (!j->backward && j->kind == POOL_AVG)
        rc = FL_CUDA(fl_cuda_avg_pool2d)(j->dt, j->dst, j->src, planes, g, j->count_include_pad, j->divisor);
    else if (!j->backward)
        rc = FL_CUDA(fl_cuda_adaptive_avg_pool2d)(j->dt, j->dst, j->src, planes, g->h, g->w, g->oh, g->ow);
    else if (j->kind == POOL_MAX)
        rc = FL_CUDA(fl_cuda_max_pool2d_backward)(j->dt, j->dst, j->src, j->idx, planes, g->h * g->w,
                                                  g->oh * g->ow, j->base);
    else if (j->kind == POOL_AVG)
        rc = FL_CUDA(fl_cuda_avg_pool2d_backward)(j->dt, j->dst, j->src, planes, g, j->count_include_pad, j->divisor);
    else
        rc = FL_CUDA(fl_cuda_adaptive_avg_pool2d_backward)(j->dt, j->dst, j->src, planes, g->h, g->w, g->oh, g->ow);
    return fl_cuda_status(rc);
}

static int run_job(pool_job *j, int64_t planes)
{
    if (j->cuda)
        return planes > 0 ? run_cuda(j, planes) : 0;
    int64_t work = j->geom.h * j->geom.w + j->geom.oh * j->geom.ow;
    int64_t grain = work > 0 ? 32768 / work : planes;
    if (planes > 0)
        fl_parallel_for(planes, grain < 1 ? 1 : grain, run_planes, j);
    return 0;
}

/* ---------------------------------------------------------------- shapes */

static int64_t pack2(int64_t hi, int64_t lo) { return hi << 32 | lo; }
static void unpack2(int64_t v, int64_t out[2])
{
    out[0] = v >> 32;
    out[1] = v & 0xffffffff;
}

/* PyTorch's pooling output size (floor division; with ceil_mode the last window must
 * start inside the input or its left padding). */
static int64_t pool_out(int64_t in, int64_t k, int64_t pad, int64_t s, int64_t d, bool ceil_mode)
{
    int64_t num = in + 2 * pad - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    int64_t o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil_mode && (o - 1) * s >= in + pad)
        o--;
    return o;
}

/* Checks x's dtype and dims (sd spatial dims, an optional batch dim before the channels). */
static int check_input(const fl_tensor *x, int sd)
{
    char b[160];
    if (x->dtype != FL_DTYPE_F32 && x->dtype != FL_DTYPE_F64) {
        fl_error("expected a float32 or float64 input, got %s", fl_dtype_name(x->dtype));
        return -1;
    }
    if (x->ndim != sd + 1 && x->ndim != sd + 2) {
        fl_error("expected a %d-D (unbatched) or %d-D (batched) input, got shape %s", sd + 1, sd + 2,
                 fl_shape_str(b, sizeof b, x->ndim, x->shape));
        return -1;
    }
    for (int d = x->ndim - sd; d < x->ndim; d++)
        if (x->shape[d] == 0) {
            fl_error("expected an input with non-zero spatial size, got shape %s", fl_shape_str(b, sizeof b, x->ndim, x->shape));
            return -1;
        }
    return 0;
}

static const char *pair_str(char *buf, size_t len, int sd, const int64_t v[2])
{
    if (sd == 1)
        snprintf(buf, len, "%lld", (long long)v[1]);
    else
        snprintf(buf, len, "(%lld, %lld)", (long long)v[0], (long long)v[1]);
    return buf;
}

/* The window geometry of a pooling with sd spatial dims (options' entry 0 is the one dim
 * of a 1-d pooling); fills the output shape. */
static int pool_setup(fl_conv_geom *g, int64_t *oshape, const fl_tensor *x, const fl_pool_opts *o, int sd,
                      bool dilated)
{
    if (check_input(x, sd) < 0)
        return -1;
    int64_t k[2], s[2], p[2], d[2] = {1, 1}, in[2], out[2];
    for (int i = 0; i < 2; i++) {
        int j = sd == 2 ? i : 0;
        bool unit = sd == 1 && i == 0;   /* the height of a 1-d pooling */
        k[i] = unit ? 1 : o->kernel[j];
        s[i] = unit ? 1 : o->stride[j];
        p[i] = unit ? 0 : o->padding[j];
        if (dilated)
            d[i] = unit ? 1 : o->dilation[j];
        in[i] = sd == 2 || i == 1 ? x->shape[x->ndim - 2 + i] : 1;
    }
    char b1[64], b2[64], b3[160];
    for (int i = 0; i < 2; i++) {
        const char *what = k[i] < 1 ? "kernel size" : s[i] < 1 ? "stride" : d[i] < 1 ? "dilation" : NULL;
        if (what) {
            fl_error("expected a positive %s, got %lld", what, (long long)(k[i] < 1 ? k[i] : s[i] < 1 ? s[i] : d[i]));
            return -1;
        }
        if (k[i] > INT32_MAX || s[i] > INT32_MAX || d[i] > INT32_MAX || p[i] > INT32_MAX) {
            fl_error("kernel size, stride, padding and dilation must be below 2^31");
            return -1;
        }
        if (p[i] < 0 || p[i] > k[i] / 2) {
            fl_error("padding must be between 0 and half the kernel size, got padding %s for kernel size %s",
                     pair_str(b1, sizeof b1, sd, p), pair_str(b2, sizeof b2, sd, k));
            return -1;
        }
        out[i] = pool_out(in[i], k[i], p[i], s[i], d[i], o->ceil_mode);
    }
    if (out[0] < 1 || out[1] < 1) {
        fl_error("the output size would be %s for input of shape %s: the kernel is too large",
                 pair_str(b1, sizeof b1, sd, out), fl_shape_str(b3, sizeof b3, x->ndim, x->shape));
        return -1;
    }
    *g = (fl_conv_geom){.c = 1, .h = in[0], .w = in[1], .kh = k[0], .kw = k[1], .sh = s[0], .sw = s[1],
                        .dh = d[0], .dw = d[1], .ph = p[0], .pw = p[1], .oh = out[0], .ow = out[1]};
    for (int i = 0; i < x->ndim - sd; i++)
        oshape[i] = x->shape[i];
    oshape[x->ndim - 1] = out[1];
    if (sd == 2)
        oshape[x->ndim - 2] = out[0];
    return 0;
}

static int64_t planes_of(const fl_tensor *x, int sd)
{
    int64_t n = 1;
    for (int i = 0; i < x->ndim - sd; i++)
        n *= x->shape[i];
    return n;
}

/* Records node on out (saving `save` if not NULL); releases out and returns -1 on failure. */
static int record(fl_node *node, fl_tensor *out, const fl_tensor *save)
{
    if (!node || (save && fl_node_save(node, 0, save) < 0)) {
        fl_node_release(node);
        return -1;
    }
    fl_node_attach(node, out);
    return 0;
}

/* ---------------------------------------------------------------- ops */

static int max_pool(const char *name, int sd, const fl_tensor *x, const fl_pool_opts *o, int64_t base,
                    fl_tensor **out, fl_tensor **indices)
{
    fl_conv_geom g;
    int64_t oshape[FL_MAX_DIMS];
    *out = NULL;
    if (indices)
        *indices = NULL;
    if (pool_setup(&g, oshape, x, o, sd, true) < 0)
        return -1;
    fl_tensor *xc = fl_contiguous((fl_tensor *)x);
    fl_tensor *y = xc ? fl_tensor_empty(x->dtype, x->ndim, oshape, x->storage->device) : NULL;
    fl_tensor *idx = y ? fl_tensor_empty(FL_DTYPE_I64, x->ndim, oshape, x->storage->device) : NULL;
    int rc = idx ? 0 : -1;
    if (rc == 0) {
        pool_job j = {.kind = POOL_MAX, .dt = x->dtype, .dst = fl_tensor_data(y), .src = fl_tensor_data(xc),
                      .idx = fl_tensor_data(idx), .geom = g, .base = base, .cuda = fl_is_cuda(x)};
        rc = run_job(&j, planes_of(x, sd));
    }
    if (rc == 0 && fl_needs_grad(x)) {
        fl_node *node = fl_node_new(FL_GRAD_MAX_POOL, name, 1, &x);
        if (node) {
            node->iargs[0] = base;
            node->iargs[1] = g.h * g.w;
        }
        rc = record(node, y, idx);
    }
    fl_tensor_release(xc);
    if (rc < 0) {
        fl_tensor_release(y);
        fl_tensor_release(idx);
        return -1;
    }
    *out = y;
    if (indices)
        *indices = idx;
    else
        fl_tensor_release(idx);
    return 0;
}

int fl_max_pool1d(const fl_tensor *x, const fl_pool_opts *o, int64_t base, fl_tensor **out, fl_tensor **indices)
{
    return max_pool("max_pool1d", 1, x, o, base, out, indices);
}

int fl_max_pool2d(const fl_tensor *x, const fl_pool_opts *o, int64_t base, fl_tensor **out, fl_tensor **indices)
{
    return max_pool("max_pool2d", 2, x, o, base, out, indices);
}

fl_tensor *fl_avg_pool2d(const fl_tensor *x, const fl_pool_opts *o)
{
    fl_conv_geom g;
    int64_t oshape[FL_MAX_DIMS];
    if (pool_setup(&g, oshape, x, o, 2, false) < 0)
        return NULL;
    if (o->divisor_override < 0 || o->divisor_override > INT32_MAX) {
        fl_error("expected a positive divisor_override, got %lld", (long long)o->divisor_override);
        return NULL;
    }
    fl_tensor *xc = fl_contiguous((fl_tensor *)x);
    fl_tensor *y = xc ? fl_tensor_empty(x->dtype, x->ndim, oshape, x->storage->device) : NULL;
    int rc = y ? 0 : -1;
    if (rc == 0) {
        pool_job j = {.kind = POOL_AVG, .dt = x->dtype, .dst = fl_tensor_data(y), .src = fl_tensor_data(xc),
                      .geom = g, .count_include_pad = o->count_include_pad, .divisor = o->divisor_override,
                      .cuda = fl_is_cuda(x)};
        rc = run_job(&j, planes_of(x, 2));
    }
    if (rc == 0 && fl_needs_grad(x)) {
        fl_node *node = fl_node_new(FL_GRAD_AVG_POOL, "avg_pool2d", 1, &x);
        if (node) {
            node->iargs[0] = pack2(g.kh, g.kw);
            node->iargs[1] = pack2(g.sh, g.sw);
            node->iargs[2] = pack2(g.ph, g.pw);
            node->iargs[3] = (o->count_include_pad ? 1 : 0) | o->divisor_override << 1;
        }
        rc = record(node, y, NULL);
    }
    fl_tensor_release(xc);
    if (rc < 0) {
        fl_tensor_release(y);
        return NULL;
    }
    return y;
}

fl_tensor *fl_adaptive_avg_pool2d(const fl_tensor *x, int64_t oh, int64_t ow)
{
    if (check_input(x, 2) < 0)
        return NULL;
    if (oh < 0 || ow < 0) {
        fl_error("expected a non-negative output size, got (%lld, %lld)", (long long)oh, (long long)ow);
        return NULL;
    }
    int64_t oshape[FL_MAX_DIMS];
    for (int i = 0; i < x->ndim - 2; i++)
        oshape[i] = x->shape[i];
    oshape[x->ndim - 2] = oh;
    oshape[x->ndim - 1] = ow;
    fl_tensor *xc = fl_contiguous((fl_tensor *)x);
    fl_tensor *y = xc ? fl_tensor_empty(x->dtype, x->ndim, oshape, x->storage->device) : NULL;
    int rc = y ? 0 : -1;
    if (rc == 0) {
        pool_job j = {.kind = POOL_ADAPTIVE, .dt = x->dtype, .dst = fl_tensor_data(y), .src = fl_tensor_data(xc),
                      .geom = {.h = x->shape[x->ndim - 2], .w = x->shape[x->ndim - 1], .oh = oh, .ow = ow},
                      .cuda = fl_is_cuda(x)};
        if (y->numel > 0)
            rc = run_job(&j, planes_of(x, 2));
    }
    if (rc == 0 && fl_needs_grad(x))
        rc = record(fl_node_new(FL_GRAD_ADAPTIVE_AVG_POOL, "adaptive_avg_pool2d", 1, &x), y, NULL);
    fl_tensor_release(xc);
    if (rc < 0) {
        fl_tensor_release(y);
        return NULL;
    }
    return y;
}

/* ---------------------------------------------------------------- backward */

int fl_pool_backward(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    int nd = n->in_ndim[0];
    const int64_t *ishape = n->in_shape[0];
    fl_dtype dt = n->in_dtype[0];
    fl_tensor *gc = g->dtype == dt ? fl_contiguous((fl_tensor *)g) : fl_cast(g, dt);
    fl_tensor *gx = gc ? fl_tensor_empty(dt, nd, ishape, g->storage->device) : NULL;
    if (!gx) {
        fl_tensor_release(gc);
        return -1;
    }
    pool_job j = {.backward = true, .dt = dt, .dst = fl_tensor_data(gx), .src = fl_tensor_data(gc),
                  .cuda = fl_is_cuda(gx)};
    int64_t planes = 1;
    if (n->rule == FL_GRAD_MAX_POOL) {
        /* planes of hw input and ohw output elements, whatever the spatial dims */
        int64_t hw = n->iargs[1];
        planes = gx->numel / hw;
        j.kind = POOL_MAX;
        j.idx = fl_tensor_data(n->saved[0]);
        j.base = n->iargs[0];
        j.geom = (fl_conv_geom){.h = 1, .w = hw, .oh = 1, .ow = planes ? g->numel / planes : 0};
    } else {
        for (int i = 0; i < nd - 2; i++)
            planes *= ishape[i];
        j.geom.h = ishape[nd - 2];
        j.geom.w = ishape[nd - 1];
        j.geom.oh = g->shape[nd - 2];
        j.geom.ow = g->shape[nd - 1];
        j.kind = n->rule == FL_GRAD_AVG_POOL ? POOL_AVG : POOL_ADAPTIVE;
        if (j.kind == POOL_AVG) {
            int64_t v[2];
            unpack2(n->iargs[0], v);
            j.geom.kh = v[0], j.geom.kw = v[1];
            unpack2(n->iargs[1], v);
            j.geom.sh = v[0], j.geom.sw = v[1];
            unpack2(n->iargs[2], v);
            j.geom.ph = v[0], j.geom.pw = v[1];
            j.count_include_pad = (int)(n->iargs[3] & 1);
            j.divisor = n->iargs[3] >> 1;
        }
    }
    int rc = 0;
    if (gx->numel > 0 && g->numel > 0)
        rc = run_job(&j, planes);
    else if (gx->numel > 0)
        rc = fl_fill(gx, 0);
    fl_tensor_release(gc);
    if (rc < 0) {
        fl_tensor_release(gx);
        return -1;
    }
    grads[0] = gx;
    return 0;
}
