/* creation.c: tensors made from ranges: arange, linspace, eye. */
#include "flare.h"

#include <math.h>

fl_tensor *fl_arange(double start, double end, double step, fl_dtype dt)
{
    if (step == 0 || isnan(step) || isnan(start) || isnan(end) || isinf(start) || isinf(end)) {
        fl_error("expected finite start and end and a non-zero step, got %g, %g, %g", start, end, step);
        return NULL;
    }
    if ((end - start) / step < 0) {
        fl_error("step %g goes the wrong way from %g to %g", step, start, end);
        return NULL;
    }
    double count = ceil((end - start) / step);
    if (count > 9e15) {
        fl_error("%g elements is too many", count);
        return NULL;
    }
    int64_t n = (int64_t)count, shape[1] = {n};
    fl_tensor *t = fl_tensor_empty(dt, 1, shape, FL_CPU);
    if (!t)
        return NULL;
    void *p = fl_tensor_data(t);
    for (int64_t i = 0; i < n; i++)
        fl_store_f64(dt, p, i, start + (double)i * step);
    return t;
}

fl_tensor *fl_linspace(double start, double end, int64_t n, fl_dtype dt)
{
    if (n < 0) {
        fl_error("number of steps must be non-negative, got %lld", (long long)n);
        return NULL;
    }
    int64_t shape[1] = {n};
    fl_tensor *t = fl_tensor_empty(dt, 1, shape, FL_CPU);
    if (!t)
        return NULL;
    void *p = fl_tensor_data(t);
    double step = n > 1 ? (end - start) / (double)(n - 1) : 0;
    /* as PyTorch: the second half counts back from the end, so both ends are exact */
    for (int64_t i = 0; i < n; i++)
        fl_store_f64(dt, p, i, i < n / 2 ? start + step * (double)i : end - step * (double)(n - 1 - i));
    return t;
}

fl_tensor *fl_eye(int64_t n, int64_t m, fl_dtype dt)
{
    int64_t shape[2] = {n, m};
    fl_tensor *t = fl_tensor_zeros(dt, 2, shape, FL_CPU);
    if (!t)
        return NULL;
    void *p = fl_tensor_data(t);
    for (int64_t i = 0; i < n && i < m; i++)
        fl_store_f64(dt, p, i * m + i, 1);
    return t;
}
