/* loss.c: softmax, log_softmax and the fused losses from Lua. Targets hold 1-based class
 * indices, as everywhere in flare's Lua API. */
#include "lua_tensor.h"
#include "../vm/loss.h"

#include <string.h>

static fl_reduction opt_reduction(lua_State *L, int opts)
{
    fl_reduction red = FL_REDUCE_MEAN;
    if (lua_type(L, opts) != LUA_TTABLE)
        return red;
    if (lua_getfield(L, opts, "reduction") != LUA_TNIL) {
        const char *r = lua_tostring(L, -1);
        if (r && strcmp(r, "mean") == 0)
            red = FL_REDUCE_MEAN;
        else if (r && strcmp(r, "sum") == 0)
            red = FL_REDUCE_SUM;
        else if (r && strcmp(r, "none") == 0)
            red = FL_REDUCE_NONE;
        else
            luaL_error(L, "reduction: expected 'mean', 'sum' or 'none', got %s", r ? r : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return red;
}

/* An optional tensor field of the options table (weight, pos_weight); borrowed. */
static fl_tensor *opt_tensor(lua_State *L, int opts, const char *field)
{
    if (lua_type(L, opts) != LUA_TTABLE)
        return NULL;
    fl_tensor *t = NULL;
    if (lua_getfield(L, opts, field) != LUA_TNIL) {
        t = fl_lua_totensor(L, -1);
        if (!t)
            luaL_error(L, "%s: expected a tensor, got %s", field, luaL_typename(L, -1));
    }
    lua_pop(L, 1);   /* the options table still holds it */
    return t;
}

static void check_options(lua_State *L, int idx)
{
    if (!lua_isnoneornil(L, idx) && lua_type(L, idx) != LUA_TTABLE)
        luaL_typeerror(L, idx, "options table");
}

/* x:softmax(dim), flare.softmax(x, dim); log_softmax likewise (upvalue 1 = log). */
static int f_softmax(lua_State *L)
{
    fl_tensor *x = fl_lua_checktensor(L, 1);
    int dim = fl_lua_checkdim(L, 2, x->ndim, 0);
    int log = (int)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_softmax(x, dim, log), log ? "log_softmax" : "softmax");
    return 1;
}

/* flare.cross_entropy(logits, target, {weight, ignore_index = -100, label_smoothing = 0,
 * reduction = 'mean'}); nll_loss likewise over log-probabilities (upvalue 1 = nll). */
static int f_class_loss(lua_State *L)
{
    int nll = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *fname = nll ? "nll_loss" : "cross_entropy";
    fl_tensor *x = fl_lua_checktensor(L, 1), *target = fl_lua_checktensor(L, 2);
    check_options(L, 3);
    fl_reduction red = opt_reduction(L, 3);
    fl_tensor *weight = opt_tensor(L, 3, "weight");
    int64_t ignore = -100;
    double smoothing = 0;
    if (lua_type(L, 3) == LUA_TTABLE) {
        if (lua_getfield(L, 3, "ignore_index") != LUA_TNIL)
            ignore = (int64_t)luaL_checkinteger(L, -1);
        if (lua_getfield(L, 3, "label_smoothing") != LUA_TNIL)
            smoothing = luaL_checknumber(L, -1);
        lua_pop(L, 2);
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_tensor *r = nll ? fl_nll_loss(x, target, weight, ignore, red, 1)
                       : fl_cross_entropy(x, target, weight, ignore, smoothing, red, 1);
    fl_lua_fill(L, slot, r, fname);
    return 1;
}

/* flare.binary_cross_entropy_with_logits(x, y, {weight, pos_weight, reduction}) */
static int f_bce_with_logits(lua_State *L)
{
    fl_tensor *x = fl_lua_checktensor(L, 1), *y = fl_lua_checktensor(L, 2);
    check_options(L, 3);
    fl_reduction red = opt_reduction(L, 3);
    fl_tensor *w = opt_tensor(L, 3, "weight"), *pw = opt_tensor(L, 3, "pos_weight");
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_bce_with_logits(x, y, w, pw, red), "binary_cross_entropy_with_logits");
    return 1;
}

static int f_mse_loss(lua_State *L)
{
    fl_tensor *x = fl_lua_checktensor(L, 1), *y = fl_lua_checktensor(L, 2);
    check_options(L, 3);
    fl_reduction red = opt_reduction(L, 3);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_mse_loss(x, y, red), "mse_loss");
    return 1;
}

static const fl_lua_reg loss_regs[] = {
    {"softmax", f_softmax, FL_REG_BOTH, 0},
    {"log_softmax", f_softmax, FL_REG_BOTH, 1},
    {"cross_entropy", f_class_loss, FL_REG_MODULE, 0},
    {"nll_loss", f_class_loss, FL_REG_MODULE, 1},
    {"binary_cross_entropy_with_logits", f_bce_with_logits, FL_REG_MODULE, 0},
    {"mse_loss", f_mse_loss, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_loss(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, loss_regs);
}
