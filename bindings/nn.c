/* nn.c: Lua bindings for the neural-network kernels: convolution, pooling (flare.conv2d, ...). */
#include "lua_tensor.h"

static const fl_lua_reg nn_regs[] = {
    {NULL, NULL, 0, 0},
};

void fl_bind_nn(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, nn_regs);
}
