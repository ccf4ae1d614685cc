/* backward.c: the derivative rules, one short rule per primitive, written with the engine's
 * own ops (so every device that runs the forward runs the backward). A rule receives the
 * output's gradient g and fills grads[i] for each input that has an edge; broadcast
 * gradients are summed back to the input's shape afterwards. */
#include "arena.h"
#include "autograd.h"
#include "cuda.h"
#include "iter.h"
#include "../kernels/cpu/kernels.h"

#include <math.h>

/* ---------------------------------------------------------------- sum to shape */

static void accumulate_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    const fl_dtype *dt = p;
    fl_cpu_binary(FL_BINOP_ADD, *dt, ptr[0], ptr[0], ptr[1], n, st[0], st[0], st[1]);
}

/* On the device the summed dims go through fl_sum (a reduction kernel) rather than an
 * accumulation into a broadcast output, which threads would race on. Not recorded, as the
 * CPU's accumulation is not. */
static fl_tensor *sum_to_shape_cuda(const fl_tensor *g, int ndim, const int64_t *shape)
{
    int dims[FL_MAX_DIMS], n = 0, lead = g->ndim - ndim;
    for (int d = 0; d < g->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && g->shape[d] != 1))
            dims[n++] = d;
    bool grad_on = fl_grad_enabled();
    fl_set_grad_enabled(false);
    fl_tensor *s = n ? fl_sum(g, n, dims, true) : fl_tensor_retain((fl_tensor *)g);
    fl_tensor *c = s && s->dtype != g->dtype ? fl_cast(s, g->dtype) : (s ? fl_tensor_retain(s) : NULL);
    fl_tensor *out = c ? fl_reshape(c, ndim, shape) : NULL;
    fl_set_grad_enabled(grad_on);
    fl_tensor_release(s);
    fl_tensor_release(c);
    return out;
}

fl_tensor *fl_sum_to_shape(const fl_tensor *g, int ndim, const int64_t *shape)
{
    if (ndim == g->ndim) {
        bool same = true;
        for (int i = 0; i < ndim; i++)
            same &= shape[i] == g->shape[i];
        if (same)
            return fl_tensor_retain((fl_tensor *)g);
    }
    if (fl_is_cuda(g))
        return sum_to_shape_cuda(g, ndim, shape);
    fl_tensor *out = fl_tensor_zeros(g->dtype, ndim, shape, g->storage->device);
    if (!out)
        return NULL;
    /* out broadcasts (stride 0) along the summed dims; runs stay on one thread because
     * several positions of g land on the same element of out */
    fl_iter it;
    const fl_tensor *ts[2] = {out, g};
    fl_iter_init(&it, g->ndim, g->shape, 2, ts);
    fl_dtype dt = g->dtype;
    fl_iter_run(&it, accumulate_run, &dt, false);
    return out;
}

/* ---------------------------------------------------------------- rules */

static void binary_rule(arena *A, fl_binop op, const fl_tensor *g, const fl_tensor *a,
                        const fl_tensor *b, const fl_tensor *out, fl_tensor **ga, fl_tensor **gb)
{
    switch (op) {
    case FL_BINOP_ADD:
        *ga = give(A, (fl_tensor *)g);
        *gb = give(A, (fl_tensor *)g);
        break;
    case FL_BINOP_SUB:
        *ga = give(A, (fl_tensor *)g);
        *gb = give(A, un(A, FL_UNOP_NEG, g));
        break;
    case FL_BINOP_MUL:
        *ga = give(A, bin(A, FL_BINOP_MUL, g, b));
        *gb = give(A, bin(A, FL_BINOP_MUL, g, a));
        break;
    case FL_BINOP_DIV: {
        fl_tensor *ga_ = bin(A, FL_BINOP_DIV, g, b);
        *ga = give(A, ga_);
        /* d(a/b)/db = -a/b^2 = -(g/b) * (a/b) */
        *gb = give(A, un(A, FL_UNOP_NEG, bin(A, FL_BINOP_MUL, ga_, bin(A, FL_BINOP_DIV, a, b))));
        break;
    }
    case FL_BINOP_POW: {
        /* d/da = b * a^(b-1); d/db = a^b * log(a), taken as 0 where a == 0 and b >= 0 */
        *ga = give(A, bin(A, FL_BINOP_MUL, g, bin(A, FL_BINOP_MUL, b, bin(A, FL_BINOP_POW, a, bins(A, FL_BINOP_SUB, b, 1)))));
        fl_tensor *d = bin(A, FL_BINOP_MUL, out, un(A, FL_UNOP_LOG, a));
        fl_tensor *mask = bin(A, FL_BINOP_AND, bins(A, FL_BINOP_EQ, a, 0), bins(A, FL_BINOP_GE, b, 0));
        fl_tensor *zero = bins(A, FL_BINOP_MUL, d, 0);
        *gb = give(A, bin(A, FL_BINOP_MUL, g, A->failed ? NULL : keep(A, fl_where(mask, zero, d))));
        break;
    }
    case FL_BINOP_MAXIMUM:
    case FL_BINOP_MINIMUM: {
        /* the gradient goes to the chosen input; ties split it evenly, as PyTorch does */
        fl_binop wins = op == FL_BINOP_MAXIMUM ? FL_BINOP_GT : FL_BINOP_LT;
        fl_tensor *half = bins(A, FL_BINOP_MUL, bin(A, FL_BINOP_EQ, a, b), 0.5);
        fl_tensor *wa = bin(A, FL_BINOP_ADD, bin(A, wins, a, b), half);
        fl_tensor *wb = bin(A, FL_BINOP_ADD, bin(A, wins, b, a), half);
        *ga = give(A, bin(A, FL_BINOP_MUL, g, wa));
        *gb = give(A, bin(A, FL_BINOP_MUL, g, wb));
        break;
    }
    case FL_BINOP_FMOD:
        /* d/da = 1; d/db = -trunc(a/b) */
        *ga = give(A, (fl_tensor *)g);
        *gb = give(A, bin(A, FL_BINOP_MUL, g, un(A, FL_UNOP_NEG, un(A, FL_UNOP_TRUNC, bin(A, FL_BINOP_DIV, a, b)))));
        break;
    case FL_BINOP_ATAN2: {
        fl_tensor *den = bin(A, FL_BINOP_ADD, bin(A, FL_BINOP_MUL, a, a), bin(A, FL_BINOP_MUL, b, b));
        *ga = give(A, bin(A, FL_BINOP_MUL, g, bin(A, FL_BINOP_DIV, b, den)));
        *gb = give(A, bin(A, FL_BINOP_MUL, g, un(A, FL_UNOP_NEG, bin(A, FL_BINOP_DIV, a, den))));
        break;
    }
    default:
        break;   /* comparisons and logical ops record no node */
    }
}

/* d op(a) / da, as a tensor to multiply g by (out is op(a)). */
static fl_tensor *unary_derivative(arena *A, fl_unop op, const fl_tensor *a, const fl_tensor *out)
{
    switch (op) {
    case FL_UNOP_NEG: return bins(A, FL_BINOP_SUB, bins(A, FL_BINOP_MUL, a, 0), 1);
    case FL_UNOP_ABS: return un(A, FL_UNOP_SIGN, a);
    case FL_UNOP_EXP: return (fl_tensor *)out;
    case FL_UNOP_LOG: return un(A, FL_UNOP_RECIPROCAL, a);
    case FL_UNOP_LOG2: return un(A, FL_UNOP_RECIPROCAL, bins(A, FL_BINOP_MUL, a, M_LN2));
    case FL_UNOP_LOG1P: return un(A, FL_UNOP_RECIPROCAL, bins(A, FL_BINOP_ADD, a, 1));
    case FL_UNOP_EXPM1: return bins(A, FL_BINOP_ADD, out, 1);
    case FL_UNOP_SQRT: return un(A, FL_UNOP_RECIPROCAL, bins(A, FL_BINOP_MUL, out, 2));
    case FL_UNOP_RSQRT: return bins(A, FL_BINOP_MUL, bins(A, FL_BINOP_POW, out, 3), -0.5);
    case FL_UNOP_SIN: return un(A, FL_UNOP_COS, a);
    case FL_UNOP_COS: return un(A, FL_UNOP_NEG, un(A, FL_UNOP_SIN, a));
    case FL_UNOP_TAN: return bins(A, FL_BINOP_ADD, un(A, FL_UNOP_SQUARE, out), 1);
    case FL_UNOP_TANH: return bins(A, FL_BINOP_SUB, un(A, FL_UNOP_NEG, un(A, FL_UNOP_SQUARE, out)), -1);
    case FL_UNOP_SIGMOID: return bin(A, FL_BINOP_MUL, out, bins(A, FL_BINOP_SUB, un(A, FL_UNOP_NEG, out), -1));
    case FL_UNOP_RELU: return bins(A, FL_BINOP_GT, a, 0);
    case FL_UNOP_GELU: {
        /* Phi(a) + a * phi(a) */
        fl_tensor *cdf = bins(A, FL_BINOP_MUL, bins(A, FL_BINOP_ADD, un(A, FL_UNOP_ERF, bins(A, FL_BINOP_MUL, a, M_SQRT1_2)), 1), 0.5);
        fl_tensor *pdf = bins(A, FL_BINOP_MUL, un(A, FL_UNOP_EXP, bins(A, FL_BINOP_MUL, un(A, FL_UNOP_SQUARE, a), -0.5)), 0.3989422804014327);
        return bin(A, FL_BINOP_ADD, cdf, bin(A, FL_BINOP_MUL, a, pdf));
    }
    case FL_UNOP_SILU: {
        /* s * (1 + a * (1 - s)), s = sigmoid(a) */
        fl_tensor *s = un(A, FL_UNOP_SIGMOID, a);
        fl_tensor *one_minus = bins(A, FL_BINOP_SUB, un(A, FL_UNOP_NEG, s), -1);
        return bin(A, FL_BINOP_MUL, s, bins(A, FL_BINOP_ADD, bin(A, FL_BINOP_MUL, a, one_minus), 1));
    }
    case FL_UNOP_SOFTPLUS: return un(A, FL_UNOP_SIGMOID, a);
    case FL_UNOP_RECIPROCAL: return un(A, FL_UNOP_NEG, un(A, FL_UNOP_SQUARE, out));
    case FL_UNOP_SQUARE: return bins(A, FL_BINOP_MUL, a, 2);
    case FL_UNOP_ASIN: return un(A, FL_UNOP_RSQRT, bins(A, FL_BINOP_SUB, un(A, FL_UNOP_NEG, un(A, FL_UNOP_SQUARE, a)), -1));
    case FL_UNOP_ACOS: return un(A, FL_UNOP_NEG, un(A, FL_UNOP_RSQRT, bins(A, FL_BINOP_SUB, un(A, FL_UNOP_NEG, un(A, FL_UNOP_SQUARE, a)), -1)));
    case FL_UNOP_ATAN: return un(A, FL_UNOP_RECIPROCAL, bins(A, FL_BINOP_ADD, un(A, FL_UNOP_SQUARE, a), 1));
    case FL_UNOP_SINH: return un(A, FL_UNOP_COSH, a);
    case FL_UNOP_COSH: return un(A, FL_UNOP_SINH, a);
    case FL_UNOP_ERF: return bins(A, FL_BINOP_MUL, un(A, FL_UNOP_EXP, un(A, FL_UNOP_NEG, un(A, FL_UNOP_SQUARE, a))), 1.1283791670955126);
    default: return bins(A, FL_BINOP_MUL, a, 0);   /* floor, ceil, round, trunc, sign */
    }
}

int fl_backward_rule(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    arena A = {.n = 0};
    fl_tensor *const *s = n->saved;
    switch (n->rule) {
    case FL_GRAD_BINARY:
        binary_rule(&A, (fl_binop)n->iargs[0], g, s[0], s[1], s[2], &grads[0], &grads[1]);
        break;
    case FL_GRAD_UNARY:
        grads[0] = give(&A, bin(&A, FL_BINOP_MUL, g, unary_derivative(&A, (fl_unop)n->iargs[0], s[0], s[1])));
        break;
    case FL_GRAD_CLAMP: {
        fl_tensor *inside = NULL;
        double lo = n->dargs[0], hi = n->dargs[1];
        fl_tensor *ge = isnan(lo) ? NULL : bins(&A, FL_BINOP_GE, s[0], lo);
        fl_tensor *le = isnan(hi) ? NULL : bins(&A, FL_BINOP_LE, s[0], hi);
        inside = ge && le ? bin(&A, FL_BINOP_AND, ge, le) : ge ? ge : le;
        grads[0] = give(&A, inside ? bin(&A, FL_BINOP_MUL, g, inside) : (fl_tensor *)g);
        break;
    }
    case FL_GRAD_WHERE: {
        fl_tensor *zero = bins(&A, FL_BINOP_MUL, g, 0);
        if (!A.failed) {
            grads[1] = keep(&A, fl_where(s[0], g, zero));
            grads[2] = keep(&A, fl_where(s[0], zero, g));
            grads[1] = give(&A, grads[1]);
            grads[2] = give(&A, grads[2]);
        }
        break;
    }
    case FL_GRAD_CAST:
        grads[0] = g->dtype == n->in_dtype[0] ? fl_tensor_retain((fl_tensor *)g) : fl_cast(g, n->in_dtype[0]);
        A.failed = !grads[0];
        break;
    case FL_GRAD_TO_DEVICE:
        grads[0] = fl_to_device(g, (fl_device){(fl_device_type)n->iargs[0], (int)n->iargs[1]});
        A.failed = !grads[0];
        break;
    case FL_GRAD_SOFTMAX:
    case FL_GRAD_CROSS_ENTROPY:
    case FL_GRAD_NLL:
    case FL_GRAD_BCE_LOGITS:
    case FL_GRAD_MSE:
        A.failed = fl_loss_backward(n, g, grads) < 0;
        break;
    default:
        if (n->rule >= FL_GRAD_VIEW_FIRST && n->rule <= FL_GRAD_VIEW_LAST) {
            A.failed = fl_backward_view(n, g, grads) < 0;
        } else if (n->rule >= FL_GRAD_REDUCE_FIRST && n->rule <= FL_GRAD_REDUCE_LAST) {
            A.failed = fl_backward_reduce(n, g, grads) < 0;
        } else if (n->rule >= FL_GRAD_NN_FIRST && n->rule <= FL_GRAD_NN_LAST) {
            A.failed = fl_backward_nn(n, g, grads) < 0;
        } else {
            fl_error("no backward rule for '%s'", n->name);
            A.failed = true;
        }
    }
    /* sum broadcast gradients back to each input's shape and cast to its dtype */
    for (int i = 0; i < n->nin && !A.failed; i++) {
        if (!grads[i] || !n->next[i]) {
            fl_tensor_release(grads[i]);
            grads[i] = NULL;
            continue;
        }
        fl_tensor *r = fl_sum_to_shape(grads[i], n->in_ndim[i], n->in_shape[i]);
        fl_tensor_release(grads[i]);
        grads[i] = r;
        if (r && r->dtype != n->in_dtype[i]) {
            grads[i] = fl_cast(r, n->in_dtype[i]);
            fl_tensor_release(r);
        }
        if (!grads[i])
            A.failed = true;
    }
    arena_free(&A);
    if (A.failed) {
        for (int i = 0; i < FL_NODE_MAX_IN; i++) {
            fl_tensor_release(grads[i]);
            grads[i] = NULL;
        }
        return -1;
    }
    return 0;
}
