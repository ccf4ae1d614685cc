/* autograd.c: the tape from Lua: requires_grad, backward, .grad, .grad_fn, .is_leaf, detach,
 * grad-mode scopes (no_grad / enable_grad as to-be-closed values or around a function),
 * and anomaly mode. */
#include "lua_tensor.h"
#include "../vm/autograd.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static lua_State *main_L;

void fl_lua_apply_requires_grad(lua_State *L, int opts, fl_tensor *t)
{
    if (opts == 0 || lua_type(L, opts) != LUA_TTABLE)
        return;
    int on = lua_getfield(L, opts, "requires_grad") != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (on && fl_set_requires_grad(t, true) < 0)
        fl_lua_error(L, "requires_grad");
}

/* x:requires_grad([on = true]) and x:requires_grad_([on]): marks a leaf; returns x. */
static int m_requires_grad(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    int on = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    if (fl_set_requires_grad(t, on) < 0)
        return fl_lua_error(L, "requires_grad");
    lua_settop(L, 1);
    return 1;
}

/* y:backward([gradient], [{retain_graph = true}]) */
static int m_backward(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor *g = NULL;
    int opts = 2;
    if (fl_lua_totensor(L, 2)) {
        g = fl_lua_totensor(L, 2);
        opts = 3;
    } else if (!lua_isnoneornil(L, 2) && !fl_lua_isoptions(L, 2)) {
        return luaL_typeerror(L, 2, "gradient tensor or options table");
    }
    int retain = 0;
    if (lua_type(L, opts) == LUA_TTABLE) {
        lua_getfield(L, opts, "retain_graph");
        retain = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    if (fl_backward(t, g, retain) < 0)
        return fl_lua_error(L, "backward");
    return 0;
}

static int m_detach(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_detach(t), "detach");
    return 1;
}

/* x:zero_grad(): zeroes an existing gradient in place (x.grad = nil drops it). */
static int m_zero_grad(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (t->grad && fl_fill(t->grad, 0) < 0)
        return fl_lua_error(L, "zero_grad");
    return 0;
}

/* ---------------------------------------------------------------- properties */

static int p_grad(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (!t->grad) {
        lua_pushnil(L);
        return 1;
    }
    /* a second userdata for the same tensor: both hold a reference */
    fl_tensor **slot = fl_lua_newslot(L);
    *slot = fl_tensor_retain(t->grad);
    return 1;
}

static int s_grad(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (lua_isnil(L, 2)) {
        fl_tensor_release(t->grad);
        t->grad = NULL;
        return 0;
    }
    fl_tensor *g = fl_lua_checktensor(L, 2);
    if (!fl_shape_equal(g, t) || g->dtype != t->dtype) {
        char b1[160], b2[160];
        return luaL_error(L, "grad: expected a %s tensor of shape %s, got %s of shape %s", fl_dtype_name(t->dtype),
                          fl_shape_str(b1, sizeof b1, t->ndim, t->shape), fl_dtype_name(g->dtype),
                          fl_shape_str(b2, sizeof b2, g->ndim, g->shape));
    }
    fl_tensor_retain(g);
    fl_tensor_release(t->grad);
    t->grad = g;
    return 0;
}

static int p_requires_grad(lua_State *L)
{
    lua_pushboolean(L, fl_lua_checktensor(L, 1)->requires_grad);
    return 1;
}

static int p_is_leaf(lua_State *L)
{
    lua_pushboolean(L, fl_lua_checktensor(L, 1)->grad_fn == NULL);
    return 1;
}

/* The op that made the tensor, as a name in PyTorch's style: "MulBackward". */
static int p_grad_fn(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (!t->grad_fn) {
        lua_pushnil(L);
        return 1;
    }
    char name[64];
    const char *src = t->grad_fn->name;
    size_t j = 0;
    bool upper = true;
    for (size_t i = 0; src[i] && j < sizeof name - 10; i++) {
        if (src[i] == '_') {
            upper = true;
            continue;
        }
        name[j++] = upper ? (char)toupper((unsigned char)src[i]) : src[i];
        upper = false;
    }
    strcpy(name + j, "Backward");
    lua_pushstring(L, name);
    return 1;
}

/* ---------------------------------------------------------------- hooks */

/* registry[&HOOKS][key] = {fn, ...}, key = the leaf tensor or the producing node */
static const char HOOKS = 'H';

static void push_hooks_table(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOKS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &HOOKS);
    }
}

static int run_hooks(const void *key, fl_tensor **grad)
{
    lua_State *L = main_L;
    int top = lua_gettop(L);
    push_hooks_table(L);
    if (lua_rawgetp(L, -1, key) != LUA_TTABLE) {
        lua_settop(L, top);
        return 0;
    }
    int list = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, list, i) == LUA_TFUNCTION; i++) {
        fl_tensor **slot = fl_lua_newslot(L);
        *slot = fl_tensor_retain(*grad);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            fl_error("gradient hook failed: %s", lua_tostring(L, -1));
            lua_settop(L, top);
            return -1;
        }
        fl_tensor *r = fl_lua_totensor(L, -1);
        if (r) {
            if (!fl_shape_equal(r, *grad)) {
                char b1[160], b2[160];
                fl_error("gradient hook returned shape %s, expected %s", fl_shape_str(b1, sizeof b1, r->ndim, r->shape),
                         fl_shape_str(b2, sizeof b2, (*grad)->ndim, (*grad)->shape));
                lua_settop(L, top);
                return -1;
            }
            fl_tensor_retain(r);
            fl_tensor_release(*grad);
            *grad = r;
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return 0;
}

static void forget_hooks(const void *key)
{
    lua_State *L = main_L;
    push_hooks_table(L);
    lua_pushnil(L);
    lua_rawsetp(L, -2, key);
    lua_pop(L, 1);
}

static int hook_remove(lua_State *L)
{
    push_hooks_table(L);
    lua_rawgetp(L, -1, lua_touserdata(L, lua_upvalueindex(1)));
    if (lua_istable(L, -1)) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_rawequal(L, -1, lua_upvalueindex(2))) {
                lua_pop(L, 1);
                for (lua_Integer j = i; j < n; j++) {
                    lua_rawgeti(L, -1, j + 1);
                    lua_rawseti(L, -2, j);
                }
                lua_pushnil(L);
                lua_rawseti(L, -2, n);
                break;
            }
            lua_pop(L, 1);
        }
    }
    return 0;
}

/* x:register_hook(fn): fn(grad) runs when the gradient with respect to x is computed and
 * may return a replacement. Returns a handle with :remove(). */
static int m_register_hook(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!t->requires_grad)
        return luaL_error(L, "register_hook: the tensor does not require grad");
    const void *key;
    if (t->grad_fn) {
        t->grad_fn->has_hooks = true;
        key = t->grad_fn;
    } else {
        t->has_hooks = true;
        key = t;
    }
    push_hooks_table(L);
    if (lua_rawgetp(L, -1, key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, -3, key);
    }
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_createtable(L, 0, 1);
    lua_pushlightuserdata(L, (void *)key);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, hook_remove, 2);
    lua_setfield(L, -2, "remove");
    return 1;
}

/* ---------------------------------------------------------------- grad mode */

/* A scope object: restores the previous mode when closed (`local _ <close> = ...`) or
 * collected. */
static const char GRAD_MODE_MT = 'G';

static int mode_close(lua_State *L)
{
    int *saved = lua_touserdata(L, 1);
    if (saved && *saved >= 0) {
        fl_set_grad_enabled(*saved);
        *saved = -1;
    }
    return 0;
}

static int grad_mode_scope(lua_State *L, bool enable)
{
    bool prev = fl_grad_enabled();
    if (lua_isfunction(L, 1)) {
        /* flare.no_grad(function() ... end): runs it, restores the mode even on error */
        fl_set_grad_enabled(enable);
        int n = lua_gettop(L) - 1;
        int status = lua_pcall(L, n, LUA_MULTRET, 0);
        fl_set_grad_enabled(prev);
        if (status != LUA_OK)
            return lua_error(L);
        return lua_gettop(L);
    }
    if (!lua_isnoneornil(L, 1))
        return luaL_typeerror(L, 1, "function or nothing");
    int *saved = lua_newuserdatauv(L, sizeof *saved, 0);
    *saved = prev;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &GRAD_MODE_MT);
    lua_setmetatable(L, -2);
    fl_set_grad_enabled(enable);
    return 1;
}

static int f_no_grad(lua_State *L) { return grad_mode_scope(L, false); }
static int f_enable_grad(lua_State *L) { return grad_mode_scope(L, true); }

static int f_is_grad_enabled(lua_State *L)
{
    lua_pushboolean(L, fl_grad_enabled());
    return 1;
}

static int f_set_grad_enabled(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    fl_set_grad_enabled(lua_toboolean(L, 1));
    return 0;
}

/* Anomaly mode: nodes remember the Lua line that ran their forward. */
static char *lua_where(void)
{
    if (!main_L)
        return NULL;
    luaL_where(main_L, 1);
    char *s = strdup(lua_tostring(main_L, -1));
    lua_pop(main_L, 1);
    size_t n = s ? strlen(s) : 0;
    if (n >= 2 && s[n - 2] == ':' && s[n - 1] == ' ')
        s[n - 2] = '\0';   /* "file:line: " -> "file:line" */
    return s;
}

static int f_detect_anomaly(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    fl_set_anomaly_mode(lua_toboolean(L, 1));
    return 0;
}

static int f_differentiable_ops(lua_State *L)
{
    const char *names[256];
    int n = fl_differentiable_ops(names, 256);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const fl_lua_reg autograd_regs[] = {
    {"_differentiable_ops", f_differentiable_ops, FL_REG_MODULE, 0},
    {"requires_grad", m_requires_grad, FL_REG_METHOD, 0},
    {"requires_grad_", m_requires_grad, FL_REG_METHOD, 0},
    {"backward", m_backward, FL_REG_METHOD, 0},
    {"detach", m_detach, FL_REG_BOTH, 0},
    {"zero_grad", m_zero_grad, FL_REG_METHOD, 0},
    {"register_hook", m_register_hook, FL_REG_METHOD, 0},
    {"wants_grad", p_requires_grad, FL_REG_METHOD, 0},
    {"no_grad", f_no_grad, FL_REG_MODULE, 0},
    {"enable_grad", f_enable_grad, FL_REG_MODULE, 0},
    {"is_grad_enabled", f_is_grad_enabled, FL_REG_MODULE, 0},
    {"set_grad_enabled", f_set_grad_enabled, FL_REG_MODULE, 0},
    {"_detect_anomaly", f_detect_anomaly, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_autograd(lua_State *L, int module, int methods)
{
    main_L = L;
    fl_set_where_callback(lua_where);
    static const fl_hook_callbacks hook_callbacks = {run_hooks, forget_hooks};
    fl_set_hook_callbacks(&hook_callbacks);
    fl_lua_register(L, module, methods, autograd_regs);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, mode_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, mode_close);
    lua_setfield(L, -2, "__gc");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &GRAD_MODE_MT);
    /* properties and setters (tables built by fl_bind_tensor) */
    lua_getfield(L, module, "_properties");
    lua_pushcfunction(L, p_grad);
    lua_setfield(L, -2, "grad");
    lua_pushcfunction(L, p_is_leaf);
    lua_setfield(L, -2, "is_leaf");
    lua_pushcfunction(L, p_grad_fn);
    lua_setfield(L, -2, "grad_fn");
    lua_pop(L, 1);
    lua_getfield(L, module, "_setters");
    lua_pushcfunction(L, s_grad);
    lua_setfield(L, -2, "grad");
    lua_pop(L, 1);
}
