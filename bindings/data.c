/* data.c: the engine helpers of flare.data: flare.warp_affine (image augmentation),
 * flare._inflate_raw and flare._crc32 (zip entries of .npz files), flare._tobytes (a
 * tensor's bytes, for writers such as flare.save_npy) and flare._prefetch_start (the
 * loader's opt-in background batch gather). */
#include "lua_tensor.h"
#include "../vm/cuda.h"
#include "../vm/data.h"

#include <string.h>

/* flare.warp_affine(x, theta [, {mode = 'bilinear' | 'nearest', fill = 0, size = {h, w}}]) */
static int f_warp_affine(lua_State *L)
{
    fl_tensor *x = fl_lua_checktensor(L, 1);
    fl_tensor *theta = fl_lua_checktensor(L, 2);
    bool bilinear = true;
    double fill = 0;
    int64_t oh = 0, ow = 0;
    if (lua_type(L, 3) == LUA_TTABLE) {
        if (lua_getfield(L, 3, "mode") != LUA_TNIL) {
            const char *mode = luaL_checkstring(L, -1);
            if (strcmp(mode, "nearest") == 0)
                bilinear = false;
            else if (strcmp(mode, "bilinear") != 0)
                return luaL_argerror(L, 3, lua_pushfstring(L, "mode must be 'bilinear' or 'nearest', got '%s'", mode));
        }
        if (lua_getfield(L, 3, "fill") != LUA_TNIL) {
            if (!lua_isnumber(L, -1))
                return luaL_argerror(L, 3, lua_pushfstring(L, "fill must be a number, got %s", luaL_typename(L, -1)));
            fill = lua_tonumber(L, -1);
        }
        if (lua_getfield(L, 3, "size") != LUA_TNIL) {
            int64_t shape[FL_MAX_DIMS];
            int next;
            if (fl_lua_checkshape(L, lua_gettop(L), shape, &next) != 2 || shape[0] < 1 || shape[1] < 1)
                return luaL_argerror(L, 3, "size must be {height, width} of positive sizes");
            oh = shape[0];
            ow = shape[1];
        }
        lua_pop(L, 3);
    } else if (!lua_isnoneornil(L, 3)) {
        return luaL_typeerror(L, 3, "options table");
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_warp_affine(x, theta, oh, ow, bilinear, fill), "warp_affine");
    return 1;
}

/* Deflate cannot do better than about 1032:1; a declared size beyond that (plus some slack
 * for tiny streams) cannot be right, and is refused before any allocation. */
#define MAX_DEFLATE_RATIO 1032

/* flare._inflate_raw(bytes, out_size) -> string of exactly out_size bytes */
static int f_inflate_raw(lua_State *L)
{
    size_t len;
    const char *in = luaL_checklstring(L, 1, &len);
    lua_Integer out_size = luaL_checkinteger(L, 2);
    if (out_size < 0)
        return luaL_argerror(L, 2, "the size must not be negative");
    if ((uint64_t)out_size > (uint64_t)len * MAX_DEFLATE_RATIO + 1024)
        return luaL_error(L, "_inflate_raw: %I compressed bytes cannot hold %I bytes", (lua_Integer)len, out_size);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (size_t)out_size);
    if (fl_inflate_raw(in, len, out, (size_t)out_size) < 0)
        return fl_lua_error(L, "_inflate_raw");
    luaL_pushresultsize(&b, (size_t)out_size);
    return 1;
}

/* flare._crc32(bytes) -> integer */
static int f_crc32(lua_State *L)
{
    size_t len;
    const char *p = luaL_checklstring(L, 1, &len);
    lua_pushinteger(L, (lua_Integer)fl_crc32(p, len));
    return 1;
}

/* flare._tobytes(t) -> the elements of t in row-major order, in this machine's byte order
 * (bools as bytes 0 and 1). */
static int f_tobytes(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    /* the contiguous copy, if one is needed, lives in a slot so that nothing leaks; a device
     * tensor is copied to the host (contiguous) */
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_is_cuda(t) ? fl_move(t, FL_CPU) : fl_contiguous(t), "_tobytes");
    lua_pushlstring(L, fl_tensor_data(*slot), (size_t)(*slot)->numel * fl_dtype_size(t->dtype));
    return 1;
}

/* ---------------------------------------------------------------- prefetch handles */

#define MAX_FIELDS 64   /* tensors per batch */

static fl_prefetch **check_prefetch(lua_State *L)
{
    fl_prefetch **p = luaL_testudata(L, 1, "flare.Prefetch");
    if (!p)
        luaL_typeerror(L, 1, "flare.Prefetch");
    return p;
}

static int prefetch_gc(lua_State *L)
{
    fl_prefetch **p = check_prefetch(L);
    fl_prefetch_free(*p);
    *p = NULL;
    return 0;
}

/* handle:wait() -> {tensors...}: the batch, once. */
static int prefetch_wait(lua_State *L)
{
    fl_prefetch **p = check_prefetch(L);
    if (!*p)
        return luaL_error(L, "wait: this batch was already taken");
    lua_getiuservalue(L, 1, 1);   /* how many tensors */
    int count = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_createtable(L, count, 0);
    int list = lua_gettop(L);
    /* a slot per output first, so that a raise cannot leak the outputs */
    for (int k = 0; k < count; k++) {
        fl_lua_newslot(L);
        lua_rawseti(L, list, k + 1);
    }
    fl_tensor *out[MAX_FIELDS];
    if (fl_prefetch_wait(*p, out) < 0)
        return fl_lua_error(L, "wait");
    for (int k = 0; k < count; k++) {
        lua_rawgeti(L, list, k + 1);
        fl_lua_fill(L, lua_touserdata(L, -1), out[k], "wait");
        lua_pop(L, 1);
    }
    fl_prefetch_free(*p);
    *p = NULL;
    return 1;
}

/* flare._prefetch_start({tensors...}, idx) -> handle: copies rows idx (1-based) of each
 * tensor into new tensors on a background thread; handle:wait() gives them. */
static int f_prefetch_start(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    fl_tensor *idx = fl_lua_checktensor(L, 2);
    lua_Integer count = (lua_Integer)lua_rawlen(L, 1);
    if (count < 1 || count > MAX_FIELDS)
        return luaL_argerror(L, 1, lua_pushfstring(L, "expected a list of 1 to %d tensors, got %I entries", MAX_FIELDS, count));
    fl_tensor *src[MAX_FIELDS];
    for (int k = 0; k < count; k++) {
        lua_rawgeti(L, 1, k + 1);
        src[k] = fl_lua_totensor(L, -1);
        if (!src[k])
            return luaL_argerror(L, 1, lua_pushfstring(L, "entry %d is a %s, expected a tensor", k + 1, luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    fl_prefetch **p = lua_newuserdatauv(L, sizeof *p, 1);
    *p = NULL;
    luaL_setmetatable(L, "flare.Prefetch");
    lua_pushinteger(L, count);
    lua_setiuservalue(L, -2, 1);
    *p = fl_prefetch_start((int)count, src, idx, 1);
    if (!*p)
        return fl_lua_error(L, "_prefetch_start");
    return 1;
}

static const fl_lua_reg data_regs[] = {
    {"warp_affine", f_warp_affine, FL_REG_MODULE, 0},
    {"_inflate_raw", f_inflate_raw, FL_REG_MODULE, 0},
    {"_crc32", f_crc32, FL_REG_MODULE, 0},
    {"_tobytes", f_tobytes, FL_REG_MODULE, 0},
    {"_prefetch_start", f_prefetch_start, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_data(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, data_regs);
    /* handles: __gc/__close (and close) join the worker, so a dropped one never leaves it
     * writing into freed memory */
    luaL_newmetatable(L, "flare.Prefetch");
    lua_pushcfunction(L, prefetch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, prefetch_gc);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    lua_pushcfunction(L, prefetch_wait);
    lua_setfield(L, -2, "wait");
    lua_pushcfunction(L, prefetch_gc);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
