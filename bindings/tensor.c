/* tensor.c: the tensor userdata: creation, checks, __gc, __index/__newindex, printing hooks,
 * GC pacing, argument readers shared by all binding files, and the basic tensor methods
 * (size, dtype, item, totable, casts, copies). */
#include "lua_tensor.h"
#include "../vm/autograd.h"
#include "../vm/cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char TENSOR_MT = 'T';     /* registry key (its address) of the metatable */

/* ---------------------------------------------------------------- userdata */

static void push_metatable(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &TENSOR_MT);
}

fl_tensor *fl_lua_totensor(lua_State *L, int idx)
{
    fl_tensor **p = lua_touserdata(L, idx);
    if (!p || !lua_getmetatable(L, idx))
        return NULL;
    push_metatable(L);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? *p : NULL;
}

fl_tensor *fl_lua_checktensor(lua_State *L, int arg)
{
    fl_tensor *t = fl_lua_totensor(L, arg);
    if (!t) {
        fl_tensor **p = lua_touserdata(L, arg);
        int ours = p && lua_getmetatable(L, arg);
        if (ours) {
            push_metatable(L);
            ours = lua_rawequal(L, -1, -2);
            lua_pop(L, 2);
        }
        if (ours)   /* a tensor whose memory was released by <close> */
            luaL_argerror(L, arg, "flare.Tensor expected, got a closed tensor (released by <close>)");
        luaL_typeerror(L, arg, "flare.Tensor");
    }
    return t;
}

fl_tensor **fl_lua_newslot(lua_State *L)
{
    fl_tensor **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = NULL;
    push_metatable(L);
    lua_setmetatable(L, -2);
    return slot;
}

int fl_lua_error(lua_State *L, const char *fname)
{
    return luaL_error(L, "%s: %s", fname, fl_last_error());
}

/* Lua's collector sees only the small userdata, not the tensor bytes behind it. Every MiB
 * of tensor data allocated is reported as a collector step of that size; and when the
 * tensor bytes exceed what survived the last full collection by a garbage allowance (the
 * live size itself, between 32 and 128 MiB), a full collection runs. So garbage tensors
 * never pile up far beyond the live set, whatever the size of Lua's own heap or the
 * collector's mode; a full collection costs time in proportion to Lua's heap, not to the
 * tensor bytes it frees. */
void fl_lua_account(lua_State *L, size_t nbytes)
{
    static size_t pending, live = 0;
    const size_t lo = (size_t)32 << 20, hi = (size_t)128 << 20;
    pending += nbytes;
    if (pending >= ((size_t)1 << 20)) {
        int kb = pending / 1024 > (size_t)1 << 30 ? 1 << 30 : (int)(pending / 1024);
        pending = 0;
        lua_gc(L, LUA_GCSTEP, kb);
    }
    size_t allowance = live < lo ? lo : live > hi ? hi : live;
    size_t now = fl_bytes_allocated();
    if (now > live + allowance) {
        lua_gc(L, LUA_GCCOLLECT);
        live = fl_bytes_allocated();
    } else if (now < live) {
        live = now;   /* the live set shrank between collections */
    }
}

void fl_lua_fill(lua_State *L, fl_tensor **slot, fl_tensor *t, const char *fname)
{
    if (!t)
        fl_lua_error(L, fname);
    *slot = t;
    if (t->storage->refcount == 1 && t->storage->nbytes >= 4096)
        fl_lua_account(L, t->storage->nbytes);
}

static int tensor_gc(lua_State *L)
{
    fl_tensor **p = lua_touserdata(L, 1);
    if (p && *p) {
        fl_tensor_release(*p);
        *p = NULL;
    }
    return 0;
}

/* ---------------------------------------------------------------- argument readers */

int64_t fl_lua_checkint(lua_State *L, int arg)
{
    int isnum;
    lua_Integer v = lua_tointegerx(L, arg, &isnum);
    if (!isnum) {
        if (lua_type(L, arg) == LUA_TNUMBER)
            luaL_argerror(L, arg, lua_pushfstring(L, "expected an integer, got %f", lua_tonumber(L, arg)));
        luaL_typeerror(L, arg, "integer");
    }
    return (int64_t)v;
}

int fl_lua_checkdim(lua_State *L, int arg, int ndim, int extra)
{
    int64_t d = fl_lua_checkint(L, arg);
    int64_t n = ndim + extra;
    if (n == 0 && (d == 1 || d == -1))
        return 0;   /* a 0-dim tensor accepts dim 1 / -1, as PyTorch accepts 0 / -1 */
    if (d == 0 || d > n || d < -n)
        luaL_argerror(L, arg, lua_pushfstring(L, "dimension out of range (expected 1 to %d, or -%d to -1; dims are 1-based), got %d",
                                              (int)n, (int)n, (int)d));
    return (int)(d > 0 ? d - 1 : n + d);
}

int fl_lua_isoptions(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return 0;
    int isopts = lua_rawgeti(L, idx, 1) == LUA_TNIL;
    lua_pop(L, 1);
    return isopts;
}

static int64_t checksize(lua_State *L, int arg, int isnum, lua_Integer v)
{
    if (!isnum) {
        if (lua_type(L, arg) == LUA_TNUMBER)
            luaL_argerror(L, arg, lua_pushfstring(L, "expected a non-negative integer size, got %f", lua_tonumber(L, arg)));
        luaL_typeerror(L, arg, "integer size");
    }
    if (v < 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "expected a non-negative integer size, got %I", v));
    return (int64_t)v;
}

static int is_empty_table(lua_State *L, int idx)
{
    lua_pushnil(L);
    if (lua_next(L, idx) == 0)
        return 1;
    lua_pop(L, 2);
    return 0;
}

int fl_lua_checkshape(lua_State *L, int arg, int64_t *shape, int *next)
{
    int n = 0, isnum;
    /* a table of sizes; an empty table is the empty shape (a 0-dim tensor) */
    if (lua_type(L, arg) == LUA_TTABLE && !fl_lua_totensor(L, arg) &&
        (!fl_lua_isoptions(L, arg) || is_empty_table(L, arg))) {
        lua_Integer len = luaL_len(L, arg);
        if (len > FL_MAX_DIMS)
            luaL_argerror(L, arg, lua_pushfstring(L, "a tensor has at most %d dimensions, got %I", FL_MAX_DIMS, len));
        for (n = 0; n < len; n++) {
            lua_rawgeti(L, arg, n + 1);
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            if (!isnum)
                luaL_argerror(L, arg, lua_pushfstring(L, "size table entry %d is not an integer (%s)", n + 1, luaL_typename(L, -1)));
            shape[n] = checksize(L, arg, 1, v);
            lua_pop(L, 1);
        }
        *next = arg + 1;
        return n;
    }
    while (lua_type(L, arg + n) == LUA_TNUMBER) {
        if (n == FL_MAX_DIMS)
            luaL_argerror(L, arg + n, lua_pushfstring(L, "a tensor has at most %d dimensions", FL_MAX_DIMS));
        lua_Integer v = lua_tointegerx(L, arg + n, &isnum);
        shape[n] = checksize(L, arg + n, isnum, v);
        n++;
    }
    if (!lua_isnoneornil(L, arg + n) && !fl_lua_isoptions(L, arg + n))
        luaL_typeerror(L, arg + n, "integer size or options table");
    *next = arg + n;
    return n;
}

fl_dtype fl_lua_optdtype(lua_State *L, int idx, fl_dtype def)
{
    if (idx == 0 || lua_type(L, idx) != LUA_TTABLE)
        return def;
    fl_dtype dt = def;
    if (lua_getfield(L, idx, "dtype") != LUA_TNIL) {
        const char *name = lua_tostring(L, -1);
        int d = name ? fl_dtype_from_name(name) : -1;
        if (d < 0)
            luaL_error(L, "unknown dtype '%s' (expected float32, float64, int64, int32, uint8 or bool)",
                       name ? name : luaL_typename(L, -1));
        dt = (fl_dtype)d;
    }
    lua_pop(L, 1);
    return dt;
}

fl_device fl_lua_optdevice(lua_State *L, int idx)
{
    fl_device dev = FL_CPU;
    if (idx == 0 || lua_type(L, idx) != LUA_TTABLE)
        return dev;
    if (lua_getfield(L, idx, "device") != LUA_TNIL) {
        const char *name = lua_tostring(L, -1);
        if (name && strcmp(name, "cpu") == 0)
            dev = FL_CPU;
        else if (name && strncmp(name, "cuda", 4) == 0)
            dev = (fl_device){FL_DEVICE_CUDA, name[4] == ':' ? (int)strtol(name + 5, NULL, 10) : 0};
        else
            luaL_error(L, "unknown device '%s' (expected 'cpu' or 'cuda')", name ? name : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return dev;
}

fl_tensor *fl_lua_operand(lua_State *L, int arg, const fl_tensor *like, const char *fname)
{
    fl_tensor *t = fl_lua_totensor(L, arg);
    if (t)
        return fl_tensor_retain(t);
    if (lua_type(L, arg) == LUA_TBOOLEAN) {
        t = fl_scalar_tensor(lua_toboolean(L, arg), FL_DTYPE_BOOL, like->storage->device);
    } else if (lua_type(L, arg) == LUA_TNUMBER) {
        double v = lua_tonumber(L, arg);
        t = fl_scalar_tensor(v, fl_scalar_operand_dtype(like, v), like->storage->device);
    } else {
        luaL_typeerror(L, arg, "flare.Tensor or number");
    }
    if (!t)
        fl_lua_error(L, fname);
    return t;
}

void fl_lua_register(lua_State *L, int module, int methods, const fl_lua_reg *regs)
{
    for (; regs->name; regs++) {
        for (int w = FL_REG_MODULE; w <= FL_REG_METHOD; w <<= 1) {
            if (!(regs->where & w))
                continue;
            lua_pushinteger(L, regs->upvalue);
            lua_pushcclosure(L, regs->fn, 1);
            lua_setfield(L, w == FL_REG_MODULE ? module : methods, regs->name);
        }
    }
}

/* ---------------------------------------------------------------- metamethods */

int fl_lua_index_get(lua_State *L);
int fl_lua_index_set(lua_State *L);

/* __index: methods first (upvalue 1), then properties, then indexing (x[i], x[{...}]). */
static int tensor_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
            return 1;
        lua_pop(L, 1);
        /* properties are Lua functions in the `properties` table (upvalue 2), so that the
         * stdlib can add its own (grad, grad_fn, ...) */
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) {
            lua_pushvalue(L, 1);
            lua_call(L, 1, 1);
            return 1;
        }
        return 1;   /* nil: unknown field */
    }
    return fl_lua_index_get(L);
}

static int tensor_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {   /* setters table */
            lua_pushvalue(L, 1);
            lua_pushvalue(L, 3);
            lua_call(L, 2, 0);
            return 0;
        }
        return luaL_error(L, "cannot set field '%s' of a tensor", lua_tostring(L, 2));
    }
    return fl_lua_index_set(L);
}

static const char *type_name(fl_dtype dt)
{
    static const char *names[FL_DTYPE_COUNT] = {
        "FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "ByteTensor", "BoolTensor",
    };
    return names[dt];
}

/* __tostring: the stdlib's formatter when loaded (registry field flare.format), else a
 * one-line summary. */
static int tensor_tostring(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, "flare.format") == LUA_TFUNCTION) {
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "[flare.");
    luaL_addstring(&b, type_name(t->dtype));
    luaL_addstring(&b, " of size ");
    for (int i = 0; i < t->ndim; i++) {
        if (i)
            luaL_addchar(&b, 'x');
        lua_pushinteger(L, t->shape[i]);
        luaL_addvalue(&b);
    }
    if (t->ndim == 0)
        luaL_addstring(&b, "[]");
    luaL_addchar(&b, ']');
    luaL_pushresult(&b);
    return 1;
}

static int tensor_len(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "#: a 0-dim tensor has no length");
    lua_pushinteger(L, t->shape[0]);
    return 1;
}

/* ---------------------------------------------------------------- basic methods */

static int m_size(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, t->ndim ? t->shape[fl_lua_checkdim(L, 2, t->ndim, 0)] : 1);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    if (lua_getfield(L, LUA_REGISTRYINDEX, "flare.Size") == LUA_TTABLE)
        lua_setmetatable(L, -2);
    else
        lua_pop(L, 1);
    return 1;
}

static int m_stride(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, t->ndim ? t->strides[fl_lua_checkdim(L, 2, t->ndim, 0)] : 1);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->strides[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_dim(lua_State *L)
{
    lua_pushinteger(L, fl_lua_checktensor(L, 1)->ndim);
    return 1;
}

static int m_numel(lua_State *L)
{
    lua_pushinteger(L, fl_lua_checktensor(L, 1)->numel);
    return 1;
}

static int m_dtype(lua_State *L)
{
    lua_pushstring(L, fl_dtype_name(fl_lua_checktensor(L, 1)->dtype));
    return 1;
}

static int m_type(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    lua_pushfstring(L, "flare.%s", type_name(t->dtype));
    return 1;
}

static int m_device(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->storage->device.type == FL_DEVICE_CPU)
        lua_pushliteral(L, "cpu");
    else
        lua_pushfstring(L, "cuda:%d", t->storage->device.index);
    return 1;
}

static int m_is_contiguous(lua_State *L)
{
    lua_pushboolean(L, fl_tensor_is_contiguous(fl_lua_checktensor(L, 1)));
    return 1;
}

static int m_storage_offset(lua_State *L)
{
    lua_pushinteger(L, fl_lua_checktensor(L, 1)->offset);
    return 1;
}

static void push_element(lua_State *L, fl_dtype dt, const void *base, int64_t i)
{
    if (dt == FL_DTYPE_BOOL)
        lua_pushboolean(L, ((const uint8_t *)base)[i] != 0);
    else if (fl_dtype_is_float(dt))
        lua_pushnumber(L, fl_load_f64(dt, base, i));
    else
        lua_pushinteger(L, fl_load_i64(dt, base, i));
}

/* Values read from Lua come through the host, as PyTorch's .item() does: a device tensor
 * is copied to a CPU tensor, kept in a slot pushed on the stack (so nothing leaks if a
 * later step raises). A CPU tensor is returned as is, with nothing pushed. */
static fl_tensor *on_host(lua_State *L, fl_tensor *t, const char *fname)
{
    if (!fl_is_cuda(t))
        return t;
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_move(t, FL_CPU), fname);
    return *slot;
}

static int m_item(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->numel != 1)
        return luaL_error(L, "item: expected a tensor with one element, got %I elements", (lua_Integer)t->numel);
    t = on_host(L, t, "item");
    push_element(L, t->dtype, t->storage->data, t->offset);
    return 1;
}

static void totable_dim(lua_State *L, const fl_tensor *t, int d, int64_t off)
{
    lua_createtable(L, (int)t->shape[d], 0);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        int64_t o = off + i * t->strides[d];
        if (d == t->ndim - 1)
            push_element(L, t->dtype, t->storage->data, o);
        else
            totable_dim(L, t, d + 1, o);
        lua_rawseti(L, -2, i + 1);
    }
}

static int m_totable(lua_State *L)
{
    fl_tensor *t = on_host(L, fl_lua_checktensor(L, 1), "totable");
    if (t->ndim == 0) {
        push_element(L, t->dtype, t->storage->data, t->offset);
        return 1;
    }
    luaL_checkstack(L, t->ndim + 4, "totable");
    totable_dim(L, t, 0, t->offset);
    return 1;
}

/* x:to('float64'), x:to('cuda'), x:to{dtype = 'float64', device = 'cuda'}. */
static int m_to(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_dtype dt = t->dtype;
    fl_device dev = t->storage->device;
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *name = lua_tostring(L, 2);
        int d = fl_dtype_from_name(name);
        if (d >= 0) {
            dt = (fl_dtype)d;
        } else if (strcmp(name, "cpu") == 0 || strncmp(name, "cuda", 4) == 0) {
            lua_createtable(L, 0, 1);
            lua_pushvalue(L, 2);
            lua_setfield(L, -2, "device");
            dev = fl_lua_optdevice(L, lua_gettop(L));
            lua_pop(L, 1);
        } else {
            return luaL_argerror(L, 2, lua_pushfstring(L, "expected a dtype name, 'cpu' or 'cuda', got '%s'", name));
        }
    } else if (lua_type(L, 2) == LUA_TTABLE) {
        dt = fl_lua_optdtype(L, 2, t->dtype);
        if (lua_getfield(L, 2, "device") != LUA_TNIL)
            dev = fl_lua_optdevice(L, 2);
        lua_pop(L, 1);
    } else {
        return luaL_typeerror(L, 2, "dtype or device name, or options table");
    }
    bool same_device = dev.type == t->storage->device.type && dev.index == t->storage->device.index;
    if (dt == t->dtype && same_device) {
        lua_settop(L, 1);
        return 1;
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *moved = fl_to_device(t, dev);
    fl_tensor *r = moved && dt != t->dtype ? fl_cast(moved, dt) : moved;
    if (r != moved)
        fl_tensor_release(moved);
    fl_lua_fill(L, slot, r, "to");
    return 1;
}

/* x:float(), x:double(), ...: upvalue is the dtype. */
static int m_cast(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_dtype dt = (fl_dtype)lua_tointeger(L, lua_upvalueindex(1));
    if (dt == t->dtype) {
        lua_settop(L, 1);
        return 1;
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_cast(t, dt), fl_dtype_name(dt));
    return 1;
}

static int m_clone(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_clone(t), "clone");
    return 1;
}

static int m_contiguous(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (fl_tensor_is_contiguous(t)) {
        lua_settop(L, 1);
        return 1;
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_clone(t), "contiguous");
    return 1;
}

void fl_lua_check_copy_source(lua_State *L, const fl_tensor *src, const char *fname)
{
    if (src && fl_needs_grad(src))
        luaL_error(L, "%s: the source requires grad, and an in-place copy would drop its gradient; "
                   "build the result out of place (index_copy, masked_scatter, flare.cat, flare.where), "
                   "or copy src:detach() if no gradient should flow", fname);
}

static int m_copy_(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor *src = fl_lua_checktensor(L, 2);
    fl_lua_check_copy_source(L, src, "copy_");
    if (fl_copy(t, src) < 0)
        return fl_lua_error(L, "copy_");
    lua_settop(L, 1);
    return 1;
}

static int m_fill_(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    double v = lua_type(L, 2) == LUA_TBOOLEAN ? lua_toboolean(L, 2) : luaL_checknumber(L, 2);
    if (fl_fill(t, v) < 0)
        return fl_lua_error(L, "fill_");
    lua_settop(L, 1);
    return 1;
}

static int m_zero_(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (fl_fill(t, 0) < 0)
        return fl_lua_error(L, "zero_");
    lua_settop(L, 1);
    return 1;
}


/* x:set_(y): x becomes a view of y's data (y's storage, dtype, shape and strides) and stays
 * the same object, so references to it (an optimizer's) follow; nn.Module:to moves
 * parameters with it. */
static int m_set_(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor *src = fl_lua_checktensor(L, 2);
    if (fl_tensor_set_(t, src) < 0)
        return fl_lua_error(L, "set_");
    lua_settop(L, 1);
    return 1;
}

static int f_is_tensor(lua_State *L)
{
    lua_pushboolean(L, fl_lua_totensor(L, 1) != NULL);
    return 1;
}

/* Identity of the storage, for tests and for sharing checks: x:data_ptr(). */
static int m_data_ptr(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    lua_pushinteger(L, (lua_Integer)(intptr_t)fl_tensor_data(t));
    return 1;
}

static int m_nbytes(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    lua_pushinteger(L, (lua_Integer)(t->numel * (int64_t)fl_dtype_size(t->dtype)));
    return 1;
}

static const fl_lua_reg tensor_regs[] = {
    {"size", m_size, FL_REG_METHOD, 0},
    {"stride", m_stride, FL_REG_METHOD, 0},
    {"dim", m_dim, FL_REG_METHOD, 0},
    {"nDimension", m_dim, FL_REG_METHOD, 0},
    {"numel", m_numel, FL_REG_BOTH, 0},
    {"nElement", m_numel, FL_REG_METHOD, 0},
    {"dtype", m_dtype, FL_REG_METHOD, 0},
    {"type", m_type, FL_REG_METHOD, 0},
    {"device", m_device, FL_REG_METHOD, 0},
    {"is_contiguous", m_is_contiguous, FL_REG_METHOD, 0},
    {"storage_offset", m_storage_offset, FL_REG_METHOD, 0},
    {"data_ptr", m_data_ptr, FL_REG_METHOD, 0},
    {"nbytes", m_nbytes, FL_REG_METHOD, 0},
    {"item", m_item, FL_REG_METHOD, 0},
    {"totable", m_totable, FL_REG_METHOD, 0},
    {"tolist", m_totable, FL_REG_METHOD, 0},
    {"to", m_to, FL_REG_METHOD, 0},
    {"float", m_cast, FL_REG_METHOD, FL_DTYPE_F32},
    {"double", m_cast, FL_REG_METHOD, FL_DTYPE_F64},
    {"long", m_cast, FL_REG_METHOD, FL_DTYPE_I64},
    {"int", m_cast, FL_REG_METHOD, FL_DTYPE_I32},
    {"byte", m_cast, FL_REG_METHOD, FL_DTYPE_U8},
    {"bool", m_cast, FL_REG_METHOD, FL_DTYPE_BOOL},
    {"clone", m_clone, FL_REG_BOTH, 0},
    {"contiguous", m_contiguous, FL_REG_METHOD, 0},
    {"copy_", m_copy_, FL_REG_METHOD, 0},
    {"fill_", m_fill_, FL_REG_METHOD, 0},
    {"zero_", m_zero_, FL_REG_METHOD, 0},
    {"set_", m_set_, FL_REG_METHOD, 0},
    {"is_tensor", f_is_tensor, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

/* Builds the metatable: methods live in `methods`, field getters in `properties`, field
 * setters in `setters` (all three exposed to the stdlib through the module table). */
void fl_bind_tensor(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, tensor_regs);

    lua_newtable(L);                          /* properties */
    lua_pushvalue(L, -1);
    lua_setfield(L, module, "_properties");
    lua_newtable(L);                          /* setters */
    lua_pushvalue(L, -1);
    lua_setfield(L, module, "_setters");
    int setters = lua_gettop(L), properties = setters - 1;

    lua_createtable(L, 0, 16);                /* the metatable */
    lua_pushliteral(L, "flare.Tensor");
    lua_setfield(L, -2, "__name");
    lua_pushcfunction(L, tensor_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, tensor_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tensor_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, tensor_len);
    lua_setfield(L, -2, "__len");
    lua_pushvalue(L, methods);
    lua_pushvalue(L, properties);
    lua_pushcclosure(L, tensor_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, setters);
    lua_pushcclosure(L, tensor_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &TENSOR_MT);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "flare.Tensor");   /* for luaL_checkudata users */
    lua_setfield(L, module, "_metatable");
    lua_pop(L, 2);
}
