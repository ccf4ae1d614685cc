/* runtime.cc: the CUDA runtime API of the emulator. Device memory is one reserved region,
 * kept PROT_NONE except while a kernel, a copy or a library call runs on it; a fault inside
 * it is reported as host code reading device memory. FLARE_CUDA_EMU_DEVICES=0 makes the
 * emulator report no device, and FLARE_CUDA_EMU_MEMORY sets its memory size in MiB. */
#include "emu.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace {

std::mutex lock;
char *region;
size_t region_bytes, high_water;
struct block {
    size_t offset, bytes;
};
std::vector<block> free_blocks, used_blocks;
int open_depth;
thread_local cudaError_t last_error = cudaSuccess;
struct sigaction previous_segv;

void on_segv(int sig, siginfo_t *info, void *uc)
{
    char *a = (char *)info->si_addr;
    if (region && a >= region && a < region + region_bytes) {
        static const char msg[] = "flare CUDA emulator: host code read or wrote device memory "
                                  "(an op without a CUDA dispatch)\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
    }
    sigaction(SIGSEGV, &previous_segv, nullptr);
    if (previous_segv.sa_flags & SA_SIGINFO && previous_segv.sa_sigaction)
        previous_segv.sa_sigaction(sig, info, uc);
    /* returning re-runs the faulting access under the previous handler */
}

bool reserve(void)
{
    if (region)
        return true;
    const char *mib = getenv("FLARE_CUDA_EMU_MEMORY");
    region_bytes = (size_t)(mib ? atol(mib) : 4096) << 20;
    void *p = mmap(nullptr, region_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    region = (char *)p;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &previous_segv);
    return true;
}

void protect(int prot)
{
    if (high_water)
        mprotect(region, high_water, prot);
}

bool in_region(const void *p, size_t n)
{
    const char *c = (const char *)p;
    return region && c >= region && c + n <= region + region_bytes;
}

}  // namespace

cudaError_t fl_emu_set_error(cudaError_t e)
{
    if (e != cudaSuccess && last_error == cudaSuccess)
        last_error = e;
    return e;
}

fl_emu_device_scope::fl_emu_device_scope()
{
    std::lock_guard<std::mutex> g(lock);
    if (open_depth++ == 0)
        protect(PROT_READ | PROT_WRITE);
}

fl_emu_device_scope::~fl_emu_device_scope()
{
    std::lock_guard<std::mutex> g(lock);
    if (--open_depth == 0)
        protect(PROT_NONE);
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    default: return "cudaError";
    }
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

static int device_count(void)
{
    const char *n = getenv("FLARE_CUDA_EMU_DEVICES");
    return n ? atoi(n) : 1;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = device_count();
    return *n > 0 ? cudaSuccess : fl_emu_set_error(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int d) { return d >= 0 && d < device_count() ? cudaSuccess : fl_emu_set_error(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int *d)
{
    *d = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
    if (d < 0 || d >= device_count())
        return fl_emu_set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "flare CUDA emulator (CPU)");
    reserve();
    p->totalGlobalMem = region_bytes;
    p->multiProcessorCount = 4;
    p->major = 9;
    p->minor = 0;
    p->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaMalloc(void **p, size_t n)
{
    std::lock_guard<std::mutex> g(lock);
    *p = nullptr;
    if (!reserve())
        return fl_emu_set_error(cudaErrorMemoryAllocation);
    n = (n + 255) & ~(size_t)255;
    if (!n)
        n = 256;
    size_t best = (size_t)-1;
    for (size_t i = 0; i < free_blocks.size(); i++)
        if (free_blocks[i].bytes >= n && (best == (size_t)-1 || free_blocks[i].bytes < free_blocks[best].bytes))
            best = i;
    block b;
    if (best != (size_t)-1) {
        b = free_blocks[best];
        free_blocks.erase(free_blocks.begin() + (long)best);
        if (b.bytes > n) {
            free_blocks.push_back({b.offset + n, b.bytes - n});
            b.bytes = n;
        }
    } else {
        if (high_water + n > region_bytes)
            return fl_emu_set_error(cudaErrorMemoryAllocation);
        b = {high_water, n};
        high_water += n;
        if (open_depth)
            mprotect(region, high_water, PROT_READ | PROT_WRITE);
    }
    used_blocks.push_back(b);
    *p = region + b.offset;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p)
        return cudaSuccess;
    std::lock_guard<std::mutex> g(lock);
    for (size_t i = 0; i < used_blocks.size(); i++) {
        if (region + used_blocks[i].offset == p) {
            free_blocks.push_back(used_blocks[i]);
            used_blocks.erase(used_blocks.begin() + (long)i);
            return cudaSuccess;
        }
    }
    return fl_emu_set_error(cudaErrorInvalidDevicePointer);
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    std::lock_guard<std::mutex> g(lock);
    reserve();
    size_t used = 0;
    for (const block &b : used_blocks)
        used += b.bytes;
    *total = region_bytes;
    *free_bytes = region_bytes - used;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t n)
{
    *p = malloc(n ? n : 1);
    return *p ? cudaSuccess : fl_emu_set_error(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}

/* The direction must match where the pointers are, as the real runtime checks. */
static bool copy_ok(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    switch (kind) {
    case cudaMemcpyHostToDevice: return in_region(dst, n) && !in_region(src, 1);
    case cudaMemcpyDeviceToHost: return in_region(src, n) && !in_region(dst, 1);
    case cudaMemcpyDeviceToDevice: return in_region(src, n) && in_region(dst, n);
    default: return true;
    }
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    if (!n)
        return cudaSuccess;
    if (!copy_ok(dst, src, n, kind))
        return fl_emu_set_error(cudaErrorInvalidValue);
    fl_emu_device_scope open;
    memmove(dst, src, n);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t)
{
    return cudaMemcpy(dst, src, n, kind);
}

cudaError_t cudaMemset(void *p, int v, size_t n)
{
    if (!n)
        return cudaSuccess;
    if (!in_region(p, n))
        return fl_emu_set_error(cudaErrorInvalidValue);
    fl_emu_device_scope open;
    memset(p, v, n);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) { return cudaMemset(p, v, n); }
