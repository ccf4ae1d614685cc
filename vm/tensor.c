/* tensor.c: tensor lifetime and layout. A tensor is a refcounted view (shape, strides,
 * offset) over a refcounted storage; views share storage, never bytes. */
#include "alloc.h"
#include "autograd.h"
#include "recycle.h"


#include <stdlib.h>
#include <string.h>

int64_t fl_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            fl_error("size must be non-negative, got %lld at dimension %d", (long long)shape[i], i + 1);
            return -1;
        }
        if (shape[i] && n > INT64_MAX / shape[i]) {
            char buf[256];
            fl_error("size %s has too many elements", fl_shape_str(buf, sizeof buf, ndim, shape));
            return -1;
        }
        n *= shape[i];
    }
    return n;
}

void fl_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

static _Thread_local fl_recycler headers;

static fl_tensor *tensor_header(fl_dtype dt, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > FL_MAX_DIMS) {
        fl_error("a tensor has at most %d dimensions, got %d", FL_MAX_DIMS, ndim);
        return NULL;
    }
    int64_t n = fl_shape_numel(ndim, shape);
    if (n < 0)
        return NULL;
    fl_tensor *t = fl_recycle_get(&headers, sizeof *t);
    if (!t) {
        fl_error("out of memory");
        return NULL;
    }
    t->refcount = 1;
    t->dtype = dt;
    t->ndim = ndim;
    t->numel = n;
    if (ndim)
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    return t;
}

fl_tensor *fl_tensor_empty(fl_dtype dt, int ndim, const int64_t *shape, fl_device dev)
{
    fl_tensor *t = tensor_header(dt, ndim, shape);
    if (!t)
        return NULL;
    if ((uint64_t)t->numel > SIZE_MAX / 16) {
        fl_error("size too large: %lld elements", (long long)t->numel);
        fl_recycle_put(&headers, t);
        return NULL;
    }
    t->storage = fl_storage_new((size_t)t->numel * fl_dtype_size(dt), dev);
    if (!t->storage) {
        fl_recycle_put(&headers, t);
        return NULL;
    }
    fl_contiguous_strides(ndim, t->shape, t->strides);
    return t;
}

fl_tensor *fl_tensor_zeros(fl_dtype dt, int ndim, const int64_t *shape, fl_device dev)
{
    fl_tensor *t = fl_tensor_empty(dt, ndim, shape, dev);
    if (t && dev.type == FL_DEVICE_CPU)
        memset(t->storage->data, 0, t->storage->nbytes);
    else if (t && fl_fill(t, 0) < 0) {
        fl_tensor_release(t);
        return NULL;
    }
    return t;
}

fl_tensor *fl_tensor_view_of(const fl_tensor *src, int ndim, const int64_t *shape,
                             const int64_t *strides, int64_t offset)
{
    fl_tensor *t = tensor_header(src->dtype, ndim, shape);
    if (!t)
        return NULL;
    if (ndim)
        memcpy(t->strides, strides, (size_t)ndim * sizeof *strides);
    t->offset = offset;
    t->storage = src->storage;
    t->storage->refcount++;
    return t;
}

fl_tensor *fl_tensor_retain(fl_tensor *t)
{
    if (t)
        t->refcount++;
    return t;
}

void fl_tensor_release(fl_tensor *t)
{
    if (!t || --t->refcount > 0)
        return;
    fl_storage_release(t->storage);
    fl_tensor_release(t->grad);
    fl_node_release(t->grad_fn);
    if (t->has_hooks)
        fl_hooks_forget(t);
    fl_recycle_put(&headers, t);
}

/* x:set_(y): dst becomes a view of src's storage with src's dtype and layout, keeping its
 * own identity (references to it stay valid: an optimizer built before model:cuda(), say)
 * and its requires_grad. The old storage's version is bumped, so a graph that saved dst
 * refuses to run backward on data that is gone. Refused while the tape could see it. */
int fl_tensor_set_(fl_tensor *dst, const fl_tensor *src)
{
    if (dst->grad_fn) {
        fl_error("the tensor has a grad_fn (it was computed from others); use it on a leaf "
                 "or on x:detach()");
        return -1;
    }
    if (fl_needs_grad(dst)) {
        fl_error("the tensor is a leaf that requires grad; call it under flare.no_grad()");
        return -1;
    }
    if (dst->requires_grad && !fl_dtype_is_float(src->dtype)) {
        fl_error("a tensor that requires grad needs float data, got %s", fl_dtype_name(src->dtype));
        return -1;
    }
    if (dst == src)
        return 0;
    fl_storage *old = dst->storage;
    src->storage->refcount++;
    old->version++;
    dst->storage = src->storage;
    dst->dtype = src->dtype;
    dst->ndim = src->ndim;
    memcpy(dst->shape, src->shape, sizeof dst->shape);
    memcpy(dst->strides, src->strides, sizeof dst->strides);
    dst->offset = src->offset;
    dst->numel = src->numel;
    fl_storage_release(old);
    /* a gradient that no longer fits (shape, dtype or device) would break the next step */
    fl_tensor *g = dst->grad;
    if (g && (!fl_shape_equal(g, dst) || g->dtype != dst->dtype ||
              g->storage->device.type != dst->storage->device.type)) {
        dst->grad = NULL;
        fl_tensor_release(g);
    }
    return 0;
}

bool fl_tensor_is_contiguous(const fl_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s)
            return false;
        s *= t->shape[i];
    }
    return true;
}

bool fl_matrix_is_transposed(const fl_tensor *t)
{
    return t && t->ndim == 2 && t->shape[0] > 1 && t->shape[1] > 1 && t->strides[0] == 1 &&
           t->strides[1] == t->shape[0];
}

bool fl_shape_equal(const fl_tensor *a, const fl_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}
