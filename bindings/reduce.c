/* reduce.c: Lua bindings for reductions, cumulative ops, sorting.
 *
 * Call forms (self may also be passed to the module function: flare.sum(x, 2)):
 *   x:sum()  x:sum(2)  x:sum(2, true)  x:sum({1, 2})  x:sum{dim = 2, keepdim = true}
 * Dims are 1-based, negative from the end; returned indices are 1-based int64. */
#include "lua_tensor.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- argument reading */

typedef struct {
    int ndims;             /* 0: every dim */
    int dims[FL_MAX_DIMS];
    bool keepdim;
    int opts;              /* stack index of the options table, or 0 */
} red_args;

/* A dim value d (from a table at arg) checked against ndim; returned 0-based. */
static int dim_value(lua_State *L, int arg, int ndim, const char *where)
{
    int isint;
    lua_Integer d = lua_tointegerx(L, -1, &isint);
    if (!isint)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s: expected integer dims, got %s", where, luaL_typename(L, -1)));
    int n = ndim;
    lua_pop(L, 1);
    if (n == 0 && (d == 1 || d == -1))
        return 0;
    if (d == 0 || d > n || d < -n)
        luaL_argerror(L, arg, lua_pushfstring(L, "dimension out of range (expected 1 to %d, or -%d to -1; dims are 1-based), got %I",
                                              n, n, d));
    return (int)(d > 0 ? d - 1 : n + d);
}

/* The value on top of the stack (a number or a list of numbers) as dims; pops it. */
static void read_dim_value(lua_State *L, int arg, const fl_tensor *t, bool multi, red_args *r,
                           const char *where)
{
    if (lua_type(L, -1) == LUA_TNUMBER) {
        r->dims[0] = dim_value(L, arg, t->ndim, where);
        r->ndims = 1;
        return;
    }
    if (lua_type(L, -1) != LUA_TTABLE || !multi)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s: expected %s, got %s", where,
                                              multi ? "a dim or a list of dims" : "a dim",
                                              luaL_typename(L, -1)));
    lua_Integer n = luaL_len(L, -1);
    if (n > FL_MAX_DIMS)
        luaL_argerror(L, arg, lua_pushfstring(L, "too many dims (%I)", n));
    int list = lua_gettop(L);
    r->ndims = 0;
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, list, i);
        int d = dim_value(L, arg, t->ndim, where);
        for (int k = 0; k < r->ndims; k++)
            if (r->dims[k] == d)
                luaL_argerror(L, arg, lua_pushfstring(L, "dim %d appears more than once", d + 1));
        r->dims[r->ndims++] = d;
    }
    lua_pop(L, 1);
    if (n == 0)
        r->ndims = 0;   /* {} means every dim, as PyTorch's dim=() */
}

/* Reads [dim | {dims}] [keepdim] [options] starting at arg. Options may hold dim and
 * keepdim; other fields are read by the caller from r->opts. */
static void read_dims(lua_State *L, int arg, const fl_tensor *t, bool multi, red_args *r)
{
    memset(r, 0, sizeof *r);
    int i = arg;
    if (lua_type(L, i) == LUA_TNUMBER || (lua_type(L, i) == LUA_TTABLE && !fl_lua_isoptions(L, i))) {
        lua_pushvalue(L, i);
        read_dim_value(L, i, t, multi, r, "dim");
        i++;
    } else if (lua_isnil(L, i) && !lua_isnone(L, i + 1)) {
        i++;   /* nil: every dim, then keepdim */
    }
    if (lua_type(L, i) == LUA_TBOOLEAN) {
        r->keepdim = lua_toboolean(L, i);
        i++;
    }
    if (fl_lua_isoptions(L, i)) {
        r->opts = i;
        if (lua_getfield(L, i, "dim") != LUA_TNIL)
            read_dim_value(L, i, t, multi, r, "option 'dim'");
        else
            lua_pop(L, 1);
        if (lua_getfield(L, i, "keepdim") != LUA_TNIL) {
            if (lua_type(L, -1) != LUA_TBOOLEAN)
                luaL_argerror(L, i, lua_pushfstring(L, "option 'keepdim': expected a boolean, got %s", luaL_typename(L, -1)));
            r->keepdim = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
        i++;
    }
    if (!lua_isnoneornil(L, i))
        luaL_argerror(L, i, lua_pushfstring(L, "expected %s, keepdim (boolean) or an options table, got %s",
                                            multi ? "a dim, a list of dims" : "a dim", luaL_typename(L, i)));
}

/* Field `name` of the options table at idx as a boolean (def if absent). */
static bool opt_bool(lua_State *L, int idx, const char *name, bool def)
{
    if (!idx)
        return def;
    bool v = def;
    if (lua_getfield(L, idx, name) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': expected a boolean, got %s", name, luaL_typename(L, -1)));
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* t, or t converted to the options' dtype (kept alive on the stack as a tensor). */
static fl_tensor *with_dtype(lua_State *L, fl_tensor *t, int opts, const char *fname)
{
    fl_dtype dt = fl_lua_optdtype(L, opts, t->dtype);
    if (dt == t->dtype)
        return t;
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_cast(t, dt), fname);
    return *slot;
}

/* ---------------------------------------------------------------- plain reductions */

enum { R_SUM, R_MEAN, R_PROD, R_AMAX, R_AMIN, R_ALL, R_ANY, R_LOGSUMEXP };
static const char *red_names[] = {"sum", "mean", "prod", "amax", "amin", "all", "any", "logsumexp"};

static fl_tensor *reduce_by(int which, const fl_tensor *t, const red_args *r)
{
    switch (which) {
    case R_SUM: return fl_sum(t, r->ndims, r->dims, r->keepdim);
    case R_MEAN: return fl_mean(t, r->ndims, r->dims, r->keepdim);
    case R_PROD: return fl_prod(t, r->ndims, r->dims, r->keepdim);
    case R_AMAX: return fl_amax(t, r->ndims, r->dims, r->keepdim);
    case R_AMIN: return fl_amin(t, r->ndims, r->dims, r->keepdim);
    case R_ALL: return fl_all(t, r->ndims, r->dims, r->keepdim);
    case R_ANY: return fl_any(t, r->ndims, r->dims, r->keepdim);
    default: return fl_logsumexp(t, r->ndims, r->dims, r->keepdim);
    }
}

/* x:sum(...), x:mean(...), ...: the upvalue picks the reduction. */
static int f_reduce(lua_State *L)
{
    int which = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = red_names[which];
    fl_tensor *t = fl_lua_checktensor(L, 1);
    red_args r;
    read_dims(L, 2, t, true, &r);
    if (which == R_SUM || which == R_MEAN || which == R_PROD)
        t = with_dtype(L, t, r.opts, name);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, reduce_by(which, t, &r), name);
    return 1;
}

/* x:var(), x:std(): [dims] [keepdim] [{unbiased = false} or {correction = n}]. */
static int f_var(lua_State *L)
{
    bool root = lua_tointeger(L, lua_upvalueindex(1)) == 1;
    const char *name = root ? "std" : "var";
    fl_tensor *t = fl_lua_checktensor(L, 1);
    red_args r;
    read_dims(L, 2, t, true, &r);
    double correction = opt_bool(L, r.opts, "unbiased", true) ? 1 : 0;
    if (r.opts && lua_getfield(L, r.opts, "correction") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_argerror(L, r.opts, lua_pushfstring(L, "option 'correction': expected a number, got %s", luaL_typename(L, -1)));
        correction = lua_tonumber(L, -1);
    }
    if (r.opts)
        lua_pop(L, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, root ? fl_std(t, r.ndims, r.dims, correction, r.keepdim)
                              : fl_var(t, r.ndims, r.dims, correction, r.keepdim), name);
    return 1;
}

/* The norm's p at idx: a number (math.huge for the max norm) or 'fro'. */
static double read_p(lua_State *L, int idx, int arg)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double p = lua_tonumber(L, idx);
        if (isnan(p))
            luaL_argerror(L, arg, "expected p to be a number, got nan");
        return p;
    }
    if (lua_type(L, idx) == LUA_TSTRING && strcmp(lua_tostring(L, idx), "fro") == 0)
        return 2;
    return luaL_argerror(L, arg, lua_pushfstring(L, "expected p to be a number or 'fro', got %s",
                                                 lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : luaL_typename(L, idx)));
}

/* x:norm([p], [dims], [keepdim]) or x:norm{p = 1, dim = 2, keepdim = true}. */
static int f_norm(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    double p = 2;
    int arg = 2;
    if (lua_type(L, 2) == LUA_TNUMBER || lua_type(L, 2) == LUA_TSTRING) {
        p = read_p(L, 2, 2);
        arg = 3;
    } else if (lua_isnil(L, 2) && !lua_isnone(L, 3)) {
        arg = 3;
    }
    red_args r;
    read_dims(L, arg, t, true, &r);
    if (r.opts) {
        if (lua_getfield(L, r.opts, "p") != LUA_TNIL)
            p = read_p(L, lua_gettop(L), r.opts);
        lua_pop(L, 1);
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_norm(t, p, r.ndims, r.dims, r.keepdim), "norm");
    return 1;
}

/* ---------------------------------------------------------------- max, min, arg* */

/* x:max() -> 0-dim; x:max(dim [, keepdim]) -> values, indices; x:max(y) -> maximum. */
static int f_max(lua_State *L)
{
    int want_max = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = want_max ? "max" : "min";
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor *other = fl_lua_totensor(L, 2);
    fl_tensor **slot;
    if (other) {
        slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_binary(want_max ? FL_BINOP_MAXIMUM : FL_BINOP_MINIMUM, t, other), name);
        return 1;
    }
    red_args r;
    read_dims(L, 2, t, false, &r);
    if (r.ndims == 0) {
        slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, want_max ? fl_amax(t, 0, NULL, r.keepdim) : fl_amin(t, 0, NULL, r.keepdim), name);
        return 1;
    }
    fl_tensor **vslot = fl_lua_newslot(L), **islot = fl_lua_newslot(L);
    fl_tensor *values, *indices;
    int rc = want_max ? fl_max_dim(t, r.dims[0], r.keepdim, 1, &values, &indices)
                      : fl_min_dim(t, r.dims[0], r.keepdim, 1, &values, &indices);
    if (rc < 0)
        return fl_lua_error(L, name);
    *vslot = values;
    *islot = indices;
    return 2;
}

/* x:argmax() (position in the flattened tensor), x:argmax(dim [, keepdim]). */
static int f_argmax(lua_State *L)
{
    int want_max = (int)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor *t = fl_lua_checktensor(L, 1);
    red_args r;
    read_dims(L, 2, t, false, &r);
    int dim = r.ndims ? r.dims[0] : -1;
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, want_max ? fl_argmax(t, dim, r.keepdim, 1) : fl_argmin(t, dim, r.keepdim, 1),
                want_max ? "argmax" : "argmin");
    return 1;
}

/* ---------------------------------------------------------------- cumulative */

/* x:cumsum(dim), x:cumprod(dim), x:cumsum{dim = 1, dtype = 'float64'}. */
static int f_cumulative(lua_State *L)
{
    int prod = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = prod ? "cumprod" : "cumsum";
    fl_tensor *t = fl_lua_checktensor(L, 1);
    red_args r;
    read_dims(L, 2, t, false, &r);
    if (r.ndims == 0)
        return luaL_error(L, "%s: expected a dim (1-based), e.g. x:%s(1)", name, name);
    if (r.keepdim)
        return luaL_error(L, "%s: keepdim does not apply (the result has the input's shape)", name);
    t = with_dtype(L, t, r.opts, name);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, prod ? fl_cumprod(t, r.dims[0]) : fl_cumsum(t, r.dims[0]), name);
    return 1;
}

/* ---------------------------------------------------------------- sort, topk */

/* x:sort([dim = -1], [descending = false]) or x:sort{dim = 1, descending = true}. */
static int f_sort(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int dim = t->ndim ? t->ndim - 1 : 0, i = 2;
    bool descending = false;
    if (lua_type(L, i) == LUA_TNUMBER)
        dim = fl_lua_checkdim(L, i++, t->ndim, 0);
    if (lua_type(L, i) == LUA_TBOOLEAN)
        descending = lua_toboolean(L, i++);
    if (fl_lua_isoptions(L, i)) {
        if (lua_getfield(L, i, "dim") != LUA_TNIL)
            dim = dim_value(L, i, t->ndim, "option 'dim'");
        else
            lua_pop(L, 1);
        descending = opt_bool(L, i, "descending", descending);
        opt_bool(L, i, "stable", true);   /* always stable */
        i++;
    }
    if (!lua_isnoneornil(L, i))
        return luaL_argerror(L, i, lua_pushfstring(L, "expected a dim, descending (boolean) or an options table, got %s",
                                                   luaL_typename(L, i)));
    fl_tensor **vslot = fl_lua_newslot(L), **islot = fl_lua_newslot(L);
    fl_tensor *values, *indices;
    if (fl_sort(t, dim, descending, 1, &values, &indices) < 0)
        return fl_lua_error(L, "sort");
    *vslot = values;
    *islot = indices;
    return 2;
}

/* x:topk(k, [dim = -1], [largest = true], [sorted = true]) or x:topk(k, {dim = ..., largest = ...}). */
static int f_topk(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int64_t k = fl_lua_checkint(L, 2);
    int dim = t->ndim ? t->ndim - 1 : 0, i = 3;
    bool largest = true, sorted = true;
    if (lua_type(L, i) == LUA_TNUMBER)
        dim = fl_lua_checkdim(L, i++, t->ndim, 0);
    if (lua_type(L, i) == LUA_TBOOLEAN)
        largest = lua_toboolean(L, i++);
    if (lua_type(L, i) == LUA_TBOOLEAN)
        sorted = lua_toboolean(L, i++);
    if (fl_lua_isoptions(L, i)) {
        if (lua_getfield(L, i, "dim") != LUA_TNIL)
            dim = dim_value(L, i, t->ndim, "option 'dim'");
        else
            lua_pop(L, 1);
        largest = opt_bool(L, i, "largest", largest);
        sorted = opt_bool(L, i, "sorted", sorted);
        i++;
    }
    if (!lua_isnoneornil(L, i))
        return luaL_argerror(L, i, lua_pushfstring(L, "expected a dim, largest/sorted (booleans) or an options table, got %s",
                                                   luaL_typename(L, i)));
    int64_t n = t->ndim ? t->shape[dim] : 1;
    if (k < 0 || k > n)
        return luaL_argerror(L, 2, lua_pushfstring(L, "k must be between 0 and %I (the size of dim %d), got %I",
                                                   (lua_Integer)n, dim + 1, (lua_Integer)k));
    fl_tensor **vslot = fl_lua_newslot(L), **islot = fl_lua_newslot(L);
    fl_tensor *values, *indices;
    if (fl_topk(t, k, dim, largest, sorted, 1, &values, &indices) < 0)
        return fl_lua_error(L, "topk");
    *vslot = values;
    *islot = indices;
    return 2;
}

static const fl_lua_reg reduce_regs[] = {
    {"sum", f_reduce, FL_REG_BOTH, R_SUM},
    {"mean", f_reduce, FL_REG_BOTH, R_MEAN},
    {"prod", f_reduce, FL_REG_BOTH, R_PROD},
    {"amax", f_reduce, FL_REG_BOTH, R_AMAX},
    {"amin", f_reduce, FL_REG_BOTH, R_AMIN},
    {"all", f_reduce, FL_REG_BOTH, R_ALL},
    {"any", f_reduce, FL_REG_BOTH, R_ANY},
    {"logsumexp", f_reduce, FL_REG_BOTH, R_LOGSUMEXP},
    {"var", f_var, FL_REG_BOTH, 0},
    {"std", f_var, FL_REG_BOTH, 1},
    {"norm", f_norm, FL_REG_BOTH, 0},
    {"max", f_max, FL_REG_BOTH, 1},
    {"min", f_max, FL_REG_BOTH, 0},
    {"argmax", f_argmax, FL_REG_BOTH, 1},
    {"argmin", f_argmax, FL_REG_BOTH, 0},
    {"cumsum", f_cumulative, FL_REG_BOTH, 0},
    {"cumprod", f_cumulative, FL_REG_BOTH, 1},
    {"sort", f_sort, FL_REG_BOTH, 0},
    {"topk", f_topk, FL_REG_BOTH, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_reduce(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, reduce_regs);
}
