/* index.h: CPU kernels for indexing ops: gather/scatter along one dimension, masked fill,
 * select and scatter, and nonzero. Like kernels.h they see raw pointers, counts and element
 * strides only. Elements that are only moved are handled by their size in bytes (1, 4 or 8);
 * index arrays are int64 or int32 (idt) and hold indices counted from `base`. */
#ifndef FL_CPU_INDEX_H
#define FL_CPU_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "../../vm/flare.h"

/* Checks that idx[i*si], i < n, lie in [base, base + limit). Returns 0, or -1 with the first
 * bad value in *bad. */
int fl_cpu_index_check(fl_dtype idt, const void *idx, int64_t n, int64_t si, int64_t limit,
                       int64_t base, int64_t *bad);

/* out[i*so] = src[i*ss + (idx[i*si] - base) * sd], i < n. Indices already checked. */
void fl_cpu_gather(size_t elsize, void *out, const void *src, fl_dtype idt, const void *idx,
                   int64_t n, int64_t so, int64_t ss, int64_t si, int64_t sd, int64_t base);

/* out[i*so + (idx[i*si] - base) * sd] = src[i*ss], i < n, in order (the last write wins). */
void fl_cpu_scatter(size_t elsize, void *out, const void *src, fl_dtype idt, const void *idx,
                    int64_t n, int64_t so, int64_t ss, int64_t si, int64_t sd, int64_t base);

/* The same with +=; out and src are of dtype dt (numeric). */
void fl_cpu_scatter_add(fl_dtype dt, void *out, const void *src, fl_dtype idt, const void *idx,
                        int64_t n, int64_t so, int64_t ss, int64_t si, int64_t sd, int64_t base);

/* out[i*so] = *value where mask[i*sm]; value points at one element of elsize bytes. */
void fl_cpu_masked_fill(size_t elsize, void *out, const uint8_t *mask, const void *value,
                        int64_t n, int64_t so, int64_t sm);

/* Appends a[i*sa] where mask[i*sm] to the contiguous out; returns how many. */
int64_t fl_cpu_masked_select(size_t elsize, void *out, const void *a, const uint8_t *mask,
                             int64_t n, int64_t sa, int64_t sm);

/* out[i*so] = next element of the contiguous src where mask[i*sm]; returns how many used. */
int64_t fl_cpu_masked_scatter(size_t elsize, void *out, const void *src, const uint8_t *mask,
                              int64_t n, int64_t so, int64_t sm);

/* Number of non-zero a[i*sa] (NaN counts as non-zero), i < n. */
int64_t fl_cpu_count_nonzero(fl_dtype dt, const void *a, int64_t n, int64_t sa);

/* a has shape (ndim dims) and strides; writes the coordinates (+ base) of its non-zero
 * elements in row-major order to out, which is (count, ndim). Returns count. */
int64_t fl_cpu_nonzero(int64_t *out, fl_dtype dt, const void *a, int ndim, const int64_t *shape,
                       const int64_t *strides, int64_t base);

#endif
