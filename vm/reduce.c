/* reduce.c: reductions (sum, mean, prod, amax/amin, all/any, var/std, norm, logsumexp,
 * max/min/argmax/argmin along a dim) and cumulative sums and products.
 *
 * Any layout is folded into the kernels' picture: the kept dims become rows (an outer index
 * plus one strided inner run), the reduced dims one strided run per row. When the reduced
 * dims cannot be merged into one run, a contiguous copy with them innermost is made. Long
 * rows are cut into blocks (RED_BLOCK, or COL_BLOCK when the kernel walks across rows)
 * whose partials are folded in order; the work items are split on the pool. Every split
 * depends on the shape only, never on the thread count, so results are the same with 1
 * thread or 64. CUDA tensors take the same plan to the kernels of kernels/cuda/reduce.cu,
 * which also apply the final step (mean's division, var's, the norm's root) and write the
 * result's dtype at once. Each differentiable op records its autograd node last (rules in
 * vm/backward_reduce.c). */
#include "autograd.h"
#include "cuda.h"
#include "../kernels/cpu/reduce.h"
#include "../kernels/cuda/reduce.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RED_BLOCK 32768   /* entries of one row per work item */
#define WORK_GRAIN 32768  /* elements per work item; smaller jobs stay on the calling thread */
#define COL_TILE 2048     /* rows per work item when the kernel walks across rows */
#define COL_BLOCK 4096    /* entries per work item then */

/* ---------------------------------------------------------------- the plan */

typedef struct {
    fl_tensor *src;                    /* what is walked: t, or a contiguous copy (owned) */
    const char *data;
    int nouter;                        /* kept dims other than the inner run */
    int64_t outer_shape[FL_MAX_DIMS], outer_stride[FL_MAX_DIMS];
    int64_t n_outer, n_inner, so;      /* rows: n_outer * n_inner, inner ones so apart */
    int64_t n_red, sr;                 /* entries per row, sr apart */
    int64_t n_out;
    int out_ndim;
    int64_t out_shape[FL_MAX_DIMS];
} plan;

/* The bit set of reduced dims; ndims == 0 means all. A 0-dim tensor accepts dim 0. */
static int dims_mask(const fl_tensor *t, int ndims, const int *dims, uint32_t *mask)
{
    *mask = 0;
    if (ndims == 0) {
        *mask = t->ndim ? (uint32_t)((1u << t->ndim) - 1) : 0;
        return 0;
    }
    for (int i = 0; i < ndims; i++) {
        int d = dims[i];
        if (t->ndim == 0 && (d == 0 || d == -1))
            continue;
        if (d < 0 || d >= t->ndim) {
            fl_error("dimension %d is out of range for a tensor of %d dimensions", d, t->ndim);
            return -1;
        }
        if (*mask & (1u << d)) {
            fl_error("dimension %d appears more than once in the list of dims", d);
            return -1;
        }
        *mask |= 1u << d;
    }
    return 0;
}

typedef struct {
    int64_t size, stride;
} dim_run;

/* Merges runs in place where run k continues run k-1; returns the new count. */
static int merge_runs(dim_run *r, int n)
{
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (m > 0 && r[m - 1].stride == r[k].stride * r[k].size) {
            r[m - 1].size *= r[k].size;
            r[m - 1].stride = r[k].stride;
        } else {
            r[m++] = r[k];
        }
    }
    return m;
}

static void plan_free(plan *pl)
{
    fl_tensor_release(pl->src);
    pl->src = NULL;
}

static int plan_init(plan *pl, const fl_tensor *t, uint32_t mask, bool keepdim)
{
    memset(pl, 0, sizeof *pl);
    dim_run kept[FL_MAX_DIMS], red[FL_MAX_DIMS];
    int nk = 0, nr = 0;
    bool empty_red = false;
    for (int d = 0; d < t->ndim; d++) {
        bool r = mask & (1u << d);
        if (!r || keepdim)
            pl->out_shape[pl->out_ndim++] = r ? 1 : t->shape[d];
        if (r && t->shape[d] == 0)
            empty_red = true;
        if (t->shape[d] == 1)
            continue;
        if (r)
            red[nr++] = (dim_run){t->shape[d], t->strides[d]};
        else
            kept[nk++] = (dim_run){t->shape[d], t->strides[d]};
    }
    pl->n_out = fl_shape_numel(pl->out_ndim, pl->out_shape);
    pl->src = fl_tensor_retain((fl_tensor *)t);
    if (empty_red) {
        nr = 0;
    } else {
        /* the reduction order is free: sort by stride (descending, stable) and merge */
        for (int i = 1; i < nr; i++)
            for (int j = i; j > 0 && llabs(red[j].stride) > llabs(red[j - 1].stride); j--) {
                dim_run tmp = red[j];
                red[j] = red[j - 1];
                red[j - 1] = tmp;
            }
        nr = merge_runs(red, nr);
    }
    if (nr > 1) {
        /* a copy with the kept dims first and the reduced dims innermost */
        int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS];
        int n = 0;
        int64_t n_red = 1, n_kept = 1;
        for (int pass = 0; pass < 2; pass++)
            for (int d = 0; d < t->ndim; d++)
                if (((mask >> d) & 1u) == (uint32_t)pass) {
                    shape[n] = t->shape[d];
                    strides[n++] = t->strides[d];
                    if (pass)
                        n_red *= t->shape[d];
                    else
                        n_kept *= t->shape[d];
                }
        fl_tensor *view = fl_tensor_view_of(t, n, shape, strides, t->offset);
        fl_tensor *copy = view ? fl_clone(view) : NULL;
        fl_tensor_release(view);
        if (!copy) {
            plan_free(pl);
            return -1;
        }
        fl_tensor_release(pl->src);
        pl->src = copy;
        pl->data = fl_tensor_data(copy);
        pl->n_outer = 1;
        pl->n_inner = n_kept;
        pl->so = n_red;
        pl->n_red = n_red;
        pl->sr = 1;
        return 0;
    }
    pl->data = fl_tensor_data(t);
    pl->n_red = empty_red ? 0 : nr ? red[0].size : 1;
    pl->sr = nr ? red[0].stride : 0;
    nk = merge_runs(kept, nk);
    pl->n_inner = nk ? kept[nk - 1].size : 1;
    pl->so = nk ? kept[nk - 1].stride : 0;
    pl->nouter = nk ? nk - 1 : 0;
    pl->n_outer = 1;
    for (int k = 0; k < pl->nouter; k++) {
        pl->outer_shape[k] = kept[k].size;
        pl->outer_stride[k] = kept[k].stride;
        pl->n_outer *= kept[k].size;
    }
    return 0;
}

/* Element offset of outer row o (row-major over the outer dims). */
static int64_t outer_offset(const plan *pl, int64_t o)
{
    int64_t off = 0;
    for (int k = pl->nouter - 1; k >= 0; k--) {
        off += (o % pl->outer_shape[k]) * pl->outer_stride[k];
        o /= pl->outer_shape[k];
    }
    return off;
}

/* The plan as the CUDA kernels take it. */
static fl_cuda_rplan cuda_plan(const plan *pl)
{
    fl_cuda_rplan c = {.x = pl->data, .dt = pl->src->dtype, .nouter = pl->nouter, .n_inner = pl->n_inner,
                       .so = pl->so, .n_red = pl->n_red, .sr = pl->sr, .n_out = pl->n_out};
    for (int k = 0; k < pl->nouter; k++) {
        c.outer_shape[k] = pl->outer_shape[k];
        c.outer_stride[k] = pl->outer_stride[k];
    }
    return c;
}

/* ---------------------------------------------------------------- running a plan */

enum { KIND_FLOAT, KIND_INT, KIND_ARG };

typedef struct {
    const plan *pl;
    int kind;
    fl_rk op;            /* KIND_FLOAT, KIND_INT */
    int want_max;        /* KIND_ARG */
    fl_dtype dt;
    const double *shift;
    double p;
    void *part;          /* [nblk][n_out] doubles or int64 */
    int64_t *pidx;       /* [nblk][n_out], KIND_ARG */
    int64_t nblk, rb, oc, nchunks;
} red_job;

static void red_items(void *ctx, int64_t begin, int64_t end)
{
    red_job *job = ctx;
    const plan *pl = job->pl;
    size_t es = fl_dtype_size(job->dt);
    for (int64_t item = begin; item < end; item++) {
        int64_t b = item % job->nblk, rest = item / job->nblk;
        int64_t c = rest % job->nchunks, o = rest / job->nchunks;
        int64_t i0 = c * job->oc, m = pl->n_inner - i0 < job->oc ? pl->n_inner - i0 : job->oc;
        int64_t j0 = b * job->rb, len = pl->n_red - j0 < job->rb ? pl->n_red - j0 : job->rb;
        const char *x = pl->data + (outer_offset(pl, o) + i0 * pl->so + j0 * pl->sr) * (int64_t)es;
        int64_t at = b * pl->n_out + o * pl->n_inner + i0;
        switch (job->kind) {
        case KIND_FLOAT:
            fl_cpu_reduce_float(job->op, job->dt, (double *)job->part + at, x, m, len, pl->so, pl->sr,
                                job->shift ? job->shift + (at - b * pl->n_out) : NULL, job->p);
            break;
        case KIND_INT:
            fl_cpu_reduce_int(job->op, job->dt, (int64_t *)job->part + at, x, m, len, pl->so, pl->sr);
            break;
        default:
            fl_cpu_reduce_arg(job->want_max, job->dt, (char *)job->part + at * 8, job->pidx + at,
                              x, m, len, pl->so, pl->sr, j0);
            break;
        }
    }
}

/* Runs the plan into out (n_out doubles or int64) and, for KIND_ARG, idx. */
static int plan_run(const plan *pl, red_job *job, void *out, int64_t *idx)
{
    if (pl->n_out == 0)
        return 0;
    job->pl = pl;
    job->dt = pl->src->dtype;
    /* Walking across rows, the kernel reads whole bands of up to COL_TILE rows in order;
     * the entries are cut into blocks of COL_BLOCK to make work items. Walking along rows,
     * rows are cut into blocks of RED_BLOCK and grouped up to WORK_GRAIN elements. */
    bool across = pl->so != 0 && llabs(pl->so) < llabs(pl->sr);
    int64_t block = across ? COL_BLOCK : RED_BLOCK;
    job->nblk = pl->n_red > block ? (pl->n_red + block - 1) / block : 1;
    job->rb = job->nblk > 1 ? block : pl->n_red;
    int64_t row = job->rb > 0 ? job->rb : 1;
    if (across)
        job->oc = COL_TILE;
    else
        job->oc = WORK_GRAIN / row > 0 ? WORK_GRAIN / row : 1;
    if (job->oc > pl->n_inner)
        job->oc = pl->n_inner;
    job->nchunks = (pl->n_inner + job->oc - 1) / job->oc;
    job->part = out;
    job->pidx = idx;
    if (job->nblk > 1) {
        job->part = malloc((size_t)(job->nblk * pl->n_out) * 8);
        job->pidx = job->kind == KIND_ARG ? malloc((size_t)(job->nblk * pl->n_out) * sizeof *idx) : NULL;
        if (!job->part || (job->kind == KIND_ARG && !job->pidx)) {
            free(job->part);
            free(job->pidx);
            fl_error("out of memory");
            return -1;
        }
    }
    int64_t items = pl->n_outer * job->nchunks * job->nblk;
    if (items > 1 && pl->n_out * (pl->n_red ? pl->n_red : 1) >= 2 * WORK_GRAIN)
        fl_parallel_for(items, 1, red_items, job);
    else
        red_items(job, 0, items);
    if (job->nblk > 1) {
        if (job->kind == KIND_FLOAT)
            fl_cpu_reduce_combine_float(job->op, out, job->part, pl->n_out, job->nblk);
        else if (job->kind == KIND_INT)
            fl_cpu_reduce_combine_int(job->op, out, job->part, pl->n_out, job->nblk);
        else
            fl_cpu_reduce_arg_combine(job->want_max, job->dt, out, idx, job->part, job->pidx,
                                      pl->n_out, job->nblk);
        free(job->part);
        free(job->pidx);
    }
    return 0;
}

/* ---------------------------------------------------------------- reductions */

static int require_float(const fl_tensor *t)
{
    if (!fl_dtype_is_float(t->dtype)) {
        fl_error("expected a floating-point tensor, got %s (convert it to float32 or float64 first)",
                 fl_dtype_name(t->dtype));
        return -1;
    }
    return 0;
}

/* One reduction: op over each row, then post (kernels/cuda/reduce.h), stored as dt. shift
 * (float64 of the result's shape on t's device, or NULL) feeds SQDEV, EXPSHIFT and LSE; p is
 * ABSPOW's power, arg the post's argument. */
typedef struct {
    fl_rk op;
    const fl_tensor *shift;
    double p;
    fl_rpost post;
    double arg;
    fl_dtype dt;
} red_spec;

/* On the CPU the rows are folded into a float64 (float tensors) or int64 accumulator, which
 * is post-processed and cast. *n_red, when asked, receives the number of entries per result. */
static fl_tensor *reduce_cpu(const plan *pl, const fl_tensor *t, const red_spec *s)
{
    bool is_float = fl_dtype_is_float(t->dtype);
    fl_tensor *acc = fl_tensor_empty(is_float ? FL_DTYPE_F64 : FL_DTYPE_I64, pl->out_ndim, pl->out_shape, FL_CPU);
    red_job job = {.kind = is_float ? KIND_FLOAT : KIND_INT, .op = s->op, .p = s->p,
                   .shift = s->shift ? fl_tensor_data(s->shift) : NULL};
    if (acc && plan_run(pl, &job, fl_tensor_data(acc), NULL) < 0) {
        fl_tensor_release(acc);
        return NULL;
    }
    if (acc && is_float && s->post != FL_RPOST_NONE) {
        double *a = fl_tensor_data(acc);
        const double *sh = s->shift ? fl_tensor_data(s->shift) : NULL;
        for (int64_t i = 0; i < acc->numel; i++)
            a[i] = fl_rpost_apply(s->post, a[i], (double)pl->n_red, s->arg, sh ? sh[i] : 0);
    }
    if (!acc || acc->dtype == s->dt)
        return acc;
    fl_tensor *r = fl_cast(acc, s->dt);
    fl_tensor_release(acc);
    return r;
}

static fl_tensor *reduce_cuda(const plan *pl, const fl_tensor *t, const red_spec *s)
{
    fl_tensor *out = fl_tensor_empty(s->dt, pl->out_ndim, pl->out_shape, t->storage->device);
    fl_cuda_rplan cp = cuda_plan(pl);
    if (out && fl_cuda_status(FL_CUDA(fl_cuda_reduce)(s->op, &cp, s->shift ? fl_tensor_data(s->shift) : NULL, s->p,
                                                       s->post, (double)pl->n_red, s->arg, s->dt,
                                                       fl_tensor_data(out))) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return out;
}

static fl_tensor *reduce(const fl_tensor *t, uint32_t mask, bool keepdim, const red_spec *s, int64_t *n_red)
{
    plan pl;
    if (plan_init(&pl, t, mask, keepdim) < 0)
        return NULL;
    fl_tensor *out = fl_is_cuda(t) ? reduce_cuda(&pl, t, s) : reduce_cpu(&pl, t, s);
    if (n_red)
        *n_red = pl.n_red;
    plan_free(&pl);
    return out;
}

static fl_dtype widened(fl_dtype dt)
{
    return fl_dtype_is_float(dt) ? dt : FL_DTYPE_I64;
}

/* Records the node of a reduction of t over the dims in mask (out is released on failure).
 * save0/save1 go to the node's saved slots; darg is the rule's dargs[0]. */
static fl_tensor *record(fl_tensor *out, const fl_tensor *t, fl_grad_rule rule, const char *name,
                         uint32_t mask, bool keepdim, const fl_tensor *save0, const fl_tensor *save1,
                         double darg)
{
    if (!out || !fl_needs_grad(t) || !fl_dtype_is_float(out->dtype))
        return out;
    fl_node *n = fl_node_new(rule, name, 1, &t);
    if (!n || (save0 && fl_node_save(n, 0, save0) < 0) || (save1 && fl_node_save(n, 1, save1) < 0)) {
        fl_node_release(n);
        fl_tensor_release(out);
        return NULL;
    }
    n->iargs[0] = mask;
    n->iargs[1] = keepdim;
    n->dargs[0] = darg;
    fl_node_attach(n, out);
    return out;
}

fl_tensor *fl_sum(const fl_tensor *t, int ndims, const int *dims, bool keepdim)
{
    uint32_t mask;
    if (dims_mask(t, ndims, dims, &mask) < 0)
        return NULL;
    red_spec s = {.op = FL_RK_SUM, .dt = widened(t->dtype)};
    return record(reduce(t, mask, keepdim, &s, NULL), t, FL_GRAD_SUM, "sum", mask, keepdim, NULL, NULL, 0);
}

fl_tensor *fl_prod(const fl_tensor *t, int ndims, const int *dims, bool keepdim)
{
    uint32_t mask;
    if (dims_mask(t, ndims, dims, &mask) < 0)
        return NULL;
    red_spec s = {.op = FL_RK_PROD, .dt = widened(t->dtype)};
    fl_tensor *out = reduce(t, mask, keepdim, &s, NULL);
    return record(out, t, FL_GRAD_PROD, "prod", mask, keepdim, t, out, 0);
}

fl_tensor *fl_mean(const fl_tensor *t, int ndims, const int *dims, bool keepdim)
{
    uint32_t mask;
    if (require_float(t) < 0 || dims_mask(t, ndims, dims, &mask) < 0)
        return NULL;
    red_spec s = {.op = FL_RK_SUM, .post = FL_RPOST_MEAN, .dt = t->dtype};
    return record(reduce(t, mask, keepdim, &s, NULL), t, FL_GRAD_MEAN, "mean", mask, keepdim, NULL, NULL, 0);
}

/* An empty reduction has no max: an error unless the result is empty too. */
static int check_nonempty(const fl_tensor *t, uint32_t mask, const char *what)
{
    int64_t kept = 1;
    int zero_dim = -1;
    for (int d = 0; d < t->ndim; d++) {
        if (mask & (1u << d)) {
            if (t->shape[d] == 0 && zero_dim < 0)
                zero_dim = d;
        } else {
            kept *= t->shape[d];
        }
    }
    if (zero_dim < 0 || kept == 0)
        return 0;
    if (mask == (t->ndim ? (uint32_t)((1u << t->ndim) - 1) : 0u))
        fl_error("cannot take the %s of an empty tensor (give a dim whose size is not 0)", what);
    else
        fl_error("cannot take the %s over a dimension of size 0 (dim %d)", what, zero_dim);
    return -1;
}

static fl_tensor *extreme(const fl_tensor *t, int ndims, const int *dims, bool keepdim, fl_rk op)
{
    uint32_t mask;
    if (dims_mask(t, ndims, dims, &mask) < 0 ||
        check_nonempty(t, mask, op == FL_RK_MAX ? "max" : "min") < 0)
        return NULL;
    red_spec s = {.op = op, .dt = t->dtype};
    fl_tensor *out = reduce(t, mask, keepdim, &s, NULL);
    return record(out, t, FL_GRAD_AMAX, op == FL_RK_MAX ? "amax" : "amin", mask, keepdim, t, out, 0);
}

fl_tensor *fl_amax(const fl_tensor *t, int ndims, const int *dims, bool keepdim)
{
    return extreme(t, ndims, dims, keepdim, FL_RK_MAX);
}

fl_tensor *fl_amin(const fl_tensor *t, int ndims, const int *dims, bool keepdim)
{
    return extreme(t, ndims, dims, keepdim, FL_RK_MIN);
}

fl_tensor *fl_all(const fl_tensor *t, int ndims, const int *dims, bool keepdim)
{
    uint32_t mask;
    if (dims_mask(t, ndims, dims, &mask) < 0)
        return NULL;
    red_spec s = {.op = FL_RK_ALL, .dt = FL_DTYPE_BOOL};
    return reduce(t, mask, keepdim, &s, NULL);
}

fl_tensor *fl_any(const fl_tensor *t, int ndims, const int *dims, bool keepdim)
{
    uint32_t mask;
    if (dims_mask(t, ndims, dims, &mask) < 0)
        return NULL;
    red_spec s = {.op = FL_RK_ANY, .dt = FL_DTYPE_BOOL};
    return reduce(t, mask, keepdim, &s, NULL);
}

/* log(sum exp(x - m)) + m with m the max, taken as 0 where it is infinite (so that all
 * -inf gives -inf and a +inf gives +inf, as in PyTorch). Integers are computed in float32. */
fl_tensor *fl_logsumexp(const fl_tensor *t, int ndims, const int *dims, bool keepdim)
{
    uint32_t mask;
    if (dims_mask(t, ndims, dims, &mask) < 0)
        return NULL;
    fl_tensor *x = fl_dtype_is_float(t->dtype) ? fl_tensor_retain((fl_tensor *)t)
                                                 : fl_cast(t, FL_DTYPE_F32);
    if (!x)
        return NULL;
    red_spec ms = {.op = FL_RK_MAX, .post = FL_RPOST_FINITE, .dt = FL_DTYPE_F64};
    fl_tensor *m = reduce(x, mask, keepdim, &ms, NULL), *out = NULL;
    if (m) {
        red_spec ss = {.op = FL_RK_EXPSHIFT, .shift = m, .post = FL_RPOST_LSE, .dt = x->dtype};
        out = reduce(x, mask, keepdim, &ss, NULL);
    }
    fl_tensor_release(m);
    fl_tensor_release(x);
    return record(out, t, FL_GRAD_LOGSUMEXP, "logsumexp", mask, keepdim, t, out, 0);
}

/* Two passes (mean, then squared deviations): accurate where sum-of-squares formulas are
 * not. */
static fl_tensor *variance(const fl_tensor *t, int ndims, const int *dims, double correction,
                           bool keepdim, bool root)
{
    uint32_t mask;
    if (require_float(t) < 0 || dims_mask(t, ndims, dims, &mask) < 0)
        return NULL;
    red_spec ms = {.op = FL_RK_SUM, .post = FL_RPOST_MEAN, .dt = FL_DTYPE_F64};
    fl_tensor *mean = reduce(t, mask, keepdim, &ms, NULL);
    if (!mean)
        return NULL;
    red_spec vs = {.op = FL_RK_SQDEV, .shift = mean, .post = root ? FL_RPOST_STD : FL_RPOST_VAR,
                   .arg = correction, .dt = t->dtype};
    fl_tensor *out = reduce(t, mask, keepdim, &vs, NULL);
    fl_tensor_release(mean);
    return record(out, t, root ? FL_GRAD_STD : FL_GRAD_VAR, root ? "std" : "var", mask, keepdim, t,
                  root ? out : NULL, correction);
}

fl_tensor *fl_var(const fl_tensor *t, int ndims, const int *dims, double correction, bool keepdim)
{
    return variance(t, ndims, dims, correction, keepdim, false);
}

fl_tensor *fl_std(const fl_tensor *t, int ndims, const int *dims, double correction, bool keepdim)
{
    return variance(t, ndims, dims, correction, keepdim, true);
}

fl_tensor *fl_norm(const fl_tensor *t, double p, int ndims, const int *dims, bool keepdim)
{
    uint32_t mask;
    if (isnan(p)) {
        fl_error("the norm's p must be a number, got nan");
        return NULL;
    }
    if (require_float(t) < 0 || dims_mask(t, ndims, dims, &mask) < 0)
        return NULL;
    fl_rk op = p == INFINITY ? FL_RK_ABSMAX : p == -INFINITY ? FL_RK_ABSMIN
             : p == 0 ? FL_RK_NONZERO : FL_RK_ABSPOW;
    red_spec s = {.op = op, .p = p, .post = op == FL_RK_ABSPOW && p != 1 ? FL_RPOST_ROOT : FL_RPOST_NONE,
                  .arg = p, .dt = t->dtype};
    int64_t n;
    fl_tensor *out = reduce(t, mask, keepdim, &s, &n);
    if (out && n == 0 && fl_fill(out, 0) < 0) {   /* every norm of nothing is 0 (PyTorch), min |x| included */
        fl_tensor_release(out);
        out = NULL;
    }
    return record(out, t, FL_GRAD_NORM, "norm", mask, keepdim, t, out, p);
}

/* ---------------------------------------------------------------- max/min with indices */

/* Values (dtype of t) and indices (int64, from base) of the extreme along the dims in mask
 * (one dim, or all of a contiguous tensor so that indices are row-major positions). */
static int arg_reduce_cuda(const plan *pl, const fl_tensor *t, int want_max, int64_t base,
                           fl_tensor **values, fl_tensor **indices)
{
    fl_tensor *val = fl_tensor_empty(t->dtype, pl->out_ndim, pl->out_shape, t->storage->device);
    fl_tensor *idx = val ? fl_tensor_empty(FL_DTYPE_I64, pl->out_ndim, pl->out_shape, t->storage->device) : NULL;
    fl_cuda_rplan cp = cuda_plan(pl);
    if (!idx || fl_cuda_status(FL_CUDA(fl_cuda_reduce_arg)(want_max, &cp, base, fl_tensor_data(val),
                                                           fl_tensor_data(idx))) < 0) {
        fl_tensor_release(val);
        fl_tensor_release(idx);
        return -1;
    }
    *values = val;
    *indices = idx;
    return 0;
}

static int arg_reduce(const fl_tensor *t, uint32_t mask, bool keepdim, int want_max, int64_t base,
                      fl_tensor **values, fl_tensor **indices)
{
    plan pl;
    *values = *indices = NULL;
    if (plan_init(&pl, t, mask, keepdim) < 0)
        return -1;
    if (fl_is_cuda(t)) {
        int rc = arg_reduce_cuda(&pl, t, want_max, base, values, indices);
        plan_free(&pl);
        return rc;
    }
    bool is_float = fl_dtype_is_float(t->dtype);
    fl_tensor *val = fl_tensor_empty(is_float ? FL_DTYPE_F64 : FL_DTYPE_I64, pl.out_ndim, pl.out_shape, FL_CPU);
    fl_tensor *idx = val ? fl_tensor_empty(FL_DTYPE_I64, pl.out_ndim, pl.out_shape, FL_CPU) : NULL;
    red_job job = {.kind = KIND_ARG, .want_max = want_max};
    int rc = idx ? plan_run(&pl, &job, fl_tensor_data(val), fl_tensor_data(idx)) : -1;
    plan_free(&pl);
    if (rc == 0) {
        int64_t *ix = fl_tensor_data(idx);
        for (int64_t i = 0; i < idx->numel; i++)
            ix[i] += base;
        *values = val->dtype == t->dtype ? fl_tensor_retain(val) : fl_cast(val, t->dtype);
        rc = *values ? 0 : -1;
    }
    fl_tensor_release(val);
    if (rc < 0) {
        fl_tensor_release(idx);
        return -1;
    }
    *indices = idx;
    return 0;
}

static int extreme_dim(const fl_tensor *t, int dim, bool keepdim, int want_max, int64_t base,
                       fl_tensor **values, fl_tensor **indices)
{
    uint32_t mask;
    *values = *indices = NULL;
    if (dims_mask(t, 1, &dim, &mask) < 0)
        return -1;
    if (t->ndim > 0 && t->shape[dim] == 0) {
        fl_error("cannot take the %s over a dimension of size 0 (dim %d)", want_max ? "max" : "min", dim);
        return -1;
    }
    return arg_reduce(t, mask, keepdim, want_max, base, values, indices);
}

/* The values' node: the gradient goes to the returned indices. */
static int record_dim(const fl_tensor *t, int dim, bool keepdim, int64_t base, const char *name,
                      fl_tensor **values, fl_tensor **indices)
{
    if (!fl_needs_grad(t) || !fl_dtype_is_float(t->dtype))
        return 0;
    fl_node *n = fl_node_new(FL_GRAD_MAX_DIM, name, 1, &t);
    if (!n || fl_node_save(n, 0, *indices) < 0) {
        fl_node_release(n);
        fl_tensor_release(*values);
        fl_tensor_release(*indices);
        *values = *indices = NULL;
        return -1;
    }
    n->iargs[0] = dim;
    n->iargs[1] = keepdim;
    n->iargs[2] = base;
    fl_node_attach(n, *values);
    return 0;
}

int fl_max_dim(const fl_tensor *t, int dim, bool keepdim, int64_t base,
               fl_tensor **values, fl_tensor **indices)
{
    if (extreme_dim(t, dim, keepdim, 1, base, values, indices) < 0)
        return -1;
    return record_dim(t, dim, keepdim, base, "max", values, indices);
}

int fl_min_dim(const fl_tensor *t, int dim, bool keepdim, int64_t base,
               fl_tensor **values, fl_tensor **indices)
{
    if (extreme_dim(t, dim, keepdim, 0, base, values, indices) < 0)
        return -1;
    return record_dim(t, dim, keepdim, base, "min", values, indices);
}

static fl_tensor *arg_extreme(const fl_tensor *t, int dim, bool keepdim, int want_max, int64_t base)
{
    fl_tensor *values = NULL, *indices = NULL;
    if (dim >= 0) {
        if (extreme_dim(t, dim, keepdim, want_max, base, &values, &indices) < 0)
            return NULL;
        fl_tensor_release(values);
        return indices;
    }
    if (t->numel == 0) {
        fl_error("cannot take the %s of an empty tensor", want_max ? "argmax" : "argmin");
        return NULL;
    }
    fl_tensor *c = fl_contiguous((fl_tensor *)t);   /* row-major positions */
    if (!c)
        return NULL;
    uint32_t all = c->ndim ? (uint32_t)((1u << c->ndim) - 1) : 0;
    int rc = arg_reduce(c, all, keepdim, want_max, base, &values, &indices);
    fl_tensor_release(c);
    fl_tensor_release(values);
    return rc < 0 ? NULL : indices;
}

fl_tensor *fl_argmax(const fl_tensor *t, int dim, bool keepdim, int64_t base)
{
    return arg_extreme(t, dim, keepdim, 1, base);
}

fl_tensor *fl_argmin(const fl_tensor *t, int dim, bool keepdim, int64_t base)
{
    return arg_extreme(t, dim, keepdim, 0, base);
}

/* ---------------------------------------------------------------- cumulative */

typedef struct {
    int prod;
    fl_dtype dt;
    const char *x;
    char *out;
    int64_t n, inner, chunk, nchunks;
} scan_job;

/* Item: one outer index and one chunk of inner positions. */
static void scan_items(void *ctx, int64_t begin, int64_t end)
{
    scan_job *job = ctx;
    size_t es = fl_dtype_size(job->dt);
    for (int64_t item = begin; item < end; item++) {
        int64_t o = item / job->nchunks, c = item % job->nchunks;
        int64_t r0 = c * job->chunk, m = job->inner - r0 < job->chunk ? job->inner - r0 : job->chunk;
        int64_t off = (o * job->n * job->inner + r0) * (int64_t)es;
        fl_cpu_cumulative(job->prod, job->dt, job->out + off, job->x + off, m, job->n,
                          1, job->inner, 1, job->inner);
    }
}

static fl_tensor *cumulative(const fl_tensor *t, int dim, int prod)
{
    if (t->ndim == 0 ? (dim != 0 && dim != -1) : (dim < 0 || dim >= t->ndim)) {
        fl_error("dimension %d is out of range for a tensor of %d dimensions", dim, t->ndim);
        return NULL;
    }
    fl_dtype dt = widened(t->dtype);
    /* contiguous in the scan's dtype: one cast/copy, then plain (outer, n, inner) walks */
    fl_tensor *x = t->dtype == dt ? fl_contiguous((fl_tensor *)t) : fl_cast(t, dt);
    fl_tensor *out = x ? fl_tensor_empty(dt, t->ndim, t->shape, t->storage->device) : NULL;
    int64_t n = t->ndim ? t->shape[dim] : 1, outer = 1, inner = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (d < dim)
            outer *= t->shape[d];
        else if (d > dim)
            inner *= t->shape[d];
    }
    if (out && fl_is_cuda(out)) {
        if (fl_cuda_status(FL_CUDA(fl_cuda_cumulative)(prod, dt, fl_tensor_data(out), fl_tensor_data(x),
                                                        outer, n, inner)) < 0) {
            fl_tensor_release(out);
            out = NULL;
        }
    } else if (out && out->numel > 0) {
        scan_job job = {prod, dt, fl_tensor_data(x), fl_tensor_data(out), n, inner, 0, 0};
        job.chunk = inner < 256 ? inner : 256;
        job.nchunks = (inner + job.chunk - 1) / job.chunk;
        int64_t items = outer * job.nchunks;
        if (items > 1 && out->numel >= 2 * WORK_GRAIN)
            fl_parallel_for(items, 1, scan_items, &job);
        else
            scan_items(&job, 0, items);
    }
    fl_tensor_release(x);
    if (out && fl_needs_grad(t) && fl_dtype_is_float(dt)) {
        fl_node *node = fl_node_new(prod ? FL_GRAD_CUMPROD : FL_GRAD_CUMSUM, prod ? "cumprod" : "cumsum", 1, &t);
        if (!node || (prod && (fl_node_save(node, 0, t) < 0 || fl_node_save(node, 1, out) < 0))) {
            fl_node_release(node);
            fl_tensor_release(out);
            return NULL;
        }
        node->iargs[0] = dim < 0 ? 0 : dim;
        fl_node_attach(node, out);
    }
    return out;
}

fl_tensor *fl_cumsum(const fl_tensor *t, int dim)
{
    return cumulative(t, dim, 0);
}

fl_tensor *fl_cumprod(const fl_tensor *t, int dim)
{
    return cumulative(t, dim, 1);
}
