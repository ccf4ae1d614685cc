/* interrupt.c: see interrupt.h. The state is three lock-free atomics, so the signal handler
 * and the pool's worker threads may read and write it without locks. */
#include "interrupt.h"
#include "flare.h"

#include <stdatomic.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the interrupt flag must be lock-free to be set from a signal handler");

static atomic_int requested;   /* kernels stop when set */
static atomic_int pending;     /* arrived while a deferring section was open */
static atomic_int depth;       /* deferring sections open */

bool fl_interrupted(void)
{
    return atomic_load_explicit(&requested, memory_order_relaxed) != 0;
}

int fl_interrupt_check(void)
{
    if (!fl_interrupted())
        return 0;
    fl_error("interrupted!");
    return -1;
}

int fl_interrupt_request(void)
{
    atomic_store(&requested, 1);
    /* A section opened meanwhile turns the request into a pending one (see defer_begin). */
    if (atomic_load(&depth) > 0) {
        if (atomic_exchange(&requested, 0))
            atomic_store(&pending, 1);
        return 0;
    }
    return 1;
}

void fl_interrupt_clear(void)
{
    atomic_store(&requested, 0);
    atomic_store(&pending, 0);
}

void fl_interrupt_defer_begin(void)
{
    atomic_fetch_add(&depth, 1);
    if (atomic_exchange(&requested, 0))
        atomic_store(&pending, 1);
}

int fl_interrupt_defer_end(void)
{
    if (atomic_fetch_sub(&depth, 1) != 1)
        return 0;
    return atomic_exchange(&pending, 0) != 0;
}

bool fl_interrupt_deferred(void)
{
    return atomic_load(&depth) > 0;
}
