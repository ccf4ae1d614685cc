/* rnn.c: fused gate kernels of the recurrent cells (see rnn.h). One pass over each row of
 * the batch; the inner loops over the hidden units vectorise (float32 through vmath.h). */
#include "rnn.h"
#include "vmath.h"

#include <math.h>
#include <stddef.h>

static inline double sigmoid_f64(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* Generates the kernels of one element type T (suffix SFX) with its SIGMOID and TANH. */
#define RNN_KERNELS(T, SFX, SIGMOID, TANH)                                                       \
    CLONES void fl_cpu_lstm_forward_##SFX(T *restrict h_out, T *restrict c_out, T *restrict act,      \
                                          const T *restrict gi, const T *restrict gh,            \
                                          const T *restrict b, const T *restrict c, int64_t N,   \
                                          int64_t H)                                             \
    {                                                                                             \
        for (int64_t n = 0; n < N; n++) {                                                         \
            const T *xi = gi + n * 4 * H, *xh = gh + n * 4 * H, *cp = c + n * H;                  \
            T *a = act + n * 4 * H, *ho = h_out + n * H, *co = c_out + n * H;                     \
            for (int64_t j = 0; j < H; j++) {                                                     \
                T pi = xi[j] + xh[j] + b[j], pf = xi[H + j] + xh[H + j] + b[H + j];               \
                T pg = xi[2 * H + j] + xh[2 * H + j] + b[2 * H + j];                              \
                T po = xi[3 * H + j] + xh[3 * H + j] + b[3 * H + j];                              \
                T i = SIGMOID(pi), f = SIGMOID(pf), g = TANH(pg), o = SIGMOID(po);                \
                T cn = f * cp[j] + i * g;                                                         \
                a[j] = i;                                                                         \
                a[H + j] = f;                                                                     \
                a[2 * H + j] = g;                                                                 \
                a[3 * H + j] = o;                                                                 \
                co[j] = cn;                                                                       \
                ho[j] = o * TANH(cn);                                                             \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    CLONES void fl_cpu_lstm_backward_##SFX(T *restrict dgates, T *restrict dc_prev,               \
                                           const T *restrict act, const T *restrict c,            \
                                           const T *restrict c_new, const T *restrict dh,         \
                                           const T *restrict dc, int64_t N, int64_t H)            \
    {                                                                                             \
        for (int64_t n = 0; n < N; n++) {                                                         \
            const T *a = act + n * 4 * H, *cp = c + n * H, *cn = c_new + n * H;                   \
            const T *gh_ = dh + n * H, *gc = dc + n * H;                                          \
            T *d = dgates + n * 4 * H, *dcp = dc_prev + n * H;                                    \
            for (int64_t j = 0; j < H; j++) {                                                     \
                T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];                     \
                T tc = TANH(cn[j]);                                                               \
                T dct = gc[j] + gh_[j] * o * (1 - tc * tc);                                       \
                d[j] = dct * g * i * (1 - i);                                                     \
                d[H + j] = dct * cp[j] * f * (1 - f);                                             \
                d[2 * H + j] = dct * i * (1 - g * g);                                             \
                d[3 * H + j] = gh_[j] * tc * o * (1 - o);                                         \
                dcp[j] = dct * f;                                                                 \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    CLONES void fl_cpu_gru_forward_##SFX(T *restrict h_out, T *restrict ws, const T *restrict gi, \
                                         const T *restrict gh, const T *restrict b,               \
                                         const T *restrict h, int64_t N, int64_t H)               \
    {                                                                                             \
        for (int64_t n = 0; n < N; n++) {                                                         \
            const T *xi = gi + n * 3 * H, *xh = gh + n * 3 * H, *hp = h + n * H;                  \
            T *w = ws + n * 4 * H, *ho = h_out + n * H;                                           \
            for (int64_t j = 0; j < H; j++) {                                                     \
                T hr = xh[j] + b[j], hz = xh[H + j] + b[H + j], hn = xh[2 * H + j] + b[2 * H + j]; \
                T r = SIGMOID(xi[j] + hr), z = SIGMOID(xi[H + j] + hz);                           \
                T nn = TANH(xi[2 * H + j] + r * hn);                                              \
                w[j] = r;                                                                         \
                w[H + j] = z;                                                                     \
                w[2 * H + j] = nn;                                                                \
                w[3 * H + j] = hn;                                                                \
                ho[j] = nn + z * (hp[j] - nn);                                                    \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    CLONES void fl_cpu_gru_backward_##SFX(T *restrict dgi, T *restrict dgh, T *restrict dh_prev,  \
                                          const T *restrict ws, const T *restrict h,              \
                                          const T *restrict dh, int64_t N, int64_t H)             \
    {                                                                                             \
        for (int64_t n = 0; n < N; n++) {                                                         \
            const T *w = ws + n * 4 * H, *hp = h + n * H, *g = dh + n * H;                        \
            T *di = dgi + n * 3 * H, *dhh = dgh + n * 3 * H, *dp = dh_prev + n * H;               \
            for (int64_t j = 0; j < H; j++) {                                                     \
                T r = w[j], z = w[H + j], nn = w[2 * H + j], hn = w[3 * H + j], gj = g[j];        \
                T dn = gj * (1 - z) * (1 - nn * nn);                                              \
                T dz = gj * (hp[j] - nn) * z * (1 - z);                                           \
                T dr = dn * hn * r * (1 - r);                                                     \
                di[j] = dr;                                                                       \
                di[H + j] = dz;                                                                   \
                di[2 * H + j] = dn;                                                               \
                dhh[j] = dr;                                                                      \
                dhh[H + j] = dz;                                                                  \
                dhh[2 * H + j] = dn * r;                                                          \
                dp[j] = gj * z;                                                                   \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    CLONES void fl_cpu_rnn_forward_##SFX(T *restrict h_out, const T *restrict gi,                 \
                                         const T *restrict gh, const T *restrict b, int64_t N,    \
                                         int64_t H, int relu)                                     \
    {                                                                                             \
        for (int64_t n = 0; n < N; n++) {                                                         \
            const T *xi = gi + n * H, *xh = gh + n * H;                                           \
            T *ho = h_out + n * H;                                                                \
            for (int64_t j = 0; j < H; j++) {                                                     \
                T p = xi[j] + xh[j] + b[j];                                                       \
                ho[j] = relu ? (p > 0 ? p : (p != p ? p : 0)) : TANH(p);                          \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    CLONES void fl_cpu_rnn_backward_##SFX(T *restrict dgates, const T *restrict h_new,            \
                                          const T *restrict dh, int64_t N, int64_t H, int relu)   \
    {                                                                                             \
        for (int64_t k = 0; k < N * H; k++)                                                       \
            dgates[k] = relu ? (h_new[k] > 0 ? dh[k] : 0) : dh[k] * (1 - h_new[k] * h_new[k]);    \
    }

RNN_KERNELS(float, f32, fl_vm_sigmoidf, fl_vm_tanhf)
RNN_KERNELS(double, f64, sigmoid_f64, tanh)
