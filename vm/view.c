/* view.c: movement ops that share storage (select, narrow, slice, view/reshape, transpose,
 * permute, squeeze/unsqueeze, expand, flatten, unfold), plus cat and stack, which copy.
 * Views only rewrite shape, strides and offset; reshape copies only when no view exists.
 * Each op records its autograd node last (rules in vm/backward_view.c); recording copies
 * nothing, so a view keeps sharing its input's storage. */
#include "autograd.h"

#include <string.h>

/* Makes a node of `rule` (with iargs `args`, if given) out's grad_fn when t needs grad;
 * releases out if that fails. */
static fl_tensor *record(fl_tensor *out, const fl_tensor *t, fl_grad_rule rule, const char *name,
                         const int64_t *args)
{
    if (!out || !fl_needs_grad(t))
        return out;
    fl_node *n = fl_node_new(rule, name, 1, &t);
    if (!n) {
        fl_tensor_release(out);
        return NULL;
    }
    if (args)
        memcpy(n->iargs, args, sizeof n->iargs);
    fl_node_attach(n, out);
    return out;
}

#define ARGS(...) ((const int64_t[4]){__VA_ARGS__})

/* Dims of a 0-dim tensor: PyTorch accepts dim 0 (and -1) there, so we accept dim 0. */
static int check_dim(int dim, int ndim)
{
    int n = ndim ? ndim : 1;
    if (dim < 0 || dim >= n) {
        fl_error("dimension %d out of range for a %d-dim tensor", dim + 1, ndim);
        return -1;
    }
    return 0;
}

fl_tensor *fl_select(const fl_tensor *t, int dim, int64_t index)
{
    if (dim < 0 || dim >= t->ndim) {
        fl_error("dimension %d out of range for a %d-dim tensor", dim + 1, t->ndim);
        return NULL;
    }
    if (index < 0 || index >= t->shape[dim]) {
        fl_error("index %lld is out of range for dimension %d of size %lld",
                 (long long)index + 1, dim + 1, (long long)t->shape[dim]);
        return NULL;
    }
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (d == dim)
            continue;
        shape[n] = t->shape[d];
        strides[n++] = t->strides[d];
    }
    return record(fl_tensor_view_of(t, n, shape, strides, t->offset + index * t->strides[dim]),
                  t, FL_GRAD_SELECT, "select", ARGS(dim, index));
}

/* The slice view, without its record (narrow and slice record under their own names). */
static fl_tensor *slice_view(const fl_tensor *t, int dim, int64_t start, int64_t stop, int64_t step)
{
    if (dim < 0 || dim >= t->ndim) {
        fl_error("dimension %d out of range for a %d-dim tensor", dim + 1, t->ndim);
        return NULL;
    }
    if (step <= 0) {
        fl_error("slice step must be positive, got %lld", (long long)step);
        return NULL;
    }
    if (start < 0 || stop < start || stop > t->shape[dim]) {
        fl_error("range %lld to %lld is out of bounds for dimension %d of size %lld",
                 (long long)start + 1, (long long)stop, dim + 1, (long long)t->shape[dim]);
        return NULL;
    }
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(strides, t->strides, sizeof strides);
    int64_t length = stop > start ? (stop - start - 1) / step + 1 : 0;
    shape[dim] = length;
    strides[dim] = length > 1 ? t->strides[dim] * step : t->strides[dim];   /* no overflow */
    /* an empty view keeps the offset, so it never points past the storage */
    return fl_tensor_view_of(t, t->ndim, shape, strides, t->offset + (length ? start * t->strides[dim] : 0));
}

fl_tensor *fl_narrow(const fl_tensor *t, int dim, int64_t start, int64_t length)
{
    if (dim < 0 || dim >= t->ndim) {
        fl_error("dimension %d out of range for a %d-dim tensor", dim + 1, t->ndim);
        return NULL;
    }
    if (start < 0 || length < 0 || start > t->shape[dim] || length > t->shape[dim] - start) {
        fl_error("start %lld with length %lld is out of bounds for dimension %d of size %lld",
                 (long long)start + 1, (long long)length, dim + 1, (long long)t->shape[dim]);
        return NULL;
    }
    return record(slice_view(t, dim, start, start + length, 1), t, FL_GRAD_SLICE, "narrow",
                  ARGS(dim, start, start + length, 1));
}

fl_tensor *fl_slice(const fl_tensor *t, int dim, int64_t start, int64_t stop, int64_t step)
{
    return record(slice_view(t, dim, start, stop, step), t, FL_GRAD_SLICE, "slice",
                  ARGS(dim, start, stop, step));
}

/* x[{...}] saves its specs for backward as an (n, 4) int64 tensor: select, start, stop, step. */
static fl_tensor *record_slices(fl_tensor *out, const fl_tensor *t, int n, const fl_slice_spec *specs)
{
    int64_t shape[2] = {n, 4};
    fl_tensor *s = fl_tensor_empty(FL_DTYPE_I64, 2, shape, FL_CPU);
    fl_node *node = s ? fl_node_new(FL_GRAD_INDEX_SLICES, "index", 1, &t) : NULL;
    if (node) {
        int64_t *p = fl_tensor_data(s);
        for (int i = 0; i < n; i++, p += 4) {
            p[0] = specs[i].select, p[1] = specs[i].start;
            p[2] = specs[i].stop, p[3] = specs[i].step;
        }
    }
    if (!node || fl_node_save(node, 0, s) < 0) {
        fl_node_release(node);
        fl_tensor_release(s);
        fl_tensor_release(out);
        return NULL;
    }
    fl_tensor_release(s);
    fl_node_attach(node, out);
    return out;
}

fl_tensor *fl_index_slices(const fl_tensor *t, int n, const fl_slice_spec *specs)
{
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS], offset = t->offset;
    int nd = 0, d = 0;
    if (n > t->ndim) {
        fl_error("too many indices (%d) for a %d-dim tensor", n, t->ndim);
        return NULL;
    }
    for (int i = 0; i < n; i++, d++) {
        const fl_slice_spec *s = &specs[i];
        int64_t size = t->shape[d];
        if (s->select) {
            if (s->start < 0 || s->start >= size) {
                fl_error("index %lld is out of range for dimension %d of size %lld",
                         (long long)s->start + 1, d + 1, (long long)size);
                return NULL;
            }
            offset += s->start * t->strides[d];
            continue;
        }
        if (s->step <= 0 || s->start < 0 || s->stop < s->start || s->stop > size) {
            fl_error("range %lld to %lld (step %lld) is out of bounds for dimension %d of size %lld",
                     (long long)s->start + 1, (long long)s->stop, (long long)s->step, d + 1, (long long)size);
            return NULL;
        }
        int64_t length = s->stop > s->start ? (s->stop - s->start - 1) / s->step + 1 : 0;
        if (length)
            offset += s->start * t->strides[d];
        shape[nd] = length;
        strides[nd++] = length > 1 ? t->strides[d] * s->step : t->strides[d];
    }
    for (; d < t->ndim; d++) {
        shape[nd] = t->shape[d];
        strides[nd++] = t->strides[d];
    }
    fl_tensor *out = fl_tensor_view_of(t, nd, shape, strides, offset);
    return out && fl_needs_grad(t) ? record_slices(out, t, n, specs) : out;
}

/* ---------------------------------------------------------------- view and reshape */

/* Replaces a -1 in shape by the size that makes numel match; checks the total. */
static int infer_shape(const fl_tensor *t, int ndim, const int64_t *in, int64_t *out)
{
    char b1[200];
    int infer = -1;
    int64_t known = 1;
    if (ndim < 0 || ndim > FL_MAX_DIMS) {
        fl_error("a tensor has at most %d dimensions, got %d", FL_MAX_DIMS, ndim);
        return -1;
    }
    for (int d = 0; d < ndim; d++) {
        out[d] = in[d];
        if (in[d] == -1) {
            if (infer >= 0) {
                fl_error("only one dimension can be inferred (-1), got shape %s",
                         fl_shape_str(b1, sizeof b1, ndim, in));
                return -1;
            }
            infer = d;
        } else if (in[d] < 0) {
            fl_error("invalid size %lld at dimension %d of shape %s", (long long)in[d], d + 1,
                     fl_shape_str(b1, sizeof b1, ndim, in));
            return -1;
        } else if (known && in[d] > INT64_MAX / known) {
            fl_error("shape %s has too many elements", fl_shape_str(b1, sizeof b1, ndim, in));
            return -1;
        } else {
            known *= in[d];
        }
    }
    if (infer >= 0) {
        if (known == 0 || t->numel % known != 0) {
            fl_error("shape %s is invalid for input of size %lld%s", fl_shape_str(b1, sizeof b1, ndim, in),
                     (long long)t->numel, known == 0 ? " (the -1 is ambiguous when other sizes are 0)" : "");
            return -1;
        }
        out[infer] = t->numel / known;
    } else if (known != t->numel) {
        fl_error("shape %s is invalid for input of size %lld", fl_shape_str(b1, sizeof b1, ndim, in),
                 (long long)t->numel);
        return -1;
    }
    return 0;
}

/* Strides that let `shape` view t's elements in row-major order, or false when t's layout
 * splits a needed run (PyTorch's computeStride). */
static bool view_strides(const fl_tensor *t, int ndim, const int64_t *shape, int64_t *strides)
{
    if (t->numel == 0 || t->ndim == 0) {
        fl_contiguous_strides(ndim, shape, strides);
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_stride = t->strides[t->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        /* a chunk ends where the next-outer dim does not continue it */
        if (d == 0 || (t->shape[d - 1] != 1 && t->strides[d - 1] != tensor_numel * chunk_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                strides[view_d] = view_numel * chunk_stride;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel)
                return false;
            if (d > 0) {
                chunk_stride = t->strides[d - 1];
                tensor_numel = view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

fl_tensor *fl_view(const fl_tensor *t, int ndim, const int64_t *shape)
{
    int64_t sh[FL_MAX_DIMS], st[FL_MAX_DIMS];
    char b1[200], b2[200], b3[200];
    if (infer_shape(t, ndim, shape, sh) < 0)
        return NULL;
    if (!view_strides(t, ndim, sh, st)) {
        fl_error("shape %s cannot view a tensor of shape %s and strides %s without a copy "
                 "(its elements are not laid out in that order); use reshape, or contiguous() first",
                 fl_shape_str(b1, sizeof b1, ndim, sh), fl_shape_str(b2, sizeof b2, t->ndim, t->shape),
                 fl_shape_str(b3, sizeof b3, t->ndim, t->strides));
        return NULL;
    }
    return record(fl_tensor_view_of(t, ndim, sh, st, t->offset), t, FL_GRAD_RESHAPE, "view", NULL);
}

/* reshape without its record; the copy (when no view exists) is not recorded either. */
static fl_tensor *reshape_to(const fl_tensor *t, int ndim, const int64_t *shape)
{
    int64_t sh[FL_MAX_DIMS], st[FL_MAX_DIMS];
    if (infer_shape(t, ndim, shape, sh) < 0)
        return NULL;
    if (view_strides(t, ndim, sh, st))
        return fl_tensor_view_of(t, ndim, sh, st, t->offset);
    bool grad_on = fl_grad_enabled();
    fl_set_grad_enabled(false);
    fl_tensor *c = fl_clone(t);
    fl_set_grad_enabled(grad_on);
    if (!c)
        return NULL;
    fl_contiguous_strides(ndim, sh, st);
    fl_tensor *r = fl_tensor_view_of(c, ndim, sh, st, c->offset);
    fl_tensor_release(c);
    return r;
}

fl_tensor *fl_reshape(const fl_tensor *t, int ndim, const int64_t *shape)
{
    return record(reshape_to(t, ndim, shape), t, FL_GRAD_RESHAPE, "reshape", NULL);
}

fl_tensor *fl_flatten(const fl_tensor *t, int start, int end)
{
    if (t->ndim == 0) {
        int64_t one = 1;
        return record(reshape_to(t, 1, &one), t, FL_GRAD_RESHAPE, "flatten", NULL);
    }
    if (check_dim(start, t->ndim) < 0 || check_dim(end, t->ndim) < 0)
        return NULL;
    if (start > end) {
        fl_error("start dimension %d comes after end dimension %d", start + 1, end + 1);
        return NULL;
    }
    int64_t shape[FL_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (d <= start || d > end)
            shape[n++] = t->shape[d];
        else
            shape[n - 1] *= t->shape[d];   /* cannot overflow: numel already fits */
    }
    return record(reshape_to(t, n, shape), t, FL_GRAD_RESHAPE, "flatten", NULL);
}

/* ---------------------------------------------------------------- dims: order and count */

fl_tensor *fl_transpose(const fl_tensor *t, int d1, int d2)
{
    if (check_dim(d1, t->ndim) < 0 || check_dim(d2, t->ndim) < 0)
        return NULL;
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(strides, t->strides, sizeof strides);
    if (t->ndim) {
        shape[d1] = t->shape[d2], shape[d2] = t->shape[d1];
        strides[d1] = t->strides[d2], strides[d2] = t->strides[d1];
    }
    return record(fl_tensor_view_of(t, t->ndim, shape, strides, t->offset), t, FL_GRAD_TRANSPOSE,
                  "transpose", ARGS(d1, d2));
}

fl_tensor *fl_permute(const fl_tensor *t, const int *dims)
{
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS], packed = 0;
    bool seen[FL_MAX_DIMS] = {false};
    for (int d = 0; d < t->ndim; d++) {
        if (dims[d] < 0 || dims[d] >= t->ndim) {
            fl_error("dimension %d out of range for a %d-dim tensor", dims[d] + 1, t->ndim);
            return NULL;
        }
        if (seen[dims[d]]) {
            fl_error("dimension %d appears twice", dims[d] + 1);
            return NULL;
        }
        seen[dims[d]] = true;
        shape[d] = t->shape[dims[d]];
        strides[d] = t->strides[dims[d]];
        packed |= (int64_t)dims[d] << (4 * d);
    }
    return record(fl_tensor_view_of(t, t->ndim, shape, strides, t->offset), t, FL_GRAD_PERMUTE,
                  "permute", ARGS(packed));
}

fl_tensor *fl_squeeze(const fl_tensor *t, int dim)
{
    if (dim >= 0 && check_dim(dim, t->ndim) < 0)
        return NULL;
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 1 && (dim < 0 || dim == d))
            continue;
        shape[n] = t->shape[d];
        strides[n++] = t->strides[d];
    }
    return record(fl_tensor_view_of(t, n, shape, strides, t->offset), t, FL_GRAD_RESHAPE, "squeeze", NULL);
}

fl_tensor *fl_unsqueeze(const fl_tensor *t, int dim)
{
    if (dim < 0 || dim > t->ndim) {
        fl_error("dimension %d out of range for a %d-dim tensor (expected 1 to %d)",
                 dim + 1, t->ndim, t->ndim + 1);
        return NULL;
    }
    if (t->ndim == FL_MAX_DIMS) {
        fl_error("a tensor has at most %d dimensions", FL_MAX_DIMS);
        return NULL;
    }
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS];
    for (int d = 0, s = 0; d <= t->ndim; d++) {
        if (d == dim) {
            shape[d] = 1;
            strides[d] = dim < t->ndim ? t->shape[dim] * t->strides[dim] : 1;
        } else {
            shape[d] = t->shape[s];
            strides[d] = t->strides[s++];
        }
    }
    return record(fl_tensor_view_of(t, t->ndim + 1, shape, strides, t->offset), t, FL_GRAD_RESHAPE,
                  "unsqueeze", NULL);
}

fl_tensor *fl_expand(const fl_tensor *t, int ndim, const int64_t *shape)
{
    char b1[200], b2[200];
    if (ndim < t->ndim || ndim > FL_MAX_DIMS) {
        fl_error("the target shape %s has fewer dimensions than the tensor's shape %s",
                 fl_shape_str(b1, sizeof b1, ndim < 0 ? 0 : ndim > FL_MAX_DIMS ? FL_MAX_DIMS : ndim, shape),
                 fl_shape_str(b2, sizeof b2, t->ndim, t->shape));
        return NULL;
    }
    int64_t sh[FL_MAX_DIMS], st[FL_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int td = d - lead;
        int64_t want = shape[d];
        if (td < 0) {
            if (want < 0) {
                fl_error("size %lld is not allowed for the new leading dimension %d of shape %s",
                         (long long)want, d + 1, fl_shape_str(b1, sizeof b1, ndim, shape));
                return NULL;
            }
            sh[d] = want;
            st[d] = 0;
        } else if (want == -1 || want == t->shape[td]) {
            sh[d] = t->shape[td];
            st[d] = t->strides[td];
        } else if (t->shape[td] == 1 && want >= 0) {
            sh[d] = want;
            st[d] = 0;
        } else {
            fl_error("the tensor of shape %s cannot be expanded to %s (dimension %d has size %lld, "
                     "only size 1 can grow)", fl_shape_str(b2, sizeof b2, t->ndim, t->shape),
                     fl_shape_str(b1, sizeof b1, ndim, shape), d + 1, (long long)t->shape[td]);
            return NULL;
        }
    }
    return record(fl_tensor_view_of(t, ndim, sh, st, t->offset), t, FL_GRAD_EXPAND, "expand", NULL);
}

fl_tensor *fl_unfold(const fl_tensor *t, int dim, int64_t size, int64_t step)
{
    if (t->ndim == 0) {
        fl_error("expected a tensor with at least one dimension, got a 0-dim tensor");
        return NULL;
    }
    if (check_dim(dim, t->ndim) < 0)
        return NULL;
    if (t->ndim == FL_MAX_DIMS) {
        fl_error("a tensor has at most %d dimensions", FL_MAX_DIMS);
        return NULL;
    }
    if (size < 0 || size > t->shape[dim]) {
        fl_error("size %lld does not fit dimension %d of size %lld", (long long)size, dim + 1,
                 (long long)t->shape[dim]);
        return NULL;
    }
    if (step <= 0) {
        fl_error("step must be positive, got %lld", (long long)step);
        return NULL;
    }
    int64_t shape[FL_MAX_DIMS], strides[FL_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(strides, t->strides, sizeof strides);
    shape[dim] = (t->shape[dim] - size) / step + 1;
    strides[dim] = shape[dim] > 1 ? t->strides[dim] * step : t->strides[dim];
    shape[t->ndim] = size;
    strides[t->ndim] = t->strides[dim];
    return record(fl_tensor_view_of(t, t->ndim + 1, shape, strides, t->offset), t, FL_GRAD_UNFOLD,
                  "unfold", ARGS(dim, size, step));
}

/* ---------------------------------------------------------------- cat and stack */

static const char *device_name(const fl_tensor *t)
{
    return t->storage->device.type == FL_DEVICE_CPU ? "cpu" : "cuda";
}

/* PyTorch's legacy rule: a 1-d tensor of size 0 may sit in any cat and is skipped. */
static bool cat_skipped(const fl_tensor *t)
{
    return t->ndim == 1 && t->shape[0] == 0;
}

/* A node holds at most FL_NODE_MAX_IN inputs, so cat and stack of more tensors record a
 * chain: each node takes two inputs and hands the rest of the gradient (input 2, shaped as
 * the rest of the output) to the next node, which covers the following ones. Nodes past the
 * last input that needs grad are not made. */
static fl_tensor *record_join(fl_tensor *out, int n, const fl_tensor *const *ts, int dim, bool stack)
{
    if (!out)
        return NULL;
    int groups = n <= FL_NODE_MAX_IN ? 1 : (n - 2) / 2 + 1;
    fl_node *chain = NULL;
    for (int j = groups - 1; j >= 0; j--) {
        int first = 2 * j, count = j == groups - 1 ? n - first : 2;
        bool need = chain != NULL;
        for (int i = first; i < first + count; i++)
            need |= fl_needs_grad(ts[i]);
        if (!need)
            continue;
        const fl_tensor *in[FL_NODE_MAX_IN] = {NULL};
        for (int i = 0; i < count; i++)
            in[i] = ts[first + i];
        fl_node *node = fl_node_new(FL_GRAD_CAT, stack ? "stack" : "cat", chain ? 3 : count, in);
        if (!node) {
            fl_node_release(chain);
            fl_tensor_release(out);
            return NULL;
        }
        node->iargs[0] = dim;
        node->iargs[1] = stack;
        node->iargs[2] = chain != NULL;
        if (chain) {
            int64_t rest = 0;
            for (int i = first + 2; i < n; i++)
                rest += stack ? 1 : cat_skipped(ts[i]) ? 0 : ts[i]->shape[dim];
            node->next[2] = chain;
            node->in_ndim[2] = out->ndim;
            memcpy(node->in_shape[2], out->shape, sizeof out->shape);
            node->in_shape[2][dim] = rest;
            node->in_dtype[2] = out->dtype;
        }
        chain = node;
    }
    if (chain)
        fl_node_attach(chain, out);
    return out;
}

fl_tensor *fl_cat(int n, const fl_tensor *const *ts, int dim)
{
    char b1[200], b2[200];
    if (n <= 0) {
        fl_error("expected a non-empty list of tensors");
        return NULL;
    }
    const fl_tensor *ref = NULL;
    fl_dtype dt = ts[0]->dtype;
    for (int i = 0; i < n; i++) {
        dt = fl_dtype_promote(dt, ts[i]->dtype);
        if (ts[i]->ndim == 0) {
            fl_error("a 0-dim tensor (tensor %d) cannot be concatenated; unsqueeze it or use stack", i + 1);
            return NULL;
        }
        if (ts[i]->storage->device.type != ts[0]->storage->device.type) {
            fl_error("expected all tensors on the same device, got %s (tensor 1) and %s (tensor %d)",
                     device_name(ts[0]), device_name(ts[i]), i + 1);
            return NULL;
        }
        if (!ref && !cat_skipped(ts[i]))
            ref = ts[i];
    }
    if (!ref) {
        int64_t zero = 0;
        return record_join(fl_tensor_empty(dt, 1, &zero, ts[0]->storage->device), n, ts, 0, false);
    }
    if (check_dim(dim, ref->ndim) < 0)
        return NULL;
    int64_t shape[FL_MAX_DIMS];
    memcpy(shape, ref->shape, sizeof shape);
    shape[dim] = 0;
    int iref = 0;
    for (int i = 0; i < n; i++) {
        const fl_tensor *t = ts[i];
        if (t == ref)
            iref = i;
        if (cat_skipped(t))
            continue;
        bool ok = t->ndim == ref->ndim;
        for (int d = 0; ok && d < t->ndim; d++)
            ok = d == dim || t->shape[d] == ref->shape[d];
        if (!ok) {
            fl_error("sizes must match except in dimension %d: tensor %d has shape %s, tensor %d has shape %s",
                     dim + 1, iref + 1, fl_shape_str(b1, sizeof b1, ref->ndim, ref->shape),
                     i + 1, fl_shape_str(b2, sizeof b2, t->ndim, t->shape));
            return NULL;
        }
        shape[dim] += t->shape[dim];
    }
    fl_tensor *out = fl_tensor_empty(dt, ref->ndim, shape, ref->storage->device);
    int64_t at = 0;
    for (int i = 0; out && i < n; i++) {
        if (cat_skipped(ts[i]))
            continue;
        fl_tensor *part = fl_narrow(out, dim, at, ts[i]->shape[dim]);
        if (!part || fl_copy(part, ts[i]) < 0) {
            fl_tensor_release(out);
            out = NULL;
        }
        fl_tensor_release(part);
        at += ts[i]->shape[dim];
    }
    return record_join(out, n, ts, dim, false);
}

fl_tensor *fl_stack(int n, const fl_tensor *const *ts, int dim)
{
    char b1[200], b2[200];
    if (n <= 0) {
        fl_error("expected a non-empty list of tensors");
        return NULL;
    }
    const fl_tensor *ref = ts[0];
    if (dim < 0 || dim > ref->ndim) {
        fl_error("dimension %d out of range for %d-dim tensors (expected 1 to %d)", dim + 1,
                 ref->ndim, ref->ndim + 1);
        return NULL;
    }
    if (ref->ndim == FL_MAX_DIMS) {
        fl_error("a tensor has at most %d dimensions", FL_MAX_DIMS);
        return NULL;
    }
    fl_dtype dt = ref->dtype;
    for (int i = 1; i < n; i++) {
        if (!fl_shape_equal(ts[i], ref)) {
            fl_error("stack expects tensors of equal shape: tensor 1 has shape %s, tensor %d has shape %s",
                     fl_shape_str(b1, sizeof b1, ref->ndim, ref->shape), i + 1,
                     fl_shape_str(b2, sizeof b2, ts[i]->ndim, ts[i]->shape));
            return NULL;
        }
        if (ts[i]->storage->device.type != ref->storage->device.type) {
            fl_error("expected all tensors on the same device, got %s (tensor 1) and %s (tensor %d)",
                     device_name(ref), device_name(ts[i]), i + 1);
            return NULL;
        }
        dt = fl_dtype_promote(dt, ts[i]->dtype);
    }
    int64_t shape[FL_MAX_DIMS];
    for (int d = 0, s = 0; d <= ref->ndim; d++)
        shape[d] = d == dim ? n : ref->shape[s++];
    fl_tensor *out = fl_tensor_empty(dt, ref->ndim + 1, shape, ref->storage->device);
    for (int i = 0; out && i < n; i++) {
        fl_tensor *part = fl_select(out, dim, i);
        if (!part || fl_copy(part, ts[i]) < 0) {
            fl_tensor_release(out);
            out = NULL;
        }
        fl_tensor_release(part);
    }
    return record_join(out, n, ts, dim, true);
}
