/* loss.cu: fused softmax, log-softmax, cross-entropy and nll, and the elementwise losses
 * (see loss.h), with the formulas and accumulation types of kernels/cpu/softmax.c.
 *
 * A "position" is one (outer, inner) pair: one softmax, or one target. Who handles a
 * position depends on the layout: along a contiguous class dim (inner == 1), a warp per
 * position, or the whole block for long rows, reducing with shuffles (and shared memory
 * across the warps of a block); along a strided dim (inner > 1) or a very short one, a thread
 * per position, neighbouring threads on neighbouring positions so that reads coalesce. Each
 * kernel is written once over these three policies. */
#include "common.cuh"
#include "loss.h"
#include "math.cuh"
#include "reduce.h"

#include <string.h>

namespace {

const unsigned FULL = 0xffffffffu;

/* ---------------------------------------------------------------- who handles a position */

struct sum_f {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};
/* NaN wins (softmax's max); commutative, so every lane of a butterfly agrees. */
struct max_nan_f {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return (b > a || b != b) ? b : a; }
};
/* NaN loses (the cross-entropy's max, as the CPU's x > m). */
struct max_num_f {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return (b > a || a != a) ? b : a; }
};

template <typename A, typename F> __device__ __forceinline__ A warp_all(A v, F f)
{
    for (int o = 16; o > 0; o >>= 1)
        v = f(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

/* f over the values of every thread of the block, returned to all of them. */
template <typename A, typename F> __device__ __forceinline__ A block_all(A v, F f)
{
    __shared__ A part[32];
    v = warp_all(v, f);
    __syncthreads();   /* the previous call's readers are done with part */
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = v;
    __syncthreads();
    v = part[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++)
        v = f(v, part[w]);
    return v;
}

enum policy { WARP, BLOCK, THREAD };

/* rank/size: this thread's share of a position's entries; per_block/slot: the positions a
 * block takes at a time and which one is this thread's; all: the group's reduction. */
template <policy P> struct group {
    __device__ static int rank() { return P == BLOCK ? (int)threadIdx.x : P == WARP ? (int)(threadIdx.x & 31) : 0; }
    __device__ static int size() { return P == BLOCK ? (int)blockDim.x : P == WARP ? 32 : 1; }
    __device__ static int per_block() { return P == BLOCK ? 1 : P == WARP ? (int)(blockDim.x >> 5) : (int)blockDim.x; }
    __device__ static int slot() { return P == BLOCK ? 0 : P == WARP ? (int)(threadIdx.x >> 5) : (int)threadIdx.x; }
    template <typename A, typename F> __device__ static A all(A v, F f)
    {
        if constexpr (P == BLOCK)
            return block_all(v, f);
        else if constexpr (P == WARP)
            return warp_all(v, f);
        else
            return v;
    }
};

policy choose(int64_t n, int64_t inner)
{
    return inner > 1 || n <= 8 ? THREAD : n <= 1024 ? WARP : BLOCK;
}

unsigned blocks_for(policy p, int64_t positions)
{
    int64_t per = p == BLOCK ? 1 : p == WARP ? FL_THREADS / 32 : FL_THREADS;
    int64_t b = (positions + per - 1) / per;
    return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

/* Loops a block over its positions; every thread of the block runs the body the same number
 * of times (shuffles and barriers inside), with ok false past the end. */
#define FOR_POSITIONS(P, positions, pos, ok)                                                   \
    for (int64_t pos##_b = (int64_t)blockIdx.x * group<P>::per_block(); pos##_b < (positions); \
         pos##_b += (int64_t)gridDim.x * group<P>::per_block())                                 \
        for (int64_t pos = pos##_b + group<P>::slot(), pos##_once = 1; pos##_once; pos##_once = 0) \
            for (bool ok = pos < (positions); pos##_once; pos##_once = 0)

/* Element offset of position pos's first entry. */
__device__ __forceinline__ int64_t position_base(int64_t pos, int64_t n, int64_t inner)
{
    int64_t o = pos / inner;
    return o * n * inner + (pos - o * inner);
}

/* ---------------------------------------------------------------- softmax */

template <typename T, policy P>
__global__ void softmax_kernel(T *y, const T *x, int64_t positions, int64_t n, int64_t inner, int want_log)
{
    typedef group<P> G;
    FOR_POSITIONS(P, positions, pos, ok) {
        int64_t base = ok ? position_base(pos, n, inner) : 0, end = ok ? n : 0;
        const T *xs = x + base;
        T *ys = y + base;
        T m = -INFINITY;
        for (int64_t c = G::rank(); c < end; c += G::size())
            m = max_nan_f()(m, xs[c * inner]);
        m = G::all(m, max_nan_f());
        if (m == -INFINITY)
            m = 0;
        double s = 0;
        for (int64_t c = G::rank(); c < end; c += G::size())
            s += fl_exp(xs[c * inner] - m);
        s = G::all(s, sum_f());
        if (want_log) {
            T lse = m + (T)fl_log((T)s);
            for (int64_t c = G::rank(); c < end; c += G::size())
                ys[c * inner] = xs[c * inner] - lse;
        } else {
            T inv = (T)(1.0 / s);
            for (int64_t c = G::rank(); c < end; c += G::size())
                ys[c * inner] = fl_exp(xs[c * inner] - m) * inv;
        }
    }
}

template <typename T, policy P>
__global__ void softmax_backward_kernel(T *gx, const T *g, const T *y, int64_t positions, int64_t n, int64_t inner,
                                        int want_log)
{
    typedef group<P> G;
    FOR_POSITIONS(P, positions, pos, ok) {
        int64_t base = ok ? position_base(pos, n, inner) : 0, end = ok ? n : 0;
        double s = 0;
        for (int64_t c = G::rank(); c < end; c += G::size()) {
            int64_t k = base + c * inner;
            s += want_log ? g[k] : g[k] * y[k];
        }
        s = G::all(s, sum_f());
        for (int64_t c = G::rank(); c < end; c += G::size()) {
            int64_t k = base + c * inner;
            gx[k] = want_log ? g[k] - fl_exp(y[k]) * (T)s : y[k] * (g[k] - (T)s);
        }
    }
}

/* ---------------------------------------------------------------- class-index losses */

/* The arguments of one launch (fl_ce_args's pointers are device pointers). */
struct class_args {
    const int64_t *target;
    int64_t base, ignore_index;
    const double *weight;
    double smoothing;
    int64_t n, inner;
};

class_args class_args_of(const fl_ce_args *a, int64_t n, int64_t inner)
{
    return class_args{a->target, a->base, a->ignore_index, a->weight, a->smoothing, n, inner};
}

/* The log-sum-exp of a position as the CPU's (double, NaN-losing max; -inf when every logit
 * is -inf), and the sum of the class weights (n without weights). */
template <typename T, policy P>
__device__ __forceinline__ double position_lse(const T *xs, int64_t end, const class_args &a, double *wsum)
{
    typedef group<P> G;
    double m = -INFINITY, w = 0;
    bool weigh = a.smoothing > 0;   /* only smoothing's gradient needs the weights' sum */
    for (int64_t c = G::rank(); c < end; c += G::size()) {
        m = max_num_f()(m, (double)xs[c * a.inner]);
        if (weigh)
            w += a.weight ? a.weight[c] : 1.0;
    }
    m = G::all(m, max_num_f());
    *wsum = G::all(w, sum_f());
    double s = 0;
    if (m != -INFINITY)
        for (int64_t c = G::rank(); c < end; c += G::size())
            s += exp((double)xs[c * a.inner] - m);
    s = G::all(s, sum_f());
    return m == -INFINITY ? m : m + log(s);
}

/* loss[pos] and wpos[pos] (the weight of its target, 0 when ignored); the first bad target's
 * position goes to *bad. */
template <typename T, policy P>
__global__ void cross_entropy_kernel(T *loss, double *wpos, unsigned long long *bad, const T *x, int64_t positions,
                                     class_args a)
{
    typedef group<P> G;
    FOR_POSITIONS(P, positions, pos, ok) {
        int64_t raw = ok ? a.target[pos] : a.ignore_index, t = raw - a.base;
        bool valid = ok && raw != a.ignore_index && t >= 0 && t < a.n;
        int64_t base = ok ? position_base(pos, a.n, a.inner) : 0, end = valid ? a.n : 0;
        const T *xs = x + base;
        double wsum, eps = a.smoothing;
        double lse = position_lse<T, P>(xs, end, a, &wsum);
        double sm = 0;
        if (eps > 0) {
            for (int64_t c = G::rank(); c < end; c += G::size())
                sm += (a.weight ? a.weight[c] : 1.0) * (lse - xs[c * a.inner]);
            sm = G::all(sm, sum_f());
        }
        if (ok && G::rank() == 0) {
            if (raw == a.ignore_index) {
                loss[pos] = 0;
                wpos[pos] = 0;
            } else if (!valid) {
                atomicMin(bad, (unsigned long long)pos);
                loss[pos] = 0;
                wpos[pos] = 0;
            } else {
                double wt = a.weight ? a.weight[t] : 1.0;
                double l = (1 - eps) * wt * (lse - xs[t * a.inner]);
                if (eps > 0)
                    l += eps / (double)a.n * sm;
                loss[pos] = (T)l;
                wpos[pos] = wt;
            }
        }
    }
}

template <typename T>
__global__ void nll_kernel(T *loss, double *wpos, unsigned long long *bad, const T *x, int64_t positions, class_args a)
{
    FL_GRID_STRIDE(pos, positions) {
        int64_t raw = a.target[pos], t = raw - a.base;
        double l = 0, w = 0;
        if (raw != a.ignore_index && (t < 0 || t >= a.n)) {
            atomicMin(bad, (unsigned long long)pos);
        } else if (raw != a.ignore_index) {
            w = a.weight ? a.weight[t] : 1.0;
            l = -w * (double)x[position_base(pos, a.n, a.inner) + t * a.inner];
        }
        loss[pos] = (T)l;
        wpos[pos] = w;
    }
}

/* The incoming gradient of a position, rounded as the CPU rounds it (to the logits' type). */
template <typename T>
__device__ __forceinline__ double position_scale(const double *gscale, int64_t gstride, double gdiv, int64_t pos)
{
    return (double)(T)(gscale[pos * gstride] / gdiv);
}

template <typename T, policy P>
__global__ void cross_entropy_backward_kernel(T *gx, const T *x, const double *gscale, int64_t gstride, double gdiv,
                                              int64_t positions, class_args a)
{
    typedef group<P> G;
    FOR_POSITIONS(P, positions, pos, ok) {
        int64_t raw = ok ? a.target[pos] : a.ignore_index, t = raw - a.base;
        bool valid = ok && raw != a.ignore_index && t >= 0 && t < a.n;
        int64_t base = ok ? position_base(pos, a.n, a.inner) : 0, end = valid ? a.n : 0;
        const T *xs = x + base;
        T *gs = gx + base;
        double wsum, eps = a.smoothing;
        double lse = position_lse<T, P>(xs, end, a, &wsum);
        if (ok && !valid) {
            for (int64_t c = G::rank(); c < a.n; c += G::size())
                gs[c * a.inner] = 0;
        } else if (valid) {
            double gsc = position_scale<T>(gscale, gstride, gdiv, pos), wt = a.weight ? a.weight[t] : 1.0;
            for (int64_t c = G::rank(); c < end; c += G::size()) {
                double p = exp((double)xs[c * a.inner] - lse);
                double wc = a.weight ? a.weight[c] : 1.0;
                double d = (1 - eps) * wt * (p - (c == t));
                if (eps > 0)
                    d += eps / (double)a.n * (wsum * p - wc);
                gs[c * a.inner] = (T)(gsc * d);
            }
        }
    }
}

/* gx is zeroed first; one write per position not ignored. */
template <typename T>
__global__ void nll_backward_kernel(T *gx, const double *gscale, int64_t gstride, double gdiv, int64_t positions,
                                    class_args a)
{
    FL_GRID_STRIDE(pos, positions) {
        int64_t raw = a.target[pos], t = raw - a.base;
        if (raw == a.ignore_index || t < 0 || t >= a.n)
            continue;
        double w = a.weight ? a.weight[t] : 1.0;
        gx[position_base(pos, a.n, a.inner) + t * a.inner] = (T)(-w * (gscale[pos * gstride] / gdiv));
    }
}

/* ---------------------------------------------------------------- elementwise losses */

/* softplus(-x), overflow-free */
__device__ __forceinline__ double softplus_neg(double x)
{
    return log1p(exp(-fabs(x))) + fmax(-x, 0.0);
}

template <typename TX, typename TY>
__global__ void pointwise_kernel(fl_ploss kind, TX *loss, const TX *x, const TY *y, const double *w, const double *pw,
                                 int64_t n)
{
    FL_GRID_STRIDE(i, n) {
        double xv = (double)x[i], yv = (double)y[i], l;
        if (kind == FL_PLOSS_MSE) {
            l = (xv - yv) * (xv - yv);
        } else {
            double pwv = pw ? pw[i] : 1;
            l = (w ? w[i] : 1) * ((1 - yv) * xv + (1 + (pwv - 1) * yv) * softplus_neg(xv));
        }
        loss[i] = (TX)l;
    }
}

template <typename TX, typename TY>
__global__ void pointwise_backward_kernel(fl_ploss kind, TX *gx, TY *gy, const TX *x, const TY *y, const double *w,
                                          const double *pw, const double *gscale, int64_t gstride, double gdiv,
                                          int64_t n)
{
    FL_GRID_STRIDE(i, n) {
        double xv = (double)x[i], yv = (double)y[i], s = gscale[i * gstride] / gdiv, dx, dy;
        if (kind == FL_PLOSS_MSE) {
            dx = 2 * (xv - yv);
            dy = -dx;
        } else {
            double wv = w ? w[i] : 1, pwv = pw ? pw[i] : 1;
            double sig_neg = 1 / (1 + exp(xv));   /* sigmoid(-x) */
            dx = wv * ((1 - yv) - (1 + (pwv - 1) * yv) * sig_neg);
            dy = wv * (-xv + (pwv - 1) * softplus_neg(xv));
        }
        if (gx)
            gx[i] = (TX)(s * dx);
        if (gy)
            gy[i] = (TY)(s * dy);
    }
}

/* ---------------------------------------------------------------- launchers */

template <typename T>
int softmax_launch(T *y, const T *x, int64_t outer, int64_t n, int64_t inner, int want_log)
{
    int64_t positions = outer * inner;
    policy p = choose(n, inner);
    /* kernels through pointers: the launch macro cannot take a template's commas */
    auto kw = softmax_kernel<T, WARP>;
    auto kb = softmax_kernel<T, BLOCK>;
    auto kt = softmax_kernel<T, THREAD>;
    auto k = p == WARP ? kw : p == BLOCK ? kb : kt;
    FL_LAUNCH(k, blocks_for(p, positions), FL_THREADS, y, x, positions, n, inner, want_log);
    return FL_CHECK_LAUNCH("softmax");
}

template <typename T>
int softmax_backward_launch(T *gx, const T *g, const T *y, int64_t outer, int64_t n, int64_t inner, int want_log)
{
    int64_t positions = outer * inner;
    policy p = choose(n, inner);
    auto kw = softmax_backward_kernel<T, WARP>;
    auto kb = softmax_backward_kernel<T, BLOCK>;
    auto kt = softmax_backward_kernel<T, THREAD>;
    auto k = p == WARP ? kw : p == BLOCK ? kb : kt;
    FL_LAUNCH(k, blocks_for(p, positions), FL_THREADS, gx, g, y, positions, n, inner, want_log);
    return FL_CHECK_LAUNCH("softmax backward");
}

template <typename T>
int class_loss_launch(int nll, T *loss, double *wpos, unsigned long long *bad, const T *x, int64_t positions,
                      const class_args &a)
{
    if (nll) {
        auto k = nll_kernel<T>;
        FL_LAUNCH(k, fl_blocks(positions), FL_THREADS, loss, wpos, bad, x, positions, a);
        return FL_CHECK_LAUNCH("nll_loss");
    }
    policy p = choose(a.n, a.inner);
    auto kw = cross_entropy_kernel<T, WARP>;
    auto kb = cross_entropy_kernel<T, BLOCK>;
    auto kt = cross_entropy_kernel<T, THREAD>;
    auto k = p == WARP ? kw : p == BLOCK ? kb : kt;
    FL_LAUNCH(k, blocks_for(p, positions), FL_THREADS, loss, wpos, bad, x, positions, a);
    return FL_CHECK_LAUNCH("cross_entropy");
}

template <typename T>
int class_loss_backward_launch(int nll, T *gx, const T *x, const double *gscale, int64_t gstride, double gdiv,
                               int64_t outer, const class_args &a)
{
    int64_t positions = outer * a.inner;
    if (nll) {
        if (fl_cuda_memset(gx, 0, (size_t)(positions * a.n) * sizeof(T)) < 0)
            return -1;
        auto k = nll_backward_kernel<T>;
        FL_LAUNCH(k, fl_blocks(positions), FL_THREADS, gx, gscale, gstride, gdiv, positions, a);
        return FL_CHECK_LAUNCH("nll_loss backward");
    }
    policy p = choose(a.n, a.inner);
    auto kw = cross_entropy_backward_kernel<T, WARP>;
    auto kb = cross_entropy_backward_kernel<T, BLOCK>;
    auto kt = cross_entropy_backward_kernel<T, THREAD>;
    auto k = p == WARP ? kw : p == BLOCK ? kb : kt;
    FL_LAUNCH(k, blocks_for(p, positions), FL_THREADS, gx, x, gscale, gstride, gdiv, positions, a);
    return FL_CHECK_LAUNCH("cross_entropy backward");
}

template <typename TX, typename TY>
int pointwise_launch(fl_ploss kind, void *loss, const void *x, const void *y, const double *w, const double *pw,
                     int64_t n)
{
    auto k = pointwise_kernel<TX, TY>;
    FL_LAUNCH(k, fl_blocks(n), FL_THREADS, kind, (TX *)loss, (const TX *)x, (const TY *)y, w, pw, n);
    return FL_CHECK_LAUNCH("elementwise loss");
}

template <typename TX, typename TY>
int pointwise_backward_launch(fl_ploss kind, void *gx, void *gy, const void *x, const void *y, const double *w,
                              const double *pw, const double *gscale, int64_t gstride, double gdiv, int64_t n)
{
    auto k = pointwise_backward_kernel<TX, TY>;
    FL_LAUNCH(k, fl_blocks(n), FL_THREADS, kind, (TX *)gx, (TY *)gy, (const TX *)x, (const TY *)y, w, pw, gscale,
              gstride, gdiv, n);
    return FL_CHECK_LAUNCH("elementwise loss backward");
}

}  // namespace

/* ---------------------------------------------------------------- entry points */

extern "C" int fl_cuda_softmax(fl_dtype dt, void *y, const void *x, int64_t outer, int64_t n, int64_t inner, int log)
{
    if (outer * n * inner == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T, return softmax_launch<T>((T *)y, (const T *)x, outer, n, inner, log));
    return 0;
}

extern "C" int fl_cuda_softmax_backward(fl_dtype dt, void *gx, const void *g, const void *y, int64_t outer, int64_t n,
                                        int64_t inner, int log)
{
    if (outer * n * inner == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T, return softmax_backward_launch<T>((T *)gx, (const T *)g, (const T *)y, outer, n, inner, log));
    return 0;
}

extern "C" int fl_cuda_class_loss(int nll, fl_dtype dt, void *loss, const void *x, int64_t outer, int64_t n,
                                  int64_t inner, const fl_ce_args *a, double *total_weight, int64_t *bad)
{
    int64_t positions = outer * inner;
    *total_weight = 0;
    *bad = 0;
    if (positions == 0)
        return 0;
    /* scratch: [0] the total weight, [1] the first bad position (all ones: none), then the
     * weight of each position */
    size_t bytes = (size_t)(positions + 2) * sizeof(double);
    double *scratch = (double *)fl_cuda_malloc(bytes);
    if (!scratch)
        return -1;
    unsigned long long *first_bad = (unsigned long long *)(scratch + 1);
    class_args ca = class_args_of(a, n, inner);
    int rc = fl_cuda_memset(first_bad, 0xff, sizeof *first_bad);
    if (rc == 0) {
        switch (dt) {
        case FL_DTYPE_F32: rc = class_loss_launch<float>(nll, (float *)loss, scratch + 2, first_bad, (const float *)x, positions, ca); break;
        case FL_DTYPE_F64: rc = class_loss_launch<double>(nll, (double *)loss, scratch + 2, first_bad, (const double *)x, positions, ca); break;
        default: rc = fl_cuda_fail("expected float32 or float64, got dtype %d", (int)dt); break;
        }
    }
    if (rc == 0) {
        fl_cuda_rplan pl = {};
        pl.x = scratch + 2;
        pl.dt = FL_DTYPE_F64;
        pl.n_inner = 1;
        pl.n_red = positions;
        pl.sr = 1;
        pl.n_out = 1;
        rc = fl_cuda_reduce(FL_RK_SUM, &pl, nullptr, 0, FL_RPOST_NONE, (double)positions, 0, FL_DTYPE_F64, scratch);
    }
    double back[2];
    if (rc == 0)
        rc = fl_cuda_memcpy(back, scratch, sizeof back, FL_COPY_D2H);
    fl_cuda_free(scratch, bytes);
    if (rc == 0) {
        unsigned long long p;
        memcpy(&p, &back[1], sizeof p);
        *total_weight = back[0];
        *bad = p == ~0ull ? 0 : -1 - (int64_t)p;
    }
    return rc;
}

extern "C" int fl_cuda_class_loss_backward(int nll, fl_dtype dt, void *gx, const void *x, const double *gscale,
                                           int64_t gstride, double gdiv, int64_t outer, int64_t n, int64_t inner,
                                           const fl_ce_args *a)
{
    if (outer * n * inner == 0)
        return 0;
    class_args ca = class_args_of(a, n, inner);
    FL_DISPATCH_FLOAT(dt, T, return class_loss_backward_launch<T>(nll, (T *)gx, (const T *)x, gscale, gstride, gdiv, outer, ca));
    return 0;
}

extern "C" int fl_cuda_pointwise_loss(fl_ploss kind, fl_dtype xdt, fl_dtype ydt, void *loss, const void *x,
                                      const void *y, const double *w, const double *pw, int64_t n)
{
    if (n == 0)
        return 0;
    FL_DISPATCH_FLOAT(xdt, TX, FL_DISPATCH_FLOAT(ydt, TY, return pointwise_launch<TX, TY>(kind, loss, x, y, w, pw, n)));
    return 0;
}

extern "C" int fl_cuda_pointwise_loss_backward(fl_ploss kind, fl_dtype xdt, fl_dtype ydt, void *gx, void *gy,
                                               const void *x, const void *y, const double *w, const double *pw,
                                               const double *gscale, int64_t gstride, double gdiv, int64_t n)
{
    if (n == 0)
        return 0;
    FL_DISPATCH_FLOAT(xdt, TX, FL_DISPATCH_FLOAT(ydt, TY,
        return pointwise_backward_launch<TX, TY>(kind, gx, gy, x, y, w, pw, gscale, gstride, gdiv, n)));
    return 0;
}
