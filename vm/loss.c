/* loss.c: fused softmax / log-softmax and the losses, forward and backward. Fused because
 * composing them from exp/sum/log loses precision or overflows for large logits; each
 * backward is the closed form (softmax - one_hot and friends). CUDA tensors go to the
 * kernels of kernels/cuda/loss.cu, which take the same contiguous inputs. */
#include "loss.h"
#include "autograd.h"
#include "cuda.h"
#include "../kernels/cpu/softmax.h"
#include "../kernels/cuda/loss.h"
#include "../kernels/cuda/reduce.h"

#include <math.h>
#include <stdlib.h>

static int check_float(const char *what, const fl_tensor *t)
{
    if (!fl_dtype_is_float(t->dtype)) {
        fl_error("expected a floating point %s, got %s", what, fl_dtype_name(t->dtype));
        return -1;
    }
    return 0;
}

/* (outer, n, inner) around dimension dim. */
static void split_at(const fl_tensor *t, int dim, int64_t *outer, int64_t *n, int64_t *inner)
{
    *outer = *inner = 1;
    *n = t->ndim ? t->shape[dim] : 1;
    for (int d = 0; d < dim; d++)
        *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++)
        *inner *= t->shape[d];
}

/* Fails unless every tensor given (NULLs skipped) is on a's device. */
static int check_devices(const fl_tensor *a, const fl_tensor *b, const fl_tensor *c, const fl_tensor *d)
{
    const fl_tensor *ts[3] = {b, c, d};
    for (int i = 0; i < 3; i++)
        if (ts[i] && ts[i]->storage->device.type != a->storage->device.type) {
            fl_error("expected all tensors on the same device, got %s and %s", fl_is_cuda(a) ? "cuda" : "cpu",
                     fl_is_cuda(ts[i]) ? "cuda" : "cpu");
            return -1;
        }
    return 0;
}

/* The sum of the contiguous per-position losses (over total for the mean), on the device. */
static fl_tensor *reduce_result_cuda(const fl_tensor *per, double total, fl_reduction red)
{
    fl_tensor *out = fl_tensor_empty(per->dtype, 0, NULL, per->storage->device);
    fl_cuda_rplan pl = {.x = fl_tensor_data(per), .dt = per->dtype, .n_inner = 1, .n_red = per->numel, .sr = 1,
                        .n_out = 1};
    if (out && fl_cuda_status(FL_CUDA(fl_cuda_reduce)(FL_RK_SUM, &pl, NULL, 0,
                                                       red == FL_REDUCE_MEAN ? FL_RPOST_DIV : FL_RPOST_NONE,
                                                       (double)per->numel, total, per->dtype, fl_tensor_data(out))) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return out;
}

static fl_tensor *reduce_result(const fl_tensor *per, double total, fl_reduction red)
{
    if (red == FL_REDUCE_NONE)
        return fl_tensor_retain((fl_tensor *)per);
    if (fl_is_cuda(per))
        return reduce_result_cuda(per, total, red);
    double s = 0;
    const void *p = fl_tensor_data(per);
    for (int64_t i = 0; i < per->numel; i++)
        s += fl_load_f64(per->dtype, p, i);
    return fl_scalar_tensor(red == FL_REDUCE_MEAN ? s / total : s, per->dtype, FL_CPU);
}

static int attach(fl_node *n, fl_tensor *out, const fl_tensor *const *save, int nsave)
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

/* ---------------------------------------------------------------- softmax */

fl_tensor *fl_softmax(const fl_tensor *x, int dim, bool log)
{
    if (check_float("input", x) < 0)
        return NULL;
    fl_tensor *xc = fl_contiguous((fl_tensor *)x);
    fl_tensor *y = xc ? fl_tensor_empty(x->dtype, x->ndim, x->shape, x->storage->device) : NULL;
    if (y) {
        int64_t outer, n, inner;
        split_at(x, dim, &outer, &n, &inner);
        if (fl_is_cuda(y)) {
            if (fl_cuda_status(FL_CUDA(fl_cuda_softmax)(x->dtype, fl_tensor_data(y), fl_tensor_data(xc), outer, n,
                                                         inner, log)) < 0) {
                fl_tensor_release(y);
                y = NULL;
            }
        } else if (x->dtype == FL_DTYPE_F32)
            fl_cpu_softmax_f32(fl_tensor_data(y), fl_tensor_data(xc), outer, n, inner, log);
        else
            fl_cpu_softmax_f64(fl_tensor_data(y), fl_tensor_data(xc), outer, n, inner, log);
    }
    fl_tensor_release(xc);
    if (y && fl_needs_grad(x)) {
        fl_node *node = fl_node_new(FL_GRAD_SOFTMAX, log ? "log_softmax" : "softmax", 1, &x);
        if (node) {
            node->iargs[0] = dim;
            node->iargs[1] = log;
        }
        const fl_tensor *save[1] = {y};
        if (attach(node, y, save, 1) < 0) {
            fl_tensor_release(y);
            return NULL;
        }
    }
    return y;
}

static int softmax_backward(fl_node *node, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *y = node->saved[0];
    fl_tensor *gc = fl_cast(g, y->dtype), *gcc = gc ? fl_contiguous(gc) : NULL;
    fl_tensor *gx = gcc ? fl_tensor_empty(y->dtype, y->ndim, y->shape, y->storage->device) : NULL;
    if (gx) {
        int64_t outer, n, inner;
        split_at(y, (int)node->iargs[0], &outer, &n, &inner);
        if (fl_is_cuda(gx)) {
            if (fl_cuda_status(FL_CUDA(fl_cuda_softmax_backward)(y->dtype, fl_tensor_data(gx), fl_tensor_data(gcc),
                                                                  fl_tensor_data(y), outer, n, inner,
                                                                  (int)node->iargs[1])) < 0) {
                fl_tensor_release(gx);
                gx = NULL;
            }
        } else if (y->dtype == FL_DTYPE_F32)
            fl_cpu_softmax_backward_f32(fl_tensor_data(gx), fl_tensor_data(gcc), fl_tensor_data(y), outer, n, inner, (int)node->iargs[1]);
        else
            fl_cpu_softmax_backward_f64(fl_tensor_data(gx), fl_tensor_data(gcc), fl_tensor_data(y), outer, n, inner, (int)node->iargs[1]);
    }
    fl_tensor_release(gc);
    fl_tensor_release(gcc);
    grads[0] = gx;
    return gx ? 0 : -1;
}

/* ---------------------------------------------------------------- class-index losses */

/* Checks logits (N, C, d...) / (C) against target (N, d...) / (); fills the layout. */
static int check_class_shapes(const fl_tensor *x, const fl_tensor *target, const fl_tensor *weight,
                              int64_t *outer, int64_t *n, int64_t *inner)
{
    char b1[160], b2[160];
    if (check_float("input", x) < 0)
        return -1;
    if (target->dtype != FL_DTYPE_I64 && target->dtype != FL_DTYPE_I32 && target->dtype != FL_DTYPE_U8) {
        fl_error("expected class indices of an integer type as target, got %s", fl_dtype_name(target->dtype));
        return -1;
    }
    if (x->ndim == 0) {
        fl_error("expected input of shape (C) or (N, C, ...), got a 0-dim tensor");
        return -1;
    }
    bool ok = x->ndim == 1 ? target->ndim == 0 : target->ndim == x->ndim - 1;
    for (int d = 0, e = 0; ok && x->ndim > 1 && d < x->ndim; d++) {
        if (d == 1)
            continue;
        ok = target->shape[e++] == x->shape[d];
    }
    if (!ok) {
        fl_error("target of shape %s does not match input of shape %s (expected the input's shape without its class dimension 2)",
                 fl_shape_str(b1, sizeof b1, target->ndim, target->shape), fl_shape_str(b2, sizeof b2, x->ndim, x->shape));
        return -1;
    }
    if (x->ndim == 1)
        *outer = 1, *n = x->shape[0], *inner = 1;
    else
        split_at(x, 1, outer, n, inner);
    if (weight && (weight->ndim != 1 || weight->shape[0] != *n)) {
        fl_error("expected a class weight of shape [%lld], got %s", (long long)*n,
                 fl_shape_str(b1, sizeof b1, weight->ndim, weight->shape));
        return -1;
    }
    return 0;
}

typedef struct {
    fl_tensor *x, *target, *weight;   /* contiguous: x its own dtype, target int64, weight float64 */
} class_inputs;

static void class_inputs_release(class_inputs *c)
{
    fl_tensor_release(c->x);
    fl_tensor_release(c->target);
    fl_tensor_release(c->weight);
}

static int class_inputs_make(class_inputs *c, const fl_tensor *x, const fl_tensor *target, const fl_tensor *weight)
{
    fl_tensor *t64 = fl_cast(target, FL_DTYPE_I64);
    c->x = fl_contiguous((fl_tensor *)x);
    c->target = t64;
    c->weight = weight ? fl_cast(weight, FL_DTYPE_F64) : NULL;
    if (!c->x || !c->target || (weight && !c->weight)) {
        class_inputs_release(c);
        return -1;
    }
    return 0;
}

static void fill_ce_args(fl_ce_args *a, const class_inputs *c, int64_t base, int64_t ignore, double smoothing)
{
    a->target = fl_tensor_data(c->target);
    a->base = base;
    a->ignore_index = ignore;
    a->weight = c->weight ? fl_tensor_data(c->weight) : NULL;
    a->smoothing = smoothing;
}

static fl_tensor *class_loss(const fl_tensor *x, const fl_tensor *target, const fl_tensor *weight,
                             int64_t ignore, double smoothing, fl_reduction red, int64_t base, bool nll)
{
    int64_t outer, n, inner;
    if (check_class_shapes(x, target, weight, &outer, &n, &inner) < 0 || check_devices(x, target, weight, NULL) < 0)
        return NULL;
    if (smoothing < 0 || smoothing > 1) {
        fl_error("label_smoothing must be in [0, 1], got %g", smoothing);
        return NULL;
    }
    class_inputs c;
    if (class_inputs_make(&c, x, target, weight) < 0)
        return NULL;
    fl_ce_args a;
    fill_ce_args(&a, &c, base, ignore, smoothing);
    fl_tensor *per = fl_tensor_empty(x->dtype, target->ndim, target->shape, x->storage->device);
    double tw = 0;
    int64_t bad = 0;
    if (per && fl_is_cuda(per)) {
        /* waits for the device: the total weight and the targets' check come back */
        if (fl_cuda_status(FL_CUDA(fl_cuda_class_loss)(nll, x->dtype, fl_tensor_data(per), fl_tensor_data(c.x), outer, n,
                                                        inner, &a, &tw, &bad)) < 0) {
            fl_tensor_release(per);
            per = NULL;
        }
    } else if (per && nll) {
        const void *xp = fl_tensor_data(c.x);
        void *lp = fl_tensor_data(per);
        for (int64_t o = 0; o < outer && !bad; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t pos = o * inner + i, raw = a.target[pos], t = raw - base;
                if (raw == ignore) {
                    fl_store_f64(per->dtype, lp, pos, 0);
                    continue;
                }
                if (t < 0 || t >= n) {
                    bad = -1 - pos;
                    break;
                }
                double w = a.weight ? a.weight[t] : 1;
                fl_store_f64(per->dtype, lp, pos, -w * fl_load_f64(x->dtype, xp, (o * n + t) * inner + i));
                tw += w;
            }
    } else if (per) {
        bad = x->dtype == FL_DTYPE_F32
                  ? fl_cpu_cross_entropy_f32(fl_tensor_data(per), &tw, fl_tensor_data(c.x), outer, n, inner, &a)
                  : fl_cpu_cross_entropy_f64(fl_tensor_data(per), &tw, fl_tensor_data(c.x), outer, n, inner, &a);
    }
    fl_tensor *out = NULL;
    if (per && bad) {
        int64_t pos = -1 - bad, raw = 0;
        if (!fl_is_cuda(c.target))
            raw = a.target[pos];
        else if (fl_cuda_status(FL_CUDA(fl_cuda_memcpy)(&raw, a.target + pos, sizeof raw, FL_COPY_D2H)) < 0)
            raw = 0;
        fl_error("target %lld at position %lld is out of range for %lld classes (expected %lld to %lld%s)",
                 (long long)raw, (long long)pos + 1, (long long)n, (long long)base,
                 (long long)(n - 1 + base), base == 1 ? "; class indices are 1-based" : "");
    } else if (per) {
        out = reduce_result(per, tw, red);
    }
    fl_tensor_release(per);
    if (out && fl_needs_grad(x)) {
        const fl_tensor *in[1] = {x};
        fl_node *node = fl_node_new(nll ? FL_GRAD_NLL : FL_GRAD_CROSS_ENTROPY, nll ? "nll_loss" : "cross_entropy", 1, in);
        if (node) {
            node->iargs[0] = red;
            node->iargs[1] = base;
            node->iargs[2] = ignore;
            node->dargs[0] = smoothing;
            node->dargs[1] = tw;
        }
        const fl_tensor *save[3] = {c.x, c.target, c.weight};
        if (attach(node, out, save, 3) < 0) {
            fl_tensor_release(out);
            out = NULL;
        }
    }
    class_inputs_release(&c);
    return out;
}

fl_tensor *fl_cross_entropy(const fl_tensor *x, const fl_tensor *target, const fl_tensor *weight,
                            int64_t ignore_index, double smoothing, fl_reduction red, int64_t base)
{
    return class_loss(x, target, weight, ignore_index, smoothing, red, base, false);
}

fl_tensor *fl_nll_loss(const fl_tensor *x, const fl_tensor *target, const fl_tensor *weight,
                       int64_t ignore_index, fl_reduction red, int64_t base)
{
    return class_loss(x, target, weight, ignore_index, 0, red, base, true);
}

/* The per-position scale of the incoming gradient: g itself (reduction none), or g / total
 * weight (mean) or g (sum) broadcast to every position. Returns a float64 contiguous tensor
 * and its stride (0: one value). On the device the division is left to the kernels: *div
 * gets the divisor (1 on the CPU, where it is done here). */
static fl_tensor *gradient_scale(const fl_node *node, const fl_tensor *g, int64_t *stride, double *div)
{
    fl_tensor *gs = fl_cast(g, FL_DTYPE_F64), *gc = gs ? fl_contiguous(gs) : NULL;
    fl_tensor_release(gs);
    if (!gc)
        return NULL;
    *stride = node->iargs[0] == FL_REDUCE_NONE ? 1 : 0;
    *div = 1;
    if (node->iargs[0] == FL_REDUCE_MEAN) {
        if (fl_is_cuda(gc)) {
            *div = node->dargs[1];
        } else {
            double *p = fl_tensor_data(gc);
            p[0] /= node->dargs[1];
        }
    }
    return gc;
}

static int class_loss_backward(fl_node *node, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *x = node->saved[0];
    int64_t outer, n, inner, stride;
    double div;
    if (x->ndim == 1)
        outer = 1, n = x->shape[0], inner = 1;
    else
        split_at(x, 1, &outer, &n, &inner);
    fl_tensor *gs = gradient_scale(node, g, &stride, &div);
    /* the kernels write every element on the device; the CPU's write the touched ones */
    fl_tensor *gx = !gs ? NULL : fl_is_cuda(x) ? fl_tensor_empty(x->dtype, x->ndim, x->shape, x->storage->device)
                                               : fl_tensor_zeros(x->dtype, x->ndim, x->shape, FL_CPU);
    if (!gx) {
        fl_tensor_release(gs);
        return -1;
    }
    fl_ce_args a = {
        .target = fl_tensor_data(node->saved[1]), .base = node->iargs[1], .ignore_index = node->iargs[2],
        .weight = node->saved[2] ? fl_tensor_data(node->saved[2]) : NULL, .smoothing = node->dargs[0],
    };
    const double *scale = fl_tensor_data(gs);
    if (fl_is_cuda(x)) {
        int rc = fl_cuda_status(FL_CUDA(fl_cuda_class_loss_backward)(node->rule == FL_GRAD_NLL, x->dtype,
                                                                      fl_tensor_data(gx), fl_tensor_data(x), scale,
                                                                      stride, div, outer, n, inner, &a));
        fl_tensor_release(gs);
        if (rc < 0) {
            fl_tensor_release(gx);
            return -1;
        }
        grads[0] = gx;
        return 0;
    }
    if (node->rule == FL_GRAD_NLL) {
        void *gp = fl_tensor_data(gx);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t pos = o * inner + i, raw = a.target[pos], t = raw - a.base;
                if (raw == a.ignore_index)
                    continue;
                double w = a.weight ? a.weight[t] : 1;
                fl_store_f64(x->dtype, gp, (o * n + t) * inner + i, -w * scale[pos * stride]);
            }
    } else if (x->dtype == FL_DTYPE_F32) {
        /* the kernel wants the scale in the logits' type */
        fl_tensor *s32 = fl_cast(gs, FL_DTYPE_F32);
        if (!s32) {
            fl_tensor_release(gs);
            fl_tensor_release(gx);
            return -1;
        }
        fl_cpu_cross_entropy_backward_f32(fl_tensor_data(gx), fl_tensor_data(x), fl_tensor_data(s32), stride, outer, n, inner, &a);
        fl_tensor_release(s32);
    } else {
        fl_cpu_cross_entropy_backward_f64(fl_tensor_data(gx), fl_tensor_data(x), scale, stride, outer, n, inner, &a);
    }
    fl_tensor_release(gs);
    grads[0] = gx;
    return 0;
}

/* ---------------------------------------------------------------- elementwise losses */

static int check_same_shape(const fl_tensor *a, const fl_tensor *b, const char *what)
{
    if (!fl_shape_equal(a, b)) {
        char b1[160], b2[160];
        fl_error("%s of shape %s does not match input of shape %s", what,
                 fl_shape_str(b1, sizeof b1, b->ndim, b->shape), fl_shape_str(b2, sizeof b2, a->ndim, a->shape));
        return -1;
    }
    return 0;
}

/* -log(sigmoid(x)) * pos_weight * y - log(1 - sigmoid(x)) * (1 - y), written stably. */
static double bce_logits(double x, double y, double pw)
{
    double sp = log1p(exp(-fabs(x))) + fmax(-x, 0.0);   /* softplus(-x) */
    return (1 - y) * x + (1 + (pw - 1) * y) * sp;
}

static double load_or(const fl_tensor *t, int64_t i, double def)
{
    return t ? fl_load_f64(t->dtype, fl_tensor_data(t), i) : def;
}

typedef struct {
    fl_tensor *x, *y, *w, *pw;
} pointwise_inputs;

static void pointwise_release(pointwise_inputs *p)
{
    fl_tensor_release(p->x);
    fl_tensor_release(p->y);
    fl_tensor_release(p->w);
    fl_tensor_release(p->pw);
}

/* Contiguous copies, with weight and pos_weight broadcast to the input's shape. */
static int pointwise_make(pointwise_inputs *p, const fl_tensor *x, const fl_tensor *y,
                          const fl_tensor *w, const fl_tensor *pw)
{
    *p = (pointwise_inputs){0};
    p->x = fl_contiguous((fl_tensor *)x);
    p->y = fl_contiguous((fl_tensor *)y);
    if (w) {
        p->w = fl_tensor_empty(FL_DTYPE_F64, x->ndim, x->shape, x->storage->device);
        if (p->w && fl_copy(p->w, w) < 0) {
            fl_tensor_release(p->w);
            p->w = NULL;
        }
    }
    if (pw) {
        p->pw = fl_tensor_empty(FL_DTYPE_F64, x->ndim, x->shape, x->storage->device);
        if (p->pw && fl_copy(p->pw, pw) < 0) {
            fl_tensor_release(p->pw);
            p->pw = NULL;
        }
    }
    if (!p->x || !p->y || (w && !p->w) || (pw && !p->pw)) {
        pointwise_release(p);
        return -1;
    }
    return 0;
}

static fl_tensor *pointwise_loss(fl_grad_rule rule, const char *name, const fl_tensor *x, const fl_tensor *y,
                                 const fl_tensor *w, const fl_tensor *pw, fl_reduction red)
{
    if (check_float("input", x) < 0 || check_float("target", y) < 0 || check_same_shape(x, y, "target") < 0 ||
        check_devices(x, y, w, pw) < 0)
        return NULL;
    pointwise_inputs p;
    if (pointwise_make(&p, x, y, w, pw) < 0)
        return NULL;
    fl_tensor *per = fl_tensor_empty(x->dtype, x->ndim, x->shape, x->storage->device);
    fl_tensor *out = NULL;
    if (per && fl_is_cuda(per)) {
        fl_ploss kind = rule == FL_GRAD_MSE ? FL_PLOSS_MSE : FL_PLOSS_BCE_LOGITS;
        if (fl_cuda_status(FL_CUDA(fl_cuda_pointwise_loss)(kind, x->dtype, y->dtype, fl_tensor_data(per),
                                                            fl_tensor_data(p.x), fl_tensor_data(p.y),
                                                            p.w ? fl_tensor_data(p.w) : NULL,
                                                            p.pw ? fl_tensor_data(p.pw) : NULL, x->numel)) == 0)
            out = reduce_result(per, (double)x->numel, red);
    } else if (per) {
        const void *xp = fl_tensor_data(p.x), *yp = fl_tensor_data(p.y);
        void *lp = fl_tensor_data(per);
        for (int64_t i = 0; i < x->numel; i++) {
            double xv = fl_load_f64(x->dtype, xp, i), yv = fl_load_f64(y->dtype, yp, i), l;
            if (rule == FL_GRAD_MSE)
                l = (xv - yv) * (xv - yv);
            else
                l = load_or(p.w, i, 1) * bce_logits(xv, yv, load_or(p.pw, i, 1));
            fl_store_f64(x->dtype, lp, i, l);
        }
        out = reduce_result(per, (double)x->numel, red);
    }
    fl_tensor_release(per);
    if (out && (fl_needs_grad(x) || fl_needs_grad(y))) {
        const fl_tensor *in[2] = {x, y};
        fl_node *node = fl_node_new(rule, name, 2, in);
        if (node) {
            node->iargs[0] = red;
            node->dargs[1] = (double)x->numel;
        }
        const fl_tensor *save[4] = {p.x, p.y, p.w, p.pw};
        if (attach(node, out, save, 4) < 0) {
            fl_tensor_release(out);
            out = NULL;
        }
    }
    pointwise_release(&p);
    return out;
}

fl_tensor *fl_bce_with_logits(const fl_tensor *x, const fl_tensor *y, const fl_tensor *weight,
                              const fl_tensor *pos_weight, fl_reduction red)
{
    return pointwise_loss(FL_GRAD_BCE_LOGITS, "binary_cross_entropy_with_logits", x, y, weight, pos_weight, red);
}

fl_tensor *fl_mse_loss(const fl_tensor *a, const fl_tensor *b, fl_reduction red)
{
    return pointwise_loss(FL_GRAD_MSE, "mse_loss", a, b, NULL, NULL, red);
}

static int pointwise_backward(fl_node *node, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *x = node->saved[0], *y = node->saved[1], *w = node->saved[2], *pw = node->saved[3];
    int64_t stride;
    double div;
    fl_tensor *gs = gradient_scale(node, g, &stride, &div);
    if (!gs)
        return -1;
    const double *scale = fl_tensor_data(gs);
    fl_tensor *gx = node->next[0] ? fl_tensor_empty(x->dtype, x->ndim, x->shape, x->storage->device) : NULL;
    fl_tensor *gy = node->next[1] ? fl_tensor_empty(y->dtype, y->ndim, y->shape, y->storage->device) : NULL;
    if ((node->next[0] && !gx) || (node->next[1] && !gy)) {
        fl_tensor_release(gs);
        fl_tensor_release(gx);
        fl_tensor_release(gy);
        return -1;
    }
    if (fl_is_cuda(x)) {
        fl_ploss kind = node->rule == FL_GRAD_MSE ? FL_PLOSS_MSE : FL_PLOSS_BCE_LOGITS;
        int rc = fl_cuda_status(FL_CUDA(fl_cuda_pointwise_loss_backward)(
            kind, x->dtype, y->dtype, gx ? fl_tensor_data(gx) : NULL, gy ? fl_tensor_data(gy) : NULL,
            fl_tensor_data(x), fl_tensor_data(y), w ? fl_tensor_data(w) : NULL, pw ? fl_tensor_data(pw) : NULL,
            scale, stride, div, x->numel));
        fl_tensor_release(gs);
        if (rc < 0) {
            fl_tensor_release(gx);
            fl_tensor_release(gy);
            return -1;
        }
        grads[0] = gx;
        grads[1] = gy;
        return 0;
    }
    const void *xp = fl_tensor_data(x), *yp = fl_tensor_data(y);
    for (int64_t i = 0; i < x->numel; i++) {
        double xv = fl_load_f64(x->dtype, xp, i), yv = fl_load_f64(y->dtype, yp, i), s = scale[i * stride];
        double dx, dy;
        if (node->rule == FL_GRAD_MSE) {
            dx = 2 * (xv - yv);
            dy = -dx;
        } else {
            double wv = load_or(w, i, 1), pwv = load_or(pw, i, 1);
            double sig_neg = 1 / (1 + exp(xv));                 /* sigmoid(-x) */
            double sp = log1p(exp(-fabs(xv))) + fmax(-xv, 0.0);   /* softplus(-x) */
            dx = wv * ((1 - yv) - (1 + (pwv - 1) * yv) * sig_neg);
            dy = wv * (-xv + (pwv - 1) * sp);
        }
        if (gx)
            fl_store_f64(x->dtype, fl_tensor_data(gx), i, s * dx);
        if (gy)
            fl_store_f64(y->dtype, fl_tensor_data(gy), i, s * dy);
    }
    fl_tensor_release(gs);
    grads[0] = gx;
    grads[1] = gy;
    return 0;
}

int fl_loss_backward(fl_node *node, const fl_tensor *g, fl_tensor **grads)
{
    switch (node->rule) {
    case FL_GRAD_SOFTMAX: return softmax_backward(node, g, grads);
    case FL_GRAD_CROSS_ENTROPY:
    case FL_GRAD_NLL: return class_loss_backward(node, g, grads);
    case FL_GRAD_BCE_LOGITS:
    case FL_GRAD_MSE: return pointwise_backward(node, g, grads);
    default:
        fl_error("no fused backward for '%s'", node->name);
        return -1;
    }
}
