/* linalg.c: Lua bindings for matmul and friends on OpenBLAS. */
#include "lua_tensor.h"

static const fl_lua_reg linalg_regs[] = {
    {NULL, NULL, 0, 0},
};

void fl_bind_linalg(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, linalg_regs);
}
