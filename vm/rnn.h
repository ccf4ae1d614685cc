/* rnn.h: fused recurrent cells and layers (vm/rnn.c), float32 and float64, PyTorch's gate
 * order and equations. Each op records one autograd node (rules in fl_rnn_backward).
 *
 * The cells fuse one time step's gate math: the caller computes the input projection
 * gi = x W_ihᵀ + b_ih and the hidden projection gh = h W_hhᵀ + b_hh (N, G), G = 4H (LSTM,
 * gates i f g o) or 3H (GRU, gates r z n). The layer runs a whole sequence in one op: the
 * matrix product of each step and the backward through time happen inside, in C, so a
 * sequence of T steps is one graph node instead of a dozen per step. */
#ifndef FL_RNN_H
#define FL_RNN_H

#include "flare.h"

struct fl_node;

/* LSTM step: gi, gh (N, 4H), c (N, H). Returns (2, N, H): h' = σ(o) tanh(c') and
 * c' = σ(f) c + σ(i) tanh(g). */
fl_tensor *fl_lstm_cell(const fl_tensor *gi, const fl_tensor *gh, const fl_tensor *c);
/* GRU step: gi, gh (N, 3H), h (N, H). Returns h' = (1 - z) n + z h (N, H), with
 * n = tanh(gi_n + r gh_n). */
fl_tensor *fl_gru_cell(const fl_tensor *gi, const fl_tensor *gh, const fl_tensor *h);

typedef enum { FL_RNN_TANH, FL_RNN_RELU, FL_RNN_LSTM, FL_RNN_GRU } fl_rnn_mode;

/* One layer in one direction over a sequence. gi (T, N, G) is the input projection of all
 * steps (G = H for the Elman modes); hh is W_hh (G, H), or W_hh with b_hh appended as a
 * last column (G, H + 1); state0 is h0 (N, H), or h0 and c0 stacked (2, N, H) for LSTM.
 * reverse runs from step T to step 1. Returns the hidden states (T, N, H) in time order;
 * for LSTM one more row follows, the final cell state: (T + 1, N, H). T must be >= 1. */
fl_tensor *fl_rnn_layer(fl_rnn_mode mode, const fl_tensor *gi, const fl_tensor *hh, const fl_tensor *state0,
                         bool reverse);

/* The backward rule of the three ops above (vm/backward_nn.c dispatches here). */
int fl_rnn_backward(struct fl_node *n, const fl_tensor *g, fl_tensor **grads);

#endif
