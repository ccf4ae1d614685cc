/* index.h: CUDA kernels for the indexing ops of vm/index.c: index checks, gather/scatter
 * along one dimension, masked fill, and the order-keeping compactions (count_nonzero,
 * masked_select, masked_scatter, nonzero). Same semantics as kernels/cpu/index.h, element
 * for element; iterator data pointers are device pointers. Moved elements are handled by
 * their size (1, 4 or 8 bytes); index arrays are int64 or int32 (idt) counted from `base`. */
#ifndef FL_CUDA_INDEX_H
#define FL_CUDA_INDEX_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "../../vm/iter.h"

/* it: one operand, the indices. Returns 0 when every index lies in [base, base + limit),
 * 1 with the first bad one (in iteration order) in *bad, or -1 on a CUDA failure. Reads one
 * flag back from the device. */
int fl_cuda_index_check(fl_dtype idt, const fl_iter *it, int64_t limit, int64_t base, int64_t *bad);

/* it: out, idx, src (src with stride 0 along the indexed dim, whose stride is sd):
 * out = src[+ (idx - base) * sd]. Indices already checked. */
int fl_cuda_gather(size_t elsize, fl_dtype idt, const fl_iter *it, int64_t sd, int64_t base);

/* it: out (stride 0 along the indexed dim), idx, src: out[+ (idx - base) * sd] = src, or
 * += for FL_SCATTER_ADD (atomics; out of dtype dt). SET keeps the write of the last position
 * in iteration order, as the CPU's sequential loop does: span is the number of elements
 * that out's storage range covers from its first element (1 + sum (size - 1) * stride). */
int fl_cuda_scatter(fl_dtype dt, fl_dtype idt, fl_scatter_mode mode, const fl_iter *it, int64_t sd,
                    int64_t base, int64_t span);

/* it: out, mask (bool): out = *value where mask. value is one element of elsize bytes, in
 * device memory when value_on_device, else on the host. */
int fl_cuda_masked_fill(size_t elsize, const fl_iter *it, const void *value, int value_on_device);

/* it: one operand of dtype dt. Its non-zero elements (NaN counts, -0 does not) into *count. */
int fl_cuda_count_nonzero(fl_dtype dt, const fl_iter *it, int64_t *count);

/* it: a, mask. Appends a where mask, in iteration order, to the contiguous out (sized by
 * fl_cuda_count_nonzero of the mask). */
int fl_cuda_masked_select(size_t elsize, const fl_iter *it, void *out);

/* it: out, mask. out = the next element of the contiguous src where mask, in order. */
int fl_cuda_masked_scatter(size_t elsize, const fl_iter *it, const void *src);

/* a: ndim dims of shape and strides (elements), dtype dt. Writes the coordinates (+ base)
 * of its non-zero elements, row-major, to out (count, ndim). */
int fl_cuda_nonzero(int64_t *out, fl_dtype dt, const void *a, int ndim, const int64_t *shape,
                    const int64_t *strides, int64_t base);

#ifdef __cplusplus
}
#endif
#endif
