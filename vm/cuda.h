/* cuda.h: the engine's door to the CUDA library. The library (build/flare/cuda.so) is
 * dlopen()ed on first use, so a CPU-only machine never needs CUDA's libraries and CPU work
 * never pays for them. Ops call its entry points through FL_CUDA(name), declared in the
 * headers of kernels/cuda/. FLARE_CUDA=emu loads the emulated library instead (the same
 * kernels run on the CPU; see kernels/cuda/emu/emu.h), and FLARE_CUDA_LIB names a library
 * file outright. */
#ifndef FL_CUDA_H
#define FL_CUDA_H

#include "flare.h"

/* Loads and initialises the library once; false (with the reason in fl_cuda_unavailable_why)
 * when there is no usable GPU, driver or library. */
bool fl_cuda_is_available(void);
const char *fl_cuda_unavailable_why(void);
/* Fails with a clear message unless dev can hold tensors. */
int fl_check_device(fl_device dev);
void *fl_cuda_symbol(const char *name);

static inline bool fl_is_cuda(const fl_tensor *t) { return t->storage->device.type == FL_DEVICE_CUDA; }
const char *fl_device_str(fl_device dev, char *buf, size_t len);

/* FL_CUDA(fl_cuda_binary)(args...): the library's entry point, typed by its prototype. Only
 * reachable with a CUDA tensor in hand, so the library is loaded. */
#define FL_CUDA(fn) \
    ((__typeof__(&fn))({ static void *fl_slot_; fl_cuda_symbol_cached(#fn, &fl_slot_); }))
void *fl_cuda_symbol_cached(const char *name, void **slot);

/* rc from the library: on failure copies its message into fl_last_error(). Returns rc. */
int fl_cuda_status(int rc);

/* A copy of t on dev (t itself, retained, when it is already there). fl_to_device records
 * autograd (the gradient goes back to t's device); fl_move does not. */
fl_tensor *fl_move(const fl_tensor *t, fl_device dev);
fl_tensor *fl_to_device(const fl_tensor *t, fl_device dev);
/* Copies between devices: dst and src of one shape and dtype; src any layout. */
int fl_copy_across(fl_tensor *dst, const fl_tensor *src);

/* A copy of the CPU tensor t in page-locked memory. */
fl_tensor *fl_pin_memory(const fl_tensor *t);

#endif
