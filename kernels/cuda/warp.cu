/* warp.cu: affine resampling (see warp.h), one thread per output pixel; the y grid dimension
 * walks the planes, so a thread divides only within its plane. The source point is computed
 * with separately rounded operations, as the CPU computes it (a contracted multiply-add
 * could move a nearest-neighbour tap across a pixel boundary). */
#include "common.cuh"
#include "math.cuh"
#include "warp.h"

namespace {

struct warp_args {
    int64_t oh, ow, h, w, planes, channels, theta_stride;
    int bilinear;
    double fill;
};

template <typename T>
__global__ void warp_kernel(T *out, const T *in, const double *theta, warp_args a)
{
    int area = (int)(a.oh * a.ow), ow = (int)a.ow;   /* an output plane holds at most 2^30 pixels: checked */
    double cx = (double)(a.w - 1) / 2, cy = (double)(a.h - 1) / 2;
    double ocx = (double)(a.ow - 1) / 2, ocy = (double)(a.oh - 1) / 2;
    for (int64_t p = blockIdx.y; p < a.planes; p += gridDim.y) {
        const double *th = theta + p / a.channels * a.theta_stride;
        const T *src = in + p * a.h * a.w;
        for (int i = (int)(blockIdx.x * blockDim.x + threadIdx.x); i < area; i += (int)(blockDim.x * gridDim.x)) {
            int y = i / ow, x = i - y * ow;
            double u = (double)x - ocx, v = (double)y - ocy;
            double sx = fl_dadd(fl_dadd(fl_dadd(fl_dmul(th[0], u), fl_dmul(th[1], v)), th[2]), cx);
            double sy = fl_dadd(fl_dadd(fl_dadd(fl_dmul(th[3], u), fl_dmul(th[4], v)), th[5]), cy);
            double r = a.fill;
            if (!a.bilinear) {
                double fx = floor(sx + 0.5), fy = floor(sy + 0.5);
                if (fx >= 0 && fx < (double)a.w && fy >= 0 && fy < (double)a.h)
                    r = (double)src[(int64_t)fy * a.w + (int64_t)fx];
            } else if (sx > -1 && sx < (double)a.w && sy > -1 && sy < (double)a.h) {
                double x0 = floor(sx), y0 = floor(sy), ax = sx - x0, ay = sy - y0;
                int64_t ix = (int64_t)x0, iy = (int64_t)y0;
                r = 0;
                /* taps of zero weight are skipped, so a whole-pixel shift stays exact */
                for (int dy = 0; dy < 2; dy++) {
                    double wy = dy ? ay : 1 - ay;
                    int64_t yy = iy + dy;
                    for (int dx = 0; dx < 2 && wy != 0; dx++) {
                        double wx = dx ? ax : 1 - ax;
                        int64_t xx = ix + dx;
                        if (wx == 0)
                            continue;
                        double tap = (xx >= 0 && xx < a.w && yy >= 0 && yy < a.h) ? (double)src[yy * a.w + xx] : a.fill;
                        r = fl_dadd(r, fl_dmul(fl_dmul(wy, wx), tap));
                    }
                }
            }
            out[p * area + i] = (T)r;
        }
    }
}

}  // namespace

extern "C" int fl_cuda_warp_affine(fl_dtype dt, void *out, int64_t oh, int64_t ow, const void *in, int64_t h,
                                   int64_t w, int64_t planes, int64_t channels, const double *theta,
                                   int64_t theta_stride, int bilinear, double fill)
{
    int64_t area = oh * ow;
    if (area == 0 || planes == 0)
        return 0;
    if (area > ((int64_t)1 << 30))
        return fl_cuda_fail("warp_affine: output planes of more than 2^30 pixels are not supported on CUDA");
    warp_args a = {oh, ow, h, w, planes, channels > 0 ? channels : 1, theta_stride, bilinear, fill};
    dim3 grid(fl_blocks(area), (unsigned)(planes < 65535 ? planes : 65535));
    FL_DISPATCH_FLOAT(dt, T, FL_LAUNCH(warp_kernel, grid, FL_THREADS, (T *)out, (const T *)in, theta, a));
    return FL_CHECK_LAUNCH("warp_affine");
}
