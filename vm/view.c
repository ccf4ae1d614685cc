/* view.c: views that share storage: select, narrow. (More movement ops: view.c grows.) */
#include "flare.h"

fl_tensor *fl_select(const fl_tensor *t, int dim, int64_t index)
{
    if (dim < 0 || dim >= t->ndim) {
        fl_error("select: dimension %d out of range for a %d-dim tensor", dim + 1, t->ndim);
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
    return fl_tensor_view_of(t, n, shape, strides, t->offset + index * t->strides[dim]);
}

fl_tensor *fl_narrow(const fl_tensor *t, int dim, int64_t start, int64_t length)
{
    if (dim < 0 || dim >= t->ndim) {
        fl_error("narrow: dimension %d out of range for a %d-dim tensor", dim + 1, t->ndim);
        return NULL;
    }
    if (start < 0 || length < 0 || start + length > t->shape[dim]) {
        fl_error("range %lld to %lld is out of bounds for dimension %d of size %lld",
                 (long long)start + 1, (long long)(start + length), dim + 1, (long long)t->shape[dim]);
        return NULL;
    }
    int64_t shape[FL_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        shape[d] = t->shape[d];
    shape[dim] = length;
    return fl_tensor_view_of(t, t->ndim, shape, t->strides, t->offset + (length ? start * t->strides[dim] : 0));
}
