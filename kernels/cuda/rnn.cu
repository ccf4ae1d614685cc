/* rnn.cu: the fused gate kernels of the recurrent cells (see rnn.h), one launch per time
 * step and direction. Threads walk (row n, hidden unit j) in a 2-D grid (y: batch rows, x:
 * hidden units), so there is no per-element division and the loads of each gate's slice
 * are coalesced along j. */
#include "common.cuh"
#include "math.cuh"
#include "rnn.h"

namespace {

/* ---------------------------------------------------------------- kernels */

#define FL_ROWS(n, N) for (int64_t n = blockIdx.y; n < (N); n += gridDim.y)
#define FL_COLS(j, H) for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < (H); \
                           j += (int64_t)blockDim.x * gridDim.x)

template <typename T> __device__ __forceinline__ T bias_at(const T *b, int64_t stride, int64_t k)
{
    return b ? b[k * stride] : (T)0;
}

/* The gradient reaching h': the recurrent part plus the output's. */
template <typename T> __device__ __forceinline__ T grad_at(const T *dh, const T *dy, int64_t k)
{
    return (dh ? dh[k] : (T)0) + (dy ? dy[k] : (T)0);
}

/* h_out, c_out (N, H); act (N, 4H); gi, gh (N, 4H); b (4H) by b_stride; c (N, H) */
template <typename T>
__global__ void lstm_forward_kernel(T *h_out, T *c_out, T *act, const T *gi, const T *gh, const T *b,
                                    int64_t bs, const T *c, int64_t N, int64_t H)
{
    FL_ROWS(n, N) {
        const T *xi = gi + n * 4 * H, *xh = gh + n * 4 * H;
        T *a = act + n * 4 * H;
        FL_COLS(j, H) {
            T pi = xi[j] + xh[j] + bias_at(b, bs, j);
            T pf = xi[H + j] + xh[H + j] + bias_at(b, bs, H + j);
            T pg = xi[2 * H + j] + xh[2 * H + j] + bias_at(b, bs, 2 * H + j);
            T po = xi[3 * H + j] + xh[3 * H + j] + bias_at(b, bs, 3 * H + j);
            T i = fl_sigmoid(pi), f = fl_sigmoid(pf), g = fl_tanh(pg), o = fl_sigmoid(po);
            T cn = f * c[n * H + j] + i * g;
            a[j] = i;
            a[H + j] = f;
            a[2 * H + j] = g;
            a[3 * H + j] = o;
            c_out[n * H + j] = cn;
            h_out[n * H + j] = o * fl_tanh(cn);
        }
    }
}

/* dgates (N, 4H); dc_prev, c, c_new, dh, dy, dc (N, H); act (N, 4H) */
template <typename T>
__global__ void lstm_backward_kernel(T *dgates, T *dc_prev, const T *act, const T *c, const T *c_new,
                                     const T *dh, const T *dy, const T *dc, int64_t N, int64_t H)
{
    FL_ROWS(n, N) {
        const T *a = act + n * 4 * H;
        T *d = dgates + n * 4 * H;
        FL_COLS(j, H) {
            int64_t k = n * H + j;
            T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
            T gh_ = grad_at(dh, dy, k);
            T tc = fl_tanh(c_new[k]);
            T dct = dc[k] + gh_ * o * (1 - tc * tc);
            d[j] = dct * g * i * (1 - i);
            d[H + j] = dct * c[k] * f * (1 - f);
            d[2 * H + j] = dct * i * (1 - g * g);
            d[3 * H + j] = gh_ * tc * o * (1 - o);
            dc_prev[k] = dct * f;
        }
    }
}

/* h_out (N, H); ws (N, 4H); gi, gh (N, 3H); b (3H) by b_stride; h (N, H) */
template <typename T>
__global__ void gru_forward_kernel(T *h_out, T *ws, const T *gi, const T *gh, const T *b, int64_t bs, const T *h,
                                   int64_t N, int64_t H)
{
    FL_ROWS(n, N) {
        const T *xi = gi + n * 3 * H, *xh = gh + n * 3 * H;
        T *w = ws + n * 4 * H;
        FL_COLS(j, H) {
            T hr = xh[j] + bias_at(b, bs, j), hz = xh[H + j] + bias_at(b, bs, H + j);
            T hn = xh[2 * H + j] + bias_at(b, bs, 2 * H + j);
            T r = fl_sigmoid(xi[j] + hr), z = fl_sigmoid(xi[H + j] + hz);
            T nn = fl_tanh(xi[2 * H + j] + r * hn);
            w[j] = r;
            w[H + j] = z;
            w[2 * H + j] = nn;
            w[3 * H + j] = hn;
            h_out[n * H + j] = nn + z * (h[n * H + j] - nn);
        }
    }
}

/* dgi, dgh (N, 3H); dh_prev, h, dh, dy (N, H); ws (N, 4H) */
template <typename T>
__global__ void gru_backward_kernel(T *dgi, T *dgh, T *dh_prev, const T *ws, const T *h, const T *dh, const T *dy,
                                    int64_t N, int64_t H)
{
    FL_ROWS(n, N) {
        const T *w = ws + n * 4 * H;
        T *di = dgi + n * 3 * H, *dhh = dgh + n * 3 * H;
        FL_COLS(j, H) {
            int64_t k = n * H + j;
            T r = w[j], z = w[H + j], nn = w[2 * H + j], hn = w[3 * H + j], gj = grad_at(dh, dy, k);
            T dn = gj * (1 - z) * (1 - nn * nn);
            T dz = gj * (h[k] - nn) * z * (1 - z);
            T dr = dn * hn * r * (1 - r);
            di[j] = dr;
            di[H + j] = dz;
            di[2 * H + j] = dn;
            dhh[j] = dr;
            dhh[H + j] = dz;
            dhh[2 * H + j] = dn * r;
            dh_prev[k] = gj * z;
        }
    }
}

/* h_out, gi, gh (N, H); b (H) by b_stride */
template <typename T>
__global__ void rnn_forward_kernel(T *h_out, const T *gi, const T *gh, const T *b, int64_t bs, int64_t N, int64_t H,
                                   int relu)
{
    FL_ROWS(n, N) {
        FL_COLS(j, H) {
            int64_t k = n * H + j;
            T p = gi[k] + gh[k] + bias_at(b, bs, j);
            h_out[k] = relu ? (p > 0 ? p : (p != p ? p : (T)0)) : fl_tanh(p);
        }
    }
}

/* dgates, h_new, dh, dy (N, H) */
template <typename T>
__global__ void rnn_backward_kernel(T *dgates, const T *h_new, const T *dh, const T *dy, int64_t N, int64_t H,
                                    int relu)
{
    FL_ROWS(n, N) {
        FL_COLS(j, H) {
            int64_t k = n * H + j;
            T g = grad_at(dh, dy, k), y = h_new[k];
            dgates[k] = relu ? (y > 0 ? g : (T)0) : g * (1 - y * y);
        }
    }
}

/* Column sums: a block covers BIAS_COLS columns with BIAS_SLICES threads down each, which
 * sum interleaved rows (coalesced: a warp reads 32 neighbouring columns of one row); the
 * slices are then added in a fixed order, so the result does not depend on timing. */
#define BIAS_COLS 32
#define BIAS_SLICES 8

/* out (G) by stride ld; dg (rows, G) */
template <typename T>
__global__ void bias_grad_kernel(T *out, int64_t ld, const T *dg, int64_t rows, int64_t G)
{
    __shared__ T part[BIAS_SLICES][BIAS_COLS + 1];
    int64_t k = (int64_t)blockIdx.x * BIAS_COLS + threadIdx.x;
    T s = 0;
    if (k < G)
        for (int64_t r = threadIdx.y; r < rows; r += BIAS_SLICES)
            s += dg[r * G + k];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && k < G) {
        T t = 0;
        for (int y = 0; y < BIAS_SLICES; y++)
            t += part[y][threadIdx.x];
        out[k * ld] = t;
    }
}

/* ---------------------------------------------------------------- launchers */

/* Threads per block: the hidden units of a row, rounded up to whole warps, at most 256. */
struct step_shape {
    dim3 grid, block;
};

step_shape shape_of(int64_t N, int64_t H)
{
    int64_t t = H >= 256 ? 256 : (H + 31) / 32 * 32;
    int64_t bx = (H + t - 1) / t;
    step_shape s;
    s.block = dim3((unsigned)t);
    s.grid = dim3((unsigned)(bx > 65535 ? 65535 : bx), (unsigned)(N > 65535 ? 65535 : N));
    return s;
}

/* Nothing to launch for an empty batch or empty rows. */
bool empty(int64_t N, int64_t H) { return N <= 0 || H <= 0; }

}  // namespace

extern "C" int fl_cuda_lstm_forward(fl_dtype dt, void *h_out, void *c_out, void *act, const void *gi, const void *gh,
                                    const void *b, int64_t b_stride, const void *c, int64_t N, int64_t H)
{
    if (empty(N, H))
        return 0;
    step_shape s = shape_of(N, H);
    FL_DISPATCH_FLOAT(dt, T,
        FL_LAUNCH(lstm_forward_kernel<T>, s.grid, s.block, (T *)h_out, (T *)c_out, (T *)act, (const T *)gi,
                  (const T *)gh, (const T *)b, b_stride, (const T *)c, N, H));
    return FL_CHECK_LAUNCH("lstm cell forward");
}

extern "C" int fl_cuda_lstm_backward(fl_dtype dt, void *dgates, void *dc_prev, const void *act, const void *c,
                                     const void *c_new, const void *dh, const void *dy, const void *dc, int64_t N,
                                     int64_t H)
{
    if (empty(N, H))
        return 0;
    step_shape s = shape_of(N, H);
    FL_DISPATCH_FLOAT(dt, T,
        FL_LAUNCH(lstm_backward_kernel<T>, s.grid, s.block, (T *)dgates, (T *)dc_prev, (const T *)act,
                  (const T *)c, (const T *)c_new, (const T *)dh, (const T *)dy, (const T *)dc, N, H));
    return FL_CHECK_LAUNCH("lstm cell backward");
}

extern "C" int fl_cuda_gru_forward(fl_dtype dt, void *h_out, void *ws, const void *gi, const void *gh, const void *b,
                                   int64_t b_stride, const void *h, int64_t N, int64_t H)
{
    if (empty(N, H))
        return 0;
    step_shape s = shape_of(N, H);
    FL_DISPATCH_FLOAT(dt, T,
        FL_LAUNCH(gru_forward_kernel<T>, s.grid, s.block, (T *)h_out, (T *)ws, (const T *)gi, (const T *)gh,
                  (const T *)b, b_stride, (const T *)h, N, H));
    return FL_CHECK_LAUNCH("gru cell forward");
}

extern "C" int fl_cuda_gru_backward(fl_dtype dt, void *dgi, void *dgh, void *dh_prev, const void *ws, const void *h,
                                    const void *dh, const void *dy, int64_t N, int64_t H)
{
    if (empty(N, H))
        return 0;
    step_shape s = shape_of(N, H);
    FL_DISPATCH_FLOAT(dt, T,
        FL_LAUNCH(gru_backward_kernel<T>, s.grid, s.block, (T *)dgi, (T *)dgh, (T *)dh_prev, (const T *)ws,
                  (const T *)h, (const T *)dh, (const T *)dy, N, H));
    return FL_CHECK_LAUNCH("gru cell backward");
}

extern "C" int fl_cuda_rnn_forward(fl_dtype dt, void *h_out, const void *gi, const void *gh, const void *b,
                                   int64_t b_stride, int64_t N, int64_t H, int relu)
{
    if (empty(N, H))
        return 0;
    step_shape s = shape_of(N, H);
    FL_DISPATCH_FLOAT(dt, T,
        FL_LAUNCH(rnn_forward_kernel<T>, s.grid, s.block, (T *)h_out, (const T *)gi, (const T *)gh, (const T *)b,
                  b_stride, N, H, relu));
    return FL_CHECK_LAUNCH("rnn cell forward");
}

extern "C" int fl_cuda_rnn_backward(fl_dtype dt, void *dgates, const void *h_new, const void *dh, const void *dy,
                                    int64_t N, int64_t H, int relu)
{
    if (empty(N, H))
        return 0;
    step_shape s = shape_of(N, H);
    FL_DISPATCH_FLOAT(dt, T,
        FL_LAUNCH(rnn_backward_kernel<T>, s.grid, s.block, (T *)dgates, (const T *)h_new, (const T *)dh,
                  (const T *)dy, N, H, relu));
    return FL_CHECK_LAUNCH("rnn cell backward");
}

extern "C" int fl_cuda_rnn_bias_grad(fl_dtype dt, void *out, int64_t ld, const void *dg, int64_t rows, int64_t G)
{
    if (G <= 0)
        return 0;
    int64_t bx = (G + BIAS_COLS - 1) / BIAS_COLS;
    if (bx > 0x7fffffff)
        return fl_cuda_fail("rnn bias gradient: %lld gates is too many", (long long)G);
    FL_DISPATCH_FLOAT(dt, T,
        FL_LAUNCH(bias_grad_kernel<T>, dim3((unsigned)bx), dim3(BIAS_COLS, BIAS_SLICES), (T *)out, ld,
                  (const T *)dg, rows, G));
    return FL_CHECK_LAUNCH("rnn bias gradient");
}
