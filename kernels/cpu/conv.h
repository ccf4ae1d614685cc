/* conv.h: the data movement around convolution's matrix products (see conv.c): im2col and
 * col2im for one image, strided row copies (the (N, C, P) <-> (C, N * P) transposes that let
 * one GEMM cover several images), bias addition and the bias gradient. T is float or double
 * (suffix f32/f64). The products themselves are BLAS calls made by vm/conv.c. */
#ifndef FL_CPU_CONV_H
#define FL_CPU_CONV_H

#include <stdint.h>

/* One image (c, h, w) seen through a kernel (kh, kw) with stride, dilation and the padding
 * before each dim (ph top, pw left). oh, ow: the output positions; a position reading
 * outside the image (before or after it) reads zero, so asymmetric padding is simply an
 * (oh, ow) larger than the symmetric one. */
typedef struct {
    int64_t c, h, w;
    int64_t kh, kw;
    int64_t sh, sw;
    int64_t dh, dw;
    int64_t ph, pw;
    int64_t oh, ow;
} fl_conv_geom;

/* col (c * kh * kw, ld): row (ci * kh + i) * kw + j, column oy * ow + ox holds
 * im[ci, oy * sh - ph + i * dh, ox * sw - pw + j * dw] (0 outside); im is (c, h, w). The
 * oh * ow columns written start at col; ld >= oh * ow lets images lie side by side. */
void fl_cpu_im2col_f32(float *col, int64_t ld, const float *im, const fl_conv_geom *g);
void fl_cpu_im2col_f64(double *col, int64_t ld, const double *im, const fl_conv_geom *g);
/* The adjoint: im (c, h, w) = sum of the col entries that read each pixel (im is
 * overwritten, not accumulated into). col is scratch: entries that read padding may be
 * zeroed. */
void fl_cpu_col2im_f32(float *im, float *col, int64_t ld, const fl_conv_geom *g);
void fl_cpu_col2im_f64(double *im, double *col, int64_t ld, const fl_conv_geom *g);

/* dst (rows, cols) with row stride ldd = src (rows, cols) with row stride lds, plus
 * bias[r] on row r when bias is not NULL. */
void fl_cpu_copy_rows_f32(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows,
                          int64_t cols, const float *bias);
void fl_cpu_copy_rows_f64(double *dst, int64_t ldd, const double *src, int64_t lds, int64_t rows,
                          int64_t cols, const double *bias);
/* x (rows, cols) += bias[r] on row r, in place. */
void fl_cpu_add_bias_f32(float *x, int64_t rows, int64_t cols, const float *bias);
void fl_cpu_add_bias_f64(double *x, int64_t rows, int64_t cols, const double *bias);

/* out[c] = sum over n < nb, p < np of g[n * bstride + c * np + p], c < nc (the bias
 * gradient of channels c; summed in double). */
void fl_cpu_channel_sum_f32(float *out, const float *g, int64_t nb, int64_t nc, int64_t np, int64_t bstride);
void fl_cpu_channel_sum_f64(double *out, const double *g, int64_t nb, int64_t nc, int64_t np, int64_t bstride);

/* The weight (and bias) gradient of a convolution whose column matrix has few rows, as
 * dot products instead of a GEMM (which would need g transposed first and runs poorly at
 * such sizes): for channels c < nc and rows j < k, gw[c * k + j] += sum over images n < nb
 * and positions q < np of g[n * gstride + c * np + q] * col[j * ldc + n * np + q]; gb[c] +=
 * the sum of g's channel c when gb is not NULL. Totals are kept in double. */
void fl_cpu_conv_wgrad_f32(double *gw, double *gb, const float *g, int64_t nb, int64_t nc, int64_t np,
                           int64_t gstride, const float *col, int64_t ldc, int64_t k);
void fl_cpu_conv_wgrad_f64(double *gw, double *gb, const double *g, int64_t nb, int64_t nc, int64_t np,
                           int64_t gstride, const double *col, int64_t ldc, int64_t k);

#endif
