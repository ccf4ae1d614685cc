/* pool.cu: max, average and adaptive average pooling on the GPU, forward and backward (see
 * pool.h). One thread per output element forward; the average poolings' backward gathers
 * (one thread per input element, over the windows that cover it: deterministic), max
 * pooling's backward scatters with atomicAdd (the windows of a max are known only through
 * the saved indices). Sums are taken in double, as the CPU kernels do. */
#include "common.cuh"
#include "pool.h"

namespace {

struct window_geom {
    int64_t h, w, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow;
};

window_geom geom_of(const fl_conv_geom *g)
{
    return window_geom{g->h, g->w, g->kh, g->kw, g->sh, g->sw, g->dh, g->dw, g->ph, g->pw, g->oh, g->ow};
}

/* ---------------------------------------------------------------- max */

/* The first tap inside [0, n) of a dilated window starting at `start`, and its clipped end. */
__device__ __forceinline__ void dilated_window(int64_t start, int64_t k, int64_t d, int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t end = start + (k - 1) * d + 1;
    *hi = end < n ? end : n;
    if (start < 0)
        start += ((-start + d - 1) / d) * d;
    *lo = start;
}

template <typename T>
__global__ void max_pool_kernel(T *out, int64_t *idx, const T *in, int64_t total, window_geom g, int64_t base)
{
    FL_GRID_STRIDE(i, total) {
        int64_t ox = i % g.ow, t = i / g.ow, oy = t % g.oh, p = t / g.oh, y0, y1, x0, x1;
        dilated_window(oy * g.sh - g.ph, g.kh, g.dh, g.h, &y0, &y1);
        dilated_window(ox * g.sw - g.pw, g.kw, g.dw, g.w, &x0, &x1);
        const T *x = in + p * g.h * g.w;
        int64_t best = y0 * g.w + x0;
        T m = (T)-INFINITY;
        for (int64_t y = y0; y < y1; y += g.dh)
            for (int64_t xx = x0; xx < x1; xx += g.dw) {
                T v = x[y * g.w + xx];
                if (v > m || v != v) {
                    m = v;
                    best = y * g.w + xx;
                }
            }
        out[i] = m;
        idx[i] = best + base;
    }
}

template <typename T> __global__ void zero_kernel(T *x, int64_t n)
{
    FL_GRID_STRIDE(i, n) x[i] = (T)0;
}

template <typename T>
__global__ void max_pool_backward_kernel(T *gin, const T *gout, const int64_t *idx, int64_t total, int64_t hw,
                                         int64_t ohw, int64_t base)
{
    FL_GRID_STRIDE(i, total) {
        int64_t at = idx[i] - base;
        if (at >= 0 && at < hw)
            atomicAdd(gin + (i / ohw) * hw + at, gout[i]);
    }
}

/* ---------------------------------------------------------------- average */

/* avg_pool2d's window [lo, hi) along one dim and its size clipped only to the padded image. */
__device__ __forceinline__ void avg_window(int64_t o, int64_t s, int64_t p, int64_t k, int64_t n, int64_t *lo,
                                           int64_t *hi, int64_t *padded)
{
    int64_t a = o * s - p, b = a + k < n + p ? a + k : n + p;
    *padded = b - a;
    *lo = a > 0 ? a : 0;
    *hi = b < n ? b : n;
}

__device__ __forceinline__ int64_t avg_divisor(int64_t cells, int64_t padded, int count_include_pad, int64_t divisor)
{
    return divisor > 0 ? divisor : count_include_pad ? padded : cells;
}

template <typename T>
__global__ void avg_pool_kernel(T *out, const T *in, int64_t total, window_geom g, int count_include_pad,
                                int64_t divisor)
{
    FL_GRID_STRIDE(i, total) {
        int64_t ox = i % g.ow, t = i / g.ow, oy = t % g.oh, p = t / g.oh, y0, y1, py, x0, x1, px;
        avg_window(oy, g.sh, g.ph, g.kh, g.h, &y0, &y1, &py);
        avg_window(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1, &px);
        if (y0 >= y1 || x0 >= x1) {
            out[i] = (T)0;
            continue;
        }
        const T *x = in + p * g.h * g.w;
        double s = 0;
        for (int64_t y = y0; y < y1; y++)
            for (int64_t xx = x0; xx < x1; xx++)
                s += (double)x[y * g.w + xx];
        out[i] = (T)(s / (double)avg_divisor((y1 - y0) * (x1 - x0), py * px, count_include_pad, divisor));
    }
}

/* The outputs o whose window [o * s - p, o * s - p + k) holds position v: [lo, hi). */
__device__ __forceinline__ void covering(int64_t v, int64_t s, int64_t p, int64_t k, int64_t count, int64_t *lo,
                                         int64_t *hi)
{
    int64_t a = v + p - k + 1, b = (v + p) / s + 1;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    *hi = b < count ? b : count;
}

template <typename T>
__global__ void avg_pool_backward_kernel(T *gin, const T *gout, int64_t total, window_geom g, int count_include_pad,
                                         int64_t divisor)
{
    FL_GRID_STRIDE(i, total) {
        int64_t x = i % g.w, t = i / g.w, y = t % g.h, p = t / g.h, oy0, oy1, ox0, ox1;
        covering(y, g.sh, g.ph, g.kh, g.oh, &oy0, &oy1);
        covering(x, g.sw, g.pw, g.kw, g.ow, &ox0, &ox1);
        const T *go = gout + p * g.oh * g.ow;
        T s = 0;
        for (int64_t oy = oy0; oy < oy1; oy++) {
            int64_t y0, y1, py;
            avg_window(oy, g.sh, g.ph, g.kh, g.h, &y0, &y1, &py);
            for (int64_t ox = ox0; ox < ox1; ox++) {
                int64_t x0, x1, px;
                avg_window(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1, &px);
                int64_t d = avg_divisor((y1 - y0) * (x1 - x0), py * px, count_include_pad, divisor);
                s += (T)(go[oy * g.ow + ox] / (double)d);
            }
        }
        gin[i] = s;
    }
}

/* ---------------------------------------------------------------- adaptive average */

__device__ __forceinline__ int64_t start_of(int64_t o, int64_t n, int64_t on) { return o * n / on; }
__device__ __forceinline__ int64_t end_of(int64_t o, int64_t n, int64_t on) { return ((o + 1) * n + on - 1) / on; }

template <typename T>
__global__ void adaptive_kernel(T *out, const T *in, int64_t total, int64_t h, int64_t w, int64_t oh, int64_t ow)
{
    FL_GRID_STRIDE(i, total) {
        int64_t ox = i % ow, t = i / ow, oy = t % oh, p = t / oh;
        int64_t y0 = start_of(oy, h, oh), y1 = end_of(oy, h, oh), x0 = start_of(ox, w, ow), x1 = end_of(ox, w, ow);
        const T *x = in + p * h * w;
        double s = 0;
        for (int64_t y = y0; y < y1; y++)
            for (int64_t xx = x0; xx < x1; xx++)
                s += (double)x[y * w + xx];
        out[i] = (T)(s / (double)((y1 - y0) * (x1 - x0)));
    }
}

template <typename T>
__global__ void adaptive_backward_kernel(T *gin, const T *gout, int64_t total, int64_t h, int64_t w, int64_t oh,
                                         int64_t ow)
{
    FL_GRID_STRIDE(i, total) {
        int64_t x = i % w, t = i / w, y = t % h, p = t / h;
        /* candidates around the proportional position, each checked against its window */
        int64_t oy0 = y * oh / h - 1, oy1 = ((y + 1) * oh + h - 1) / h + 1;
        int64_t ox0 = x * ow / w - 1, ox1 = ((x + 1) * ow + w - 1) / w + 1;
        const T *go = gout + p * oh * ow;
        T s = 0;
        for (int64_t oy = oy0 < 0 ? 0 : oy0; oy < oy1 && oy < oh; oy++) {
            int64_t y0 = start_of(oy, h, oh), y1 = end_of(oy, h, oh);
            if (y < y0 || y >= y1)
                continue;
            for (int64_t ox = ox0 < 0 ? 0 : ox0; ox < ox1 && ox < ow; ox++) {
                int64_t x0 = start_of(ox, w, ow), x1 = end_of(ox, w, ow);
                if (x >= x0 && x < x1)
                    s += (T)(go[oy * ow + ox] / (double)((y1 - y0) * (x1 - x0)));
            }
        }
        gin[i] = s;
    }
}

}  // namespace

/* ---------------------------------------------------------------- launchers */

extern "C" int fl_cuda_max_pool2d(fl_dtype dt, void *out, int64_t *idx, const void *in, int64_t planes,
                                  const fl_conv_geom *g, int64_t base)
{
    int64_t total = planes * g->oh * g->ow;
    if (total == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T, FL_LAUNCH(max_pool_kernel<T>, fl_blocks(total), FL_THREADS, (T *)out, idx, (const T *)in,
                                       total, geom_of(g), base));
    return FL_CHECK_LAUNCH("max_pool2d");
}

extern "C" int fl_cuda_max_pool2d_backward(fl_dtype dt, void *gin, const void *gout, const int64_t *idx,
                                           int64_t planes, int64_t hw, int64_t ohw, int64_t base)
{
    int64_t n = planes * hw, total = planes * ohw;
    if (n == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T,
        FL_LAUNCH(zero_kernel<T>, fl_blocks(n), FL_THREADS, (T *)gin, n);
        if (total > 0)
            FL_LAUNCH(max_pool_backward_kernel<T>, fl_blocks(total), FL_THREADS, (T *)gin, (const T *)gout, idx, total,
                      hw, ohw, base));
    return FL_CHECK_LAUNCH("max_pool2d backward");
}

extern "C" int fl_cuda_avg_pool2d(fl_dtype dt, void *out, const void *in, int64_t planes, const fl_conv_geom *g,
                                  int count_include_pad, int64_t divisor)
{
    int64_t total = planes * g->oh * g->ow;
    if (total == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T, FL_LAUNCH(avg_pool_kernel<T>, fl_blocks(total), FL_THREADS, (T *)out, (const T *)in, total,
                                       geom_of(g), count_include_pad, divisor));
    return FL_CHECK_LAUNCH("avg_pool2d");
}

extern "C" int fl_cuda_avg_pool2d_backward(fl_dtype dt, void *gin, const void *gout, int64_t planes,
                                           const fl_conv_geom *g, int count_include_pad, int64_t divisor)
{
    int64_t total = planes * g->h * g->w;
    if (total == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T, FL_LAUNCH(avg_pool_backward_kernel<T>, fl_blocks(total), FL_THREADS, (T *)gin,
                                       (const T *)gout, total, geom_of(g), count_include_pad, divisor));
    return FL_CHECK_LAUNCH("avg_pool2d backward");
}

extern "C" int fl_cuda_adaptive_avg_pool2d(fl_dtype dt, void *out, const void *in, int64_t planes, int64_t h,
                                           int64_t w, int64_t oh, int64_t ow)
{
    int64_t total = planes * oh * ow;
    if (total == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T, FL_LAUNCH(adaptive_kernel<T>, fl_blocks(total), FL_THREADS, (T *)out, (const T *)in, total,
                                       h, w, oh, ow));
    return FL_CHECK_LAUNCH("adaptive_avg_pool2d");
}

extern "C" int fl_cuda_adaptive_avg_pool2d_backward(fl_dtype dt, void *gin, const void *gout, int64_t planes,
                                                    int64_t h, int64_t w, int64_t oh, int64_t ow)
{
    int64_t total = planes * h * w;
    if (total == 0)
        return 0;
    FL_DISPATCH_FLOAT(dt, T, FL_LAUNCH(adaptive_backward_kernel<T>, fl_blocks(total), FL_THREADS, (T *)gin,
                                       (const T *)gout, total, h, w, oh, ow));
    return FL_CHECK_LAUNCH("adaptive_avg_pool2d backward");
}
