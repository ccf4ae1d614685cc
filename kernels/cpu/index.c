/* index.c: CPU indexing kernels (see index.h). Moves are done on unsigned integers of the
 * element's size, so one loop serves every dtype of that size; scatter_add adds in the
 * element's own type (integers wrap around, as PyTorch's do). */
#include "index.h"

#include <string.h>

/* Expands LOOP(T, I) for the element type T of size elsize and the index type I of idt. */
#define BY_INDEX(LOOP, T)                                                           \
    do {                                                                            \
        if (idt == FL_DTYPE_I64)                                                    \
            LOOP(T, int64_t);                                                       \
        else                                                                        \
            LOOP(T, int32_t);                                                       \
    } while (0)

#define BY_SIZE(LOOP)                                                               \
    switch (elsize) {                                                               \
    case 1: BY_INDEX(LOOP, uint8_t); break;                                         \
    case 2: BY_INDEX(LOOP, uint16_t); break;                                        \
    case 4: BY_INDEX(LOOP, uint32_t); break;                                        \
    default: BY_INDEX(LOOP, uint64_t); break;                                       \
    }

int fl_cpu_index_check(fl_dtype idt, const void *idx, int64_t n, int64_t si, int64_t limit,
                       int64_t base, int64_t *bad)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t v = idt == FL_DTYPE_I64 ? ((const int64_t *)idx)[i * si]
                                        : (int64_t)((const int32_t *)idx)[i * si];
        /* v - base may overflow for extreme values: compare without subtracting */
        if (v < base || v - base >= limit) {
            *bad = v;
            return -1;
        }
    }
    return 0;
}

/* (idx, n) is (int64, n) or (int32, n); out (n), src: strided elements, sd the stride of the
 * indexed dimension. */
#define GATHER_LOOP(T, I)                                                           \
    do {                                                                            \
        T *O = out;                                                                 \
        const T *S = src;                                                           \
        const I *X = idx;                                                           \
        if (si == 0) {              /* one index for the run: a strided copy */    \
            S += ((int64_t)X[0] - base) * sd;                                       \
            for (int64_t i = 0; i < n; i++)                                         \
                O[i * so] = S[i * ss];                                              \
        } else {                                                                    \
            for (int64_t i = 0; i < n; i++)                                         \
                O[i * so] = S[i * ss + ((int64_t)X[i * si] - base) * sd];           \
        }                                                                           \
    } while (0)

void fl_cpu_gather(size_t elsize, void *out, const void *src, fl_dtype idt, const void *idx,
                   int64_t n, int64_t so, int64_t ss, int64_t si, int64_t sd, int64_t base)
{
    BY_SIZE(GATHER_LOOP)
}

#define SCATTER_LOOP(T, I)                                                          \
    do {                                                                            \
        T *O = out;                                                                 \
        const T *S = src;                                                           \
        const I *X = idx;                                                           \
        for (int64_t i = 0; i < n; i++)                                             \
            O[i * so + ((int64_t)X[i * si] - base) * sd] = S[i * ss];               \
    } while (0)

void fl_cpu_scatter(size_t elsize, void *out, const void *src, fl_dtype idt, const void *idx,
                    int64_t n, int64_t so, int64_t ss, int64_t si, int64_t sd, int64_t base)
{
    BY_SIZE(SCATTER_LOOP)
}

/* U is the unsigned type integers of T add in, so that overflow wraps instead of being UB. */
#define SCATTER_ADD_LOOP(T, U, I)                                                   \
    do {                                                                            \
        T *O = out;                                                                 \
        const T *S = src;                                                           \
        const I *X = idx;                                                           \
        for (int64_t i = 0; i < n; i++) {                                           \
            T *o = &O[i * so + ((int64_t)X[i * si] - base) * sd];                   \
            *o = (T)((U)*o + (U)S[i * ss]);                                         \
        }                                                                           \
    } while (0)

#define SCATTER_ADD_BY_INDEX(T, U)                                                  \
    do {                                                                            \
        if (idt == FL_DTYPE_I64)                                                    \
            SCATTER_ADD_LOOP(T, U, int64_t);                                        \
        else                                                                        \
            SCATTER_ADD_LOOP(T, U, int32_t);                                        \
    } while (0)

void fl_cpu_scatter_add(fl_dtype dt, void *out, const void *src, fl_dtype idt, const void *idx,
                        int64_t n, int64_t so, int64_t ss, int64_t si, int64_t sd, int64_t base)
{
    switch (dt) {
    case FL_DTYPE_F32: SCATTER_ADD_BY_INDEX(float, float); break;
    case FL_DTYPE_F64: SCATTER_ADD_BY_INDEX(double, double); break;
    case FL_DTYPE_I64: SCATTER_ADD_BY_INDEX(int64_t, uint64_t); break;
    case FL_DTYPE_I32: SCATTER_ADD_BY_INDEX(int32_t, uint32_t); break;
    case FL_DTYPE_U8: SCATTER_ADD_BY_INDEX(uint8_t, uint8_t); break;
    case FL_DTYPE_BOOL: {
        /* bool addition is logical or */
        uint8_t *O = out;
        const uint8_t *S = src;
        for (int64_t i = 0; i < n; i++) {
            int64_t v = idt == FL_DTYPE_I64 ? ((const int64_t *)idx)[i * si]
                                            : (int64_t)((const int32_t *)idx)[i * si];
            O[i * so + (v - base) * sd] |= S[i * ss] != 0;
        }
        break;
    }
    default: break;
    }
}

#define MASKED_FILL_LOOP(T)                                                         \
    do {                                                                            \
        T *O = out, v;                                                              \
        memcpy(&v, value, sizeof v);                                                \
        for (int64_t i = 0; i < n; i++)                                             \
            if (mask[i * sm])                                                       \
                O[i * so] = v;                                                      \
    } while (0)

void fl_cpu_masked_fill(size_t elsize, void *out, const uint8_t *mask, const void *value,
                        int64_t n, int64_t so, int64_t sm)
{
    switch (elsize) {
    case 1: MASKED_FILL_LOOP(uint8_t); break;
    case 2: MASKED_FILL_LOOP(uint16_t); break;
    case 4: MASKED_FILL_LOOP(uint32_t); break;
    default: MASKED_FILL_LOOP(uint64_t); break;
    }
}

#define MASKED_SELECT_LOOP(T)                                                       \
    do {                                                                            \
        T *O = out;                                                                 \
        const T *A = a;                                                             \
        for (int64_t i = 0; i < n; i++)                                             \
            if (mask[i * sm])                                                       \
                O[k++] = A[i * sa];                                                 \
    } while (0)

int64_t fl_cpu_masked_select(size_t elsize, void *out, const void *a, const uint8_t *mask,
                             int64_t n, int64_t sa, int64_t sm)
{
    int64_t k = 0;
    switch (elsize) {
    case 1: MASKED_SELECT_LOOP(uint8_t); break;
    case 2: MASKED_SELECT_LOOP(uint16_t); break;
    case 4: MASKED_SELECT_LOOP(uint32_t); break;
    default: MASKED_SELECT_LOOP(uint64_t); break;
    }
    return k;
}

#define MASKED_SCATTER_LOOP(T)                                                      \
    do {                                                                            \
        T *O = out;                                                                 \
        const T *S = src;                                                           \
        for (int64_t i = 0; i < n; i++)                                             \
            if (mask[i * sm])                                                       \
                O[i * so] = S[k++];                                                 \
    } while (0)

int64_t fl_cpu_masked_scatter(size_t elsize, void *out, const void *src, const uint8_t *mask,
                              int64_t n, int64_t so, int64_t sm)
{
    int64_t k = 0;
    switch (elsize) {
    case 1: MASKED_SCATTER_LOOP(uint8_t); break;
    case 2: MASKED_SCATTER_LOOP(uint16_t); break;
    case 4: MASKED_SCATTER_LOOP(uint32_t); break;
    default: MASKED_SCATTER_LOOP(uint64_t); break;
    }
    return k;
}

/* Is element i of a non-zero? (float compares: -0.0 is zero, NaN is not) */
static inline int is_nonzero(fl_dtype dt, const void *a, int64_t i)
{
    switch (dt) {
    case FL_DTYPE_F32: return ((const float *)a)[i] != 0;
    case FL_DTYPE_F64: return ((const double *)a)[i] != 0;
    case FL_DTYPE_I64: return ((const int64_t *)a)[i] != 0;
    case FL_DTYPE_I32: return ((const int32_t *)a)[i] != 0;
    default: return ((const uint8_t *)a)[i] != 0;
    }
}

int64_t fl_cpu_count_nonzero(fl_dtype dt, const void *a, int64_t n, int64_t sa)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        k += is_nonzero(dt, a, i * sa);
    return k;
}

int64_t fl_cpu_nonzero(int64_t *out, fl_dtype dt, const void *a, int ndim, const int64_t *shape,
                       const int64_t *strides, int64_t base)
{
    int64_t pos[FL_MAX_DIMS] = {0}, off = 0, k = 0;
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0)
            return 0;
    for (;;) {
        if (is_nonzero(dt, a, off)) {
            for (int d = 0; d < ndim; d++)
                out[k * ndim + d] = pos[d] + base;
            k++;
        }
        int d = ndim - 1;
        for (; d >= 0; d--) {
            off += strides[d];
            if (++pos[d] < shape[d])
                break;
            off -= pos[d] * strides[d];
            pos[d] = 0;
        }
        if (d < 0)
            return k;
    }
}
