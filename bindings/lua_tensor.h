/* lua_tensor.h: what every binding file shares: the tensor userdata, argument readers, and
 * turning engine errors into Lua errors. Only bindings/ includes Lua headers. */
#ifndef FL_LUA_TENSOR_H
#define FL_LUA_TENSOR_H

#include <lauxlib.h>
#include <lua.h>

#include "../vm/flare.h"

/* ---------------------------------------------------------------- the userdata */

/* Is the value at idx a tensor? Returns it, or NULL. */
fl_tensor *fl_lua_totensor(lua_State *L, int idx);
/* The tensor at arg, or a "bad argument" error naming what was given. */
fl_tensor *fl_lua_checktensor(lua_State *L, int arg);

/* Pushes a new, empty tensor userdata (its __gc copes with emptiness) and returns its slot.
 * Create the slot *before* computing the result, then fl_lua_fill it: if anything raises in
 * between, nothing leaks. */
fl_tensor **fl_lua_newslot(lua_State *L);
/* Stores t in the slot on top of the stack; if t is NULL raises the engine's error,
 * prefixed with fname. Also tells Lua's GC about the new bytes. */
void fl_lua_fill(lua_State *L, fl_tensor **slot, fl_tensor *t, const char *fname);

/* In-place copies do not record autograd: a source that requires grad (in grad mode) is an
 * error rather than a silently lost gradient. */
void fl_lua_check_copy_source(lua_State *L, const fl_tensor *src, const char *fname);

/* Raises the engine's last error as "fname: message". */
int fl_lua_error(lua_State *L, const char *fname);

/* Tells Lua's collector about bytes it cannot see, so it runs often enough. */
void fl_lua_account(lua_State *L, size_t nbytes);

/* ---------------------------------------------------------------- arguments */

/* Reads an integer argument (no fractional part, no NaN). */
int64_t fl_lua_checkint(lua_State *L, int arg);
/* Reads a dimension (1-based, negative from the end) for a tensor of ndim dims; returns it
 * 0-based. `extra` allows one past the end (for unsqueeze). */
int fl_lua_checkdim(lua_State *L, int arg, int ndim, int extra);
/* Reads a shape given as integers from arg onwards or as one table; returns ndim and sets
 * *next to the first argument after it. */
int fl_lua_checkshape(lua_State *L, int arg, int64_t *shape, int *next);
/* Reads field `dtype` of an options table at idx (0 or none: default). */
fl_dtype fl_lua_optdtype(lua_State *L, int idx, fl_dtype def);
/* Reads the `device` field of an options table. */
fl_device fl_lua_optdevice(lua_State *L, int idx);
/* Is idx an options table (a table that is not a list and not a tensor)? */
int fl_lua_isoptions(lua_State *L, int idx);

/* A tensor from a tensor or a Lua number at arg (numbers become 0-dim tensors of the
 * dtype a Lua number gets next to `like`). Pushes nothing; the caller releases. */
fl_tensor *fl_lua_operand(lua_State *L, int arg, const fl_tensor *like, const char *fname);

/* ---------------------------------------------------------------- registration */

enum { FL_REG_MODULE = 1, FL_REG_METHOD = 2, FL_REG_BOTH = 3 };

typedef struct {
    const char *name;
    lua_CFunction fn;
    int where;             /* FL_REG_* */
    int upvalue;           /* pushed as the closure's integer upvalue 1 */
} fl_lua_reg;

/* Registers functions into the module table and/or the methods table. */
void fl_lua_register(lua_State *L, int module, int methods, const fl_lua_reg *regs);

/* Each binding file registers its area. */
void fl_bind_tensor(lua_State *L, int module, int methods);
void fl_bind_creation(lua_State *L, int module, int methods);
void fl_bind_math(lua_State *L, int module, int methods);
void fl_bind_autograd(lua_State *L, int module, int methods);
void fl_bind_loss(lua_State *L, int module, int methods);
/* Applies {requires_grad = true} from an options table at idx to a new tensor. */
void fl_lua_apply_requires_grad(lua_State *L, int opts, fl_tensor *t);
void fl_bind_view(lua_State *L, int module, int methods);      /* bindings/view.c */
void fl_bind_reduce(lua_State *L, int module, int methods);    /* bindings/reduce.c */
void fl_bind_linalg(lua_State *L, int module, int methods);    /* bindings/linalg.c */
void fl_bind_nn(lua_State *L, int module, int methods);        /* bindings/nn.c */
void fl_bind_optim(lua_State *L, int module, int methods);     /* bindings/optim.c */
void fl_bind_io(lua_State *L, int module, int methods);        /* bindings/io.c */
void fl_bind_data(lua_State *L, int module, int methods);      /* bindings/data.c */
void fl_bind_serialize(lua_State *L, int module, int methods); /* bindings/serialize.c */
void fl_bind_rnn(lua_State *L, int module, int methods);       /* bindings/rnn.c */
void fl_bind_cuda(lua_State *L, int module, int methods);      /* bindings/cuda.c */

#endif
