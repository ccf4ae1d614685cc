/* creation.c: flare.tensor{...}, zeros/ones/full/empty, ranges, eye, random tensors,
 * the *_like forms, and the generator's seed and state. */
#include "lua_tensor.h"
#include "../vm/cuda.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- flare.tensor{...} */

/* Walks the nested table once to find its shape and whether it holds floats / booleans. */
static void infer_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape,
                        int *has_float, int *has_bool, int *has_int)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER || t == LUA_TBOOLEAN) {
        if (depth != *ndim && *ndim >= 0)
            luaL_error(L, "tensor: ragged nested table (a number where a table of depth %d was expected)", *ndim - depth);
        if (*ndim < 0)
            *ndim = depth;
        if (t == LUA_TBOOLEAN)
            *has_bool = 1;
        else if (lua_isinteger(L, idx))
            *has_int = 1;
        else
            *has_float = 1;
        return;
    }
    if (t != LUA_TTABLE || fl_lua_totensor(L, idx))
        luaL_error(L, "tensor: expected numbers or booleans in nested tables, got %s", luaL_typename(L, idx));
    if (depth >= FL_MAX_DIMS)
        luaL_error(L, "tensor: a tensor has at most %d dimensions", FL_MAX_DIMS);
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    if (*ndim >= 0 && depth >= *ndim)
        luaL_error(L, "tensor: ragged nested table (a table where a number was expected)");
    if (shape[depth] < 0)
        shape[depth] = len;
    else if (shape[depth] != len)
        luaL_error(L, "tensor: ragged nested table (length %I at depth %d, expected %I)",
                   len, depth + 1, (lua_Integer)shape[depth]);
    if (len == 0) {
        if (*ndim < 0)
            *ndim = depth + 1;
        else if (*ndim != depth + 1)
            luaL_error(L, "tensor: ragged nested table (an empty table at depth %d)", depth + 1);
        return;
    }
    luaL_checkstack(L, 4, "tensor");
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, idx, i);
        infer_shape(L, lua_gettop(L), depth + 1, ndim, shape, has_float, has_bool, has_int);
        lua_pop(L, 1);
    }
}

static void fill_from_table(lua_State *L, int idx, int depth, const fl_tensor *t, int64_t *pos)
{
    if (depth == t->ndim) {
        void *base = t->storage->data;
        if (lua_type(L, idx) == LUA_TBOOLEAN)
            fl_store_i64(t->dtype, base, (*pos)++, lua_toboolean(L, idx));
        else if (lua_isinteger(L, idx))
            fl_store_i64(t->dtype, base, (*pos)++, lua_tointeger(L, idx));
        else
            fl_store_f64(t->dtype, base, (*pos)++, lua_tonumber(L, idx));
        return;
    }
    for (int64_t i = 1; i <= t->shape[depth]; i++) {
        lua_rawgeti(L, idx, i);
        fill_from_table(L, lua_gettop(L), depth + 1, t, pos);
        lua_pop(L, 1);
    }
}

/* Creation runs on the host; {device = 'cuda'} then moves the result into place. */
static void move_slot(lua_State *L, fl_tensor **slot, int opts, const char *fname)
{
    fl_device dev = fl_lua_optdevice(L, opts);
    if (dev.type == FL_DEVICE_CPU)
        return;
    fl_tensor *moved = fl_move(*slot, dev);
    if (!moved)
        fl_lua_error(L, fname);
    fl_tensor_release(*slot);
    *slot = moved;
}

static int f_tensor(lua_State *L)
{
    int64_t shape[FL_MAX_DIMS];
    int ndim = -1, has_float = 0, has_bool = 0, has_int = 0;
    for (int i = 0; i < FL_MAX_DIMS; i++)
        shape[i] = -1;
    if (fl_lua_totensor(L, 1)) {
        fl_tensor *src = fl_lua_totensor(L, 1);
        fl_dtype dt = fl_lua_optdtype(L, 2, src->dtype);
        fl_tensor **slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_cast(src, dt), "tensor");
        move_slot(L, slot, 2, "tensor");
        return 1;
    }
    if (lua_type(L, 1) != LUA_TTABLE && lua_type(L, 1) != LUA_TNUMBER && lua_type(L, 1) != LUA_TBOOLEAN)
        return luaL_typeerror(L, 1, "table of numbers, number or boolean");
    infer_shape(L, 1, 0, &ndim, shape, &has_float, &has_bool, &has_int);
    fl_dtype def = has_float ? FL_DTYPE_F32 : has_int ? FL_DTYPE_I64 : has_bool ? FL_DTYPE_BOOL : FL_DTYPE_F32;
    fl_dtype dt = fl_lua_optdtype(L, 2, def);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *t = fl_tensor_empty(dt, ndim, shape, FL_CPU);
    fl_lua_fill(L, slot, t, "tensor");
    int64_t pos = 0;
    fill_from_table(L, 1, 0, t, &pos);
    move_slot(L, slot, 2, "tensor");
    fl_lua_apply_requires_grad(L, 2, *slot);
    return 1;
}

/* ---------------------------------------------------------------- shaped constructors */

typedef enum { INIT_EMPTY, INIT_ZEROS, INIT_ONES, INIT_FULL, INIT_RAND, INIT_RANDN } init_kind;

static const char *init_names[] = {"empty", "zeros", "ones", "full", "rand", "randn"};

static int init_tensor(lua_State *L, fl_tensor **slot, fl_tensor *t, init_kind kind, double v, int opts)
{
    const char *fname = init_names[kind];
    fl_lua_fill(L, slot, t, fname);
    int rc = 0;
    switch (kind) {
    case INIT_EMPTY: break;
    case INIT_ZEROS: break;
    case INIT_ONES: rc = fl_fill(t, 1); break;
    case INIT_FULL: rc = fl_fill(t, v); break;
    case INIT_RAND:
        if (!fl_dtype_is_float(t->dtype))
            return luaL_error(L, "rand: expected a floating dtype, got %s", fl_dtype_name(t->dtype));
        rc = fl_rand_uniform(t, 0, 1);
        break;
    case INIT_RANDN:
        if (!fl_dtype_is_float(t->dtype))
            return luaL_error(L, "randn: expected a floating dtype, got %s", fl_dtype_name(t->dtype));
        rc = fl_rand_normal(t, 0, 1);
        break;
    }
    if (rc < 0)
        fl_lua_error(L, fname);
    fl_lua_apply_requires_grad(L, opts, t);
    return 1;
}

/* flare.zeros(2, 3 [, opts]) / flare.zeros({2, 3} [, opts]); full takes the value last:
 * flare.full({2, 3}, 7) or flare.full(2, 3, 7)? The shape table form is required for full. */
static int f_shaped(lua_State *L)
{
    init_kind kind = (init_kind)lua_tointeger(L, lua_upvalueindex(1));
    int64_t shape[FL_MAX_DIMS];
    int next;
    int ndim = fl_lua_checkshape(L, 1, shape, &next);
    double v = 0;
    fl_dtype def = FL_DTYPE_F32;
    if (kind == INIT_FULL) {
        if (lua_type(L, 1) != LUA_TTABLE)
            return luaL_argerror(L, 1, "expected a size table, as in flare.full({2, 3}, 7)");
        if (lua_type(L, next) == LUA_TBOOLEAN) {
            v = lua_toboolean(L, next);
            def = FL_DTYPE_BOOL;
        } else {
            v = luaL_checknumber(L, next);
            def = lua_isinteger(L, next) ? FL_DTYPE_I64 : FL_DTYPE_F32;
        }
        next++;
    }
    if (!lua_isnoneornil(L, next) && !fl_lua_isoptions(L, next))
        return luaL_typeerror(L, next, "options table");
    fl_dtype dt = fl_lua_optdtype(L, next, def);
    fl_device dev = fl_lua_optdevice(L, next);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *t = kind == INIT_ZEROS ? fl_tensor_zeros(dt, ndim, shape, dev) : fl_tensor_empty(dt, ndim, shape, dev);
    return init_tensor(L, slot, t, kind, v, next);
}

/* flare.zeros_like(x [, opts]) and friends; full_like(x, v [, opts]). */
static int f_like(lua_State *L)
{
    init_kind kind = (init_kind)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor *x = fl_lua_checktensor(L, 1);
    int opts = 2;
    double v = 0;
    if (kind == INIT_FULL) {
        v = lua_type(L, 2) == LUA_TBOOLEAN ? lua_toboolean(L, 2) : luaL_checknumber(L, 2);
        opts = 3;
    }
    if (!lua_isnoneornil(L, opts) && !fl_lua_isoptions(L, opts))
        return luaL_typeerror(L, opts, "options table");
    fl_dtype dt = fl_lua_optdtype(L, opts, x->dtype);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *t = kind == INIT_ZEROS ? fl_tensor_zeros(dt, x->ndim, x->shape, x->storage->device)
                                      : fl_tensor_empty(dt, x->ndim, x->shape, x->storage->device);
    return init_tensor(L, slot, t, kind, v, opts);
}

static double checkfinite(lua_State *L, int arg)
{
    double v = luaL_checknumber(L, arg);
    if (!isfinite(v))
        luaL_argerror(L, arg, lua_pushfstring(L, "expected a finite number, got %f", v));
    return v;
}

/* flare.arange(n), arange(start, end [, step]) — end exclusive, as in PyTorch. Integer
 * arguments give int64, any float gives float32. */
static int f_arange(lua_State *L)
{
    int top = lua_gettop(L), opts = 0;
    if (top > 0 && fl_lua_isoptions(L, top))
        opts = top--;
    if (top < 1 || top > 3)
        return luaL_error(L, "arange: expected (end), (start, end) or (start, end, step), got %d numbers", top);
    double start = 0, end, step = 1;
    int all_int = 1;
    for (int i = 1; i <= top; i++) {
        checkfinite(L, i);
        all_int &= lua_isinteger(L, i);
    }
    if (top == 1) {
        end = lua_tonumber(L, 1);
    } else {
        start = lua_tonumber(L, 1);
        end = lua_tonumber(L, 2);
        if (top == 3)
            step = lua_tonumber(L, 3);
    }
    fl_dtype dt = fl_lua_optdtype(L, opts, all_int ? FL_DTYPE_I64 : FL_DTYPE_F32);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_arange(start, end, step, dt), "arange");
    move_slot(L, slot, opts, "arange");
    return 1;
}

static int f_linspace(lua_State *L)
{
    double start = checkfinite(L, 1), end = checkfinite(L, 2);
    int64_t n = fl_lua_checkint(L, 3);
    fl_dtype dt = fl_lua_optdtype(L, 4, FL_DTYPE_F32);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_linspace(start, end, n, dt), "linspace");
    move_slot(L, slot, 4, "linspace");
    return 1;
}

static int f_eye(lua_State *L)
{
    int64_t n = fl_lua_checkint(L, 1), m = n;
    int opts = 2;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        m = fl_lua_checkint(L, 2);
        opts = 3;
    }
    if (n < 0 || m < 0)
        return luaL_error(L, "eye: expected non-negative sizes, got %I and %I", (lua_Integer)n, (lua_Integer)m);
    fl_dtype dt = fl_lua_optdtype(L, opts, FL_DTYPE_F32);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_eye(n, m, dt), "eye");
    move_slot(L, slot, opts, "eye");
    return 1;
}

/* flare.randint(low, high, shape [, opts]) or randint(high, shape): values in [low, high). */
static int f_randint(lua_State *L)
{
    int64_t lo = 0, hi, shape[FL_MAX_DIMS];
    int arg = 1, next;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lo = fl_lua_checkint(L, 1);
        arg = 2;
    }
    hi = fl_lua_checkint(L, arg);
    if (lua_type(L, arg + 1) != LUA_TTABLE || fl_lua_isoptions(L, arg + 1))
        return luaL_argerror(L, arg + 1, "expected a size table, as in flare.randint(0, 10, {3, 4})");
    int ndim = fl_lua_checkshape(L, arg + 1, shape, &next);
    if (hi <= lo)
        return luaL_error(L, "randint: expected low < high, got low=%I high=%I", (lua_Integer)lo, (lua_Integer)hi);
    fl_dtype dt = fl_lua_optdtype(L, next, FL_DTYPE_I64);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *t = fl_tensor_empty(dt, ndim, shape, fl_lua_optdevice(L, next));
    fl_lua_fill(L, slot, t, "randint");
    if (fl_rand_int(t, lo, hi) < 0)
        return fl_lua_error(L, "randint");
    return 1;
}

static int f_randperm(lua_State *L)
{
    int64_t n = fl_lua_checkint(L, 1);
    if (n < 0)
        return luaL_argerror(L, 1, lua_pushfstring(L, "expected a non-negative count, got %I", (lua_Integer)n));
    fl_dtype dt = fl_lua_optdtype(L, 2, FL_DTYPE_I64);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_randperm(n, dt), "randperm");
    move_slot(L, slot, 2, "randperm");
    return 1;
}

/* In-place random fills: x:uniform_(lo, hi), x:normal_(mean, std), x:bernoulli_(p),
 * x:random_(lo, hi). */
static int m_uniform_(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    double lo = luaL_optnumber(L, 2, 0), hi = luaL_optnumber(L, 3, 1);
    if (!fl_dtype_is_float(t->dtype))
        return luaL_error(L, "uniform_: expected a floating tensor, got %s", fl_dtype_name(t->dtype));
    if (fl_rand_uniform(t, lo, hi) < 0)
        return fl_lua_error(L, "uniform_");
    lua_settop(L, 1);
    return 1;
}

static int m_normal_(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    double mean = luaL_optnumber(L, 2, 0), std = luaL_optnumber(L, 3, 1);
    if (!fl_dtype_is_float(t->dtype))
        return luaL_error(L, "normal_: expected a floating tensor, got %s", fl_dtype_name(t->dtype));
    if (std < 0)
        return luaL_argerror(L, 3, "expected a non-negative standard deviation");
    if (fl_rand_normal(t, mean, std) < 0)
        return fl_lua_error(L, "normal_");
    lua_settop(L, 1);
    return 1;
}

static int m_bernoulli_(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    double p = luaL_optnumber(L, 2, 0.5);
    if (!(p >= 0 && p <= 1))
        return luaL_argerror(L, 2, lua_pushfstring(L, "expected a probability in [0, 1], got %f", p));
    if (fl_rand_bernoulli(t, p) < 0)
        return fl_lua_error(L, "bernoulli_");
    lua_settop(L, 1);
    return 1;
}

static int m_random_(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int64_t lo = fl_lua_checkint(L, 2), hi = fl_lua_checkint(L, 3);
    if (fl_rand_int(t, lo, hi) < 0)
        return fl_lua_error(L, "random_");
    lua_settop(L, 1);
    return 1;
}

static int f_manual_seed(lua_State *L)
{
    fl_manual_seed((uint64_t)fl_lua_checkint(L, 1));
    return 0;
}

/* The state is a plain table {seed = s, offset = o}: easy to save in a checkpoint. */
static int f_get_rng_state(lua_State *L)
{
    uint64_t seed, offset;
    fl_rng_get_state(&seed, &offset);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)seed);
    lua_setfield(L, -2, "seed");
    lua_pushinteger(L, (lua_Integer)offset);
    lua_setfield(L, -2, "offset");
    return 1;
}

static int f_set_rng_state(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "seed");
    lua_getfield(L, 1, "offset");
    if (!lua_isinteger(L, -2) || !lua_isinteger(L, -1))
        return luaL_argerror(L, 1, "expected a table {seed = integer, offset = integer} from flare.get_rng_state()");
    fl_rng_set_state((uint64_t)lua_tointeger(L, -2), (uint64_t)lua_tointeger(L, -1));
    return 0;
}

static const fl_lua_reg creation_regs[] = {
    {"tensor", f_tensor, FL_REG_MODULE, 0},
    {"empty", f_shaped, FL_REG_MODULE, INIT_EMPTY},
    {"zeros", f_shaped, FL_REG_MODULE, INIT_ZEROS},
    {"ones", f_shaped, FL_REG_MODULE, INIT_ONES},
    {"full", f_shaped, FL_REG_MODULE, INIT_FULL},
    {"rand", f_shaped, FL_REG_MODULE, INIT_RAND},
    {"randn", f_shaped, FL_REG_MODULE, INIT_RANDN},
    {"empty_like", f_like, FL_REG_MODULE, INIT_EMPTY},
    {"zeros_like", f_like, FL_REG_MODULE, INIT_ZEROS},
    {"ones_like", f_like, FL_REG_MODULE, INIT_ONES},
    {"full_like", f_like, FL_REG_MODULE, INIT_FULL},
    {"rand_like", f_like, FL_REG_MODULE, INIT_RAND},
    {"randn_like", f_like, FL_REG_MODULE, INIT_RANDN},
    {"arange", f_arange, FL_REG_MODULE, 0},
    {"linspace", f_linspace, FL_REG_MODULE, 0},
    {"eye", f_eye, FL_REG_MODULE, 0},
    {"randint", f_randint, FL_REG_MODULE, 0},
    {"randperm", f_randperm, FL_REG_MODULE, 0},
    {"uniform_", m_uniform_, FL_REG_METHOD, 0},
    {"normal_", m_normal_, FL_REG_METHOD, 0},
    {"bernoulli_", m_bernoulli_, FL_REG_METHOD, 0},
    {"random_", m_random_, FL_REG_METHOD, 0},
    {"manual_seed", f_manual_seed, FL_REG_MODULE, 0},
    {"get_rng_state", f_get_rng_state, FL_REG_MODULE, 0},
    {"set_rng_state", f_set_rng_state, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_creation(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, creation_regs);
}
