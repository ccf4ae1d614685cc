/* math.c: elementwise arithmetic from Lua: the operator metamethods (+ - * / ^ unary -),
 * binary and unary methods and functions with their in-place `_` forms, clamp and where. */
#include "lua_tensor.h"

#include <math.h>

/* a op b where either side may be a Lua number (metamethods get them in either order). */
static int binary(lua_State *L, fl_binop op, const char *fname)
{
    fl_tensor *a = fl_lua_totensor(L, 1), *b = fl_lua_totensor(L, 2);
    fl_tensor **slot;
    if (a && b) {
        slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_binary(op, a, b), fname);
        return 1;
    }
    if (!a && !b)
        return luaL_typeerror(L, 1, "flare.Tensor");
    int num = a ? 2 : 1;
    fl_tensor *t = a ? a : b;
    double s;
    if (lua_type(L, num) == LUA_TNUMBER)
        s = lua_tonumber(L, num);
    else if (lua_type(L, num) == LUA_TBOOLEAN)
        s = lua_toboolean(L, num);
    else
        return luaL_typeerror(L, num, "flare.Tensor or number");
    slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_binary_scalar(op, t, s, !a), fname);
    return 1;
}

static int f_binary(lua_State *L)
{
    fl_binop op = (fl_binop)lua_tointeger(L, lua_upvalueindex(1));
    if (!fl_lua_totensor(L, 1) && !fl_lua_totensor(L, 2))
        return luaL_typeerror(L, 1, "flare.Tensor");
    luaL_checkany(L, 2);
    return binary(L, op, fl_binop_name(op));
}

#define METAMETHOD(name, op)                                                        \
    static int mm_##name(lua_State *L) { return binary(L, op, #name); }
METAMETHOD(add, FL_BINOP_ADD)
METAMETHOD(sub, FL_BINOP_SUB)
METAMETHOD(mul, FL_BINOP_MUL)
METAMETHOD(div, FL_BINOP_DIV)
METAMETHOD(pow, FL_BINOP_POW)

static int mm_unm(lua_State *L)
{
    fl_tensor *a = fl_lua_checktensor(L, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_unary(FL_UNOP_NEG, a), "neg");
    return 1;
}

/* x:add_(y): in place, returns x. */
static int m_binary_(lua_State *L)
{
    fl_binop op = (fl_binop)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor *a = fl_lua_checktensor(L, 1);
    luaL_checkany(L, 2);
    fl_tensor *b = fl_lua_operand(L, 2, a, fl_binop_name(op));
    int rc = fl_binary_(op, a, b);
    fl_tensor_release(b);
    if (rc < 0)
        return luaL_error(L, "%s_: %s", fl_binop_name(op), fl_last_error());
    lua_settop(L, 1);
    return 1;
}

static int f_unary(lua_State *L)
{
    fl_unop op = (fl_unop)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor *a = fl_lua_checktensor(L, 1);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_unary(op, a), fl_unop_name(op));
    return 1;
}

static int m_unary_(lua_State *L)
{
    fl_unop op = (fl_unop)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor *a = fl_lua_checktensor(L, 1);
    if (fl_unary_(op, a) < 0)
        return luaL_error(L, "%s_: %s", fl_unop_name(op), fl_last_error());
    lua_settop(L, 1);
    return 1;
}

/* x:clamp(min, max), either bound may be nil; also clamp_min / clamp_max via upvalue. */
static double optbound(lua_State *L, int arg)
{
    if (lua_isnoneornil(L, arg))
        return NAN;
    double v = luaL_checknumber(L, arg);
    if (isnan(v))
        luaL_argerror(L, arg, "expected a number or nil, got nan");
    return v;
}

static int f_clamp(lua_State *L)
{
    fl_tensor *a = fl_lua_checktensor(L, 1);
    int which = (int)lua_tointeger(L, lua_upvalueindex(1));   /* 0 both, 1 min, 2 max */
    double lo = which == 2 ? NAN : optbound(L, 2), hi = which == 1 ? NAN : optbound(L, which == 2 ? 2 : 3);
    if (which == 0 && isnan(lo) && isnan(hi))
        return luaL_error(L, "clamp: expected at least one of min and max");
    if (!isnan(lo) && !isnan(hi) && lo > hi)
        return luaL_error(L, "clamp: min (%f) is greater than max (%f)", lo, hi);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_clamp(a, lo, hi), "clamp");
    return 1;
}

static int m_clamp_(lua_State *L)
{
    fl_tensor *a = fl_lua_checktensor(L, 1);
    double lo = optbound(L, 2), hi = optbound(L, 3);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_clamp(a, lo, hi), "clamp_");
    if (fl_copy(a, *slot) < 0)
        return fl_lua_error(L, "clamp_");
    lua_settop(L, 1);
    return 1;
}

/* flare.where(cond, a, b), a and b tensors or numbers. */
static int f_where(lua_State *L)
{
    fl_tensor *cond = fl_lua_checktensor(L, 1);
    fl_tensor *ta = fl_lua_totensor(L, 2), *tb = fl_lua_totensor(L, 3);
    const fl_tensor *like = ta ? ta : tb ? tb : cond;
    if (!ta && lua_type(L, 2) != LUA_TNUMBER)
        return luaL_typeerror(L, 2, "flare.Tensor or number");
    if (!tb && lua_type(L, 3) != LUA_TNUMBER)
        return luaL_typeerror(L, 3, "flare.Tensor or number");
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *a = fl_lua_operand(L, 2, like, "where");
    fl_tensor *b = fl_lua_operand(L, 3, like, "where");   /* may raise: a leaks only on OOM */
    fl_tensor *r = fl_where(cond, a, b);
    fl_tensor_release(a);
    fl_tensor_release(b);
    fl_lua_fill(L, slot, r, "where");
    return 1;
}

/* Methods and functions named after the op. */
static void register_ops(lua_State *L, int module, int methods)
{
    for (int op = 0; op < FL_BINOP_COUNT; op++) {
        const char *name = fl_binop_name((fl_binop)op);
        fl_lua_reg r[] = {{name, f_binary, FL_REG_BOTH, op}, {NULL, NULL, 0, 0}};
        fl_lua_register(L, module, methods, r);
        if (op <= FL_BINOP_ATAN2) {
            lua_pushfstring(L, "%s_", name);
            lua_pushinteger(L, op);
            lua_pushcclosure(L, m_binary_, 1);
            lua_settable(L, methods);
        }
    }
    for (int op = 0; op < FL_UNOP_COUNT; op++) {
        const char *name = fl_unop_name((fl_unop)op);
        fl_lua_reg r[] = {{name, f_unary, FL_REG_BOTH, op}, {NULL, NULL, 0, 0}};
        fl_lua_register(L, module, methods, r);
        lua_pushfstring(L, "%s_", name);
        lua_pushinteger(L, op);
        lua_pushcclosure(L, m_unary_, 1);
        lua_settable(L, methods);
    }
}

static const fl_lua_reg math_regs[] = {
    {"clamp", f_clamp, FL_REG_BOTH, 0},
    {"clip", f_clamp, FL_REG_BOTH, 0},
    {"clamp_min", f_clamp, FL_REG_BOTH, 1},
    {"clamp_max", f_clamp, FL_REG_BOTH, 2},
    {"clamp_", m_clamp_, FL_REG_METHOD, 0},
    {"where", f_where, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_math(lua_State *L, int module, int methods)
{
    register_ops(L, module, methods);
    fl_lua_register(L, module, methods, math_regs);
    /* PyTorch-style aliases */
    static const char *aliases[][2] = {
        {"mul", "multiply"}, {"sub", "subtract"}, {"div", "divide"}, {"neg", "negative"},
        {"ge", "greater_equal"}, {"le", "less_equal"},
    };
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        lua_getfield(L, methods, aliases[i][0]);
        lua_setfield(L, methods, aliases[i][1]);
    }
    /* operators live on the metatable */
    lua_getfield(L, module, "_metatable");
    static const luaL_Reg mms[] = {
        {"__add", mm_add}, {"__sub", mm_sub}, {"__mul", mm_mul}, {"__div", mm_div},
        {"__pow", mm_pow}, {"__unm", mm_unm}, {NULL, NULL},
    };
    luaL_setfuncs(L, mms, 0);
    lua_pop(L, 1);
}
