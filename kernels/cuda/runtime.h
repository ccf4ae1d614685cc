/* runtime.h: the C interface of flare's CUDA library (build/flare/cuda.so, or the emulated
 * build/flare/cuda_emu.so), which the engine dlopens on first use so that a CPU-only machine
 * never needs the CUDA libraries. Device memory goes through a caching allocator. */
#ifndef FL_CUDA_RUNTIME_H
#define FL_CUDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../../vm/flare.h"

/* Bumped whenever an entry point changes; the engine refuses a library of another version. */
#define FL_CUDA_ABI 1
int fl_cuda_abi(void);

/* 0 when a device can be used, else -1 (no driver, no device: fl_cuda_error() says). */
int fl_cuda_init(void);
/* The message of the last failure on this thread. */
const char *fl_cuda_error(void);
int fl_cuda_is_emulated(void);
int fl_cuda_device_count(void);
/* Name, memory and compute capability of device d; -1 if there is none. */
int fl_cuda_device_info(int d, char *name, size_t len, size_t *total_bytes, int *major, int *minor);

/* The caching allocator: freed blocks are kept for reuse; a failed cudaMalloc first returns
 * the cache to the driver and tries again. */
void *fl_cuda_malloc(size_t nbytes);
void fl_cuda_free(void *ptr, size_t nbytes);
void fl_cuda_empty_cache(void);
typedef struct {
    size_t allocated, reserved, peak_allocated, peak_reserved;
    uint64_t device_allocs, device_frees, cache_hits, cache_flushes;
    size_t device_free, device_total;
} fl_cuda_memory_stats;
void fl_cuda_get_memory_stats(fl_cuda_memory_stats *s);
void fl_cuda_reset_peak_stats(void);

/* Page-locked host memory (faster copies). */
void *fl_cuda_host_alloc(size_t nbytes);
void fl_cuda_host_free(void *ptr);

typedef enum { FL_COPY_H2D, FL_COPY_D2H, FL_COPY_D2D } fl_copy_kind;
int fl_cuda_memcpy(void *dst, const void *src, size_t nbytes, fl_copy_kind kind);
int fl_cuda_memset(void *dst, int byte, size_t nbytes);
int fl_cuda_synchronize(void);

#ifdef __cplusplus
}
#endif
#endif
