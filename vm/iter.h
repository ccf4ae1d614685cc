/* iter.h: walks several tensors of one (broadcast) shape together, handing 1-d strided runs
 * to a kernel. Adjacent dimensions are merged where every operand allows it, so contiguous
 * tensors become one run; large iterations are split across the thread pool. */
#ifndef FL_ITER_H
#define FL_ITER_H

#include "flare.h"

#define FL_ITER_MAX_ARGS 4

typedef struct {
    int ndim;
    int64_t shape[FL_MAX_DIMS];
    int64_t numel;
    int narg;
    char *data[FL_ITER_MAX_ARGS];
    size_t elsize[FL_ITER_MAX_ARGS];
    int64_t strides[FL_ITER_MAX_ARGS][FL_MAX_DIMS];   /* in elements */
} fl_iter;

/* The kernel gets one pointer and one inner stride (in elements) per operand. */
typedef void (*fl_iter_fn)(void *ctx, char **ptrs, const int64_t *strides, int64_t n);

/* Operands are broadcast to `shape` (they must be broadcastable: checked by the caller). */
void fl_iter_init(fl_iter *it, int ndim, const int64_t *shape, int narg, const fl_tensor *const *ts);
/* Elementwise work below this many elements stays on the calling thread. */
#define FL_ITER_GRAIN 32768
void fl_iter_run(const fl_iter *it, fl_iter_fn fn, void *ctx, bool parallel);

#endif
