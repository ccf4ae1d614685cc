/* random.h: CUDA draws from flare's generator (vm/random.c): the same Philox4x32-10 stream,
 * so that element i of a draw at (seed, offset) is bit for bit the CPU's for uniform,
 * bernoulli and integer draws (normals agree to the last bits of sqrt/log/cos). */
#ifndef FL_CUDA_RANDOM_H
#define FL_CUDA_RANDOM_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { FL_DRAW_UNIFORM, FL_DRAW_NORMAL, FL_DRAW_INT, FL_DRAW_BERNOULLI } fl_draw_kind;

/* What one draw produces: uniform in [a, b), normal (mean a, std b), bernoulli (p = a), or
 * integers lo + (r mod span). Element i uses the counter offset + i. */
typedef struct {
    fl_draw_kind kind;
    double a, b;
    int64_t lo;
    uint64_t span, seed, offset;
} fl_draw;

/* data: a tensor of dtype dt with ndim dims of shape and strides (elements); element i in
 * row-major order gets draw i, stored with the CPU's conversions (fl_store_f64/_i64). */
int fl_cuda_random(fl_dtype dt, void *data, int ndim, const int64_t *shape, const int64_t *strides,
                   const fl_draw *d);

#ifdef __cplusplus
}
#endif
#endif
