/* nn.h: convolution and pooling (vm/conv.c, vm/pool.c), NCHW layout, float32 and float64,
 * with PyTorch's shapes, options and output sizes. Inputs may leave out the batch dim (then
 * so does the result). Each op records one autograd node whose rule computes the gradients
 * of the input, the weight and the bias (vm/backward_nn.c dispatches to the *_backward
 * functions below). Pair options hold (height, width); 1-d ops use entry 0. */
#ifndef FL_NN_H
#define FL_NN_H

#include "flare.h"

struct fl_node;

/* ---------------------------------------------------------------- convolution */

typedef enum {
    FL_PAD_EXPLICIT,   /* padding[] */
    FL_PAD_SAME,       /* output size = input size (stride 1 only); odd totals pad more after */
    FL_PAD_VALID,      /* no padding */
} fl_pad_mode;

typedef struct {
    int64_t stride[2], padding[2], dilation[2];
    int64_t output_padding[2];   /* conv_transpose2d only */
    int64_t groups;
    fl_pad_mode pad_mode;        /* conv1d / conv2d only */
} fl_conv_opts;

/* stride 1, padding 0, dilation 1, output_padding 0, groups 1. */
fl_conv_opts fl_conv_opts_default(void);

/* x (N, C_in, L) or (C_in, L); w (C_out, C_in / groups, k); b (C_out) or NULL. */
fl_tensor *fl_conv1d(const fl_tensor *x, const fl_tensor *w, const fl_tensor *b, const fl_conv_opts *o);
/* x (N, C_in, H, W) or (C_in, H, W); w (C_out, C_in / groups, kH, kW); b (C_out) or NULL. */
fl_tensor *fl_conv2d(const fl_tensor *x, const fl_tensor *w, const fl_tensor *b, const fl_conv_opts *o);
/* x (N, C_in, H, W) or (C_in, H, W); w (C_in, C_out / groups, kH, kW); b (C_out) or NULL.
 * Output size (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1. */
fl_tensor *fl_conv_transpose2d(const fl_tensor *x, const fl_tensor *w, const fl_tensor *b,
                               const fl_conv_opts *o);

/* ---------------------------------------------------------------- pooling */

typedef struct {
    int64_t kernel[2], stride[2], padding[2], dilation[2];   /* stride: PyTorch's default is the kernel */
    bool ceil_mode;
    bool count_include_pad;      /* avg_pool2d */
    int64_t divisor_override;    /* avg_pool2d; 0: none */
} fl_pool_opts;

/* x (N, C, L) or (C, L) / (N, C, H, W) or (C, H, W). Sets *out and, when indices is not
 * NULL, *indices: int64, the position of each max within its plane (h * W + w), counted
 * from base. Returns 0 or -1. */
int fl_max_pool1d(const fl_tensor *x, const fl_pool_opts *o, int64_t base, fl_tensor **out, fl_tensor **indices);
int fl_max_pool2d(const fl_tensor *x, const fl_pool_opts *o, int64_t base, fl_tensor **out, fl_tensor **indices);
/* Dilation is not used. */
fl_tensor *fl_avg_pool2d(const fl_tensor *x, const fl_pool_opts *o);
/* out (..., oh, ow): each cell the mean of rows floor(i H / oh) to ceil((i + 1) H / oh), and
 * likewise for columns. */
fl_tensor *fl_adaptive_avg_pool2d(const fl_tensor *x, int64_t oh, int64_t ow);

/* ---------------------------------------------------------------- backward rules */

int fl_conv_backward(struct fl_node *n, const fl_tensor *g, fl_tensor **grads);
int fl_pool_backward(struct fl_node *n, const fl_tensor *g, fl_tensor **grads);

#endif
