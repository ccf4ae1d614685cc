/* iter.c: see iter.h. */
#include "iter.h"
#include "interrupt.h"

#include <string.h>

void fl_iter_init(fl_iter *it, int ndim, const int64_t *shape, int narg, const fl_tensor *const *ts)
{
    int64_t st[FL_ITER_MAX_ARGS][FL_MAX_DIMS];
    it->narg = narg;
    for (int k = 0; k < narg; k++) {
        const fl_tensor *t = ts[k];
        int lead = ndim - t->ndim;
        for (int d = 0; d < ndim; d++) {
            int td = d - lead;
            st[k][d] = (td < 0 || t->shape[td] == 1) ? 0 : t->strides[td];
        }
        it->data[k] = fl_tensor_data(t);
        it->elsize[k] = fl_dtype_size(t->dtype);
    }
    /* Drop size-1 dimensions, then merge d into the dimension before it where possible. */
    int n = 0;
    it->numel = 1;
    for (int d = 0; d < ndim; d++) {
        it->numel *= shape[d];
        if (shape[d] == 1)
            continue;
        bool merge = n > 0;
        for (int k = 0; k < narg && merge; k++)
            merge = it->strides[k][n - 1] == st[k][d] * shape[d];
        if (merge) {
            it->shape[n - 1] *= shape[d];
            for (int k = 0; k < narg; k++)
                it->strides[k][n - 1] = st[k][d];
        } else {
            it->shape[n] = shape[d];
            for (int k = 0; k < narg; k++)
                it->strides[k][n] = st[k][d];
            n++;
        }
    }
    if (n == 0) {
        it->shape[0] = 1;
        for (int k = 0; k < narg; k++)
            it->strides[k][0] = 0;
        n = 1;
    }
    it->ndim = n;
}

/* Runs linear positions [begin, end) of the iteration space. */
static void iter_range(const fl_iter *it, fl_iter_fn fn, void *ctx, int64_t begin, int64_t end)
{
    int nd = it->ndim, last = nd - 1;
    int64_t idx[FL_MAX_DIMS], rem = begin;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % it->shape[d];
        rem /= it->shape[d];
    }
    int64_t inner[FL_ITER_MAX_ARGS];
    for (int k = 0; k < it->narg; k++)
        inner[k] = it->strides[k][last];
    int64_t pos = begin;
    while (pos < end) {
        char *ptrs[FL_ITER_MAX_ARGS];
        for (int k = 0; k < it->narg; k++) {
            int64_t off = 0;
            for (int d = 0; d < nd; d++)
                off += idx[d] * it->strides[k][d];
            ptrs[k] = it->data[k] + off * (int64_t)it->elsize[k];
        }
        int64_t run = it->shape[last] - idx[last];
        if (run > end - pos)
            run = end - pos;
        /* Runs are cut into blocks so that Ctrl-C stops a long op between two of them (the
         * result is then discarded by the "interrupted!" error raised in Lua). */
        if (run > FL_INTERRUPT_BLOCK)
            run = FL_INTERRUPT_BLOCK;
        if (fl_interrupted())
            return;
        fn(ctx, ptrs, inner, run);
        pos += run;
        idx[last] += run;
        for (int d = last; d > 0 && idx[d] == it->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
}

typedef struct {
    const fl_iter *it;
    fl_iter_fn fn;
    void *ctx;
} range_job;

static void run_job(void *p, int64_t begin, int64_t end)
{
    range_job *job = p;
    iter_range(job->it, job->fn, job->ctx, begin, end);
}

void fl_iter_run(const fl_iter *it, fl_iter_fn fn, void *ctx, bool parallel)
{
    if (it->numel == 0)
        return;
    if (!parallel || it->numel < 2 * FL_ITER_GRAIN || fl_get_num_threads() == 1) {
        iter_range(it, fn, ctx, 0, it->numel);
        return;
    }
    range_job job = {it, fn, ctx};
    fl_parallel_for(it->numel, FL_ITER_GRAIN, run_job, &job);
}
