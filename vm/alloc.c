/* alloc.c: storage allocation. On the CPU a storage header and its bytes live in one
 * 64-byte-aligned block, so a small tensor costs one malloc; large blocks are cached by size
 * so that a training loop reuses its buffers instead of faulting fresh pages every step.
 * Requests larger than the machine's memory fail with a message instead of being tried. */
#include "alloc.h"
#include "cuda.h"
#include "../kernels/cuda/runtime.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#define HEADER_BYTES 64
#define CACHE_MIN_BYTES (256u << 10)
#define CACHE_SLOTS 32
#define CACHE_MAX_BYTES (512u << 20)

static _Atomic size_t bytes_live, bytes_total;

size_t fl_bytes_allocated(void) { return atomic_load(&bytes_live); }
size_t fl_bytes_allocated_total(void) { return atomic_load(&bytes_total); }

/* ---------------------------------------------------------------- CPU block cache */

static struct {
    pthread_mutex_t lock;
    void *ptr[CACHE_SLOTS];
    size_t size[CACHE_SLOTS];
    size_t cached;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *cache_take(size_t nbytes)
{
    void *p = NULL;
    pthread_mutex_lock(&cache.lock);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (cache.ptr[i] && cache.size[i] == nbytes) {
            p = cache.ptr[i];
            cache.ptr[i] = NULL;
            cache.cached -= nbytes;
            break;
        }
    }
    pthread_mutex_unlock(&cache.lock);
    return p;
}

static bool cache_put(void *p, size_t nbytes)
{
    bool kept = false;
    pthread_mutex_lock(&cache.lock);
    if (cache.cached + nbytes <= CACHE_MAX_BYTES) {
        for (int i = 0; i < CACHE_SLOTS; i++) {
            if (!cache.ptr[i]) {
                cache.ptr[i] = p;
                cache.size[i] = nbytes;
                cache.cached += nbytes;
                kept = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&cache.lock);
    return kept;
}

/* Small blocks come from plain malloc (its per-thread cache makes them cheap; 16-byte
 * alignment is enough for them); larger ones are 64-byte aligned for SIMD loads. */
#define SMALL_BYTES 4096

/* glibc raises its mmap threshold each time a large block is freed, after which large
 * tensors come from the heap and their memory is never given back (a training loop's
 * resident size then only grows). Fixing the threshold keeps large blocks in mmap: freed
 * means returned. Called once, at the first large allocation. */
static void fix_mmap_threshold(void)
{
    static _Atomic int done;
    if (!atomic_exchange(&done, 1))
        mallopt(M_MMAP_THRESHOLD, CACHE_MIN_BYTES);
}

static void *cpu_alloc(size_t nbytes)
{
    if (nbytes > SMALL_BYTES)
        fix_mmap_threshold();
    if (nbytes <= SMALL_BYTES)
        return malloc(nbytes);
    if (nbytes >= CACHE_MIN_BYTES) {
        void *p = cache_take(nbytes);
        if (p)
            return p;
    }
    return aligned_alloc(64, (nbytes + 63) & ~(size_t)63);
}

static void cpu_free(void *p, size_t nbytes)
{
    if (nbytes >= CACHE_MIN_BYTES && cache_put(p, nbytes))
        return;
    free(p);
}

static const fl_allocator cpu_allocator = {"cpu", cpu_alloc, cpu_free};
static const fl_allocator *allocators[2] = {&cpu_allocator, NULL};

void fl_allocator_register(fl_device_type type, const fl_allocator *a) { allocators[type] = a; }
const fl_allocator *fl_allocator_for(fl_device_type type) { return allocators[type]; }

/* ---------------------------------------------------------------- storage */

/* Asked once: sysconf(_SC_PHYS_PAGES) is a system call. */
static size_t physical_memory(void)
{
    static size_t bytes;
    if (!bytes) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        bytes = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : SIZE_MAX;
    }
    return bytes;
}

static const char *human_bytes(char *buf, size_t len, double b)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (b >= 1024 && u < 6) {
        b /= 1024;
        u++;
    }
    snprintf(buf, len, "%.1f %s", b, unit[u]);
    return buf;
}

/* The allocation budget of this thread (0: none): storage bytes it may still allocate. */
static _Thread_local size_t budget_left;
static _Thread_local bool budget_on;

size_t fl_set_alloc_budget(size_t nbytes, bool on)
{
    size_t prev = budget_on ? budget_left : SIZE_MAX;
    budget_on = on;
    budget_left = nbytes;
    return prev;
}

static void (*oom_handler)(void);

void fl_set_oom_handler(void (*handler)(void)) { oom_handler = handler; }

fl_storage *fl_storage_new(size_t nbytes, fl_device dev)
{
    if (dev.type != FL_DEVICE_CPU && fl_check_device(dev) < 0)
        return NULL;
    if (budget_on) {
        if (nbytes > budget_left) {
            char want[32], left[32];
            fl_error("allocation budget exceeded: %s asked, %s left",
                     human_bytes(want, sizeof want, (double)nbytes), human_bytes(left, sizeof left, (double)budget_left));
            return NULL;
        }
        budget_left -= nbytes;
    }
    const fl_allocator *a = allocators[dev.type];
    char want[32], have[32];
    if (nbytes > physical_memory() || nbytes > SIZE_MAX - HEADER_BYTES) {
        fl_error("out of memory: a tensor of %s is more than this machine's memory (%s)",
                 human_bytes(want, sizeof want, (double)nbytes),
                 human_bytes(have, sizeof have, (double)physical_memory()));
        return NULL;
    }
    fl_storage *s;
    if (dev.type == FL_DEVICE_CPU) {
        s = a->alloc(HEADER_BYTES + nbytes);
        if (!s)
            goto oom;
        s->data = (char *)s + HEADER_BYTES;
    } else {
        s = malloc(sizeof *s);
        if (!s)
            goto oom;
        s->data = nbytes ? a->alloc(nbytes) : NULL;
        if (nbytes && !s->data && oom_handler) {
            /* device memory held only by garbage Lua has not collected yet comes back */
            oom_handler();
            s->data = a->alloc(nbytes);
        }
        if (nbytes && !s->data) {
            free(s);
            goto oom;
        }
    }
    s->nbytes = nbytes;
    s->refcount = 1;
    s->device = dev;
    s->version = 0;
    s->pinned = false;
    atomic_fetch_add(&bytes_live, nbytes);
    atomic_fetch_add(&bytes_total, nbytes);
    return s;
oom:
    fl_error("out of memory: could not allocate %s", human_bytes(want, sizeof want, (double)nbytes));
    return NULL;
}

void fl_storage_release(fl_storage *s)
{
    if (!s || --s->refcount > 0)
        return;
    atomic_fetch_sub(&bytes_live, s->nbytes);
    const fl_allocator *a = allocators[s->device.type];
    if (s->pinned) {
        FL_CUDA(fl_cuda_host_free)(s->data);
        free(s);
    } else if (s->device.type == FL_DEVICE_CPU) {
        a->free(s, HEADER_BYTES + s->nbytes);
    } else {
        if (s->data)
            a->free(s->data, s->nbytes);
        free(s);
    }
}

fl_storage *fl_storage_new_pinned(size_t nbytes)
{
    if (fl_check_device((fl_device){FL_DEVICE_CUDA, 0}) < 0)
        return NULL;
    fl_storage *s = malloc(sizeof *s);
    void *data = s ? FL_CUDA(fl_cuda_host_alloc)(nbytes) : NULL;
    if (!data) {
        free(s);
        fl_error("out of memory: could not allocate %zu bytes of pinned host memory", nbytes);
        return NULL;
    }
    *s = (fl_storage){.data = data, .nbytes = nbytes, .refcount = 1, .device = FL_CPU, .pinned = true};
    atomic_fetch_add(&bytes_live, nbytes);
    atomic_fetch_add(&bytes_total, nbytes);
    return s;
}
