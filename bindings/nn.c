/* nn.c: Lua bindings for the neural-network kernels: convolution and pooling.
 *
 *   flare.conv1d(x, w [, b] [, {stride, padding, dilation, groups}])
 *   flare.conv2d(x, w [, b] [, {stride, padding (n, {h, w}, 'same' or 'valid'), dilation, groups}])
 *   flare.conv_transpose2d(x, w [, b] [, {stride, padding, output_padding, groups, dilation}])
 *   flare.max_pool1d(x, kernel [, {stride, padding, dilation, ceil_mode, return_indices}])
 *   flare.max_pool2d(x, kernel [, {stride, padding, dilation, ceil_mode, return_indices}])
 *   flare.avg_pool2d(x, kernel [, {stride, padding, ceil_mode, count_include_pad, divisor_override}])
 *   flare.adaptive_avg_pool2d(x, output_size)
 *
 * Sizes are a number or a table of one per spatial dim. Pooling's stride defaults to the
 * kernel size; max pooling's indices are 1-based positions within each plane. */
#include "lua_tensor.h"
#include "../vm/nn.h"

#include <string.h>

/* ---------------------------------------------------------------- options */

/* Raises unless every key of the options table at idx is one of `names` (NULL-terminated). */
static void check_keys(lua_State *L, int idx, const char *const *names)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        bool known = false;
        for (const char *const *n = names; k && *n && !known; n++)
            known = strcmp(k, *n) == 0;
        if (!known) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *const *n = names; *n; n++) {
                luaL_addstring(&b, *n);
                luaL_addstring(&b, n[1] ? ", " : "");
            }
            luaL_pushresult(&b);
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s' (expected %s)",
                                                  k ? k : luaL_typename(L, -2), lua_tostring(L, -1)));
        }
    }
}

/* Reads the value at idx as `n` integers >= min: a number (repeated) or a table of n.
 * `what` names it in errors (arg is the argument to blame). */
static void read_sizes(lua_State *L, int idx, int arg, const char *what, int n, int64_t min, int64_t *out)
{
    int isnum;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer v = lua_tointegerx(L, idx, &isnum);
        if (!isnum || v < min)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s: expected an integer >= %d, got %s", what, (int)min,
                                                  lua_tostring(L, idx)));
        for (int i = 0; i < n; i++)
            out[i] = v;
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE || fl_lua_totensor(L, idx) || luaL_len(L, idx) != n)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s: expected an integer or a table of %d integers, got %s", what, n,
                                              lua_type(L, idx) == LUA_TTABLE ? "a table of another length" : luaL_typename(L, idx)));
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, idx, i + 1);
        lua_Integer v = lua_tointegerx(L, -1, &isnum);
        if (!isnum || v < min)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s: entry %d: expected an integer >= %d, got %s", what, i + 1,
                                                  (int)min, lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1)));
        out[i] = v;
        lua_pop(L, 1);
    }
}

/* Field `name` of the options table at opts (if present) into out[0..n). */
static bool opt_sizes(lua_State *L, int opts, const char *name, int n, int64_t min, int64_t *out)
{
    if (!opts || lua_getfield(L, opts, name) == LUA_TNIL) {
        if (opts)
            lua_pop(L, 1);
        return false;
    }
    read_sizes(L, -1, opts, name, n, min, out);
    lua_pop(L, 1);
    return true;
}

static bool opt_bool(lua_State *L, int opts, const char *name, bool def)
{
    if (!opts || lua_getfield(L, opts, name) == LUA_TNIL) {
        if (opts)
            lua_pop(L, 1);
        return def;
    }
    if (!lua_isboolean(L, -1))
        luaL_argerror(L, opts, lua_pushfstring(L, "%s: expected a boolean, got %s", name, luaL_typename(L, -1)));
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The options table at arg (0 if none); raises if something else is there. */
static int options_at(lua_State *L, int arg, const char *const *names)
{
    if (lua_isnoneornil(L, arg))
        return 0;
    if (lua_type(L, arg) != LUA_TTABLE || fl_lua_totensor(L, arg))
        luaL_typeerror(L, arg, "options table");
    check_keys(L, arg, names);
    return arg;
}

/* ---------------------------------------------------------------- convolution */

static const char *const conv_keys[] = {"stride", "padding", "dilation", "groups", NULL};
static const char *const conv_t_keys[] = {"stride", "padding", "output_padding", "groups", "dilation", NULL};

/* conv1d / conv2d / conv_transpose2d: upvalue 1 = spatial dims, + 10 when transposed. */
static int f_conv(lua_State *L)
{
    int kind = (int)lua_tointeger(L, lua_upvalueindex(1)), sd = kind % 10;
    bool transposed = kind >= 10;
    const char *fname = transposed ? "conv_transpose2d" : sd == 1 ? "conv1d" : "conv2d";
    fl_tensor *x = fl_lua_checktensor(L, 1), *w = fl_lua_checktensor(L, 2), *b = NULL;
    int optarg = 4;
    if (lua_type(L, 3) == LUA_TTABLE && !fl_lua_totensor(L, 3))
        optarg = 3;   /* conv2d(x, w, {options}): no bias */
    else if (!lua_isnoneornil(L, 3))
        b = fl_lua_checktensor(L, 3);
    if (optarg == 3 && !lua_isnoneornil(L, 4))
        luaL_argerror(L, 4, "unexpected argument after the options table");
    int opts = options_at(L, optarg, transposed ? conv_t_keys : conv_keys);
    fl_conv_opts o = fl_conv_opts_default();
    opt_sizes(L, opts, "stride", sd, 1, o.stride);
    opt_sizes(L, opts, "dilation", sd, 1, o.dilation);
    if (transposed)
        opt_sizes(L, opts, "output_padding", sd, 0, o.output_padding);
    if (opts && lua_getfield(L, opts, "groups") != LUA_TNIL) {
        int isnum;
        lua_Integer g = lua_tointegerx(L, -1, &isnum);
        if (!isnum || g < 1)
            luaL_argerror(L, opts, lua_pushfstring(L, "groups: expected a positive integer, got %s",
                                                   lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1)));
        o.groups = g;
    }
    if (opts)
        lua_pop(L, 1);
    if (opts && lua_getfield(L, opts, "padding") == LUA_TSTRING) {
        const char *p = lua_tostring(L, -1);
        if (!transposed && strcmp(p, "same") == 0)
            o.pad_mode = FL_PAD_SAME;
        else if (!transposed && strcmp(p, "valid") == 0)
            o.pad_mode = FL_PAD_VALID;
        else
            luaL_argerror(L, opts, lua_pushfstring(L, "padding: expected %s, got '%s'",
                                                   transposed ? "an integer or a table of integers" : "an integer, a table of integers, 'same' or 'valid'", p));
    } else if (opts && !lua_isnil(L, -1)) {
        read_sizes(L, -1, opts, "padding", sd, 0, o.padding);
    }
    if (opts)
        lua_pop(L, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *r = transposed ? fl_conv_transpose2d(x, w, b, &o) : sd == 1 ? fl_conv1d(x, w, b, &o) : fl_conv2d(x, w, b, &o);
    fl_lua_fill(L, slot, r, fname);
    return 1;
}

/* ---------------------------------------------------------------- pooling */

static const char *const max_keys[] = {"stride", "padding", "dilation", "ceil_mode", "return_indices", NULL};
static const char *const avg_keys[] = {"stride", "padding", "ceil_mode", "count_include_pad", "divisor_override", NULL};

/* max_pool1d / max_pool2d (upvalue 1 = spatial dims); returns out [, indices]. */
static int f_max_pool(lua_State *L)
{
    int sd = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *fname = sd == 1 ? "max_pool1d" : "max_pool2d";
    fl_tensor *x = fl_lua_checktensor(L, 1);
    fl_pool_opts o = {.dilation = {1, 1}};
    read_sizes(L, 2, 2, "kernel_size", sd, 1, o.kernel);
    int opts = options_at(L, 3, max_keys);
    if (!opt_sizes(L, opts, "stride", sd, 1, o.stride))
        memcpy(o.stride, o.kernel, sizeof o.stride);
    opt_sizes(L, opts, "padding", sd, 0, o.padding);
    opt_sizes(L, opts, "dilation", sd, 1, o.dilation);
    o.ceil_mode = opt_bool(L, opts, "ceil_mode", false);
    bool want_idx = opt_bool(L, opts, "return_indices", false);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor **islot = want_idx ? fl_lua_newslot(L) : NULL;
    fl_tensor *out, *idx = NULL;
    int rc = sd == 1 ? fl_max_pool1d(x, &o, 1, &out, want_idx ? &idx : NULL)
                     : fl_max_pool2d(x, &o, 1, &out, want_idx ? &idx : NULL);
    if (rc < 0)
        return fl_lua_error(L, fname);
    fl_lua_fill(L, slot, out, fname);
    if (want_idx)
        fl_lua_fill(L, islot, idx, fname);
    return want_idx ? 2 : 1;
}

static int f_avg_pool2d(lua_State *L)
{
    fl_tensor *x = fl_lua_checktensor(L, 1);
    fl_pool_opts o = {.dilation = {1, 1}};
    read_sizes(L, 2, 2, "kernel_size", 2, 1, o.kernel);
    int opts = options_at(L, 3, avg_keys);
    if (!opt_sizes(L, opts, "stride", 2, 1, o.stride))
        memcpy(o.stride, o.kernel, sizeof o.stride);
    opt_sizes(L, opts, "padding", 2, 0, o.padding);
    o.ceil_mode = opt_bool(L, opts, "ceil_mode", false);
    o.count_include_pad = opt_bool(L, opts, "count_include_pad", true);
    opt_sizes(L, opts, "divisor_override", 1, 1, &o.divisor_override);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_avg_pool2d(x, &o), "avg_pool2d");
    return 1;
}

static int f_adaptive_avg_pool2d(lua_State *L)
{
    fl_tensor *x = fl_lua_checktensor(L, 1);
    int64_t size[2];
    read_sizes(L, 2, 2, "output_size", 2, 0, size);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_adaptive_avg_pool2d(x, size[0], size[1]), "adaptive_avg_pool2d");
    return 1;
}

static const fl_lua_reg nn_regs[] = {
    {"conv1d", f_conv, FL_REG_MODULE, 1},
    {"conv2d", f_conv, FL_REG_MODULE, 2},
    {"conv_transpose2d", f_conv, FL_REG_MODULE, 12},
    {"max_pool1d", f_max_pool, FL_REG_MODULE, 1},
    {"max_pool2d", f_max_pool, FL_REG_MODULE, 2},
    {"avg_pool2d", f_avg_pool2d, FL_REG_MODULE, 0},
    {"adaptive_avg_pool2d", f_adaptive_avg_pool2d, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_nn(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, nn_regs);
}
