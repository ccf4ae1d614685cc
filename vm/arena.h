/* arena.h: the temporaries of one backward rule, released together. Each helper runs its
 * op only while nothing has failed, so a rule reads as straight-line math and an error
 * anywhere poisons the rest; give() hands a result to the caller beyond the arena. */
#ifndef FL_ARENA_H
#define FL_ARENA_H

#include "flare.h"

#define FL_ARENA_MAX 32

typedef struct {
    fl_tensor *t[FL_ARENA_MAX];
    int n;
    bool failed;
} arena;

static inline fl_tensor *keep(arena *A, fl_tensor *t)
{
    if (t && A->n == FL_ARENA_MAX)
        fl_error("internal error: too many temporaries in a backward rule");
    if (A->failed || !t || A->n == FL_ARENA_MAX) {
        fl_tensor_release(t);
        A->failed = true;
        return NULL;
    }
    return A->t[A->n++] = t;
}

/* Runs an op unless the rule already failed, keeping its result. */
#define OP(A, expr) ((A)->failed ? NULL : keep((A), (expr)))

static inline void check(arena *A, int rc)
{
    if (rc < 0)
        A->failed = true;
}

static inline fl_tensor *bin(arena *A, fl_binop op, const fl_tensor *x, const fl_tensor *y)
{
    return OP(A, fl_binary(op, x, y));
}

static inline fl_tensor *bins(arena *A, fl_binop op, const fl_tensor *x, double s)
{
    return OP(A, fl_binary_scalar(op, x, s, false));
}

static inline fl_tensor *un(arena *A, fl_unop op, const fl_tensor *x)
{
    return OP(A, fl_unary(op, x));
}

static inline fl_tensor *give(arena *A, const fl_tensor *t)
{
    return A->failed || !t ? NULL : fl_tensor_retain((fl_tensor *)t);
}

static inline void arena_free(arena *A)
{
    for (int i = 0; i < A->n; i++)
        fl_tensor_release(A->t[i]);
    A->n = 0;
}

#endif
