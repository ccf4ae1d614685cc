/* interrupt.h: the Ctrl-C flag. The prompt's SIGINT handler raises it; long kernels poll it
 * between blocks and stop early, so an interrupt takes effect within one block. Sections
 * that must not stop half-way (an optimizer step, a file write) defer it until they end. */
#ifndef FL_INTERRUPT_H
#define FL_INTERRUPT_H

#include <stdbool.h>

/* Elementwise work is cut into blocks of this many elements between checks. */
#define FL_INTERRUPT_BLOCK 65536

/* Has an interrupt been requested (and not deferred)? Cheap: one relaxed atomic load. */
bool fl_interrupted(void);
/* Returns -1 with the message "interrupted!" if an interrupt is requested, else 0. */
int fl_interrupt_check(void);

/* From a signal handler (async-signal-safe): requests an interrupt. Returns 1 if it takes
 * effect now, 0 if a deferring section is open (it is then delivered when the section ends). */
int fl_interrupt_request(void);
/* Forgets any requested or pending interrupt (the prompt calls it before each command). */
void fl_interrupt_clear(void);

/* Deferring sections nest. fl_interrupt_defer_end returns 1 when the outermost section
 * closes with an interrupt pending: the caller then reports "interrupted!". */
void fl_interrupt_defer_begin(void);
int fl_interrupt_defer_end(void);
/* Is a deferring section open? */
bool fl_interrupt_deferred(void);

#endif
