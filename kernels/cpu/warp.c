/* warp.c: affine resampling of one image plane, nearest or bilinear (see warp.h). The source
 * point of each pixel is computed directly (not accumulated along the row), so an integer
 * shift or a flip lands exactly on pixels and copies them bit for bit. */
#include "warp.h"

#include <math.h>

static inline double load(const void *in, int f64, int64_t i)
{
    return f64 ? ((const double *)in)[i] : (double)((const float *)in)[i];
}

/* One body for both dtypes: the dtype test is loop-invariant (unswitched at -O3), and a
 * float32 value goes through double and back unchanged. */
static void warp(void *out, int64_t oh, int64_t ow, const void *in, int f64, int64_t h, int64_t w,
                 const double *theta, int bilinear, double fill)
{
    double cx = (double)(w - 1) / 2, cy = (double)(h - 1) / 2;
    double ocx = (double)(ow - 1) / 2, ocy = (double)(oh - 1) / 2;
    for (int64_t y = 0; y < oh; y++) {
        double v = (double)y - ocy;
        for (int64_t x = 0; x < ow; x++) {
            double u = (double)x - ocx;
            double sx = theta[0] * u + theta[1] * v + theta[2] + cx;
            double sy = theta[3] * u + theta[4] * v + theta[5] + cy;
            double r = fill;
            if (!bilinear) {
                double fx = floor(sx + 0.5), fy = floor(sy + 0.5);
                if (fx >= 0 && fx < (double)w && fy >= 0 && fy < (double)h)
                    r = load(in, f64, (int64_t)fy * w + (int64_t)fx);
            } else if (sx > -1 && sx < (double)w && sy > -1 && sy < (double)h) {
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
                        r += wy * wx * ((xx >= 0 && xx < w && yy >= 0 && yy < h) ? load(in, f64, yy * w + xx) : fill);
                    }
                }
            }
            if (f64)
                ((double *)out)[y * ow + x] = r;
            else
                ((float *)out)[y * ow + x] = (float)r;
        }
    }
}

/* out (oh, ow), in (h, w), theta (2, 3) */
void fl_cpu_warp_affine_f32(float *out, int64_t oh, int64_t ow, const float *in, int64_t h, int64_t w,
                            const double *theta, int bilinear, float fill)
{
    warp(out, oh, ow, in, 0, h, w, theta, bilinear, fill);
}

/* out (oh, ow), in (h, w), theta (2, 3) */
void fl_cpu_warp_affine_f64(double *out, int64_t oh, int64_t ow, const double *in, int64_t h, int64_t w,
                            const double *theta, int bilinear, double fill)
{
    warp(out, oh, ow, in, 1, h, w, theta, bilinear, fill);
}
