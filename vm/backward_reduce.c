/* backward_reduce.c: derivative rules of the reductions, sorting and linear algebra ops
 * (vm/reduce.c, vm/sort.c, vm/linalg.c), written with the engine's own ops. Reduced dims come
 * back as views (stride 0) of the output's gradient, never as copies; the products' rules are
 * products again, on transposed views, so that a matmul's backward costs two matmuls. */
#include "arena.h"
#include "autograd.h"
#include "cuda.h"

#include <math.h>
#include <string.h>

const char *const fl_reduce_grad_ops[] = {
    "sum", "mean", "prod", "amax", "amin", "max", "min", "var", "std", "norm", "logsumexp",
    "cumsum", "cumprod", "sort", "topk", "matmul", "mm", "bmm", "mv", "dot", "outer", "addmm",
    NULL,
};

/* ---------------------------------------------------------------- temporaries */

static fl_tensor *where(arena *A, const fl_tensor *c, const fl_tensor *x, const fl_tensor *y)
{
    return A->failed ? NULL : keep(A, fl_where(c, x, y));
}

/* A 0-dim zero of t's dtype, for where(). */
static fl_tensor *zero_like(arena *A, const fl_tensor *t)
{
    return A->failed ? NULL : keep(A, fl_scalar_tensor(0, t->dtype, t->storage->device));
}

/* t in dtype dt (t itself when it already is). */
static const fl_tensor *as_dtype(arena *A, const fl_tensor *t, fl_dtype dt)
{
    if (A->failed || t->dtype == dt)
        return A->failed ? NULL : t;
    return keep(A, fl_cast(t, dt));
}

/* ---------------------------------------------------------------- reduced dims */

/* The node's reduced dims (0-based) from its mask; their count. */
static int mask_dims(const fl_node *n, int *dims)
{
    int k = 0;
    for (int d = 0; d < n->in_ndim[0]; d++)
        if ((n->iargs[0] >> d) & 1)
            dims[k++] = d;
    return k;
}

/* Number of input elements per reduced element. */
static int64_t reduced_count(const fl_node *n)
{
    int64_t c = 1;
    for (int d = 0; d < n->in_ndim[0]; d++)
        if ((n->iargs[0] >> d) & 1)
            c *= n->in_shape[0][d];
    return c;
}

/* A view of t (shaped like the reduction's output) with the input's dims: each reduced dim
 * gets size 1, or the input's size when `expand` (stride 0 either way). */
static fl_tensor *unreduce(arena *A, const fl_node *n, const fl_tensor *t, bool expand)
{
    if (A->failed)
        return NULL;
    int nd = n->in_ndim[0], j = 0;
    uint32_t mask = (uint32_t)n->iargs[0];
    bool keepdim = n->iargs[1];
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        if ((mask >> d) & 1) {
            shape[d] = expand ? n->in_shape[0][d] : 1;
            strides[d] = 0;
            j += keepdim;
        } else if (j < t->ndim) {
            shape[d] = t->shape[j];
            strides[d] = t->strides[j++];
        } else {
            j = -1;
            break;
        }
    }
    if (j != t->ndim) {
        char b1[160], b2[160];
        fl_error("gradient of shape %s does not match the reduction of shape %s",
                 fl_shape_str(b1, sizeof b1, t->ndim, t->shape), fl_shape_str(b2, sizeof b2, nd, n->in_shape[0]));
        A->failed = true;
        return NULL;
    }
    return keep(A, fl_tensor_view_of(t, nd, shape, strides, t->offset));
}

/* A reduction over the node's dims, with keepdim. */
static fl_tensor *sum_kept(arena *A, const fl_node *n, const fl_tensor *t)
{
    int dims[FL_MAX_DIMS];
    int k = mask_dims(n, dims);
    return A->failed ? NULL : keep(A, fl_sum(t, k, dims, true));
}

static fl_tensor *prod_kept(arena *A, const fl_node *n, const fl_tensor *t)
{
    int dims[FL_MAX_DIMS];
    int k = mask_dims(n, dims);
    return A->failed ? NULL : keep(A, fl_prod(t, k, dims, true));
}

/* Whether any element of t is non-zero (false on failure, which poisons A). On a GPU the
 * answer is taken as yes without asking: reading it back would stall the stream, and the
 * zero-aware formulas it guards give the same gradient when there are no zeros. */
static bool any_set(arena *A, const fl_tensor *t)
{
    if (!A->failed && fl_is_cuda(t))
        return true;
    fl_tensor *r = A->failed ? NULL : keep(A, fl_any(t, 0, NULL, false));
    return r && *(const uint8_t *)fl_tensor_data(r);
}

/* ---------------------------------------------------------------- reductions */

/* prod: out / x where x != 0; at a zero, the product of the others when it is the only zero
 * of its slice (0 when there are more), as PyTorch. */
static fl_tensor *prod_rule(arena *A, const fl_node *n, const fl_tensor *g)
{
    const fl_tensor *x = n->saved[0];
    fl_tensor *gu = unreduce(A, n, g, false), *ou = unreduce(A, n, n->saved[1], false);
    fl_tensor *d = bin(A, FL_BINOP_DIV, ou, x);
    fl_tensor *zero = bins(A, FL_BINOP_EQ, x, 0);
    if (any_set(A, zero)) {
        /* x != 0 in a slice with a zero: out is 0 there, and so is out / x */
        fl_tensor *others = prod_kept(A, n, bin(A, FL_BINOP_ADD, x, zero));
        fl_tensor *only = bins(A, FL_BINOP_EQ, sum_kept(A, n, zero), 1);
        d = where(A, zero, bin(A, FL_BINOP_MUL, others, only), d);
    }
    return bin(A, FL_BINOP_MUL, gu, d);
}

/* amax/amin: the gradient is shared evenly by the elements equal to the result. */
static fl_tensor *amax_rule(arena *A, const fl_node *n, const fl_tensor *g)
{
    fl_tensor *hit = bin(A, FL_BINOP_EQ, n->saved[0], unreduce(A, n, n->saved[1], false));
    fl_tensor *count = sum_kept(A, n, hit);
    return bin(A, FL_BINOP_DIV, bin(A, FL_BINOP_MUL, unreduce(A, n, g, false), hit), count);
}

/* var: g * 2 (x - mean) / (N - correction); gv is g already shaped like the input's dims. */
static fl_tensor *var_rule(arena *A, const fl_node *n, const fl_tensor *gv)
{
    const fl_tensor *x = n->saved[0];
    int dims[FL_MAX_DIMS];
    int k = mask_dims(n, dims);
    fl_tensor *mean = A->failed ? NULL : keep(A, fl_mean(x, k, dims, true));
    double dof = (double)reduced_count(n) - n->dargs[0];
    if (dof < 0)
        dof = 0;
    return bin(A, FL_BINOP_MUL, bins(A, FL_BINOP_MUL, gv, 2 / dof), bin(A, FL_BINOP_SUB, x, mean));
}

/* std: var's rule with g / (2 std), taken as 0 where std is 0 (PyTorch). */
static fl_tensor *std_rule(arena *A, const fl_node *n, const fl_tensor *g)
{
    fl_tensor *su = unreduce(A, n, n->saved[1], false);
    fl_tensor *gv = bin(A, FL_BINOP_DIV, unreduce(A, n, g, false), bins(A, FL_BINOP_MUL, su, 2));
    return var_rule(A, n, where(A, bins(A, FL_BINOP_EQ, su, 0), zero_like(A, g), gv));
}

/* norm, as PyTorch: p = 0 has no gradient (zeros), p = 1 gives sign(x), p = +-inf shares
 * the gradient among the elements whose |x| is the result (or NaN), other p give
 * sign(x) |x|^(p-1) / norm^(p-1), with 0 where x or the norm is 0. */
static fl_tensor *norm_rule(arena *A, const fl_node *n, const fl_tensor *g)
{
    const fl_tensor *x = n->saved[0];
    double p = n->dargs[0];
    fl_tensor *gu = unreduce(A, n, g, false), *nu = unreduce(A, n, n->saved[1], false);
    if (p == 0)
        return A->failed ? NULL : keep(A, fl_tensor_zeros(g->dtype, x->ndim, x->shape, g->storage->device));
    fl_tensor *sign = un(A, FL_UNOP_SIGN, x);
    if (p == 1)
        return bin(A, FL_BINOP_MUL, gu, sign);
    fl_tensor *zero = zero_like(A, g);
    if (p == 2) {
        fl_tensor *r = bin(A, FL_BINOP_DIV, x, nu);
        return bin(A, FL_BINOP_MUL, gu, where(A, bins(A, FL_BINOP_EQ, nu, 0), zero, r));
    }
    fl_tensor *ax = un(A, FL_UNOP_ABS, x);
    if (isinf(p)) {
        fl_tensor *hit = bin(A, FL_BINOP_OR, bin(A, FL_BINOP_EQ, ax, nu), un(A, FL_UNOP_ISNAN, ax));
        fl_tensor *share = bin(A, FL_BINOP_DIV, gu, sum_kept(A, n, hit));
        return bin(A, FL_BINOP_MUL, sign, bin(A, FL_BINOP_MUL, share, hit));
    }
    fl_tensor *scaled = bin(A, FL_BINOP_MUL, sign, bins(A, FL_BINOP_POW, ax, p - 1));
    scaled = where(A, bins(A, FL_BINOP_EQ, x, 0), zero, scaled);
    fl_tensor *sc = bin(A, FL_BINOP_DIV, gu, bins(A, FL_BINOP_POW, nu, p - 1));
    sc = where(A, bins(A, FL_BINOP_EQ, nu, 0), zero, sc);
    return bin(A, FL_BINOP_MUL, scaled, sc);
}

/* ---------------------------------------------------------------- cumulative */

/* t reversed along dim: a view with a negative stride. */
static fl_tensor *flip(arena *A, const fl_tensor *t, int dim)
{
    if (A->failed)
        return NULL;
    int64_t strides[FL_MAX_DIMS];
    memcpy(strides, t->strides, sizeof strides);
    int64_t off = t->offset + (t->shape[dim] > 0 ? (t->shape[dim] - 1) * t->strides[dim] : 0);
    strides[dim] = -strides[dim];
    return keep(A, fl_tensor_view_of(t, t->ndim, t->shape, strides, off));
}

/* sum over j >= i along dim, a fresh contiguous tensor */
static fl_tensor *reverse_cumsum(arena *A, const fl_tensor *t, int dim)
{
    fl_tensor *r = A->failed ? NULL : keep(A, fl_cumsum(flip(A, t, dim), dim));
    return A->failed ? NULL : keep(A, fl_clone(flip(A, r, dim)));
}

/* cumprod: grad_i = sum_{j >= i} g_j out_j / x_i, exact before a slice's first zero; at the
 * first zero, the same sum over the products with that zero taken as 1; after it, 0. */
static fl_tensor *cumprod_rule(arena *A, const fl_node *n, const fl_tensor *g)
{
    const fl_tensor *x = n->saved[0];
    int dim = (int)n->iargs[0];
    fl_tensor *zero = bins(A, FL_BINOP_EQ, x, 0);
    fl_tensor *r = bin(A, FL_BINOP_DIV, reverse_cumsum(A, bin(A, FL_BINOP_MUL, g, n->saved[1]), dim), x);
    if (!any_set(A, zero))
        return r;
    fl_tensor *count = A->failed ? NULL : keep(A, fl_cumsum(zero, dim));   /* zeros up to i */
    fl_tensor *first = bin(A, FL_BINOP_AND, zero, bins(A, FL_BINOP_EQ, count, 1));
    fl_tensor *x1 = bin(A, FL_BINOP_ADD, x, first);
    fl_tensor *out1 = A->failed ? NULL : keep(A, fl_cumprod(x1, dim));
    fl_tensor *r1 = reverse_cumsum(A, bin(A, FL_BINOP_MUL, g, out1), dim);
    fl_tensor *z = zero_like(A, g);
    return where(A, first, r1, where(A, bins(A, FL_BINOP_EQ, count, 0), r, z));
}

/* ---------------------------------------------------------------- gradients through indices */

/* zeros of the input's shape with g added at the indices along dim (g and idx unsqueezed
 * at dim first when the op dropped it). */
static fl_tensor *scatter_back(arena *A, const fl_node *n, const fl_tensor *g, const fl_tensor *idx,
                               int dim, bool keepdim, int64_t base)
{
    if (n->in_ndim[0] == 0)
        return (fl_tensor *)g;
    const fl_tensor *gk = g, *ik = idx;
    if (!keepdim) {
        gk = A->failed ? NULL : keep(A, fl_unsqueeze(g, dim));
        ik = A->failed ? NULL : keep(A, fl_unsqueeze(idx, dim));
    }
    fl_tensor *z = A->failed ? NULL : keep(A, fl_tensor_zeros(g->dtype, n->in_ndim[0], n->in_shape[0], g->storage->device));
    if (z && fl_scatter_(z, dim, ik, gk, FL_SCATTER_ADD, base) < 0)
        A->failed = true;
    return A->failed ? NULL : z;
}

/* ---------------------------------------------------------------- products */

static fl_tensor *mT(arena *A, const fl_tensor *t)
{
    return A->failed ? NULL : keep(A, fl_transpose(t, t->ndim - 2, t->ndim - 1));
}

static fl_tensor *unsqueeze(arena *A, const fl_tensor *t, int dim)
{
    return A->failed ? NULL : keep(A, fl_unsqueeze(t, dim));
}

/* alpha * x . y (as matmul, alpha fused into the product when it is not 1) */
static fl_tensor *product(arena *A, const fl_tensor *x, const fl_tensor *y, double alpha)
{
    if (A->failed)
        return NULL;
    if (alpha == 1 || x->ndim != 2 || y->ndim != 2) {
        fl_tensor *p = keep(A, fl_matmul(x, y));
        return alpha == 1 ? p : bins(A, FL_BINOP_MUL, p, alpha);
    }
    fl_tensor *z = zero_like(A, x);
    return A->failed ? NULL : keep(A, fl_addmm(z, x, y, 0, alpha));
}

/* matmul: ga = g . b^T and gb = a^T . g, with 1-D operands taken as a row (a) or a column
 * (b) and g unsqueezed to match. Batch dims broadcast in the forward are summed by the
 * engine; when b is a plain matrix, a's batch is folded into rows (one product, no
 * per-batch gradients to sum). */
static void matmul_rule(arena *A, const fl_node *n, const fl_tensor *g, double alpha,
                        fl_tensor **ga, fl_tensor **gb)
{
    const fl_tensor *a = n->saved[0], *b = n->saved[1];
    int nda = n->in_ndim[n->nin - 2], ndb = n->in_ndim[n->nin - 1];
    const fl_tensor *g2 = as_dtype(A, g, n->in_dtype[n->nin - 1]);
    if (g2 && nda == 1)
        g2 = unsqueeze(A, g2, ndb == 1 ? g2->ndim : g2->ndim - 1);
    if (g2 && ndb == 1)
        g2 = unsqueeze(A, g2, g2->ndim);
    if (n->next[n->nin - 2] && g2) {
        const fl_tensor *b2 = ndb == 1 ? unsqueeze(A, b, 0) : b;   /* b^T of a column: a row */
        if (g2->ndim == 2 && nda == 2 && ndb == 2 && (n->iargs[0] & 1))
            *ga = give(A, mT(A, product(A, b2, mT(A, g2), alpha)));   /* laid out as a is (iargs[0]) */
        else
            *ga = give(A, product(A, g2, b2 && ndb != 1 ? mT(A, b2) : b2, alpha));
    }
    if (n->next[n->nin - 1] && g2) {
        const fl_tensor *a2 = nda == 1 ? unsqueeze(A, a, 0) : a;
        fl_tensor *r;
        if (a2 && a2->ndim > 2 && ndb <= 2) {
            int64_t K = a2->shape[a2->ndim - 1], N = g2->shape[g2->ndim - 1], rows = 1;
            for (int d = 0; d < a2->ndim - 1; d++)
                rows *= a2->shape[d];
            int64_t sa[2] = {rows, K}, sg[2] = {rows, N};
            fl_tensor *af = keep(A, fl_reshape(a2, 2, sa));
            fl_tensor *gf = A->failed ? NULL : keep(A, fl_reshape(g2, 2, sg));
            r = product(A, mT(A, af), gf, alpha);
        } else if (a2 && a2->ndim == 2 && g2->ndim == 2 && ndb == 2 && (n->iargs[0] & 2)) {
            r = mT(A, product(A, mT(A, g2), a2, alpha));   /* laid out as b is (W^T in Linear) */
        } else {
            r = product(A, mT(A, a2), g2, alpha);
        }
        if (r && ndb == 1)
            r = A->failed ? NULL : keep(A, fl_squeeze(r, r->ndim - 1));
        *gb = give(A, r);
    }
}

/* outer: ga = g . b, gb = g^T . a (in g's dtype; the engine casts back). */
static void outer_rule(arena *A, const fl_node *n, const fl_tensor *g, fl_tensor **ga, fl_tensor **gb)
{
    if (n->next[0]) {
        const fl_tensor *b = as_dtype(A, n->saved[1], g->dtype);
        *ga = give(A, A->failed ? NULL : keep(A, fl_mv(g, b)));
    }
    if (n->next[1]) {
        const fl_tensor *a = as_dtype(A, n->saved[0], g->dtype);
        fl_tensor *gt = A->failed ? NULL : keep(A, fl_transpose(g, 0, 1));
        *gb = give(A, A->failed ? NULL : keep(A, fl_mv(gt, a)));
    }
}

/* ---------------------------------------------------------------- dispatch */

int fl_backward_reduce(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    arena A = {.n = 0};
    fl_tensor *const *s = n->saved;
    fl_tensor *r = NULL;
    switch (n->rule) {
    case FL_GRAD_SUM:
        r = unreduce(&A, n, g, true);
        break;
    case FL_GRAD_MEAN:
        r = bins(&A, FL_BINOP_DIV, unreduce(&A, n, g, true), (double)reduced_count(n));
        break;
    case FL_GRAD_PROD:
        r = prod_rule(&A, n, g);
        break;
    case FL_GRAD_AMAX:
        r = amax_rule(&A, n, g);
        break;
    case FL_GRAD_MAX_DIM:
        r = scatter_back(&A, n, g, s[0], (int)n->iargs[0], n->iargs[1], n->iargs[2]);
        break;
    case FL_GRAD_VAR:
        r = var_rule(&A, n, unreduce(&A, n, g, false));
        break;
    case FL_GRAD_STD:
        r = std_rule(&A, n, g);
        break;
    case FL_GRAD_NORM:
        r = norm_rule(&A, n, g);
        break;
    case FL_GRAD_LOGSUMEXP:
        r = bin(&A, FL_BINOP_MUL, unreduce(&A, n, g, false),
                un(&A, FL_UNOP_EXP, bin(&A, FL_BINOP_SUB, s[0], unreduce(&A, n, s[1], false))));
        break;
    case FL_GRAD_CUMSUM:
        r = n->in_ndim[0] == 0 ? (fl_tensor *)g : reverse_cumsum(&A, g, (int)n->iargs[0]);
        break;
    case FL_GRAD_CUMPROD:
        r = n->in_ndim[0] == 0 ? (fl_tensor *)g : cumprod_rule(&A, n, g);
        break;
    case FL_GRAD_SORT:
        r = scatter_back(&A, n, g, s[0], (int)n->iargs[0], true, n->iargs[1]);
        break;
    case FL_GRAD_MATMUL:
    case FL_GRAD_OUTER:
    case FL_GRAD_ADDMM: {
        /* the backward products run under the autocast setting of the forward */
        fl_autocast_mode prev = fl_set_autocast((fl_autocast_mode)n->iargs[1]);
        if (n->rule == FL_GRAD_MATMUL) {
            matmul_rule(&A, n, g, 1, &grads[0], &grads[1]);
        } else if (n->rule == FL_GRAD_OUTER) {
            outer_rule(&A, n, g, &grads[0], &grads[1]);
        } else {
            if (n->next[0])
                grads[0] = give(&A, n->dargs[0] == 1 ? g : bins(&A, FL_BINOP_MUL, g, n->dargs[0]));
            matmul_rule(&A, n, g, n->dargs[1], &grads[1], &grads[2]);
        }
        fl_set_autocast(prev);
        break;
    }
    default:
        fl_error("no backward rule for '%s'", n->name);
        A.failed = true;
    }
    if (n->nin == 1)
        grads[0] = give(&A, r);
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
