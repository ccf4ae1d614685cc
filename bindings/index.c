/* index.c: Lua indexing syntax, x[key] and x[key] = v, 1-based as in Torch7:
 *   x[i]                  selects along the first dim (negative counts from the end)
 *   x[{ 2, {1, 3}, {} }]  one entry per leading dim: an integer selects, {first, last} or
 *                         {first, last, step} is an inclusive range, {first} is {first, first},
 *                         {} is the whole dim; missing trailing entries mean whole dims
 *   x[mask]               a bool mask over the leading dims (masked_select)
 *   x[idx]                an int64/int32 tensor of indices along the first dim
 * Assignments write through the same forms; v is a tensor (broadcast) or a number. */
#include "lua_tensor.h"

static int64_t checkindex(lua_State *L, int arg, int64_t size)
{
    int64_t i = fl_lua_checkint(L, arg);
    if (i == 0 || i > size || i < -size)
        luaL_error(L, "index %I is out of range for a dimension of size %I (indices are 1-based; negative ones count from the end)",
                   (lua_Integer)i, (lua_Integer)size);
    return i > 0 ? i - 1 : size + i;
}

/* ---------------------------------------------------------------- x[{...}] */

/* Reads integer `pos` of the range table on top of the stack (nil: absent). */
static int range_int(lua_State *L, int entry, int pos, int64_t *out)
{
    int isnum;
    if (lua_rawgeti(L, -1, pos) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum)
        luaL_error(L, "index: entry %d of the index table: range item %d must be an integer, got %s",
                   entry, pos, luaL_typename(L, -1));
    lua_pop(L, 1);
    *out = (int64_t)v;
    return 1;
}

/* A 1-based position (negative from the end) as 0-based. */
static int64_t range_pos(lua_State *L, int entry, int64_t v, int64_t size, const char *what)
{
    if (v == 0 || v > size || v < -size)
        luaL_error(L, "index: entry %d of the index table: range %s %I is out of range for a dimension of size %I (indices are 1-based; negative ones count from the end)",
                   entry, what, (lua_Integer)v, (lua_Integer)size);
    return v > 0 ? v - 1 : size + v;
}

/* Turns the table at arg into slice specs for t; raises on any bad entry (before the engine
 * allocates anything). Returns the number of specs. */
static int read_slices(lua_State *L, int arg, const fl_tensor *t, fl_slice_spec *specs)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
    if (n > t->ndim)
        luaL_error(L, "index: too many entries (%I) in the index table for a %d-dim tensor", n, t->ndim);
    luaL_checkstack(L, 4, "index");
    for (int i = 0; i < (int)n; i++) {
        fl_slice_spec *s = &specs[i];
        int64_t size = t->shape[i];
        int ty = lua_rawgeti(L, arg, i + 1);
        if (ty == LUA_TNUMBER) {
            int isnum;
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            if (!isnum)
                luaL_error(L, "index: entry %d of the index table must be an integer, got %f", i + 1, lua_tonumber(L, -1));
            if (v == 0 || v > size || v < -size)
                luaL_error(L, "index: entry %d of the index table: index %I is out of range for dimension %d of size %I (indices are 1-based; negative ones count from the end)",
                           i + 1, v, i + 1, (lua_Integer)size);
            s->select = true;
            s->start = v > 0 ? v - 1 : size + v;
            s->stop = s->start + 1;
            s->step = 1;
        } else if (ty == LUA_TTABLE && !fl_lua_totensor(L, -1)) {
            int64_t first = 1, last = -1, step = 1;
            int has_first = range_int(L, i + 1, 1, &first);
            int has_last = range_int(L, i + 1, 2, &last);
            range_int(L, i + 1, 3, &step);
            if (!has_first && has_last)
                luaL_error(L, "index: entry %d of the index table: a range needs its first index", i + 1);
            if (step <= 0)
                luaL_error(L, "index: entry %d of the index table: range step must be positive, got %I", i + 1, (lua_Integer)step);
            s->select = false;
            s->step = step;
            if (!has_first) {                      /* {}: the whole dim */
                s->start = 0;
                s->stop = size;
            } else if (has_last && first != INT64_MIN && last == first - 1) {
                /* {i, i - 1}: empty (a loop's last, empty step); i may be one past the end */
                int64_t start = first > 0 ? first - 1 : size + first;
                if (first == 0 || start < 0 || start > size)
                    luaL_error(L, "index: entry %d of the index table: empty range start %I is out of range for a dimension of size %I",
                               i + 1, (lua_Integer)first, (lua_Integer)size);
                s->start = s->stop = start;
            } else {
                if (!has_last)
                    last = first;                  /* {i}: a range of one */
                s->start = range_pos(L, i + 1, first, size, "start");
                s->stop = range_pos(L, i + 1, last, size, "end") + 1;
                if (s->stop < s->start)
                    luaL_error(L, "index: entry %d of the index table: range %I to %I goes backwards (ranges go forward; "
                               "{i, i - 1} is the empty range)", i + 1, (lua_Integer)first, (lua_Integer)last);
            }
        } else {
            luaL_error(L, "index: entry %d of the index table must be an integer, a {first, last[, step]} range or {}, got %s",
                       i + 1, fl_lua_totensor(L, -1) ? "a tensor (index with a tensor alone: x[idx] or x[mask])"
                                                     : luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    return (int)n;
}

/* Pushes the view x[{...}] (the table at arg 2). */
static fl_tensor *push_slices(lua_State *L, fl_tensor *t)
{
    fl_slice_spec specs[FL_MAX_DIMS];
    int n = read_slices(L, 2, t, specs);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_index_slices(t, n, specs), "index");
    return *slot;
}

/* ---------------------------------------------------------------- get and set */

static int index_by_tensor(lua_State *L, fl_tensor *t, fl_tensor *key)
{
    fl_tensor **slot = fl_lua_newslot(L);
    if (key->dtype == FL_DTYPE_BOOL)
        fl_lua_fill(L, slot, fl_index_mask(t, key), "index");
    else
        fl_lua_fill(L, slot, fl_index_rows(t, key, 1), "index");
    return 1;
}

static void check_key_tensor(lua_State *L, fl_tensor *key)
{
    if (key->dtype != FL_DTYPE_BOOL && key->dtype != FL_DTYPE_I64 && key->dtype != FL_DTYPE_I32)
        luaL_error(L, "index: a tensor index must be a bool mask or int64/int32 indices, got %s%s",
                   fl_dtype_name(key->dtype), key->dtype == FL_DTYPE_U8 ? " (use mask:bool() for a mask)" : "");
}

int fl_lua_index_get(lua_State *L);
int fl_lua_index_get(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int ty = lua_type(L, 2);
    if (ty == LUA_TNUMBER) {
        if (t->ndim == 0)
            return luaL_error(L, "index: a 0-dim tensor cannot be indexed (use x:item())");
        int64_t i = checkindex(L, 2, t->shape[0]);
        fl_tensor **slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_select(t, 0, i), "index");
        return 1;
    }
    fl_tensor *key = fl_lua_totensor(L, 2);
    if (key) {
        check_key_tensor(L, key);
        return index_by_tensor(L, t, key);
    }
    if (ty == LUA_TTABLE) {
        push_slices(L, t);
        return 1;
    }
    return luaL_typeerror(L, 2, "integer, index table, tensor index or method name");
}

/* Writes the value at arg 3 into the view on top of the stack. */
static int assign(lua_State *L, fl_tensor *dst)
{
    fl_tensor *src = fl_lua_totensor(L, 3);
    int rc;
    fl_lua_check_copy_source(L, src, "index assignment");
    if (src)
        rc = fl_copy(dst, src);
    else if (lua_type(L, 3) == LUA_TNUMBER || lua_type(L, 3) == LUA_TBOOLEAN)
        rc = fl_fill(dst, lua_type(L, 3) == LUA_TBOOLEAN ? lua_toboolean(L, 3) : lua_tonumber(L, 3));
    else
        return luaL_typeerror(L, 3, "flare.Tensor or number");
    if (rc < 0)
        return fl_lua_error(L, "index assignment");
    return 0;
}

static int assign_by_tensor(lua_State *L, fl_tensor *t, fl_tensor *key)
{
    fl_tensor *v = fl_lua_totensor(L, 3);
    int ty = lua_type(L, 3);
    if (!v && ty != LUA_TNUMBER && ty != LUA_TBOOLEAN)
        return luaL_typeerror(L, 3, "flare.Tensor or number");
    fl_lua_check_copy_source(L, v, "index assignment");
    if (v)
        v = fl_tensor_retain(v);
    else
        v = fl_scalar_tensor(ty == LUA_TBOOLEAN ? lua_toboolean(L, 3) : lua_tonumber(L, 3), t->dtype, t->storage->device);
    if (!v)
        return fl_lua_error(L, "index assignment");
    int rc = key->dtype == FL_DTYPE_BOOL ? fl_index_put_mask_(t, key, v) : fl_index_put_rows_(t, key, v, 1);
    fl_tensor_release(v);
    if (rc < 0)
        return fl_lua_error(L, "index assignment");
    return 0;
}

int fl_lua_index_set(lua_State *L);
int fl_lua_index_set(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int ty = lua_type(L, 2);
    if (ty == LUA_TNUMBER) {
        if (t->ndim == 0)
            return luaL_error(L, "index: a 0-dim tensor cannot be indexed (use x:fill_(v))");
        int64_t i = checkindex(L, 2, t->shape[0]);
        fl_tensor **slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_select(t, 0, i), "index");
        return assign(L, *slot);
    }
    fl_tensor *key = fl_lua_totensor(L, 2);
    if (key) {
        check_key_tensor(L, key);
        return assign_by_tensor(L, t, key);
    }
    if (ty == LUA_TTABLE)
        return assign(L, push_slices(L, t));
    return luaL_typeerror(L, 2, "integer, index table or tensor index");
}
