/* view.c: Lua bindings for views and movement ops (view, reshape, transpose, ...) and indexing ops (gather, scatter, masks, ...). */
#include "lua_tensor.h"

static const fl_lua_reg view_regs[] = {
    {NULL, NULL, 0, 0},
};

void fl_bind_view(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, view_regs);
}
