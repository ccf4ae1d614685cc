/* backward_view.c: derivative rules of the views, movement and indexing ops (vm/view.c,
 * vm/index.c), written with the engine's own ops. A view's gradient is g put back where the
 * view reads its input, zeros elsewhere; an indexing op's is its adjoint (gather and
 * scatter-add, masked_select and masked_scatter). Positions overwritten by a later write
 * (scatter, index_copy with repeated indices) pass no gradient on. */
#include "arena.h"
#include "autograd.h"
#include "cuda.h"

#include <string.h>

_Static_assert(FL_GRAD_MASKED_SCATTER <= FL_GRAD_VIEW_LAST, "too many view rules");

/* The Lua-visible ops recorded here, each with a case in spec/support/gradcases_view.lua
 * (split, chunk and unbind are made of narrow and select; x[...] is "index"). */
const char *const fl_view_grad_ops[] = {
    "select", "narrow", "index", "view", "reshape", "flatten", "squeeze", "unsqueeze",
    "transpose", "t", "permute", "expand", "unfold", "split", "chunk", "unbind", "cat", "stack",
    "index_select", "gather", "scatter", "scatter_add", "index_copy", "index_add", "index_fill",
    "masked_fill", "masked_select", "masked_scatter", NULL,
};

/* ---------------------------------------------------------------- temporaries */

/* Zeros of input i's shape (or of any shape), in g's dtype and on g's device. */
static fl_tensor *zeros_of(arena *A, const fl_tensor *g, int ndim, const int64_t *shape)
{
    return A->failed ? NULL : keep(A, fl_tensor_zeros(g->dtype, ndim, shape, g->storage->device));
}

static fl_tensor *zeros_in(arena *A, const fl_node *n, int i, const fl_tensor *g)
{
    return zeros_of(A, g, n->in_ndim[i], n->in_shape[i]);
}

/* Copies g into the view v of a fresh gradient buffer. */
static void put(arena *A, fl_tensor *v, const fl_tensor *g)
{
    if (!A->failed)
        check(A, fl_copy(v, g));
}

/* A 0-dim zero in g's dtype (to clear the positions that a write replaced). */
static fl_tensor *zero_scalar(arena *A, const fl_tensor *g)
{
    return A->failed ? NULL : keep(A, fl_scalar_tensor(0, g->dtype, g->storage->device));
}

/* ---------------------------------------------------------------- views */

static void unfold_rule(arena *A, const fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    /* element k of every window: input positions k, k + step, ... accumulate */
    int dim = (int)n->iargs[0];
    int64_t size = n->iargs[1], step = n->iargs[2], windows = g->shape[dim];
    fl_tensor *z = zeros_in(A, n, 0, g);
    for (int64_t k = 0; k < size && !A->failed; k++) {
        /* not kept in the arena: there may be more windows elements than it holds */
        fl_tensor *gk = fl_select(g, g->ndim - 1, k);
        fl_tensor *zk = gk ? fl_slice(z, dim, k, k + (windows - 1) * step + 1, step) : NULL;
        check(A, zk ? fl_binary_(FL_BINOP_ADD, zk, gk) : -1);
        fl_tensor_release(gk);
        fl_tensor_release(zk);
    }
    grads[0] = give(A, z);
}

/* A 1-d size-0 input, which cat skips. */
static bool cat_skipped(const fl_node *n, int i)
{
    return n->in_ndim[i] == 1 && n->in_shape[i][0] == 0;
}

static void cat_rule(arena *A, const fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    int dim = (int)n->iargs[0];
    bool stack = n->iargs[1], chained = n->iargs[2];
    int64_t at = 0;
    for (int i = 0; i < (chained ? 2 : n->nin) && !A->failed; i++) {
        fl_tensor *part;
        if (stack) {
            part = OP(A, fl_select(g, dim, at++));
        } else if (cat_skipped(n, i)) {
            part = zeros_in(A, n, i, g);
        } else {
            part = OP(A, fl_narrow(g, dim, at, n->in_shape[i][dim]));
            at += n->in_shape[i][dim];
        }
        grads[i] = n->next[i] ? give(A, part) : NULL;
    }
    if (chained && !A->failed)
        grads[2] = give(A, OP(A, fl_narrow(g, dim, at, g->shape[dim] - at)));
}

/* ---------------------------------------------------------------- indexing */

/* Of the positions p of idx (its own shape), those whose write was the last to the element
 * it targets: scatter (and index_update along dim 0 of a 1-d buffer) writes in order, so
 * writing each position's number and reading it back finds them. A bool tensor of idx's
 * shape. */
static fl_tensor *last_writers(arena *A, const fl_tensor *idx, int ndim, const int64_t *shape,
                               int dim, int64_t base, bool rows)
{
    fl_tensor *ids = OP(A, fl_arange(0, (double)idx->numel, 1, FL_DTYPE_I64));
    ids = OP(A, fl_move(ids, idx->storage->device));   /* arange is made on the CPU */
    ids = OP(A, fl_view(ids, rows ? 1 : idx->ndim, rows ? &idx->numel : idx->shape));
    fl_tensor *owner = zeros_of(A, ids, ndim, shape), *back;
    if (A->failed)
        return NULL;
    if (rows) {
        check(A, fl_index_update_(owner, 0, idx, ids, FL_SCATTER_SET, base));
        back = OP(A, fl_index_select(owner, 0, idx, base));
    } else {
        check(A, fl_scatter_(owner, dim, idx, ids, FL_SCATTER_SET, base));
        back = OP(A, fl_gather(owner, dim, idx, base));
    }
    return OP(A, fl_binary(FL_BINOP_EQ, back, ids));
}

/* x placed in the leading block of a zero tensor of (ndim, shape): the gradient of a source
 * that the index covers only in part. A 0-dim shape is left to the engine's sum. */
static fl_tensor *pad_to(arena *A, fl_tensor *x, const fl_tensor *g, int ndim, const int64_t *shape)
{
    if (A->failed || ndim == 0 || (ndim == x->ndim && !memcmp(shape, x->shape, (size_t)ndim * sizeof *shape)))
        return x;
    fl_slice_spec specs[FL_MAX_DIMS];
    for (int d = 0; d < ndim; d++)
        specs[d] = (fl_slice_spec){false, 0, x->shape[d], 1};
    fl_tensor *z = zeros_of(A, g, ndim, shape);
    put(A, OP(A, fl_index_slices(z, ndim, specs)), x);
    return z;
}

static void scatter_rule(arena *A, const fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *idx = n->saved[0];
    int dim = (int)n->iargs[0];
    int64_t base = n->iargs[1];
    bool set = n->iargs[2] == FL_SCATTER_SET;
    fl_tensor *zero = set ? zero_scalar(A, g) : NULL;
    if (n->next[0])
        grads[0] = set ? give(A, OP(A, fl_scatter(g, dim, idx, zero, FL_SCATTER_SET, base)))
                       : give(A, (fl_tensor *)g);
    if (n->next[1]) {
        fl_tensor *gs = OP(A, fl_gather(g, dim, idx, base));
        if (set && idx->numel > 1) {
            fl_tensor *last = last_writers(A, idx, g->ndim, g->shape, dim, base, false);
            gs = OP(A, fl_binary(FL_BINOP_MUL, gs, last));
        }
        grads[1] = give(A, pad_to(A, gs, g, n->in_ndim[1], n->in_shape[1]));
    }
}

static void index_update_rule(arena *A, const fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    const fl_tensor *idx = n->saved[0];
    int dim = (int)n->iargs[0];
    int64_t base = n->iargs[1];
    bool set = n->iargs[2] == FL_SCATTER_SET;
    fl_tensor *zero = set ? zero_scalar(A, g) : NULL;
    if (n->next[0])
        grads[0] = set ? give(A, OP(A, fl_index_update(g, dim, idx, zero, FL_SCATTER_SET, base)))
                       : give(A, (fl_tensor *)g);
    if (n->next[1]) {
        fl_tensor *gs = OP(A, fl_index_select(g, dim, idx, base));
        if (set && idx->numel > 1 && g->ndim > 0) {
            /* the last writers along dim, shaped to broadcast over the other dims */
            int64_t len = g->shape[dim], shape[FL_MAX_DIMS];
            fl_tensor *last = last_writers(A, idx, 1, &len, 0, base, true);
            for (int d = 0; d < g->ndim; d++)
                shape[d] = d == dim ? idx->numel : 1;
            last = OP(A, fl_view(last, g->ndim, shape));
            gs = OP(A, fl_binary(FL_BINOP_MUL, gs, last));
        }
        grads[1] = give(A, gs);
    }
}

/* ---------------------------------------------------------------- dispatch */

int fl_backward_view(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    arena A = {.n = 0};
    const int64_t *a = n->iargs;
    const fl_tensor *s0 = n->saved[0];
    switch (n->rule) {
    case FL_GRAD_SELECT: {
        fl_tensor *z = zeros_in(&A, n, 0, g);
        put(&A, OP(&A, fl_select(z, (int)a[0], a[1])), g);
        grads[0] = give(&A, z);
        break;
    }
    case FL_GRAD_SLICE: {
        fl_tensor *z = zeros_in(&A, n, 0, g);
        put(&A, OP(&A, fl_slice(z, (int)a[0], a[1], a[2], a[3])), g);
        grads[0] = give(&A, z);
        break;
    }
    case FL_GRAD_INDEX_SLICES: {
        fl_slice_spec specs[FL_MAX_DIMS];
        int count = (int)s0->shape[0];
        const int64_t *p = fl_tensor_data(s0);
        for (int i = 0; i < count; i++, p += 4)
            specs[i] = (fl_slice_spec){p[0] != 0, p[1], p[2], p[3]};
        fl_tensor *z = zeros_in(&A, n, 0, g);
        put(&A, OP(&A, fl_index_slices(z, count, specs)), g);
        grads[0] = give(&A, z);
        break;
    }
    case FL_GRAD_RESHAPE:
        grads[0] = fl_reshape(g, n->in_ndim[0], n->in_shape[0]);
        A.failed = !grads[0];
        break;
    case FL_GRAD_TRANSPOSE:
        grads[0] = fl_transpose(g, (int)a[0], (int)a[1]);
        A.failed = !grads[0];
        break;
    case FL_GRAD_PERMUTE: {
        int inverse[FL_MAX_DIMS];
        for (int d = 0; d < g->ndim; d++)
            inverse[(a[0] >> (4 * d)) & 15] = d;
        grads[0] = fl_permute(g, inverse);
        A.failed = !grads[0];
        break;
    }
    case FL_GRAD_EXPAND:
        grads[0] = fl_tensor_retain((fl_tensor *)g);   /* summed back to the input's shape */
        break;
    case FL_GRAD_UNFOLD:
        unfold_rule(&A, n, g, grads);
        break;
    case FL_GRAD_CAT:
        cat_rule(&A, n, g, grads);
        break;
    case FL_GRAD_INDEX_SELECT: {
        /* index_add of g into zeros; x[idx] first views g as (idx numel, rest...) */
        int64_t shape[FL_MAX_DIMS];
        int nd = n->in_ndim[0], dim = (int)a[0];
        memcpy(shape, n->in_shape[0], sizeof shape);
        if (nd)
            shape[dim] = s0->numel;
        fl_tensor *z = zeros_in(&A, n, 0, g);
        fl_tensor *rows = OP(&A, fl_reshape(g, nd, shape));
        check(&A, rows ? fl_index_update_(z, dim, s0, rows, FL_SCATTER_ADD, a[1]) : -1);
        grads[0] = give(&A, z);
        break;
    }
    case FL_GRAD_GATHER: {
        fl_tensor *z = zeros_in(&A, n, 0, g);
        check(&A, z ? fl_scatter_(z, (int)a[0], s0, g, FL_SCATTER_ADD, a[1]) : -1);
        grads[0] = give(&A, z);
        break;
    }
    case FL_GRAD_SCATTER:
        scatter_rule(&A, n, g, grads);
        break;
    case FL_GRAD_INDEX_UPDATE:
        index_update_rule(&A, n, g, grads);
        break;
    case FL_GRAD_MASKED_FILL:
    case FL_GRAD_MASKED_SCATTER: {
        /* the input keeps what the mask leaves; the source gets what it wrote */
        fl_tensor *zero = zero_scalar(&A, g);
        if (n->next[0])
            grads[0] = give(&A, OP(&A, fl_where(s0, zero, g)));
        if (n->rule == FL_GRAD_MASKED_FILL && n->next[2])
            grads[2] = give(&A, OP(&A, fl_where(s0, g, zero)));
        if (n->rule == FL_GRAD_MASKED_SCATTER && n->next[1]) {
            /* masked_scatter reads src in order: its first `count` elements get the values */
            fl_tensor *vals = OP(&A, fl_masked_select(g, s0));
            fl_tensor *z = zeros_in(&A, n, 1, g);
            int64_t numel = z ? z->numel : 0;
            fl_tensor *flat = OP(&A, fl_reshape(z, 1, &numel));
            put(&A, OP(&A, fl_narrow(flat, 0, 0, vals->numel)), vals);
            grads[1] = give(&A, z);
        }
        break;
    }
    case FL_GRAD_MASKED_SELECT: {
        /* masked_scatter of g into zeros of the broadcast shape (summed back by the engine) */
        int64_t shape[FL_MAX_DIMS];
        int nd = fl_broadcast_shape(n->in_ndim[0], n->in_shape[0], s0->ndim, s0->shape, shape);
        fl_tensor *z = nd < 0 ? NULL : zeros_of(&A, g, nd, shape);
        check(&A, z ? fl_masked_scatter_(z, s0, g) : -1);
        grads[0] = give(&A, z);
        break;
    }
    default:
        fl_error("no backward rule for '%s'", n->name);
        A.failed = true;
    }
    arena_free(&A);
    return A.failed ? -1 : 0;
}
