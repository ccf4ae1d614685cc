/* alloc.h: the allocator interface behind storage. One allocator per device type; the CUDA
 * backend registers its own (a caching allocator) without touching any op. */
#ifndef FL_ALLOC_H
#define FL_ALLOC_H

#include "flare.h"

typedef struct fl_allocator {
    const char *name;
    void *(*alloc)(size_t nbytes);            /* NULL on failure */
    void (*free)(void *ptr, size_t nbytes);
} fl_allocator;

void fl_allocator_register(fl_device_type type, const fl_allocator *a);
const fl_allocator *fl_allocator_for(fl_device_type type);

fl_storage *fl_storage_new(size_t nbytes, fl_device dev);
/* Called once when a device allocation fails, before trying again: the binding runs a full
 * garbage collection there, so unreachable tensors give their memory back first. */
void fl_set_oom_handler(void (*handler)(void));
/* Caps the storage bytes this thread may allocate from now on (on = false lifts the cap);
 * returns the bytes that were left (SIZE_MAX if there was no cap). Rebuilding a model from a
 * file's description runs under one, so a hostile description fails before it allocates. */
size_t fl_set_alloc_budget(size_t nbytes, bool on);
void fl_storage_release(fl_storage *s);
/* CPU storage in page-locked memory from the CUDA library (faster transfers). */
fl_storage *fl_storage_new_pinned(size_t nbytes);

#endif
