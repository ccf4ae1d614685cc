/* reduce.c: Lua bindings for reductions, cumulative ops, sorting. */
#include "lua_tensor.h"

static const fl_lua_reg reduce_regs[] = {
    {NULL, NULL, 0, 0},
};

void fl_bind_reduce(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, reduce_regs);
}
