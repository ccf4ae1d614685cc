/* prefetch.c: the background batch gather behind flare.data's loader (see data.h). The
 * calling thread checks the indices and allocates the outputs; a worker thread then copies
 * the rows with memcpy while Lua goes on with the current batch. The worker sees raw bytes
 * only: every tensor (sources retained, outputs owned here) is touched on the calling thread,
 * and fl_prefetch_wait / fl_prefetch_free join the worker before handing anything out. */
#include "data.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *base;        /* the source's data at row 0 */
    int64_t row_stride;      /* bytes between rows */
    size_t row_bytes;
    char *out;
} gather_src;

struct fl_prefetch {
    int count;
    fl_tensor **src;         /* retained */
    fl_tensor **out;         /* handed out by fl_prefetch_wait, NULL afterwards */
    gather_src *jobs;
    int64_t *rows;           /* 0-based */
    int64_t nrows;
    pthread_t thread;
    bool running, waited;
};

static void gather(const fl_prefetch *p)
{
    for (int k = 0; k < p->count; k++) {
        const gather_src *g = &p->jobs[k];
        for (int64_t j = 0; j < p->nrows; j++)
            memcpy(g->out + (size_t)j * g->row_bytes, g->base + p->rows[j] * g->row_stride, g->row_bytes);
    }
}

static void *worker(void *arg)
{
    gather(arg);
    return NULL;
}

/* A row of t (everything after dim 0) must be one contiguous block. */
static bool rows_contiguous(const fl_tensor *t)
{
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 1; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect)
            return false;
        expect *= t->shape[d];
    }
    return true;
}

void fl_prefetch_free(fl_prefetch *p)
{
    if (!p)
        return;
    if (p->running)
        pthread_join(p->thread, NULL);
    for (int k = 0; k < p->count; k++) {
        if (p->src)
            fl_tensor_release(p->src[k]);
        if (p->out)
            fl_tensor_release(p->out[k]);
    }
    free(p->src);
    free(p->out);
    free(p->jobs);
    free(p->rows);
    free(p);
}

fl_prefetch *fl_prefetch_start(int count, fl_tensor *const *src, const fl_tensor *idx, int64_t base)
{
    if (count < 1) {
        fl_error("nothing to gather");
        return NULL;
    }
    if ((idx->dtype != FL_DTYPE_I64 && idx->dtype != FL_DTYPE_I32) || idx->ndim != 1) {
        fl_error("indices must be a 1-d int64 or int32 tensor");
        return NULL;
    }
    for (int k = 0; k < count; k++) {
        const fl_tensor *t = src[k];
        if (t->ndim < 1 || t->storage->device.type != FL_DEVICE_CPU || !rows_contiguous(t)) {
            fl_error("tensor %d is not a CPU tensor of contiguous rows", k + 1);
            return NULL;
        }
        if (t->shape[0] != src[0]->shape[0]) {
            fl_error("tensor %d has %lld rows, tensor 1 has %lld", k + 1, (long long)t->shape[0],
                     (long long)src[0]->shape[0]);
            return NULL;
        }
    }
    fl_prefetch *p = calloc(1, sizeof *p);
    if (!p) {
        fl_error("out of memory");
        return NULL;
    }
    p->nrows = idx->numel;
    p->src = calloc((size_t)count, sizeof *p->src);
    p->out = calloc((size_t)count, sizeof *p->out);
    p->jobs = calloc((size_t)count, sizeof *p->jobs);
    p->rows = malloc(sizeof(int64_t) * (size_t)(p->nrows > 0 ? p->nrows : 1));
    if (!p->src || !p->out || !p->jobs || !p->rows) {
        fl_prefetch_free(p);
        fl_error("out of memory");
        return NULL;
    }
    int64_t limit = src[0]->shape[0];
    for (int64_t j = 0; j < p->nrows; j++) {
        int64_t i = fl_load_i64(idx->dtype, idx->storage->data, idx->offset + j * idx->strides[0]) - base;
        if (i < 0 || i >= limit) {
            fl_error("index %lld is out of range for %lld rows", (long long)(i + base), (long long)limit);
            fl_prefetch_free(p);
            return NULL;
        }
        p->rows[j] = i;
    }
    for (int k = 0; k < count; k++) {
        const fl_tensor *t = src[k];
        int64_t shape[FL_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        shape[0] = p->nrows;
        p->out[k] = fl_tensor_empty(t->dtype, t->ndim, shape, FL_CPU);
        if (!p->out[k]) {
            p->count = k;
            fl_prefetch_free(p);
            return NULL;
        }
        p->src[k] = fl_tensor_retain(src[k]);
        p->count = k + 1;
        size_t es = fl_dtype_size(t->dtype);
        p->jobs[k] = (gather_src){(const char *)t->storage->data + t->offset * (int64_t)es,
                                  t->strides[0] * (int64_t)es, (size_t)(t->numel / (t->shape[0] ? t->shape[0] : 1)) * es,
                                  fl_tensor_data(p->out[k])};
    }
    /* no thread to be had: copy now, the batch is just not early */
    if (pthread_create(&p->thread, NULL, worker, p) == 0)
        p->running = true;
    else
        gather(p);
    return p;
}

int fl_prefetch_wait(fl_prefetch *p, fl_tensor **out)
{
    if (p->waited) {
        fl_error("this batch was already taken");
        return -1;
    }
    if (p->running) {
        pthread_join(p->thread, NULL);
        p->running = false;
    }
    p->waited = true;
    for (int k = 0; k < p->count; k++) {
        out[k] = p->out[k];
        p->out[k] = NULL;
    }
    return 0;
}
