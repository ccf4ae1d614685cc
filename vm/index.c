/* index.c: indexing ops: index_select, gather, scatter (set and add), index_copy/add/fill,
 * masked fill/select/scatter, nonzero, and the x[mask] / x[idx] forms of Lua indexing.
 *
 * One trick serves every op that indexes along a dimension: the tensor being indexed is
 * given a header with stride 0 along that dimension ("restrided"), so the iterator walks it
 * in step with the index tensor and the kernel adds (index - base) * stride itself. Indices
 * are checked before anything is written, so an in-place op either completes or changes
 * nothing.
 *
 * Autograd: out-of-place forms run their in-place kernels with grad off, then record one
 * node (rules in vm/backward_view.c); in-place forms refuse tensors that require grad.
 *
 * CUDA tensors run the kernels of kernels/cuda/index.cu on the same iterators; the index
 * check reads one flag back from the device per op, so that a bad index is a clear error. */
#include "autograd.h"
#include "cuda.h"
#include "iter.h"
#include "../kernels/cpu/index.h"
#include "../kernels/cuda/index.h"

#include <string.h>

/* ---------------------------------------------------------------- autograd */

/* In-place writes bypass the tape, so they are refused on tensors that take part in it. */
static int check_inplace(const fl_tensor *t)
{
    if (fl_needs_grad(t)) {
        fl_error("in-place operation on a tensor that requires grad (%s); use the out-of-place "
                 "form, or flare.no_grad() for updates such as optimizer steps",
                 t->grad_fn ? "it has a grad_fn" : "a leaf");
        return -1;
    }
    return 0;
}

/* Turns grad mode off; returns the mode to restore. */
static bool grad_off(void)
{
    bool on = fl_grad_enabled();
    fl_set_grad_enabled(false);
    return on;
}

/* Makes a node of `rule` over the inputs `in` (those needing no grad get no edge) out's
 * grad_fn, saving `save` (the index tensor or mask) and the iargs; releases out on failure. */
static fl_tensor *record(fl_tensor *out, fl_grad_rule rule, const char *name, int nin,
                         const fl_tensor *const *in, const fl_tensor *save, const int64_t *args)
{
    bool need = false;
    for (int i = 0; i < nin; i++)
        need |= in[i] && fl_needs_grad(in[i]);
    if (!out || !need)
        return out;
    fl_node *n = fl_node_new(rule, name, nin, in);
    if (!n || fl_node_save(n, 0, save) < 0) {
        fl_node_release(n);
        fl_tensor_release(out);
        return NULL;
    }
    memcpy(n->iargs, args, sizeof n->iargs);
    fl_node_attach(n, out);
    return out;
}

#define ARGS(...) ((const int64_t[4]){__VA_ARGS__})
#define INPUTS(...) ((const fl_tensor *const[]){__VA_ARGS__})

/* ---------------------------------------------------------------- checks */

static int check_index_dtype(const fl_tensor *idx)
{
    if (idx->dtype != FL_DTYPE_I64 && idx->dtype != FL_DTYPE_I32) {
        fl_error("index must be an int64 or int32 tensor, got %s", fl_dtype_name(idx->dtype));
        return -1;
    }
    return 0;
}

static int check_mask_dtype(const fl_tensor *mask)
{
    if (mask->dtype != FL_DTYPE_BOOL) {
        fl_error("mask must be a bool tensor, got %s%s", fl_dtype_name(mask->dtype),
                 mask->dtype == FL_DTYPE_U8 ? " (convert it with mask:bool())" : "");
        return -1;
    }
    return 0;
}

static int check_device(const fl_tensor *a, const fl_tensor *b)
{
    if (a->storage->device.type != b->storage->device.type) {
        fl_error("expected all tensors on the same device, got %s and %s",
                 a->storage->device.type == FL_DEVICE_CPU ? "cpu" : "cuda",
                 b->storage->device.type == FL_DEVICE_CPU ? "cpu" : "cuda");
        return -1;
    }
    return 0;
}

static int check_dim(int dim, int ndim)
{
    if (dim < 0 || dim >= (ndim ? ndim : 1)) {
        fl_error("dimension %d out of range for a %d-dim tensor", dim + 1, ndim);
        return -1;
    }
    return 0;
}

typedef struct {
    fl_dtype idt;
    int64_t limit, base, bad;
    int failed;
} check_ctx;

static void check_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    check_ctx *c = p;
    if (!c->failed && fl_cpu_index_check(c->idt, ptr[0], n, st[0], c->limit, c->base, &c->bad) < 0)
        c->failed = 1;
}

/* Every index in idx lies in [base, base + limit). */
static int check_indices(const fl_tensor *idx, int64_t limit, int64_t base, int dim)
{
    fl_iter it;
    const fl_tensor *ts[1] = {idx};
    fl_iter_init(&it, idx->ndim, idx->shape, 1, ts);
    check_ctx c = {idx->dtype, limit, base, 0, 0};
    if (fl_is_cuda(idx)) {
        int rc = fl_cuda_status(FL_CUDA(fl_cuda_index_check)(idx->dtype, &it, limit, base, &c.bad));
        if (rc < 0)
            return -1;
        c.failed = rc;
    } else {
        fl_iter_run(&it, check_run, &c, false);
    }
    if (c.failed) {
        fl_error("index %lld is out of range for dimension %d of size %lld (valid indices are %lld to %lld)",
                 (long long)c.bad, dim + 1, (long long)limit, (long long)base, (long long)(base + limit - 1));
        return -1;
    }
    return 0;
}

/* A header over t's storage with the given shape and strides; never retained or released. */
static fl_tensor restride(const fl_tensor *t, int ndim, const int64_t *shape, const int64_t *strides)
{
    fl_tensor h = *t;
    h.ndim = ndim;
    memcpy(h.shape, shape, (size_t)ndim * sizeof *shape);
    memcpy(h.strides, strides, (size_t)ndim * sizeof *strides);
    return h;
}

/* Result dtype rule for writes into t (as the in-place binary ops): src is cast to t's
 * dtype, but never from a higher category (float into an integer tensor). */
static int category(fl_dtype dt)
{
    return dt == FL_DTYPE_BOOL ? 0 : fl_dtype_is_float(dt) ? 2 : 1;
}

static fl_tensor *source_as(const fl_tensor *t, const fl_tensor *src)
{
    if (src->dtype == t->dtype)
        return fl_tensor_retain((fl_tensor *)src);
    if (category(src->dtype) > category(t->dtype)) {
        fl_error("source of type %s cannot be written into a tensor of type %s",
                 fl_dtype_name(src->dtype), fl_dtype_name(t->dtype));
        return NULL;
    }
    return fl_cast(src, t->dtype);
}

/* ---------------------------------------------------------------- gather-type kernels */

typedef struct {
    size_t elsize;
    fl_dtype dt, idt;
    int64_t sd, base;
    fl_scatter_mode mode;
} move_ctx;

/* operands: out, idx, src */
static void gather_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    move_ctx *c = p;
    fl_cpu_gather(c->elsize, ptr[0], ptr[2], c->idt, ptr[1], n, st[0], st[2], st[1], c->sd, c->base);
}

/* operands: out (restrided), idx, src */
static void scatter_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    move_ctx *c = p;
    if (c->mode == FL_SCATTER_ADD)
        fl_cpu_scatter_add(c->dt, ptr[0], ptr[2], c->idt, ptr[1], n, st[0], st[2], st[1], c->sd, c->base);
    else
        fl_cpu_scatter(c->elsize, ptr[0], ptr[2], c->idt, ptr[1], n, st[0], st[2], st[1], c->sd, c->base);
}

static move_ctx make_ctx(const fl_tensor *t, const fl_tensor *idx, int dim, int64_t base, fl_scatter_mode mode)
{
    move_ctx c = {fl_dtype_size(t->dtype), t->dtype, idx->dtype, t->ndim ? t->strides[dim] : 0, base, mode};
    return c;
}

/* Runs the gather kernel over it (out, idx, src) on out's device; 0 or -1. */
static int run_gather(const fl_tensor *out, const fl_iter *it, const move_ctx *c)
{
    if (fl_is_cuda(out))
        return fl_cuda_status(FL_CUDA(fl_cuda_gather)(c->elsize, c->idt, it, c->sd, c->base));
    fl_iter_run(it, gather_run, (void *)c, true);
    return 0;
}

/* Elements from t's first to its last in storage (strides are never negative). */
static int64_t storage_span(const fl_tensor *t)
{
    int64_t span = 1;
    for (int d = 0; d < t->ndim; d++)
        span += (t->shape[d] - 1) * t->strides[d];
    return span;
}

/* ---------------------------------------------------------------- index_select */

/* idx viewed with the out's ndim: its stride along dim, 0 elsewhere. */
static fl_tensor index_along(const fl_tensor *idx, int ndim, const int64_t *shape, int dim)
{
    int64_t st[FL_MAX_DIMS] = {0};
    if (ndim)
        st[dim] = idx->ndim ? idx->strides[0] : 0;
    return restride(idx, ndim, shape, st);
}

static int check_vector_index(const fl_tensor *idx)
{
    if (check_index_dtype(idx) < 0)
        return -1;
    if (idx->ndim > 1) {
        char b1[200];
        fl_error("index must be 1-d (or 0-dim), got shape %s", fl_shape_str(b1, sizeof b1, idx->ndim, idx->shape));
        return -1;
    }
    return 0;
}

fl_tensor *fl_index_select(const fl_tensor *t, int dim, const fl_tensor *idx, int64_t base)
{
    if (check_dim(dim, t->ndim) < 0 || check_vector_index(idx) < 0 || check_device(t, idx) < 0)
        return NULL;
    int64_t limit = t->ndim ? t->shape[dim] : 1;
    if (check_indices(idx, limit, base, dim) < 0)
        return NULL;
    int64_t shape[FL_MAX_DIMS], st[FL_MAX_DIMS];
    int nd = t->ndim;
    if (nd) {
        memcpy(shape, t->shape, sizeof shape);
        memcpy(st, t->strides, sizeof st);
        shape[dim] = idx->numel;
        st[dim] = 0;
    } else if (idx->numel != 1) {      /* a 0-dim t gives a 0-dim result, as PyTorch */
        fl_error("a 0-dim tensor needs an index of one element, got %lld", (long long)idx->numel);
        return NULL;
    }
    fl_tensor *out = fl_tensor_empty(t->dtype, nd, shape, t->storage->device);
    if (!out)
        return NULL;
    fl_tensor src = restride(t, nd, shape, st);
    fl_tensor ix = index_along(idx, nd, shape, dim);
    fl_iter it;
    const fl_tensor *ts[3] = {out, &ix, &src};
    fl_iter_init(&it, nd, shape, 3, ts);
    move_ctx c = make_ctx(t, idx, dim, base, FL_SCATTER_SET);
    if (run_gather(out, &it, &c) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return record(out, FL_GRAD_INDEX_SELECT, "index_select", 1, &t, idx, ARGS(dim, base));
}

/* ---------------------------------------------------------------- gather and scatter */

/* idx must have t's ndim and fit in t outside dim (and in src everywhere, if given). */
static int check_gather_shapes(const fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src)
{
    char b1[200], b2[200];
    if (idx->ndim != t->ndim) {
        fl_error("index of shape %s must have as many dimensions as the tensor of shape %s",
                 fl_shape_str(b1, sizeof b1, idx->ndim, idx->shape), fl_shape_str(b2, sizeof b2, t->ndim, t->shape));
        return -1;
    }
    for (int d = 0; d < t->ndim; d++) {
        if (d != dim && idx->shape[d] > t->shape[d]) {
            fl_error("index of shape %s is larger than the tensor of shape %s at dimension %d "
                     "(only dimension %d, the indexed one, may differ)",
                     fl_shape_str(b1, sizeof b1, idx->ndim, idx->shape), fl_shape_str(b2, sizeof b2, t->ndim, t->shape),
                     d + 1, dim + 1);
            return -1;
        }
    }
    if (src && src->ndim) {
        if (src->ndim != idx->ndim) {
            fl_error("source of shape %s must have as many dimensions as the index of shape %s",
                     fl_shape_str(b1, sizeof b1, src->ndim, src->shape), fl_shape_str(b2, sizeof b2, idx->ndim, idx->shape));
            return -1;
        }
        for (int d = 0; d < idx->ndim; d++) {
            if (idx->shape[d] > src->shape[d]) {
                fl_error("index of shape %s is larger than the source of shape %s at dimension %d",
                         fl_shape_str(b1, sizeof b1, idx->ndim, idx->shape),
                         fl_shape_str(b2, sizeof b2, src->ndim, src->shape), d + 1);
                return -1;
            }
        }
    }
    return 0;
}

fl_tensor *fl_gather(const fl_tensor *t, int dim, const fl_tensor *idx, int64_t base)
{
    if (check_dim(dim, t->ndim) < 0 || check_index_dtype(idx) < 0 || check_device(t, idx) < 0 ||
        check_gather_shapes(t, dim, idx, NULL) < 0)
        return NULL;
    if (check_indices(idx, t->ndim ? t->shape[dim] : 1, base, dim) < 0)
        return NULL;
    fl_tensor *out = fl_tensor_empty(t->dtype, idx->ndim, idx->shape, t->storage->device);
    if (!out)
        return NULL;
    int64_t st[FL_MAX_DIMS];
    memcpy(st, t->strides, sizeof st);
    if (t->ndim)
        st[dim] = 0;
    fl_tensor src = restride(t, idx->ndim, idx->shape, st);
    fl_iter it;
    const fl_tensor *ts[3] = {out, idx, &src};
    fl_iter_init(&it, idx->ndim, idx->shape, 3, ts);
    move_ctx c = make_ctx(t, idx, dim, base, FL_SCATTER_SET);
    if (run_gather(out, &it, &c) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return record(out, FL_GRAD_GATHER, "gather", 1, &t, idx, ARGS(dim, base));
}

/* Runs the scatter kernel over `shape`: t restrided with stride 0 along dim, idx and src
 * as given (broadcast by the iterator). Sequential, so repeated indices are deterministic
 * (the CUDA kernel keeps the same last write). */
static int scatter_over(fl_tensor *t, int dim, int nd, const int64_t *shape, const fl_tensor *idx,
                        const fl_tensor *src, fl_scatter_mode mode, int64_t base)
{
    int64_t st[FL_MAX_DIMS];
    memcpy(st, t->strides, sizeof st);
    if (t->ndim)
        st[dim] = 0;
    fl_tensor dst = restride(t, nd, shape, st);
    fl_iter it;
    const fl_tensor *ts[3] = {&dst, idx, src};
    fl_iter_init(&it, nd, shape, 3, ts);
    move_ctx c = make_ctx(t, idx, dim, base, mode);
    t->storage->version++;
    if (fl_is_cuda(t))
        return fl_cuda_status(FL_CUDA(fl_cuda_scatter)(c.dt, c.idt, mode, &it, c.sd, base, storage_span(t)));
    fl_iter_run(&it, scatter_run, &c, false);
    return 0;
}

int fl_scatter_(fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src,
                fl_scatter_mode mode, int64_t base)
{
    if (check_inplace(t) < 0 || check_dim(dim, t->ndim) < 0 || check_index_dtype(idx) < 0 ||
        check_device(t, idx) < 0 || check_device(t, src) < 0 || check_gather_shapes(t, dim, idx, src) < 0)
        return -1;
    if (mode == FL_SCATTER_ADD && t->dtype == FL_DTYPE_BOOL && src->dtype != FL_DTYPE_BOOL) {
        fl_error("cannot add into a bool tensor");
        return -1;
    }
    if (check_indices(idx, t->ndim ? t->shape[dim] : 1, base, dim) < 0)
        return -1;
    fl_tensor *s = source_as(t, src);
    if (!s)
        return -1;
    fl_tensor sv = restride(s, s->ndim ? idx->ndim : 0, idx->shape, s->strides);
    int rc = scatter_over(t, dim, idx->ndim, idx->shape, idx, &sv, mode, base);
    fl_tensor_release(s);
    return rc;
}

fl_tensor *fl_scatter(const fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src,
                      fl_scatter_mode mode, int64_t base)
{
    bool grad_on = grad_off();
    fl_tensor *out = fl_clone(t);
    if (out && fl_scatter_(out, dim, idx, src, mode, base) < 0) {
        fl_tensor_release(out);
        out = NULL;
    }
    fl_set_grad_enabled(grad_on);
    return record(out, FL_GRAD_SCATTER, mode == FL_SCATTER_ADD ? "scatter_add" : "scatter", 2,
                  INPUTS(t, src), idx, ARGS(dim, base, mode));
}

/* ---------------------------------------------------------------- index_copy_/add_/fill_ */

int fl_index_update_(fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src,
                     fl_scatter_mode mode, int64_t base)
{
    char b1[200], b2[200], b3[200];
    if (check_inplace(t) < 0)
        return -1;
    if (t->ndim == 0) {
        /* a 0-dim tensor is indexed as a 1-d tensor of one element */
        int64_t one = 1;
        fl_tensor t1 = restride(t, 1, &one, &one);
        return fl_index_update_(&t1, dim, idx, src, mode, base);
    }
    if (check_dim(dim, t->ndim) < 0 || check_vector_index(idx) < 0 || check_device(t, idx) < 0 ||
        check_device(t, src) < 0)
        return -1;
    int64_t shape[FL_MAX_DIMS];
    int nd = t->ndim;
    memcpy(shape, t->shape, sizeof shape);
    shape[dim] = idx->numel;
    /* src: one value, or t's shape with idx->numel along dim */
    if (src->ndim != 0 && (src->ndim != nd || memcmp(src->shape, shape, (size_t)nd * sizeof *shape) != 0)) {
        fl_error("source of shape %s does not match the expected shape %s (the tensor's shape %s with "
                 "the index's %lld elements along dimension %d)",
                 fl_shape_str(b1, sizeof b1, src->ndim, src->shape), fl_shape_str(b2, sizeof b2, nd, shape),
                 fl_shape_str(b3, sizeof b3, t->ndim, t->shape), (long long)idx->numel, dim + 1);
        return -1;
    }
    if (mode == FL_SCATTER_ADD && t->dtype == FL_DTYPE_BOOL && src->dtype != FL_DTYPE_BOOL) {
        fl_error("cannot add into a bool tensor");
        return -1;
    }
    if (check_indices(idx, t->shape[dim], base, dim) < 0)
        return -1;
    fl_tensor *s = source_as(t, src);
    if (!s)
        return -1;
    fl_tensor ix = index_along(idx, nd, shape, dim);
    int rc = scatter_over(t, dim, nd, shape, &ix, s, mode, base);
    fl_tensor_release(s);
    return rc;
}

fl_tensor *fl_index_update(const fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src,
                           fl_scatter_mode mode, int64_t base)
{
    bool grad_on = grad_off();
    fl_tensor *out = fl_clone(t);
    if (out && fl_index_update_(out, dim, idx, src, mode, base) < 0) {
        fl_tensor_release(out);
        out = NULL;
    }
    fl_set_grad_enabled(grad_on);
    const char *name = mode == FL_SCATTER_ADD ? "index_add" : src->ndim ? "index_copy" : "index_fill";
    return record(out, FL_GRAD_INDEX_UPDATE, name, 2, INPUTS(t, src), idx, ARGS(dim, base, mode));
}

/* ---------------------------------------------------------------- masks */

/* mask must broadcast to t's shape exactly (for in-place writes). */
static int check_mask_for(const fl_tensor *t, const fl_tensor *mask)
{
    int64_t shape[FL_MAX_DIMS];
    char b1[200], b2[200];
    if (check_mask_dtype(mask) < 0 || check_device(t, mask) < 0)
        return -1;
    int nd = fl_broadcast_shape(t->ndim, t->shape, mask->ndim, mask->shape, shape);
    if (nd != t->ndim || memcmp(shape, t->shape, (size_t)nd * sizeof *shape) != 0) {
        fl_error("mask of shape %s cannot be broadcast to the tensor's shape %s",
                 fl_shape_str(b1, sizeof b1, mask->ndim, mask->shape), fl_shape_str(b2, sizeof b2, t->ndim, t->shape));
        return -1;
    }
    return 0;
}

typedef struct {
    size_t elsize;
    const void *value;
    int64_t count;
    fl_dtype dt;
} mask_ctx;

static void masked_fill_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    mask_ctx *c = p;
    fl_cpu_masked_fill(c->elsize, ptr[0], (const uint8_t *)ptr[1], c->value, n, st[0], st[1]);
}

int fl_masked_fill_(fl_tensor *t, const fl_tensor *mask, const fl_tensor *value)
{
    char b1[200];
    if (check_inplace(t) < 0 || check_mask_for(t, mask) < 0)
        return -1;
    if (value->ndim != 0) {
        fl_error("value must be a number or a 0-dim tensor, got a tensor of shape %s",
                 fl_shape_str(b1, sizeof b1, value->ndim, value->shape));
        return -1;
    }
    if (!fl_is_cuda(t) && check_device(t, value) < 0)   /* a CPU value may fill a CUDA tensor */
        return -1;
    fl_tensor *v = fl_cast(value, t->dtype);
    if (!v)
        return -1;
    fl_iter it;
    const fl_tensor *ts[2] = {t, mask};
    fl_iter_init(&it, t->ndim, t->shape, 2, ts);
    mask_ctx c = {fl_dtype_size(t->dtype), fl_tensor_data(v), 0, t->dtype};
    int rc = 0;
    t->storage->version++;
    if (fl_is_cuda(t))   /* the value is read where it lives: no copy back to the host */
        rc = fl_cuda_status(FL_CUDA(fl_cuda_masked_fill)(c.elsize, &it, c.value, fl_is_cuda(v)));
    else
        fl_iter_run(&it, masked_fill_run, &c, true);
    fl_tensor_release(v);
    return rc;
}

fl_tensor *fl_masked_fill(const fl_tensor *t, const fl_tensor *mask, const fl_tensor *value)
{
    int64_t shape[FL_MAX_DIMS];
    if (check_mask_dtype(mask) < 0 || check_device(t, mask) < 0)
        return NULL;
    int nd = fl_broadcast_shape(t->ndim, t->shape, mask->ndim, mask->shape, shape);
    if (nd < 0)
        return NULL;
    /* a CPU value that needs grad joins the device through a recorded move, so that its
     * gradient comes back to the CPU */
    fl_tensor *v = fl_is_cuda(t) && !fl_is_cuda(value) && fl_needs_grad(value)
                       ? fl_to_device(value, t->storage->device) : fl_tensor_retain((fl_tensor *)value);
    if (!v)
        return NULL;
    bool grad_on = grad_off();
    fl_tensor *out = fl_tensor_empty(t->dtype, nd, shape, t->storage->device);
    if (out && (fl_copy(out, t) < 0 || fl_masked_fill_(out, mask, v) < 0)) {
        fl_tensor_release(out);
        out = NULL;
    }
    fl_set_grad_enabled(grad_on);
    out = record(out, FL_GRAD_MASKED_FILL, "masked_fill", 3, INPUTS(t, NULL, v), mask, ARGS(0));
    fl_tensor_release(v);
    return out;
}

static void count_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    mask_ctx *c = p;
    c->count += fl_cpu_count_nonzero(c->dt, ptr[0], n, st[0]);
}

/* Non-zero elements of t broadcast to shape (each counted as often as it is repeated), or
 * -1 on a CUDA failure. On CUDA the count is read back: it sizes the result. */
static int64_t count_nonzero(const fl_tensor *t, int nd, const int64_t *shape)
{
    fl_iter it;
    const fl_tensor *ts[1] = {t};
    fl_iter_init(&it, nd, shape, 1, ts);
    mask_ctx c = {0, NULL, 0, t->dtype};
    if (fl_is_cuda(t))
        return fl_cuda_status(FL_CUDA(fl_cuda_count_nonzero)(t->dtype, &it, &c.count)) < 0 ? -1 : c.count;
    fl_iter_run(&it, count_run, &c, false);
    return c.count;
}

static void masked_select_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    mask_ctx *c = p;
    char *out = (char *)c->value + c->count * (int64_t)c->elsize;
    c->count += fl_cpu_masked_select(c->elsize, out, ptr[0], (const uint8_t *)ptr[1], n, st[0], st[1]);
}

fl_tensor *fl_masked_select(const fl_tensor *t, const fl_tensor *mask)
{
    int64_t shape[FL_MAX_DIMS];
    if (check_mask_dtype(mask) < 0 || check_device(t, mask) < 0)
        return NULL;
    int nd = fl_broadcast_shape(t->ndim, t->shape, mask->ndim, mask->shape, shape);
    if (nd < 0)
        return NULL;
    int64_t count = count_nonzero(mask, nd, shape);
    fl_tensor *out = count < 0 ? NULL : fl_tensor_empty(t->dtype, 1, &count, t->storage->device);
    if (!out)
        return NULL;
    fl_iter it;
    const fl_tensor *ts[2] = {t, mask};
    fl_iter_init(&it, nd, shape, 2, ts);
    mask_ctx c = {fl_dtype_size(t->dtype), fl_tensor_data(out), 0, t->dtype};
    if (!fl_is_cuda(out)) {
        fl_iter_run(&it, masked_select_run, &c, false);   /* in order */
    } else if (fl_cuda_status(FL_CUDA(fl_cuda_masked_select)(c.elsize, &it, fl_tensor_data(out))) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return record(out, FL_GRAD_MASKED_SELECT, "masked_select", 1, &t, mask, ARGS(0));
}

static void masked_scatter_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    mask_ctx *c = p;
    const char *src = (const char *)c->value + c->count * (int64_t)c->elsize;
    c->count += fl_cpu_masked_scatter(c->elsize, ptr[0], src, (const uint8_t *)ptr[1], n, st[0], st[1]);
}

int fl_masked_scatter_(fl_tensor *t, const fl_tensor *mask, const fl_tensor *src)
{
    if (check_inplace(t) < 0 || check_mask_for(t, mask) < 0 || check_device(t, src) < 0)
        return -1;
    int64_t count = count_nonzero(mask, t->ndim, t->shape);
    if (count < 0)
        return -1;
    if (src->numel < count) {
        fl_error("source has %lld elements but the mask selects %lld", (long long)src->numel, (long long)count);
        return -1;
    }
    fl_tensor *s = source_as(t, src), *cs = s ? fl_contiguous(s) : NULL;
    fl_tensor_release(s);
    if (!cs)
        return -1;
    fl_iter it;
    const fl_tensor *ts[2] = {t, mask};
    fl_iter_init(&it, t->ndim, t->shape, 2, ts);
    mask_ctx c = {fl_dtype_size(t->dtype), fl_tensor_data(cs), 0, t->dtype};
    int rc = 0;
    if (fl_is_cuda(t))
        rc = fl_cuda_status(FL_CUDA(fl_cuda_masked_scatter)(c.elsize, &it, c.value));
    else
        fl_iter_run(&it, masked_scatter_run, &c, false);
    fl_tensor_release(cs);
    t->storage->version++;
    return rc;
}

/* The out-of-place masked_scatter (declared here until flare.h lists it). */
fl_tensor *fl_masked_scatter(const fl_tensor *t, const fl_tensor *mask, const fl_tensor *src)
{
    bool grad_on = grad_off();
    fl_tensor *out = fl_clone(t);
    if (out && fl_masked_scatter_(out, mask, src) < 0) {
        fl_tensor_release(out);
        out = NULL;
    }
    fl_set_grad_enabled(grad_on);
    return record(out, FL_GRAD_MASKED_SCATTER, "masked_scatter", 2, INPUTS(t, src), mask, ARGS(0));
}

fl_tensor *fl_nonzero(const fl_tensor *t, int64_t base)
{
    int64_t count = count_nonzero(t, t->ndim, t->shape);
    int64_t shape[2] = {count, t->ndim};
    fl_tensor *out = count < 0 ? NULL : fl_tensor_empty(FL_DTYPE_I64, 2, shape, t->storage->device);
    if (!out)
        return NULL;
    if (t->ndim == 0)
        return out;
    if (!fl_is_cuda(t)) {
        fl_cpu_nonzero(fl_tensor_data(out), t->dtype, fl_tensor_data(t), t->ndim, t->shape, t->strides, base);
    } else if (fl_cuda_status(FL_CUDA(fl_cuda_nonzero)(fl_tensor_data(out), t->dtype, fl_tensor_data(t), t->ndim,
                                                        t->shape, t->strides, base)) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return out;
}

/* ---------------------------------------------------------------- x[mask], x[idx] */

/* mask's shape must equal t's leading dims; returns a view of mask expanded to t's shape. */
static fl_tensor *expand_mask(const fl_tensor *t, const fl_tensor *mask)
{
    char b1[200], b2[200];
    if (check_mask_dtype(mask) < 0 || check_device(t, mask) < 0)
        return NULL;
    bool ok = mask->ndim <= t->ndim;
    for (int d = 0; ok && d < mask->ndim; d++)
        ok = mask->shape[d] == t->shape[d];
    if (!ok) {
        fl_error("mask of shape %s does not match the indexed tensor of shape %s (a mask covers the leading dimensions)",
                 fl_shape_str(b1, sizeof b1, mask->ndim, mask->shape), fl_shape_str(b2, sizeof b2, t->ndim, t->shape));
        return NULL;
    }
    if (mask->ndim == 0 && t->ndim == FL_MAX_DIMS) {
        fl_error("a tensor has at most %d dimensions", FL_MAX_DIMS);
        return NULL;
    }
    int64_t st[FL_MAX_DIMS] = {0};
    memcpy(st, mask->strides, (size_t)mask->ndim * sizeof *st);
    return fl_tensor_view_of(mask, t->ndim, t->shape, st, mask->offset);
}

/* The shape of x[mask]: (count, t's dims after the mask's); -1 on failure. `selected`, when
 * not negative, is the number of elements x[mask] holds, which gives the count without
 * counting again (and without another read from the device). */
static int mask_result_shape(const fl_tensor *t, const fl_tensor *mask, int64_t *shape, int64_t selected)
{
    int64_t rest = 1;
    for (int d = mask->ndim; d < t->ndim; d++)
        rest *= shape[1 + d - mask->ndim] = t->shape[d];
    shape[0] = selected >= 0 && rest > 0 ? selected / rest : count_nonzero(mask, mask->ndim, mask->shape);
    return shape[0] < 0 ? -1 : 1 + t->ndim - mask->ndim;
}

fl_tensor *fl_index_mask(const fl_tensor *t, const fl_tensor *mask)
{
    int64_t shape[FL_MAX_DIMS + 1];
    fl_tensor *me = expand_mask(t, mask);
    if (!me)
        return NULL;
    bool grad_on = grad_off();
    fl_tensor *sel = fl_masked_select(t, me), *r = NULL;
    if (sel) {
        int nd = mask_result_shape(t, mask, shape, sel->numel);
        r = nd < 0 ? NULL : fl_view(sel, nd, shape);
        fl_tensor_release(sel);
    }
    fl_set_grad_enabled(grad_on);
    /* the gradient is masked_select's: the expanded mask puts it back */
    r = record(r, FL_GRAD_MASKED_SELECT, "index", 1, &t, me, ARGS(0));
    fl_tensor_release(me);
    return r;
}

int fl_index_put_mask_(fl_tensor *t, const fl_tensor *mask, const fl_tensor *v)
{
    int64_t shape[FL_MAX_DIMS + 1];
    if (check_inplace(t) < 0)
        return -1;
    fl_tensor *me = expand_mask(t, mask);
    if (!me)
        return -1;
    int rc;
    if (v->ndim == 0) {
        rc = fl_masked_fill_(t, me, v);
    } else {
        /* v broadcasts to x[mask]'s shape; its elements then go in mask order */
        int nd = mask_result_shape(t, mask, shape, -1);
        fl_tensor *full = nd < 0 ? NULL : fl_tensor_empty(t->dtype, nd, shape, t->storage->device);
        fl_tensor *s = full ? source_as(t, v) : NULL;
        rc = s && fl_copy(full, s) == 0 ? fl_masked_scatter_(t, me, full) : -1;
        fl_tensor_release(s);
        fl_tensor_release(full);
    }
    fl_tensor_release(me);
    return rc;
}

/* (t's dims after the first) appended to idx's shape; -1 if too many dims. */
static int rows_shape(const fl_tensor *t, const fl_tensor *idx, int64_t *shape)
{
    int nd = idx->ndim + t->ndim - 1;
    if (nd > FL_MAX_DIMS) {
        fl_error("indexing gives %d dimensions, more than the %d a tensor can have", nd, FL_MAX_DIMS);
        return -1;
    }
    memcpy(shape, idx->shape, (size_t)idx->ndim * sizeof *shape);
    memcpy(shape + idx->ndim, t->shape + 1, (size_t)(t->ndim - 1) * sizeof *shape);
    return nd;
}

static int check_rows(const fl_tensor *t, const fl_tensor *idx)
{
    if (t->ndim == 0) {
        fl_error("a 0-dim tensor cannot be indexed by a tensor");
        return -1;
    }
    return check_index_dtype(idx);
}

fl_tensor *fl_index_rows(const fl_tensor *t, const fl_tensor *idx, int64_t base)
{
    int64_t shape[FL_MAX_DIMS];
    if (check_rows(t, idx) < 0)
        return NULL;
    int nd = rows_shape(t, idx, shape);
    if (nd < 0)
        return NULL;
    bool grad_on = grad_off();
    fl_tensor *flat = fl_reshape(idx, 1, &idx->numel);
    fl_tensor *sel = flat ? fl_index_select(t, 0, flat, base) : NULL;
    fl_tensor *r = sel ? fl_view(sel, nd, shape) : NULL;
    fl_set_grad_enabled(grad_on);
    /* the gradient is index_select's along dim 0, over the flattened indices */
    r = record(r, FL_GRAD_INDEX_SELECT, "index", 1, &t, flat, ARGS(0, base));
    fl_tensor_release(flat);
    fl_tensor_release(sel);
    return r;
}

int fl_index_put_rows_(fl_tensor *t, const fl_tensor *idx, const fl_tensor *v, int64_t base)
{
    int64_t shape[FL_MAX_DIMS];
    if (check_inplace(t) < 0 || check_rows(t, idx) < 0)
        return -1;
    int nd = rows_shape(t, idx, shape);
    if (nd < 0)
        return -1;
    fl_tensor *flat = fl_reshape(idx, 1, &idx->numel);
    if (!flat)
        return -1;
    int rc = -1;
    if (v->ndim == 0) {
        rc = fl_index_update_(t, 0, flat, v, FL_SCATTER_SET, base);
    } else {
        /* v broadcasts to x[idx]'s shape, then goes in as rows */
        fl_tensor *full = fl_tensor_empty(t->dtype, nd, shape, t->storage->device);
        fl_tensor *s = full ? source_as(t, v) : NULL;
        if (s && fl_copy(full, s) == 0) {
            shape[0] = idx->numel;
            memcpy(shape + 1, t->shape + 1, (size_t)(t->ndim - 1) * sizeof *shape);
            fl_tensor *rows = fl_view(full, t->ndim, shape);
            rc = rows ? fl_index_update_(t, 0, flat, rows, FL_SCATTER_SET, base) : -1;
            fl_tensor_release(rows);
        }
        fl_tensor_release(s);
        fl_tensor_release(full);
    }
    fl_tensor_release(flat);
    return rc;
}
