/* index.c: x[i] and x[i] = v. An integer selects along the first dimension (1-based,
 * negative counts from the end), as PyTorch's x[i - 1]. */
#include "lua_tensor.h"

static int64_t checkindex(lua_State *L, int arg, int64_t size)
{
    int64_t i = fl_lua_checkint(L, arg);
    if (i == 0 || i > size || i < -size)
        luaL_error(L, "index %I is out of range for a dimension of size %I (indices are 1-based; negative ones count from the end)",
                   (lua_Integer)i, (lua_Integer)size);
    return i > 0 ? i - 1 : size + i;
}

int fl_lua_index_get(lua_State *L);
int fl_lua_index_get(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        if (t->ndim == 0)
            return luaL_error(L, "index: a 0-dim tensor cannot be indexed (use x:item())");
        int64_t i = checkindex(L, 2, t->shape[0]);
        fl_tensor **slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_select(t, 0, i), "index");
        return 1;
    }
    return luaL_typeerror(L, 2, "integer index or method name");
}

int fl_lua_index_set(lua_State *L);
int fl_lua_index_set(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        if (t->ndim == 0)
            return luaL_error(L, "index: a 0-dim tensor cannot be indexed (use x:fill_(v))");
        int64_t i = checkindex(L, 2, t->shape[0]);
        fl_tensor **slot = fl_lua_newslot(L);
        fl_lua_fill(L, slot, fl_select(t, 0, i), "index");
        fl_tensor *dst = *slot, *src = fl_lua_totensor(L, 3);
        int rc;
        if (src)
            rc = fl_copy(dst, src);
        else if (lua_type(L, 3) == LUA_TNUMBER || lua_type(L, 3) == LUA_TBOOLEAN)
            rc = fl_fill(dst, lua_type(L, 3) == LUA_TBOOLEAN ? lua_toboolean(L, 3) : lua_tonumber(L, 3));
        else
            return luaL_typeerror(L, 3, "flare.Tensor or number");
        if (rc < 0)
            return fl_lua_error(L, "index assignment");
        return 0;
    }
    return luaL_typeerror(L, 2, "integer index");
}
