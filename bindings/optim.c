/* optim.c: Lua bindings for the fused optimizer update kernels (flare._optim_*). */
#include "lua_tensor.h"

static const fl_lua_reg optim_regs[] = {
    {NULL, NULL, 0, 0},
};

void fl_bind_optim(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, optim_regs);
}
