/* io.c: files and raw bytes from Lua: flare.read_file (gzip read transparently) and
 * flare.frombuffer (a tensor from a Lua string's bytes). */
#include "lua_tensor.h"
#include "../vm/cuda.h"
#include "../vm/io.h"

#include <stdlib.h>
#include <string.h>

/* flare.read_file(path [, {max_bytes = 2^32}]) -> string */
static int f_read_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = (lua_Integer)1 << 32;
    if (lua_type(L, 2) == LUA_TTABLE) {
        if (lua_getfield(L, 2, "max_bytes") != LUA_TNIL)
            max = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, 2)) {
        return luaL_typeerror(L, 2, "options table");
    }
    if (max < 1)
        return luaL_argerror(L, 2, "max_bytes must be positive");
    char *data;
    size_t len;
    if (fl_read_file(path, (size_t)max, &data, &len) < 0)
        return fl_lua_error(L, "read_file");
    lua_pushlstring(L, data, len);
    free(data);
    return 1;
}

/* flare.frombuffer(bytes, {dtype = 'uint8', offset = 0 (bytes, 0-based), shape = {...}
 * (default: all that is left, 1-d), byteorder = 'little' | 'big', device = 'cpu'}) -> a new
 * tensor */
static int f_frombuffer(lua_State *L)
{
    size_t len;
    const char *bytes = luaL_checklstring(L, 1, &len);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    fl_dtype dt = fl_lua_optdtype(L, 2, FL_DTYPE_U8);
    lua_Integer offset = 0;
    int big = 0;
    int64_t shape[FL_MAX_DIMS];
    int ndim = -1;
    if (lua_type(L, 2) == LUA_TTABLE) {
        if (lua_getfield(L, 2, "offset") != LUA_TNIL)
            offset = luaL_checkinteger(L, -1);
        if (lua_getfield(L, 2, "byteorder") != LUA_TNIL) {
            const char *bo = luaL_checkstring(L, -1);
            if (strcmp(bo, "big") == 0)
                big = 1;
            else if (strcmp(bo, "little") != 0)
                return luaL_error(L, "frombuffer: byteorder must be 'little' or 'big', got '%s'", bo);
        }
        if (lua_getfield(L, 2, "shape") != LUA_TNIL) {
            int next;
            ndim = fl_lua_checkshape(L, lua_gettop(L), shape, &next);
        }
        lua_pop(L, 3);
    }
    if (offset < 0 || (size_t)offset > len)
        return luaL_error(L, "frombuffer: offset %I is outside the %I bytes given", offset, (lua_Integer)len);
    size_t avail = len - (size_t)offset, es = fl_dtype_size(dt);
    if (ndim < 0) {
        ndim = 1;
        shape[0] = (int64_t)(avail / es);
    }
    int64_t numel = fl_shape_numel(ndim, shape);
    if (numel < 0)
        return fl_lua_error(L, "frombuffer");
    if ((uint64_t)numel > avail / es)
        return luaL_error(L, "frombuffer: %I elements of %s need %I bytes, only %I are left after offset %I",
                          (lua_Integer)numel, fl_dtype_name(dt), (lua_Integer)(numel * (int64_t)es),
                          (lua_Integer)avail, offset);
    fl_device dev = fl_lua_optdevice(L, 2);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_from_bytes(bytes + offset, (size_t)numel * es, dt, ndim, shape, big), "frombuffer");
    if (dev.type != FL_DEVICE_CPU) {   /* read on the host, then one copy to the device */
        fl_tensor **moved = fl_lua_newslot(L);
        fl_lua_fill(L, moved, fl_move(*slot, dev), "frombuffer");
    }
    return 1;
}

static const fl_lua_reg io_regs[] = {
    {"read_file", f_read_file, FL_REG_MODULE, 0},
    {"frombuffer", f_frombuffer, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_io(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, io_regs);
}
