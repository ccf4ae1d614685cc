/* random.c: one global generator, counter-based (Philox4x32-10, Salmon et al. 2011).
 * Element i of a draw uses counter (offset + i), so results do not depend on how the work
 * is split across threads, and the same seed gives the same numbers on every machine.
 * The state is just (seed, offset). CUDA tensors draw on the device from the same stream
 * (kernels/cuda/random.cu), so a seed gives the same numbers on either device. */
#include "cuda.h"
#include "philox.h"
#include "../kernels/cuda/random.h"

#include <math.h>
#include <stdlib.h>

static uint64_t rng_seed = 0x5eed, rng_offset;

void fl_manual_seed(uint64_t seed)
{
    rng_seed = seed;
    rng_offset = 0;
}

void fl_rng_get_state(uint64_t *seed, uint64_t *offset)
{
    *seed = rng_seed;
    *offset = rng_offset;
}

void fl_rng_set_state(uint64_t seed, uint64_t offset)
{
    rng_seed = seed;
    rng_offset = offset;
}

typedef enum {
    DRAW_UNIFORM = FL_DRAW_UNIFORM,
    DRAW_NORMAL = FL_DRAW_NORMAL,
    DRAW_INT = FL_DRAW_INT,
    DRAW_BERNOULLI = FL_DRAW_BERNOULLI
} draw_kind;

typedef struct {
    draw_kind kind;
    fl_dtype dt;
    double a, b;
    int64_t lo;
    uint64_t span;
    uint64_t seed, base;
    char *start;
} draw_ctx;

static double draw_one(const draw_ctx *c, uint64_t i)
{
    uint32_t w[4];
    fl_philox(c->seed, c->base + i, w);
    switch (c->kind) {
    case DRAW_UNIFORM: return c->a + (c->b - c->a) * fl_u01(w[0], w[1]);
    case DRAW_BERNOULLI: return fl_u01(w[0], w[1]) < c->a;
    case DRAW_NORMAL: {
        double u1 = 1.0 - fl_u01(w[0], w[1]), u2 = fl_u01(w[2], w[3]);   /* u1 in (0, 1] */
        return c->a + c->b * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    }
    case DRAW_INT: {
        uint64_t r = ((uint64_t)w[0] << 32 | w[1]) % c->span;
        return (double)(c->lo + (int64_t)r);
    }
    }
    return 0;
}

static void draw_range(void *p, int64_t begin, int64_t end)
{
    draw_ctx *c = p;
    for (int64_t i = begin; i < end; i++) {
        if (c->kind == DRAW_INT) {
            uint32_t w[4];
            fl_philox(c->seed, c->base + (uint64_t)i, w);
            uint64_t r = ((uint64_t)w[0] << 32 | w[1]) % c->span;
            fl_store_i64(c->dt, c->start, i, (int64_t)((uint64_t)c->lo + r));   /* no signed overflow */
        } else {
            fl_store_f64(c->dt, c->start, i, draw_one(c, (uint64_t)i));
        }
    }
}

/* The device draws element i (row-major) with counter offset + i, straight into t. */
static int draw_cuda(fl_tensor *t, const draw_ctx *c)
{
    fl_draw d = {(fl_draw_kind)c->kind, c->a, c->b, c->lo, c->span, rng_seed, rng_offset};
    rng_offset += (uint64_t)t->numel;
    t->storage->version++;
    return fl_cuda_status(FL_CUDA(fl_cuda_random)(t->dtype, fl_tensor_data(t), t->ndim, t->shape, t->strides, &d));
}

/* Draws into a contiguous buffer, then copies into t if t is strided. */
static int draw(fl_tensor *t, draw_ctx *c)
{
    if (fl_is_cuda(t))
        return draw_cuda(t, c);
    fl_tensor *dst = fl_tensor_is_contiguous(t) ? fl_tensor_retain(t)
                                                : fl_tensor_empty(t->dtype, t->ndim, t->shape, FL_CPU);
    if (!dst)
        return -1;
    c->dt = t->dtype;
    c->seed = rng_seed;
    c->base = rng_offset;
    c->start = fl_tensor_data(dst);
    rng_offset += (uint64_t)t->numel;
    fl_parallel_for(t->numel, 16384, draw_range, c);
    int rc = dst == t ? 0 : fl_copy(t, dst);
    fl_tensor_release(dst);
    t->storage->version++;
    return rc;
}

int fl_rand_uniform(fl_tensor *t, double lo, double hi)
{
    draw_ctx c = {.kind = DRAW_UNIFORM, .a = lo, .b = hi};
    return draw(t, &c);
}

int fl_rand_normal(fl_tensor *t, double mean, double std)
{
    draw_ctx c = {.kind = DRAW_NORMAL, .a = mean, .b = std};
    return draw(t, &c);
}

int fl_rand_bernoulli(fl_tensor *t, double p)
{
    draw_ctx c = {.kind = DRAW_BERNOULLI, .a = p};
    return draw(t, &c);
}

int fl_rand_int(fl_tensor *t, int64_t lo, int64_t hi)
{
    if (hi <= lo) {
        fl_error("expected low < high, got low=%lld high=%lld", (long long)lo, (long long)hi);
        return -1;
    }
    draw_ctx c = {.kind = DRAW_INT, .lo = lo, .span = (uint64_t)hi - (uint64_t)lo};
    return draw(t, &c);
}

uint64_t fl_rng_next_u64(void)
{
    uint32_t w[4];
    fl_philox(rng_seed, rng_offset++, w);
    return (uint64_t)w[0] << 32 | w[1];
}

/* Fisher-Yates with the generator's stream. */
fl_tensor *fl_randperm(int64_t n, fl_dtype dt)
{
    int64_t shape[1] = {n};
    fl_tensor *t = fl_tensor_empty(FL_DTYPE_I64, 1, shape, FL_CPU);
    if (!t)
        return NULL;
    int64_t *p = fl_tensor_data(t);
    for (int64_t i = 0; i < n; i++)
        p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(fl_rng_next_u64() % (uint64_t)(i + 1)), tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    if (dt == FL_DTYPE_I64)
        return t;
    fl_tensor *r = fl_cast(t, dt);
    fl_tensor_release(t);
    return r;
}
