/* rnn.h: the gate math of one recurrent time step, fused (forward and backward), for the
 * LSTM, GRU and Elman cells. The matrix products around it (gi = x W_ihᵀ + b_ih, gh = h W_hhᵀ)
 * are BLAS calls made by the caller; these loops do everything elementwise in one pass.
 * All arrays are contiguous rows: gi and gh are (N, G) with G = 4H (LSTM, gates i f g o),
 * 3H (GRU, gates r z n) or H (Elman); states are (N, H). b is the hidden bias b_hh (G), or
 * zeros when gh already holds it. No output may overlap an input. T is float or double
 * (suffix f32/f64); float32 uses the vectorised exp/tanh/sigmoid of vmath.h, float64 libm. */
#ifndef FL_CPU_RNN_H
#define FL_CPU_RNN_H

#include <stdint.h>

/* LSTM: c' = σ(f) c + σ(i) tanh(g), h' = σ(o) tanh(c'). act (N, 4H) keeps σ(i), σ(f),
 * tanh(g), σ(o) for the backward. */
void fl_cpu_lstm_forward_f32(float *h_out, float *c_out, float *act, const float *gi, const float *gh,
                             const float *b, const float *c, int64_t N, int64_t H);
void fl_cpu_lstm_forward_f64(double *h_out, double *c_out, double *act, const double *gi, const double *gh,
                             const double *b, const double *c, int64_t N, int64_t H);
/* From dh' and dc' (N, H): dgates (N, 4H) (the gradient of the pre-activations, the same for
 * gi and gh) and dc_prev (N, H) = dc_total σ(f). act, c (the previous cell) and c_new as
 * left by the forward. */
void fl_cpu_lstm_backward_f32(float *dgates, float *dc_prev, const float *act, const float *c, const float *c_new,
                              const float *dh, const float *dc, int64_t N, int64_t H);
void fl_cpu_lstm_backward_f64(double *dgates, double *dc_prev, const double *act, const double *c, const double *c_new,
                              const double *dh, const double *dc, int64_t N, int64_t H);

/* GRU: r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r (gh_n)), h' = (1 - z) n + z h
 * (gh with b added). ws (N, 4H) keeps r, z, n and gh_n for the backward. */
void fl_cpu_gru_forward_f32(float *h_out, float *ws, const float *gi, const float *gh, const float *b,
                            const float *h, int64_t N, int64_t H);
void fl_cpu_gru_forward_f64(double *h_out, double *ws, const double *gi, const double *gh, const double *b,
                            const double *h, int64_t N, int64_t H);
/* From dh' (N, H): dgi, dgh (N, 3H) and dh_prev (N, H) = dh' z, the part of h's gradient
 * that does not pass through gh (the caller adds dgh W_hh). */
void fl_cpu_gru_backward_f32(float *dgi, float *dgh, float *dh_prev, const float *ws, const float *h,
                             const float *dh, int64_t N, int64_t H);
void fl_cpu_gru_backward_f64(double *dgi, double *dgh, double *dh_prev, const double *ws, const double *h,
                             const double *dh, int64_t N, int64_t H);

/* Elman: h' = tanh(gi + gh + b), or relu when `relu`. */
void fl_cpu_rnn_forward_f32(float *h_out, const float *gi, const float *gh, const float *b, int64_t N, int64_t H, int relu);
void fl_cpu_rnn_forward_f64(double *h_out, const double *gi, const double *gh, const double *b, int64_t N, int64_t H, int relu);
/* dgates (N, H) from dh' and the step's output h_new. */
void fl_cpu_rnn_backward_f32(float *dgates, const float *h_new, const float *dh, int64_t N, int64_t H, int relu);
void fl_cpu_rnn_backward_f64(double *dgates, const double *h_new, const double *dh, int64_t N, int64_t H, int relu);

#endif
