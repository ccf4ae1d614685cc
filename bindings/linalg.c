/* linalg.c: Lua bindings for matmul and friends on OpenBLAS:
 *   a:matmul(b)  a:mm(b)  a:bmm(b)  a:mv(v)  u:dot(v)  u:outer(v)
 *   flare.addmm(M, a, b, {beta = 1, alpha = 1})   -- beta * M + alpha * (a . b) */
#include "lua_tensor.h"

typedef fl_tensor *(*product_fn)(const fl_tensor *, const fl_tensor *);

static const struct {
    const char *name;
    product_fn fn;
} products[] = {
    {"matmul", fl_matmul}, {"mm", fl_mm}, {"bmm", fl_bmm}, {"mv", fl_mv}, {"dot", fl_dot},
    {"outer", fl_outer},
};

/* a:op(b): the upvalue indexes `products`. */
static int f_product(lua_State *L)
{
    int which = (int)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor *a = fl_lua_checktensor(L, 1), *b = fl_lua_checktensor(L, 2);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, products[which].fn(a, b), products[which].name);
    return 1;
}

/* Field `name` of the options table at idx as a number (def if absent). */
static double opt_number(lua_State *L, int idx, const char *name, double def)
{
    double v = def;
    if (lua_getfield(L, idx, name) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': expected a number, got %s", name, luaL_typename(L, -1)));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static int f_addmm(lua_State *L)
{
    fl_tensor *m = fl_lua_checktensor(L, 1), *a = fl_lua_checktensor(L, 2), *b = fl_lua_checktensor(L, 3);
    double beta = 1, alpha = 1;
    if (fl_lua_isoptions(L, 4)) {
        beta = opt_number(L, 4, "beta", 1);
        alpha = opt_number(L, 4, "alpha", 1);
    } else if (!lua_isnoneornil(L, 4)) {
        return luaL_typeerror(L, 4, "options table {beta = ..., alpha = ...}");
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_addmm(m, a, b, beta, alpha), "addmm");
    return 1;
}

static const fl_lua_reg linalg_regs[] = {
    {"matmul", f_product, FL_REG_BOTH, 0},
    {"mm", f_product, FL_REG_BOTH, 1},
    {"bmm", f_product, FL_REG_BOTH, 2},
    {"mv", f_product, FL_REG_BOTH, 3},
    {"dot", f_product, FL_REG_BOTH, 4},
    {"outer", f_product, FL_REG_BOTH, 5},
    {"ger", f_product, FL_REG_BOTH, 5},
    {"addmm", f_addmm, FL_REG_BOTH, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_linalg(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, linalg_regs);
}
