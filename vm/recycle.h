/* recycle.h: per-thread free lists for the engine's small fixed-size objects (tensor headers,
 * graph nodes). A graph of tiny ops allocates and frees them in bursts that glibc serves
 * slowly past its per-size cache of 7 blocks; a free list of a few thousand makes them
 * cheap. Under AddressSanitizer the lists are off, so every use-after-free is still caught. */
#ifndef FL_RECYCLE_H
#define FL_RECYCLE_H

#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define FL_RECYCLE 0
#else
#define FL_RECYCLE 1
#endif

#define FL_RECYCLE_MAX 4096

typedef struct fl_recycler {
    void *items[FL_RECYCLE_MAX];
    int n;
} fl_recycler;

/* A zeroed block of `size` bytes (NULL if out of memory). */
static inline void *fl_recycle_get(fl_recycler *r, size_t size)
{
    if (FL_RECYCLE && r->n > 0) {
        void *p = r->items[--r->n];
        memset(p, 0, size);
        return p;
    }
    return calloc(1, size);
}

static inline void fl_recycle_put(fl_recycler *r, void *p)
{
    if (FL_RECYCLE && p && r->n < FL_RECYCLE_MAX)
        r->items[r->n++] = p;
    else
        free(p);
}

#endif
