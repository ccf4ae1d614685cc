/* emu.h: the subset of CUDA that flare's kernels use, for running them on the CPU.
 *
 * The CUDA sources compile unchanged with g++ and this header (FL_CUDA_EMU). Each block runs
 * its threads as coroutines that switch at __syncthreads() and at warp shuffles, so the index
 * arithmetic, the shared-memory reductions and the launch configurations of every kernel are
 * exercised by the test suite on machines without a GPU. Emulated device memory is
 * inaccessible to the CPU outside a kernel or a copy: host code that forgets to dispatch and
 * reads a device pointer faults at once, as it would on a GPU.
 *
 * Not emulated: timing, concurrency between threads, and warp-divergent shuffles (every
 * thread of a block must reach a shuffle, which flare's kernels do). */
#ifndef FL_CUDA_EMU_H
#define FL_CUDA_EMU_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
/* One copy per block: blocks run one after another, so a function-level static is shared by
 * the threads of a block exactly as shared memory is. */
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;
static const int warpSize = 32;

/* ---------------------------------------------------------------- device functions */

void fl_emu_syncthreads(void);
/* Every thread of the block deposits v and gets back the value deposited by thread `from`. */
uint64_t fl_emu_exchange(uint64_t v, int from);
void *fl_emu_dynamic_shared(void);

static inline void __syncthreads(void) { fl_emu_syncthreads(); }

template <typename T> static inline uint64_t fl_emu_bits(T v)
{
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <typename T> static inline T fl_emu_unbits(uint64_t b)
{
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}
static inline int fl_emu_lane(void)
{
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    return (int)(t % 32);
}
static inline int fl_emu_tid(void)
{
    return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}
template <typename T> static inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32)
{
    int lane = fl_emu_lane() % width, from = fl_emu_tid() + (lane + (int)delta < width ? (int)delta : 0);
    return fl_emu_unbits<T>(fl_emu_exchange(fl_emu_bits(v), from));
}
template <typename T> static inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32)
{
    int lane = fl_emu_lane() % width, from = fl_emu_tid() - (lane >= (int)delta ? (int)delta : 0);
    return fl_emu_unbits<T>(fl_emu_exchange(fl_emu_bits(v), from));
}
template <typename T> static inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32)
{
    int lane = fl_emu_lane() % width, other = lane ^ mask;
    int from = fl_emu_tid() + (other < width ? other - lane : 0);
    return fl_emu_unbits<T>(fl_emu_exchange(fl_emu_bits(v), from));
}
template <typename T> static inline T __shfl_sync(unsigned, T v, int src, int width = 32)
{
    int lane = fl_emu_lane() % width;
    return fl_emu_unbits<T>(fl_emu_exchange(fl_emu_bits(v), fl_emu_tid() - lane + src % width));
}

/* Threads never run at the same time, so plain read-modify-writes are atomic. */
template <typename T> static inline T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> static inline T atomicMax(T *p, T v)
{
    T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <typename T> static inline T atomicMin(T *p, T v)
{
    T old = *p;
    *p = old < v ? old : v;
    return old;
}
template <typename T> static inline T atomicExch(T *p, T v)
{
    T old = *p;
    *p = v;
    return old;
}
template <typename T> static inline T atomicCAS(T *p, T cmp, T v)
{
    T old = *p;
    if (old == cmp)
        *p = v;
    return old;
}
static inline int __float_as_int(float f) { return fl_emu_unbits<int>(fl_emu_bits(f)); }
static inline float __int_as_float(int i) { return fl_emu_unbits<float>(fl_emu_bits(i)); }
static inline long long __double_as_longlong(double d) { return fl_emu_unbits<long long>(fl_emu_bits(d)); }
static inline double __longlong_as_double(long long i) { return fl_emu_unbits<double>(fl_emu_bits(i)); }
template <typename T> static inline T __ldg(const T *p) { return *p; }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }

/* bfloat16: round-to-nearest-even, as cuda_bf16.h converts. */
struct __nv_bfloat16 {
    uint16_t bits;
};
static inline __nv_bfloat16 __float2bfloat16(float f)
{
    uint32_t u = fl_emu_unbits<uint32_t>(fl_emu_bits(f));
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u)
        h.bits = 0x7fc0;
    else
        h.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
    return h;
}
static inline float __bfloat162float(__nv_bfloat16 h) { return fl_emu_unbits<float>((uint64_t)h.bits << 16); }

/* ---------------------------------------------------------------- runtime API */

typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorLaunchFailure = 719,
} cudaError_t;
typedef enum {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;
typedef struct fl_emu_stream *cudaStream_t;
typedef struct fl_emu_event *cudaEvent_t;
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int multiProcessorCount;
    int major, minor;
    int maxThreadsPerBlock;
};

const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s = 0);

/* Runs fn once per thread of every block; sets the launch error on a bad configuration. */
void fl_emu_launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()> &fn);
/* Opens the device memory to the CPU for the length of a scope (library calls such as the
 * emulated cuBLAS). */
struct fl_emu_device_scope {
    fl_emu_device_scope();
    ~fl_emu_device_scope();
};

#endif
