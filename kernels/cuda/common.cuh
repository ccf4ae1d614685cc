/* common.cuh: what every CUDA source of flare shares: the runtime (real, or the emulator of
 * emu/emu.h when FL_CUDA_EMU is defined), the launch macro, error reporting, and dtype
 * dispatch. The entry points of each .cu file are plain C functions declared in its .h; they
 * take raw device pointers, sizes and strides, and return 0, or -1 with a message for
 * fl_cuda_error(). */
#ifndef FL_CUDA_COMMON_CUH
#define FL_CUDA_COMMON_CUH

#ifdef FL_CUDA_EMU
#include "emu/emu.h"
#else
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#endif

#include <stdint.h>

#include "runtime.h"

/* All of flare's work goes to one stream per process: the legacy default stream, so that
 * kernels, cuBLAS calls and copies are ordered without events. */
#define FL_STREAM ((cudaStream_t)0)

/* FL_LAUNCH(kernel, grid, block, args...); FL_LAUNCH_SHARED adds dynamic shared memory (reach
 * it with FL_DYNAMIC_SHARED). Follow with FL_CHECK_LAUNCH("what"). */
#ifdef FL_CUDA_EMU
#define FL_LAUNCH_SHARED(kernel, grid, block, shared, ...) \
    fl_emu_launch((grid), (block), (shared), [&]() { kernel(__VA_ARGS__); })
#define FL_DYNAMIC_SHARED(type, name) type *name = (type *)fl_emu_dynamic_shared()
#else
#define FL_LAUNCH_SHARED(kernel, grid, block, shared, ...) \
    kernel<<<(grid), (block), (shared), FL_STREAM>>>(__VA_ARGS__)
#define FL_DYNAMIC_SHARED(type, name) extern __shared__ unsigned char fl_dyn_shared_[]; \
    type *name = (type *)fl_dyn_shared_
#endif
#define FL_LAUNCH(kernel, grid, block, ...) FL_LAUNCH_SHARED(kernel, grid, block, 0, __VA_ARGS__)

/* Sets the message for fl_cuda_error() and returns -1. */
int fl_cuda_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* -1 with "<what>: <CUDA's message>" when e is an error, else 0. */
int fl_cuda_check(cudaError_t e, const char *what);
#define FL_CHECK_LAUNCH(what) fl_cuda_check(cudaGetLastError(), what)

#define FL_THREADS 256
/* Blocks for n elements at FL_THREADS each, capped: kernels loop over the rest (grid-stride). */
static inline unsigned fl_blocks(int64_t n)
{
    int64_t b = (n + FL_THREADS - 1) / FL_THREADS;
    return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

#define FL_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (int64_t)blockDim.x * gridDim.x)

/* FL_DISPATCH(dt, T, body): runs body with T bound to the C type of dtype dt (fl_dtype values:
 * see vm/flare.h). FL_DISPATCH_FLOAT covers float32 and float64 only. */
#define FL_DISPATCH(dt, T, ...)                                            \
    switch (dt) {                                                          \
    case FL_DTYPE_F32: { typedef float T; __VA_ARGS__; } break;            \
    case FL_DTYPE_F64: { typedef double T; __VA_ARGS__; } break;           \
    case FL_DTYPE_I64: { typedef int64_t T; __VA_ARGS__; } break;          \
    case FL_DTYPE_I32: { typedef int32_t T; __VA_ARGS__; } break;          \
    case FL_DTYPE_U8: { typedef uint8_t T; __VA_ARGS__; } break;           \
    case FL_DTYPE_BOOL: { typedef uint8_t T; __VA_ARGS__; } break;         \
    default: return fl_cuda_fail("unsupported dtype %d", (int)(dt));       \
    }
#define FL_DISPATCH_FLOAT(dt, T, ...)                                      \
    switch (dt) {                                                          \
    case FL_DTYPE_F32: { typedef float T; __VA_ARGS__; } break;            \
    case FL_DTYPE_F64: { typedef double T; __VA_ARGS__; } break;           \
    default: return fl_cuda_fail("expected float32 or float64, got dtype %d", (int)(dt)); \
    }

/* Offsets of element i of an N-d strided walk (shape and per-operand strides in elements),
 * computed on the device from a struct passed by value. */
template <int NARG> struct fl_offsets {
    int ndim;
    int64_t shape[FL_MAX_DIMS];
    int64_t strides[NARG][FL_MAX_DIMS];
    __device__ __forceinline__ void of(int64_t i, int64_t *off) const
    {
        for (int a = 0; a < NARG; a++)
            off[a] = 0;
        for (int d = ndim - 1; d >= 0; d--) {
            int64_t s = shape[d], q = i / s, r = i - q * s;
            i = q;
            for (int a = 0; a < NARG; a++)
                off[a] += r * strides[a][d];
        }
    }
};

#endif
