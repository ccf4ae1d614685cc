/* cuda.c: finding, loading and initialising the CUDA library; moving tensors between
 * devices. */
#include "cuda.h"
#include "alloc.h"
#include "autograd.h"
#include "../kernels/cuda/runtime.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *handle;
static bool available;
static char why[512] = "CUDA has not been initialised";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const char *(*cuda_error)(void);
static void *(*cuda_malloc)(size_t);
static void (*cuda_free)(void *, size_t);

static void *device_alloc(size_t n) { return cuda_malloc(n); }
static void device_free(void *p, size_t n) { cuda_free(p, n); }
static const fl_allocator cuda_allocator = {"cuda", device_alloc, device_free};

/* The directory of the file that holds this code: core.so's, or the flare executable's. */
static void own_directory(char *buf, size_t len)
{
    Dl_info info;
    buf[0] = 0;
    char real[4096];
    if (dladdr((void *)own_directory, &info) && info.dli_fname && realpath(info.dli_fname, real)) {
        snprintf(buf, len, "%s", real);
        char *slash = strrchr(buf, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(buf, len, ".");
    }
}

/* Next to core.so, or from bin/: ../flare/ (the build tree) and ../lib/lua/5.4/flare/
 * (an installed tree). */
static void *open_library(const char *file)
{
    const char *explicit_lib = getenv("FLARE_CUDA_LIB");
    if (explicit_lib && *explicit_lib) {
        void *h = dlopen(explicit_lib, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            snprintf(why, sizeof why, "FLARE_CUDA_LIB: %s", dlerror());
        return h;
    }
    char dir[4096], path[4300];
    own_directory(dir, sizeof dir);
    const char *places[] = {"%s/%s", "%s/../flare/%s", "%s/../lib/lua/5.4/flare/%s"};
    for (size_t i = 0; i < sizeof places / sizeof *places; i++) {
        snprintf(path, sizeof path, places[i], dir, file);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
        const char *e = dlerror();
        /* a library that exists but cannot load (missing libcublas, say) is the reason */
        if (i == 0 || (e && !strstr(e, "No such file")))
            snprintf(why, sizeof why, "%.400s", e ? e : path);
    }
    return NULL;
}

static void load(void)
{
    const char *mode = getenv("FLARE_CUDA");
    bool emu = mode && strcmp(mode, "emu") == 0;
    if (mode && strcmp(mode, "0") == 0) {
        snprintf(why, sizeof why, "CUDA is switched off (FLARE_CUDA=0)");
        return;
    }
    handle = open_library(emu ? "cuda_emu.so" : "cuda.so");
    if (!handle) {
        char e[512];
        snprintf(e, sizeof e, "%s", why);
        snprintf(why, sizeof why, "flare's CUDA library could not be loaded (%.400s)", e);
        return;
    }
    int (*abi)(void) = (int (*)(void))dlsym(handle, "fl_cuda_abi");
    int (*init)(void) = (int (*)(void))dlsym(handle, "fl_cuda_init");
    cuda_error = (const char *(*)(void))dlsym(handle, "fl_cuda_error");
    cuda_malloc = (void *(*)(size_t))dlsym(handle, "fl_cuda_malloc");
    cuda_free = (void (*)(void *, size_t))dlsym(handle, "fl_cuda_free");
    if (!abi || !init || !cuda_error || !cuda_malloc || !cuda_free || abi() != FL_CUDA_ABI) {
        snprintf(why, sizeof why, "flare's CUDA library is from another build (ABI %d, expected %d)",
                 abi ? abi() : -1, FL_CUDA_ABI);
        return;
    }
    if (init() < 0) {
        snprintf(why, sizeof why, "%s", cuda_error());
        return;
    }
    fl_allocator_register(FL_DEVICE_CUDA, &cuda_allocator);
    available = true;
    why[0] = 0;
}

bool fl_cuda_is_available(void)
{
    pthread_once(&once, load);
    return available;
}

const char *fl_cuda_unavailable_why(void)
{
    fl_cuda_is_available();
    return why;
}

void *fl_cuda_symbol(const char *name)
{
    return fl_cuda_is_available() ? dlsym(handle, name) : NULL;
}

void *fl_cuda_symbol_cached(const char *name, void **slot)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!p) {
        p = fl_cuda_symbol(name);
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    }
    return p;
}

int fl_cuda_status(int rc)
{
    if (rc < 0)
        fl_error("%s", cuda_error ? cuda_error() : "CUDA failure");
    return rc;
}

const char *fl_device_str(fl_device dev, char *buf, size_t len)
{
    if (dev.type == FL_DEVICE_CPU)
        snprintf(buf, len, "cpu");
    else
        snprintf(buf, len, "cuda:%d", dev.index);
    return buf;
}

int fl_check_device(fl_device dev)
{
    if (dev.type == FL_DEVICE_CPU)
        return 0;
    if (!fl_cuda_is_available()) {
        fl_error("device 'cuda' is not available: %s", why);
        return -1;
    }
    if (dev.index != 0) {
        fl_error("device cuda:%d is not available: flare uses one GPU, cuda:0", dev.index);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- moving data */

int fl_copy_across(fl_tensor *dst, const fl_tensor *src)
{
    if (!fl_shape_equal(dst, src) || dst->dtype != src->dtype) {
        fl_error("copy between devices needs one shape and dtype");
        return -1;
    }
    /* a contiguous staging copy on whichever side is strided, then one transfer */
    fl_tensor *s = fl_contiguous((fl_tensor *)src);
    fl_tensor *d = !s ? NULL : fl_tensor_is_contiguous(dst) ? fl_tensor_retain(dst)
                                : fl_tensor_empty(dst->dtype, dst->ndim, dst->shape, dst->storage->device);
    int rc = -1;
    if (d) {
        size_t n = (size_t)s->numel * fl_dtype_size(s->dtype);
        fl_copy_kind kind = fl_is_cuda(s) ? (fl_is_cuda(d) ? FL_COPY_D2D : FL_COPY_D2H) : FL_COPY_H2D;
        rc = fl_cuda_status(FL_CUDA(fl_cuda_memcpy)(fl_tensor_data(d), fl_tensor_data(s), n, kind));
        if (rc == 0 && d != dst)
            rc = fl_copy(dst, d);
    }
    fl_tensor_release(s);
    fl_tensor_release(d);
    dst->storage->version++;
    return rc;
}

fl_tensor *fl_move(const fl_tensor *t, fl_device dev)
{
    fl_device from = t->storage->device;
    if (from.type == dev.type && from.index == dev.index)
        return fl_tensor_retain((fl_tensor *)t);
    if (fl_check_device(dev) < 0)
        return NULL;
    fl_tensor *out = fl_tensor_empty(t->dtype, t->ndim, t->shape, dev);
    if (out && fl_copy_across(out, t) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return out;
}

fl_tensor *fl_to_device(const fl_tensor *t, fl_device dev)
{
    fl_device from = t->storage->device;
    fl_tensor *out = fl_move(t, dev);
    if (out && out != t && fl_needs_grad(t)) {
        fl_node *n = fl_node_new(FL_GRAD_TO_DEVICE, "to", 1, &t);
        if (!n) {
            fl_tensor_release(out);
            return NULL;
        }
        n->iargs[0] = from.type;
        n->iargs[1] = from.index;
        fl_node_attach(n, out);
    }
    return out;
}

fl_tensor *fl_pin_memory(const fl_tensor *t)
{
    fl_storage *s = fl_storage_new_pinned((size_t)t->numel * fl_dtype_size(t->dtype));
    fl_tensor *out = s ? fl_tensor_empty(t->dtype, 0, NULL, FL_CPU) : NULL;
    if (!out) {
        if (s)
            fl_storage_release(s);
        return NULL;
    }
    /* the 0-dim placeholder's storage is swapped for the pinned one, then shaped like t */
    fl_storage_release(out->storage);
    out->storage = s;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    fl_contiguous_strides(t->ndim, t->shape, out->strides);
    out->numel = t->numel;
    if (fl_copy(out, t) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return out;
}
