/* conv.h: convolution on the GPU as im2col + cuBLAS GEMM (col2im for the transposed
 * direction and the input gradient), the same algorithm and column layout as vm/conv.c's
 * CPU path: several images share each GEMM, their columns side by side. Pointers are device
 * pointers to contiguous tensors of dtype s->dt. */
#ifndef FL_CUDA_CONV_H
#define FL_CUDA_CONV_H

#include "runtime.h"
#include "blas.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/conv.h"

/* One convolution: channels of the op's input x and output y, positions per channel of
 * each, and the geometry of the image side (x for a convolution, y for a transposed one;
 * see vm/conv.c). mode: how float32 GEMMs run (autocast, TF32). */
typedef struct {
    fl_dtype dt;
    int transposed;
    fl_gemm_mode mode;
    int64_t n, groups, cin, cout, xp, yp;
    fl_conv_geom geom;
} fl_cuda_conv;

/* y (n, cout, yp) = conv(x (n, cin, xp), w) + b (b may be NULL). cin > 0. */
int fl_cuda_conv_forward(const fl_cuda_conv *s, void *y, const void *x, const void *w, const void *b);
/* From g (n, cout, yp): gx (x's shape), gw (w's shape), gb (cout); each NULL when not
 * wanted. n, cin and cout > 0. */
int fl_cuda_conv_backward(const fl_cuda_conv *s, const void *g, const void *x, const void *w, void *gx,
                          void *gw, void *gb);
/* gb (c) = the sum of g (n, c, p) over n and p (accumulated in double). */
int fl_cuda_conv_bias_grad(fl_dtype dt, void *gb, const void *g, int64_t n, int64_t c, int64_t p);

#ifdef __cplusplus
}
#endif
#endif
