/* runtime.cu: device set-up, errors, the caching allocator, copies and pinned memory. */
#include "common.cuh"

#include <map>
#include <mutex>
#include <stdarg.h>
#include <stdio.h>
#include <vector>

static thread_local char error_message[512];

int fl_cuda_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return -1;
}

int fl_cuda_check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 0;
    cudaGetLastError();   /* clear a non-sticky error so the next call starts clean */
    return fl_cuda_fail("%s: CUDA error: %s", what, cudaGetErrorString(e));
}

extern "C" const char *fl_cuda_error(void) { return error_message; }
extern "C" int fl_cuda_abi(void) { return FL_CUDA_ABI; }

extern "C" int fl_cuda_is_emulated(void)
{
#ifdef FL_CUDA_EMU
    return 1;
#else
    return 0;
#endif
}

extern "C" int fl_cuda_init(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return fl_cuda_check(e, "no usable GPU");
    if (n == 0)
        return fl_cuda_fail("no usable GPU: no CUDA device found");
    return fl_cuda_check(cudaSetDevice(0), "selecting device 0");
}

extern "C" int fl_cuda_device_count(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : (cudaGetLastError(), 0);
}

extern "C" int fl_cuda_device_info(int d, char *name, size_t len, size_t *total_bytes, int *major, int *minor)
{
    cudaDeviceProp p;
    if (fl_cuda_check(cudaGetDeviceProperties(&p, d), "device properties") < 0)
        return -1;
    snprintf(name, len, "%s", p.name);
    *total_bytes = p.totalGlobalMem;
    *major = p.major;
    *minor = p.minor;
    return 0;
}

/* ---------------------------------------------------------------- caching allocator */

/* Requests are rounded to a size class; a freed block waits in its class's list for the next
 * request of the same class, so a training loop that repeats the same shapes stops calling
 * cudaMalloc (and its implicit synchronisation) after the first step. */
namespace {

std::mutex lock;
std::map<size_t, std::vector<void *>> cache;
fl_cuda_memory_stats stats;

size_t size_class(size_t n)
{
    if (n <= 512)
        return 512;
    if (n <= ((size_t)1 << 20))
        return (n + 511) & ~(size_t)511;
    if (n <= ((size_t)32 << 20))
        return (n + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    return (n + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
}

void flush_cache_locked(void)
{
    for (auto &kv : cache) {
        for (void *p : kv.second) {
            cudaFree(p);
            stats.reserved -= kv.first;
            stats.device_frees++;
        }
    }
    cache.clear();
    stats.cache_flushes++;
}

void note_peaks(void)
{
    if (stats.allocated > stats.peak_allocated)
        stats.peak_allocated = stats.allocated;
    if (stats.reserved > stats.peak_reserved)
        stats.peak_reserved = stats.reserved;
}

}  // namespace

extern "C" void *fl_cuda_malloc(size_t nbytes)
{
    size_t c = size_class(nbytes);
    std::lock_guard<std::mutex> g(lock);
    auto it = cache.find(c);
    if (it != cache.end() && !it->second.empty()) {
        void *p = it->second.back();
        it->second.pop_back();
        stats.allocated += c;
        stats.cache_hits++;
        note_peaks();
        return p;
    }
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, c);
    if (e != cudaSuccess) {
        cudaGetLastError();
        flush_cache_locked();
        e = cudaMalloc(&p, c);
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        fl_cuda_fail("CUDA out of memory: could not allocate %zu bytes", nbytes);
        return nullptr;
    }
    stats.allocated += c;
    stats.reserved += c;
    stats.device_allocs++;
    note_peaks();
    return p;
}

extern "C" void fl_cuda_free(void *ptr, size_t nbytes)
{
    if (!ptr)
        return;
    size_t c = size_class(nbytes);
    std::lock_guard<std::mutex> g(lock);
    cache[c].push_back(ptr);
    stats.allocated -= c;
}

extern "C" void fl_cuda_empty_cache(void)
{
    std::lock_guard<std::mutex> g(lock);
    flush_cache_locked();
}

extern "C" void fl_cuda_get_memory_stats(fl_cuda_memory_stats *s)
{
    std::lock_guard<std::mutex> g(lock);
    *s = stats;
    if (cudaMemGetInfo(&s->device_free, &s->device_total) != cudaSuccess) {
        cudaGetLastError();
        s->device_free = s->device_total = 0;
    }
}

extern "C" void fl_cuda_reset_peak_stats(void)
{
    std::lock_guard<std::mutex> g(lock);
    stats.peak_allocated = stats.allocated;
    stats.peak_reserved = stats.reserved;
}

/* ---------------------------------------------------------------- host memory and copies */

extern "C" void *fl_cuda_host_alloc(size_t nbytes)
{
    void *p = nullptr;
    if (fl_cuda_check(cudaMallocHost(&p, nbytes ? nbytes : 1), "pinned host allocation") < 0)
        return nullptr;
    return p;
}

extern "C" void fl_cuda_host_free(void *ptr)
{
    if (ptr)
        cudaFreeHost(ptr);
}

extern "C" int fl_cuda_memcpy(void *dst, const void *src, size_t nbytes, fl_copy_kind kind)
{
    static const cudaMemcpyKind kinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                           cudaMemcpyDeviceToDevice};
    if (!nbytes)
        return 0;
    /* cudaMemcpy waits for the kernels before it on the default stream, so a copy to the
     * host always sees finished results. */
    return fl_cuda_check(cudaMemcpy(dst, src, nbytes, kinds[kind]), "copy");
}

extern "C" int fl_cuda_memset(void *dst, int byte, size_t nbytes)
{
    return nbytes ? fl_cuda_check(cudaMemsetAsync(dst, byte, nbytes, FL_STREAM), "memset") : 0;
}

extern "C" int fl_cuda_synchronize(void)
{
    return fl_cuda_check(cudaDeviceSynchronize(), "synchronize");
}
