/* random.cu: the generator of vm/random.c on the device. The arithmetic after Philox is done
 * in double with explicitly rounded operations (no fused multiply-add, which the CPU build
 * does not use either), so uniform values match the CPU's bit for bit. */
#include "common.cuh"
#include "math.cuh"
#include "../../vm/philox.h"
#include "random.h"

#include <type_traits>

namespace {

template <typename T> __device__ __forceinline__ T from_f64(double v, bool is_bool)
{
    if (is_bool)
        return (T)(v != 0);
    if (std::is_floating_point<T>::value)
        return (T)v;
    return fl_float_to_int<T>(v);
}

template <typename T> __device__ __forceinline__ T from_i64(int64_t v, bool is_bool)
{
    if (is_bool)
        return (T)(v != 0);
    if (!std::is_floating_point<T>::value && sizeof(T) == 4)
        return (T)(uint32_t)v;   /* wraps, as in PyTorch */
    return (T)v;
}

/* Element i (row-major) of the tensor gets counter offset + i, as on the CPU. */
template <typename T> __global__ void draw_kernel(fl_offsets<1> o, T *data, int64_t n, fl_draw d, bool is_bool)
{
    FL_GRID_STRIDE(i, n) {
        int64_t off;
        if (o.ndim == 1)
            off = i * o.strides[0][0];
        else
            o.of(i, &off);
        uint32_t w[4];
        fl_philox(d.seed, d.offset + (uint64_t)i, w);
        T r;
        switch (d.kind) {
        case FL_DRAW_UNIFORM:
            r = from_f64<T>(fl_dadd(d.a, fl_dmul(d.b - d.a, fl_u01(w[0], w[1]))), is_bool);
            break;
        case FL_DRAW_BERNOULLI:
            r = from_f64<T>(fl_u01(w[0], w[1]) < d.a ? 1.0 : 0.0, is_bool);
            break;
        case FL_DRAW_NORMAL: {
            double u1 = 1.0 - fl_u01(w[0], w[1]), u2 = fl_u01(w[2], w[3]);   /* u1 in (0, 1] */
            double z = fl_dmul(fl_dmul(d.b, sqrt(fl_dmul(-2.0, log(u1)))), cos(fl_dmul(2.0 * 3.14159265358979323846, u2)));
            r = from_f64<T>(fl_dadd(d.a, z), is_bool);
            break;
        }
        default: {
            uint64_t v = ((uint64_t)w[0] << 32 | w[1]) % d.span;
            r = from_i64<T>((int64_t)((uint64_t)d.lo + v), is_bool);   /* no signed overflow */
            break;
        }
        }
        data[off] = r;
    }
}

}  // namespace

extern "C" int fl_cuda_random(fl_dtype dt, void *data, int ndim, const int64_t *shape, const int64_t *strides,
                              const fl_draw *d)
{
    /* contiguous tensors walk as one run; others by their strides */
    fl_offsets<1> o;
    int64_t n = 1, expect = 1;
    bool contiguous = true;
    for (int k = ndim - 1; k >= 0; k--) {
        if (shape[k] != 1 && strides[k] != expect)
            contiguous = false;
        expect *= shape[k];
        n *= shape[k];
    }
    if (n == 0)
        return 0;
    if (contiguous || ndim == 0) {
        o.ndim = 1;
        o.shape[0] = n;
        o.strides[0][0] = 1;
    } else {
        o.ndim = ndim;
        for (int k = 0; k < ndim; k++) {
            o.shape[k] = shape[k];
            o.strides[0][k] = strides[k];
        }
    }
    bool is_bool = dt == FL_DTYPE_BOOL;
    FL_DISPATCH(dt, T, FL_LAUNCH(draw_kernel, fl_blocks(n), FL_THREADS, o, (T *)data, n, *d, is_bool));
    return FL_CHECK_LAUNCH("random draw");
}
