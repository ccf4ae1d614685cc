/* rnn.h: CUDA gate kernels of the recurrent cells: one time step's elementwise work, fused,
 * forward and backward, for LSTM, GRU and Elman cells, with the formulas of
 * kernels/cpu/rnn.h. The matrix products around them are made by the caller (vm/rnn.c).
 *
 * All pointers are device pointers to contiguous rows of dtype dt (float32 or float64):
 * gi and gh are (N, G) with G = 4H (LSTM, gates i f g o), 3H (GRU, gates r z n) or H
 * (Elman); states are (N, H). b is the hidden bias b_hh (G) read with stride b_stride (a
 * column of W_hh with the bias appended), or NULL for none. No output may overlap an input.
 *
 * The backward kernels take the gradient of h' as the sum of two arrays, dh and dy (the
 * recurrent part and the output's part of a layer); either may be NULL (zero). */
#ifndef FL_CUDA_RNN_H
#define FL_CUDA_RNN_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* LSTM: h_out, c_out (N, H), act (N, 4H) = σ(i), σ(f), tanh(g), σ(o); c the previous cell. */
int fl_cuda_lstm_forward(fl_dtype dt, void *h_out, void *c_out, void *act, const void *gi, const void *gh,
                         const void *b, int64_t b_stride, const void *c, int64_t N, int64_t H);
/* dgates (N, 4H) and dc_prev (N, H) from dh + dy and dc (N, H); act, c (the previous cell)
 * and c_new as left by the forward. */
int fl_cuda_lstm_backward(fl_dtype dt, void *dgates, void *dc_prev, const void *act, const void *c,
                          const void *c_new, const void *dh, const void *dy, const void *dc, int64_t N, int64_t H);

/* GRU: h_out (N, H) and ws (N, 4H) = r, z, n, gh_n (with bias); h the previous state. */
int fl_cuda_gru_forward(fl_dtype dt, void *h_out, void *ws, const void *gi, const void *gh, const void *b,
                        int64_t b_stride, const void *h, int64_t N, int64_t H);
/* dgi, dgh (N, 3H) and dh_prev (N, H) = (dh + dy) z, the part of h's gradient that does not
 * pass through gh. */
int fl_cuda_gru_backward(fl_dtype dt, void *dgi, void *dgh, void *dh_prev, const void *ws, const void *h,
                         const void *dh, const void *dy, int64_t N, int64_t H);

/* Elman: h_out = tanh(gi + gh + b), or relu when `relu`. */
int fl_cuda_rnn_forward(fl_dtype dt, void *h_out, const void *gi, const void *gh, const void *b, int64_t b_stride,
                        int64_t N, int64_t H, int relu);
/* dgates (N, H) from dh + dy and the step's output h_new. */
int fl_cuda_rnn_backward(fl_dtype dt, void *dgates, const void *h_new, const void *dh, const void *dy, int64_t N,
                         int64_t H, int relu);

/* out[k * ld] = sum over rows r of dg[r * G + k], k < G: the bias gradient (a column of a
 * (G, ld) matrix) from the gate gradients dg (rows, G). */
int fl_cuda_rnn_bias_grad(fl_dtype dt, void *out, int64_t ld, const void *dg, int64_t rows, int64_t G);

#ifdef __cplusplus
}
#endif
#endif
