/* view.c: Lua bindings for views and movement ops (view, reshape, transpose, ...), cat and
 * stack, and indexing ops (index_select, gather, scatter, masks, nonzero, index_*_).
 * Dims and index values are 1-based here; the engine gets them 0-based or with base 1. */
#include "lua_tensor.h"

#include <string.h>

/* ---------------------------------------------------------------- argument readers */

/* Integers given as a table (or flare.Size) at arg, or as the arguments from arg on.
 * Returns how many; *next is the first argument after them. */
static int read_ints(lua_State *L, int arg, int64_t *out, int max, const char *what, int *next)
{
    int n = 0, isnum;
    if (lua_type(L, arg) == LUA_TTABLE && !fl_lua_totensor(L, arg)) {
        lua_Integer len = luaL_len(L, arg);
        if (len > max)
            luaL_argerror(L, arg, lua_pushfstring(L, "expected at most %d %s, got %I", max, what, len));
        for (; n < len; n++) {
            lua_rawgeti(L, arg, n + 1);
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            if (!isnum)
                luaL_argerror(L, arg, lua_pushfstring(L, "entry %d of the %s table is not an integer (%s)",
                                                      n + 1, what, luaL_typename(L, -1)));
            out[n] = (int64_t)v;
            lua_pop(L, 1);
        }
        if (next)
            *next = arg + 1;
        return n;
    }
    while (lua_type(L, arg + n) == LUA_TNUMBER) {
        if (n == max)
            luaL_argerror(L, arg + n, lua_pushfstring(L, "expected at most %d %s", max, what));
        out[n] = fl_lua_checkint(L, arg + n);
        n++;
    }
    if (!next && !lua_isnoneornil(L, arg + n))
        luaL_typeerror(L, arg + n, lua_pushfstring(L, "integer (%s) or table of them", what));
    if (next)
        *next = arg + n;
    return n;
}

/* A 1-based dim value (negative from the end) as 0-based, or a "bad argument" error. */
static int todim(lua_State *L, int arg, int64_t d, int ndim)
{
    int64_t n = ndim ? ndim : 1;
    if (d == 0 || d > n || d < -n)
        luaL_argerror(L, arg, lua_pushfstring(L, "dimension out of range (expected 1 to %d, or -%d to -1; dims are 1-based), got %I",
                                              (int)n, (int)n, (lua_Integer)d));
    return (int)(d > 0 ? d - 1 : n + d);
}

static int optdim(lua_State *L, int arg, int ndim, int def)
{
    return lua_isnoneornil(L, arg) ? def : fl_lua_checkdim(L, arg, ndim, 0);
}

/* A 1-based position in a dim of `size` (negative from the end), 0-based. */
static int64_t checkpos(lua_State *L, int arg, int64_t size, const char *what)
{
    int64_t i = fl_lua_checkint(L, arg);
    if (i == 0 || i < -size)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s %I is out of range for a dimension of size %I (indices are 1-based; negative ones count from the end)",
                                              what, (lua_Integer)i, (lua_Integer)size));
    return i > 0 ? i - 1 : size + i;
}

static int64_t checknonneg(lua_State *L, int arg, const char *what)
{
    int64_t v = fl_lua_checkint(L, arg);
    if (v < 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "expected a non-negative %s, got %I", what, (lua_Integer)v));
    return v;
}

/* A value to write: a number or boolean becomes a 0-dim tensor of t's dtype (made by the
 * caller after all arguments are checked, see make_value), a tensor is used as is. */
static void checkvalue(lua_State *L, int arg)
{
    int ty = lua_type(L, arg);
    if (ty != LUA_TNUMBER && ty != LUA_TBOOLEAN && !fl_lua_totensor(L, arg))
        luaL_typeerror(L, arg, "flare.Tensor or number");
}

/* Returns a new reference (release it) or NULL with the engine's message set. */
static fl_tensor *make_value(lua_State *L, int arg, const fl_tensor *t)
{
    fl_tensor *v = fl_lua_totensor(L, arg);
    if (v)
        return fl_tensor_retain(v);
    double x = lua_type(L, arg) == LUA_TBOOLEAN ? lua_toboolean(L, arg) : lua_tonumber(L, arg);
    return fl_scalar_tensor(x, t->dtype, t->storage->device);
}

/* ---------------------------------------------------------------- view, reshape, expand */

static int m_view(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int64_t shape[FL_MAX_DIMS];
    int n = read_ints(L, 2, shape, FL_MAX_DIMS, "sizes", NULL);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_view(t, n, shape), "view");
    return 1;
}

static int m_reshape(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int64_t shape[FL_MAX_DIMS];
    int n = read_ints(L, 2, shape, FL_MAX_DIMS, "sizes", NULL);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_reshape(t, n, shape), "reshape");
    return 1;
}

/* x:view_as(y), x:reshape_as(y), x:expand_as(y): upvalue 0, 1, 2. */
static int m_as(lua_State *L)
{
    static const char *names[] = {"view_as", "reshape_as", "expand_as"};
    int which = (int)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor *t = fl_lua_checktensor(L, 1), *y = fl_lua_checktensor(L, 2);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *r = which == 0 ? fl_view(t, y->ndim, y->shape)
                 : which == 1 ? fl_reshape(t, y->ndim, y->shape)
                              : fl_expand(t, y->ndim, y->shape);
    fl_lua_fill(L, slot, r, names[which]);
    return 1;
}

static int m_expand(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int64_t shape[FL_MAX_DIMS];
    int n = read_ints(L, 2, shape, FL_MAX_DIMS, "sizes", NULL);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_expand(t, n, shape), "expand");
    return 1;
}

static int m_flatten(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int start = optdim(L, 2, t->ndim, 0);
    int end = optdim(L, 3, t->ndim, t->ndim ? t->ndim - 1 : 0);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_flatten(t, start, end), "flatten");
    return 1;
}

/* ---------------------------------------------------------------- dims */

static int m_transpose(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int d1 = fl_lua_checkdim(L, 2, t->ndim, 0), d2 = fl_lua_checkdim(L, 3, t->ndim, 0);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_transpose(t, d1, d2), "transpose");
    return 1;
}

static int m_t(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->ndim > 2)
        return luaL_error(L, "t: expected a tensor with at most 2 dimensions, got %d (use transpose(d1, d2))", t->ndim);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_transpose(t, 0, t->ndim == 2 ? 1 : 0), "t");
    return 1;
}

static int m_permute(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int64_t raw[FL_MAX_DIMS];
    int dims[FL_MAX_DIMS];
    int n = read_ints(L, 2, raw, FL_MAX_DIMS, "dims", NULL);
    if (n != t->ndim)
        return luaL_argerror(L, 2, lua_pushfstring(L, "expected %d dims (one per dimension of the tensor), got %d", t->ndim, n));
    for (int i = 0; i < n; i++)
        dims[i] = todim(L, lua_type(L, 2) == LUA_TTABLE ? 2 : 2 + i, raw[i], t->ndim);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_permute(t, dims), "permute");
    return 1;
}

static int m_squeeze(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int dim = optdim(L, 2, t->ndim, -1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_squeeze(t, dim), "squeeze");
    return 1;
}

static int m_unsqueeze(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int dim = fl_lua_checkdim(L, 2, t->ndim, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_unsqueeze(t, dim), "unsqueeze");
    return 1;
}

/* ---------------------------------------------------------------- narrow, select, unfold */

static int m_narrow(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "narrow: a 0-dim tensor cannot be narrowed");
    int dim = fl_lua_checkdim(L, 2, t->ndim, 0);
    int64_t start = checkpos(L, 3, t->shape[dim], "start");
    int64_t length = checknonneg(L, 4, "length");
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_narrow(t, dim, start, length), "narrow");
    return 1;
}

static int m_select(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "select: a 0-dim tensor has no dimension to select from");
    int dim = fl_lua_checkdim(L, 2, t->ndim, 0);
    int64_t i = checkpos(L, 3, t->shape[dim], "index");
    if (i >= t->shape[dim])
        return luaL_argerror(L, 3, lua_pushfstring(L, "index %I is out of range for dimension %d of size %I",
                                                  (lua_Integer)i + 1, dim + 1, (lua_Integer)t->shape[dim]));
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_select(t, dim, i), "select");
    return 1;
}

static int m_unfold(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int dim = fl_lua_checkdim(L, 2, t->ndim, 0);
    int64_t size = checknonneg(L, 3, "size");
    int64_t step = fl_lua_checkint(L, 4);
    if (step <= 0)
        return luaL_argerror(L, 4, lua_pushfstring(L, "expected a positive step, got %I", (lua_Integer)step));
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_unfold(t, dim, size, step), "unfold");
    return 1;
}

/* ---------------------------------------------------------------- split, chunk, unbind */

/* Pushes a table of narrow views of t along dim, with the given piece sizes. */
static void push_pieces(lua_State *L, fl_tensor *t, int dim, int64_t count, int64_t each,
                        const int64_t *sizes, const char *fname)
{
    if (count > 1 << 24)
        luaL_error(L, "%s: %I pieces is too many", fname, (lua_Integer)count);
    lua_createtable(L, (int)count, 0);
    int64_t at = 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t len = sizes ? sizes[i] : (each > t->shape[dim] - at ? t->shape[dim] - at : each);
        fl_tensor **slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_narrow(t, dim, at, len), fname);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        at += len;
    }
}

static int m_split(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "split: a 0-dim tensor cannot be split");
    int dim = optdim(L, 3, t->ndim, 0);
    int64_t size = t->shape[dim];
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, 2);
        if (n < 1 || n > (1 << 24))
            return luaL_argerror(L, 2, lua_pushfstring(L, "expected a non-empty list of sizes, got %I entries", n));
        int64_t *sizes = lua_newuserdatauv(L, (size_t)n * sizeof *sizes, 0);   /* freed by the GC */
        int64_t sum = 0;
        for (lua_Integer i = 0; i < n; i++) {
            int isnum;
            lua_rawgeti(L, 2, i + 1);
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            lua_pop(L, 1);
            if (!isnum || v < 0)
                return luaL_argerror(L, 2, lua_pushfstring(L, "entry %I of the sizes is not a non-negative integer", i + 1));
            if (v > size - sum)
                return luaL_argerror(L, 2, lua_pushfstring(L, "split sizes must sum to the size %I of dimension %d, got more",
                                                          (lua_Integer)size, dim + 1));
            sizes[i] = v;
            sum += v;
        }
        if (sum != size)
            return luaL_argerror(L, 2, lua_pushfstring(L, "split sizes must sum to the size %I of dimension %d, got %I",
                                                      (lua_Integer)size, dim + 1, (lua_Integer)sum));
        push_pieces(L, t, dim, n, 0, sizes, "split");
        return 1;
    }
    int64_t each = fl_lua_checkint(L, 2);
    if (each < 0 || (each == 0 && size != 0))
        return luaL_argerror(L, 2, lua_pushfstring(L, "expected a positive split size, got %I", (lua_Integer)each));
    int64_t count = size == 0 ? 1 : (size - 1) / each + 1;
    push_pieces(L, t, dim, count, each, NULL, "split");
    return 1;
}

static int m_chunk(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "chunk: a 0-dim tensor cannot be split");
    int64_t chunks = fl_lua_checkint(L, 2);
    if (chunks <= 0)
        return luaL_argerror(L, 2, lua_pushfstring(L, "expected a positive number of chunks, got %I", (lua_Integer)chunks));
    int dim = optdim(L, 3, t->ndim, 0);
    int64_t size = t->shape[dim];
    int64_t each = size / chunks + (size % chunks != 0);
    int64_t count = each == 0 ? chunks : (size - 1) / each + 1;   /* size 0: n empty pieces */
    push_pieces(L, t, dim, count, each, NULL, "chunk");
    return 1;
}

static int m_unbind(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "unbind: a 0-dim tensor cannot be unbound");
    int dim = optdim(L, 2, t->ndim, 0);
    lua_createtable(L, (int)(t->shape[dim] > 1 << 20 ? 1 << 20 : t->shape[dim]), 0);
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        fl_tensor **slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_select(t, dim, i), "unbind");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* ---------------------------------------------------------------- cat and stack */

/* The tensors in the list at arg 1, in a buffer the GC frees. */
static const fl_tensor **read_list(lua_State *L, int *n)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);                  /* the buffer goes to 3, after the optional dim */
    lua_Integer len = luaL_len(L, 1);
    if (len < 1 || len > (1 << 24))
        luaL_argerror(L, 1, lua_pushfstring(L, "expected a non-empty table of tensors, got %I entries", len));
    const fl_tensor **ts = lua_newuserdatauv(L, (size_t)len * sizeof *ts, 0);
    for (lua_Integer i = 0; i < len; i++) {
        lua_rawgeti(L, 1, i + 1);
        ts[i] = fl_lua_totensor(L, -1);
        if (!ts[i])
            luaL_argerror(L, 1, lua_pushfstring(L, "entry %I is a %s, expected flare.Tensor", i + 1, luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    *n = (int)len;
    return ts;
}

static int f_cat(lua_State *L)
{
    int n;
    const fl_tensor **ts = read_list(L, &n);
    /* dims count against the first tensor that takes part (cat skips 1-d empty ones) */
    int ref = 0;
    while (ref < n - 1 && ts[ref]->ndim == 1 && ts[ref]->shape[0] == 0)
        ref++;
    int dim = optdim(L, 2, ts[ref]->ndim, 0);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_cat(n, ts, dim), "cat");
    return 1;
}

static int f_stack(lua_State *L)
{
    int n;
    const fl_tensor **ts = read_list(L, &n);
    int dim = lua_isnoneornil(L, 2) ? 0 : fl_lua_checkdim(L, 2, ts[0]->ndim, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_stack(n, ts, dim), "stack");
    return 1;
}

/* ---------------------------------------------------------------- index_select, gather, scatter */

static int m_index_select(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int dim = fl_lua_checkdim(L, 2, t->ndim, 0);
    fl_tensor *idx = fl_lua_checktensor(L, 3);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_index_select(t, dim, idx, 1), "index_select");
    return 1;
}

static int m_gather(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int dim = fl_lua_checkdim(L, 2, t->ndim, 0);
    fl_tensor *idx = fl_lua_checktensor(L, 3);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_gather(t, dim, idx, 1), "gather");
    return 1;
}

/* scatter, scatter_add (upvalue: mode) and their `_` forms (upvalue + 2). */
static int m_scatter(lua_State *L)
{
    static const char *names[] = {"scatter", "scatter_add", "scatter_", "scatter_add_"};
    int which = (int)lua_tointeger(L, lua_upvalueindex(1));
    fl_scatter_mode mode = (fl_scatter_mode)(which & 1);
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int dim = fl_lua_checkdim(L, 2, t->ndim, 0);
    fl_tensor *idx = fl_lua_checktensor(L, 3);
    checkvalue(L, 4);
    fl_tensor **slot = which < 2 ? fl_lua_newslot(L) : NULL;
    fl_tensor *src = make_value(L, 4, t);
    if (!src)
        return fl_lua_error(L, names[which]);
    if (slot) {
        fl_tensor *r = fl_scatter(t, dim, idx, src, mode, 1);
        fl_tensor_release(src);
        fl_lua_fill(L, slot, r, names[which]);
        return 1;
    }
    int rc = fl_scatter_(t, dim, idx, src, mode, 1);
    fl_tensor_release(src);
    if (rc < 0)
        return fl_lua_error(L, names[which]);
    lua_settop(L, 1);
    return 1;
}

/* index_copy, index_add, index_fill (upvalue bits: 1 add, 2 fill, 4 in place).
 * index_add takes an optional alpha: source * alpha is added. */
static int m_index_update(lua_State *L)
{
    static const char *names[] = {"index_copy", "index_add", "index_fill", "",
                                  "index_copy_", "index_add_", "index_fill_", ""};
    int which = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *fname = names[which];
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int dim = fl_lua_checkdim(L, 2, t->ndim, 0);
    fl_tensor *idx = fl_lua_checktensor(L, 3);
    if (which & 2)
        checkvalue(L, 4);
    else
        fl_lua_checktensor(L, 4);
    double alpha = (which & 1) ? luaL_optnumber(L, 5, 1) : 1;
    fl_tensor **slot = (which & 4) ? NULL : fl_lua_newslot(L);
    fl_tensor *src = make_value(L, 4, t);
    if (src && alpha != 1) {
        fl_tensor *scaled = fl_binary_scalar(FL_BINOP_MUL, src, alpha, false);
        fl_tensor_release(src);
        src = scaled;
    }
    if (!src)
        return fl_lua_error(L, fname);
    fl_scatter_mode mode = (which & 1) ? FL_SCATTER_ADD : FL_SCATTER_SET;
    if (slot) {
        fl_tensor *r = fl_index_update(t, dim, idx, src, mode, 1);
        fl_tensor_release(src);
        fl_lua_fill(L, slot, r, fname);
        return 1;
    }
    int rc = fl_index_update_(t, dim, idx, src, mode, 1);
    fl_tensor_release(src);
    if (rc < 0)
        return fl_lua_error(L, fname);
    lua_settop(L, 1);
    return 1;
}

/* ---------------------------------------------------------------- masks, nonzero */

static int m_masked_fill(lua_State *L)
{
    int inplace = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *fname = inplace ? "masked_fill_" : "masked_fill";
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor *mask = fl_lua_checktensor(L, 2);
    checkvalue(L, 3);
    fl_tensor **slot = inplace ? NULL : fl_lua_newslot(L);
    fl_tensor *v = make_value(L, 3, t);
    if (!v)
        return fl_lua_error(L, fname);
    if (slot) {
        fl_tensor *r = fl_masked_fill(t, mask, v);
        fl_tensor_release(v);
        fl_lua_fill(L, slot, r, fname);
        return 1;
    }
    int rc = fl_masked_fill_(t, mask, v);
    fl_tensor_release(v);
    if (rc < 0)
        return fl_lua_error(L, fname);
    lua_settop(L, 1);
    return 1;
}

static int m_masked_select(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor *mask = fl_lua_checktensor(L, 2);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_masked_select(t, mask), "masked_select");
    return 1;
}

static int m_masked_scatter(lua_State *L)
{
    int inplace = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *fname = inplace ? "masked_scatter_" : "masked_scatter";
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor *mask = fl_lua_checktensor(L, 2);
    fl_tensor *src = fl_lua_checktensor(L, 3);
    if (inplace) {
        if (fl_masked_scatter_(t, mask, src) < 0)
            return fl_lua_error(L, fname);
        lua_settop(L, 1);
        return 1;
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_masked_scatter(t, mask, src), fname);
    return 1;
}

static int m_nonzero(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_nonzero(t, 1), "nonzero");
    return 1;
}

static const fl_lua_reg view_regs[] = {
    {"view", m_view, FL_REG_METHOD, 0},
    {"reshape", m_reshape, FL_REG_BOTH, 0},
    {"view_as", m_as, FL_REG_METHOD, 0},
    {"reshape_as", m_as, FL_REG_METHOD, 1},
    {"expand_as", m_as, FL_REG_METHOD, 2},
    {"expand", m_expand, FL_REG_METHOD, 0},
    {"flatten", m_flatten, FL_REG_BOTH, 0},
    {"transpose", m_transpose, FL_REG_BOTH, 0},
    {"t", m_t, FL_REG_BOTH, 0},
    {"permute", m_permute, FL_REG_BOTH, 0},
    {"squeeze", m_squeeze, FL_REG_BOTH, 0},
    {"unsqueeze", m_unsqueeze, FL_REG_BOTH, 0},
    {"narrow", m_narrow, FL_REG_BOTH, 0},
    {"select", m_select, FL_REG_BOTH, 0},
    {"unfold", m_unfold, FL_REG_METHOD, 0},
    {"split", m_split, FL_REG_BOTH, 0},
    {"chunk", m_chunk, FL_REG_BOTH, 0},
    {"unbind", m_unbind, FL_REG_BOTH, 0},
    {"cat", f_cat, FL_REG_MODULE, 0},
    {"concat", f_cat, FL_REG_MODULE, 0},
    {"stack", f_stack, FL_REG_MODULE, 0},
    {"index_select", m_index_select, FL_REG_BOTH, 0},
    {"gather", m_gather, FL_REG_BOTH, 0},
    {"scatter", m_scatter, FL_REG_BOTH, 0},
    {"scatter_add", m_scatter, FL_REG_BOTH, 1},
    {"scatter_", m_scatter, FL_REG_METHOD, 2},
    {"scatter_add_", m_scatter, FL_REG_METHOD, 3},
    {"index_copy", m_index_update, FL_REG_BOTH, 0},
    {"index_add", m_index_update, FL_REG_BOTH, 1},
    {"index_fill", m_index_update, FL_REG_BOTH, 2},
    {"index_copy_", m_index_update, FL_REG_METHOD, 4},
    {"index_add_", m_index_update, FL_REG_METHOD, 5},
    {"index_fill_", m_index_update, FL_REG_METHOD, 6},
    {"masked_fill", m_masked_fill, FL_REG_BOTH, 0},
    {"masked_fill_", m_masked_fill, FL_REG_METHOD, 1},
    {"masked_select", m_masked_select, FL_REG_BOTH, 0},
    {"masked_scatter", m_masked_scatter, FL_REG_BOTH, 0},
    {"masked_scatter_", m_masked_scatter, FL_REG_METHOD, 1},
    {"nonzero", m_nonzero, FL_REG_BOTH, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_view(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, view_regs);
}
