/* warp.c: fl_warp_affine, affine resampling of image batches (rotations, shifts, crops,
 * flips for data augmentation; see data.h). Planes are independent and run on the pool;
 * CUDA images run on the device (kernels/cuda/warp.cu), theta included, so nothing is read
 * back to the host. Not differentiable (no autograd node), as on the CPU. */
#include "cuda.h"
#include "data.h"
#include "../kernels/cpu/warp.h"
#include "../kernels/cuda/warp.h"

#include <stdlib.h>

typedef struct {
    char *out;
    const char *in;
    const double *theta;   /* 6 per image */
    int64_t channels, h, w, oh, ow;
    bool f64, bilinear;
    double fill;
} warp_job;

static void run_planes(void *ctx, int64_t p0, int64_t p1)
{
    const warp_job *j = ctx;
    size_t es = j->f64 ? sizeof(double) : sizeof(float);
    size_t plane = (size_t)(j->h * j->w) * es, oplane = (size_t)(j->oh * j->ow) * es;
    for (int64_t p = p0; p < p1; p++) {
        const double *th = j->theta + 6 * (p / j->channels);
        if (j->f64)
            fl_cpu_warp_affine_f64((double *)(j->out + p * oplane), j->oh, j->ow, (const double *)(j->in + p * plane),
                                   j->h, j->w, th, j->bilinear, j->fill);
        else
            fl_cpu_warp_affine_f32((float *)(j->out + p * oplane), j->oh, j->ow, (const float *)(j->in + p * plane),
                                   j->h, j->w, th, j->bilinear, (float)j->fill);
    }
}

/* theta becomes contiguous float64 on the device: six numbers per image, or one shared six. */
static fl_tensor *warp_cuda(const fl_tensor *x, const fl_tensor *theta, int ndim, const int64_t *shape, int64_t n,
                            int64_t c, bool bilinear, double fill)
{
    fl_tensor *th = fl_cast(theta, FL_DTYPE_F64);
    fl_tensor *in = th ? fl_contiguous((fl_tensor *)x) : NULL;
    fl_tensor *out = in ? fl_tensor_empty(x->dtype, ndim, shape, x->storage->device) : NULL;
    if (out && fl_cuda_status(FL_CUDA(fl_cuda_warp_affine)(x->dtype, fl_tensor_data(out), shape[ndim - 2],
                                                           shape[ndim - 1], fl_tensor_data(in), x->shape[ndim - 2],
                                                           x->shape[ndim - 1], n * c, c, fl_tensor_data(th),
                                                           theta->ndim == 2 ? 0 : 6, bilinear, fill)) < 0) {
        fl_tensor_release(out);
        out = NULL;
    }
    fl_tensor_release(th);
    fl_tensor_release(in);
    return out;
}

fl_tensor *fl_warp_affine(const fl_tensor *x, const fl_tensor *theta, int64_t oh, int64_t ow, bool bilinear,
                          double fill)
{
    char b1[160], b2[160];
    if (x->dtype != FL_DTYPE_F32 && x->dtype != FL_DTYPE_F64) {
        fl_error("images must be float32 or float64, got %s", fl_dtype_name(x->dtype));
        return NULL;
    }
    if (x->ndim != 3 && x->ndim != 4) {
        fl_error("images must be (N, C, H, W) or (C, H, W), got shape %s", fl_shape_str(b1, sizeof b1, x->ndim, x->shape));
        return NULL;
    }
    if (fl_is_cuda(x) != fl_is_cuda(theta)) {
        fl_error("expected all tensors on the same device, got %s and %s", fl_is_cuda(x) ? "cuda" : "cpu",
                 fl_is_cuda(theta) ? "cuda" : "cpu");
        return NULL;
    }
    int64_t n = x->ndim == 4 ? x->shape[0] : 1;
    bool shared = theta->ndim == 2;
    if (!((theta->ndim == 2 && theta->shape[0] == 2 && theta->shape[1] == 3) ||
          (theta->ndim == 3 && x->ndim == 4 && theta->shape[0] == n && theta->shape[1] == 2 && theta->shape[2] == 3))) {
        fl_error("theta must be (2, 3)%s, got shape %s for images of shape %s",
                 x->ndim == 4 ? " or (N, 2, 3) with N the number of images" : "",
                 fl_shape_str(b1, sizeof b1, theta->ndim, theta->shape), fl_shape_str(b2, sizeof b2, x->ndim, x->shape));
        return NULL;
    }
    if (theta->dtype == FL_DTYPE_BOOL) {
        fl_error("theta must hold numbers, got a bool tensor");
        return NULL;
    }
    int64_t c = x->shape[x->ndim - 3], h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1];
    if (oh <= 0)
        oh = h;
    if (ow <= 0)
        ow = w;
    int64_t shape[4];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = x->shape[d];
    shape[x->ndim - 2] = oh;
    shape[x->ndim - 1] = ow;
    if (fl_is_cuda(x))
        return warp_cuda(x, theta, x->ndim, shape, n, c, bilinear, fill);
    double *th = malloc(sizeof(double) * 6 * (size_t)(n > 0 ? n : 1));
    fl_tensor *in = fl_contiguous((fl_tensor *)x);
    fl_tensor *out = in ? fl_tensor_empty(x->dtype, x->ndim, shape, FL_CPU) : NULL;
    if (!th || !in || !out) {
        if (!th)
            fl_error("out of memory");
        free(th);
        fl_tensor_release(in);
        fl_tensor_release(out);
        return NULL;
    }
    /* theta's six numbers per image, read through its strides */
    for (int64_t i = 0; i < n; i++)
        for (int r = 0; r < 2; r++)
            for (int k = 0; k < 3; k++) {
                int64_t at = theta->offset + (shared ? 0 : i * theta->strides[0]) +
                             r * theta->strides[theta->ndim - 2] + k * theta->strides[theta->ndim - 1];
                th[6 * i + 3 * r + k] = fl_load_f64(theta->dtype, theta->storage->data, at);
            }
    warp_job j = {fl_tensor_data(out), fl_tensor_data(in), th, c > 0 ? c : 1, h, w, oh, ow,
                  x->dtype == FL_DTYPE_F64, bilinear, fill};
    int64_t area = oh * ow;
    if (area > 0 && n * c > 0)
        fl_parallel_for(n * c, area >= 4096 ? 1 : 4096 / area, run_planes, &j);
    free(th);
    fl_tensor_release(in);
    return out;
}
