/* cuda.c: flare.cuda (availability, memory statistics, synchronisation, seeding) and the
 * tensor methods that move data between devices: x:cuda(), x:cpu(), x:to('cuda'),
 * x:pin_memory(). */
#include "lua_tensor.h"
#include "../vm/alloc.h"
#include "../vm/cuda.h"
#include "../kernels/cuda/runtime.h"

#include <string.h>

static lua_State *main_state;

/* Runs when a device allocation fails: unreachable tensors may hold the memory. */
static void collect_garbage(void)
{
    if (main_state)
        lua_gc(main_state, LUA_GCCOLLECT);
}

static void check_available(lua_State *L, const char *fname)
{
    if (!fl_cuda_is_available())
        luaL_error(L, "%s: CUDA is not available: %s", fname, fl_cuda_unavailable_why());
}

/* ---------------------------------------------------------------- flare.cuda */

static int c_is_available(lua_State *L)
{
    lua_pushboolean(L, fl_cuda_is_available());
    return 1;
}

static int c_why(lua_State *L)
{
    if (fl_cuda_is_available())
        lua_pushnil(L);
    else
        lua_pushstring(L, fl_cuda_unavailable_why());
    return 1;
}

static int c_is_emulated(lua_State *L)
{
    lua_pushboolean(L, fl_cuda_is_available() && FL_CUDA(fl_cuda_is_emulated)());
    return 1;
}

static int c_device_count(lua_State *L)
{
    lua_pushinteger(L, fl_cuda_is_available() ? FL_CUDA(fl_cuda_device_count)() : 0);
    return 1;
}

/* flare.cuda.device_info([i]): {name, memory, capability} of device i (1-based). */
static int c_device_info(lua_State *L)
{
    check_available(L, "device_info");
    int d = (int)luaL_optinteger(L, 1, 1) - 1;
    char name[256];
    size_t total = 0;
    int major = 0, minor = 0;
    if (FL_CUDA(fl_cuda_device_info)(d, name, sizeof name, &total, &major, &minor) < 0)
        return luaL_error(L, "device_info: %s", FL_CUDA(fl_cuda_error)());
    lua_createtable(L, 0, 3);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)total);
    lua_setfield(L, -2, "memory");
    lua_pushfstring(L, "%d.%d", major, minor);
    lua_setfield(L, -2, "capability");
    return 1;
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int c_memory_stats(lua_State *L)
{
    check_available(L, "memory_stats");
    fl_cuda_memory_stats s;
    FL_CUDA(fl_cuda_get_memory_stats)(&s);
    lua_createtable(L, 0, 10);
    set_int(L, "allocated", s.allocated);
    set_int(L, "reserved", s.reserved);
    set_int(L, "peak_allocated", s.peak_allocated);
    set_int(L, "peak_reserved", s.peak_reserved);
    set_int(L, "device_allocs", s.device_allocs);
    set_int(L, "device_frees", s.device_frees);
    set_int(L, "cache_hits", s.cache_hits);
    set_int(L, "cache_flushes", s.cache_flushes);
    set_int(L, "device_free", s.device_free);
    set_int(L, "device_total", s.device_total);
    return 1;
}

static int c_reset_peak(lua_State *L)
{
    check_available(L, "reset_peak_memory_stats");
    FL_CUDA(fl_cuda_reset_peak_stats)();
    return 0;
}

static int c_synchronize(lua_State *L)
{
    check_available(L, "synchronize");
    if (FL_CUDA(fl_cuda_synchronize)() < 0)
        return luaL_error(L, "synchronize: %s", FL_CUDA(fl_cuda_error)());
    return 0;
}

/* Frees the allocator's cache; a full collection first returns unreachable tensors to it. */
static int c_empty_cache(lua_State *L)
{
    check_available(L, "empty_cache");
    lua_gc(L, LUA_GCCOLLECT);
    FL_CUDA(fl_cuda_empty_cache)();
    return 0;
}

static const luaL_Reg cuda_functions[] = {
    {"is_available", c_is_available},
    {"why_unavailable", c_why},
    {"is_emulated", c_is_emulated},
    {"device_count", c_device_count},
    {"device_info", c_device_info},
    {"memory_stats", c_memory_stats},
    {"reset_peak_memory_stats", c_reset_peak},
    {"synchronize", c_synchronize},
    {"empty_cache", c_empty_cache},
    {NULL, NULL},
};

/* ---------------------------------------------------------------- tensor methods */

static int move_to(lua_State *L, fl_device dev, const char *fname)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    fl_device at = t->storage->device;
    if (at.type == dev.type && at.index == dev.index) {
        lua_settop(L, 1);
        return 1;
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_to_device(t, dev), fname);
    return 1;
}

/* x:cuda([index]) */
static int m_cuda(lua_State *L)
{
    int index = (int)luaL_optinteger(L, 2, 0);
    return move_to(L, (fl_device){FL_DEVICE_CUDA, index}, "cuda");
}

static int m_cpu(lua_State *L)
{
    return move_to(L, FL_CPU, "cpu");
}

static int m_is_cuda(lua_State *L)
{
    lua_pushboolean(L, fl_is_cuda(fl_lua_checktensor(L, 1)));
    return 1;
}

/* x:pin_memory(): a copy in page-locked host memory, which copies to the GPU faster. */
static int m_pin_memory(lua_State *L)
{
    fl_tensor *t = fl_lua_checktensor(L, 1);
    if (fl_is_cuda(t))
        return luaL_argerror(L, 1, "expected a CPU tensor, got one on cuda");
    check_available(L, "pin_memory");
    if (t->storage->pinned) {
        lua_settop(L, 1);
        return 1;
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_pin_memory(t), "pin_memory");
    return 1;
}

static int m_is_pinned(lua_State *L)
{
    lua_pushboolean(L, fl_lua_checktensor(L, 1)->storage->pinned);
    return 1;
}

static const fl_lua_reg cuda_methods[] = {
    {"cuda", m_cuda, FL_REG_METHOD, 0},
    {"cpu", m_cpu, FL_REG_METHOD, 0},
    {"is_cuda", m_is_cuda, FL_REG_METHOD, 0},
    {"pin_memory", m_pin_memory, FL_REG_METHOD, 0},
    {"is_pinned", m_is_pinned, FL_REG_METHOD, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_cuda(lua_State *L, int module, int methods)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main_state = lua_tothread(L, -1);
    lua_pop(L, 1);
    fl_set_oom_handler(collect_garbage);
    fl_lua_register(L, module, methods, cuda_methods);
    luaL_newlib(L, cuda_functions);
    /* the GEMM settings and benchmark live with the other matmul bindings (bindings/linalg.c) */
    lua_getfield(L, module, "_cuda_set_allow_tf32");
    lua_setfield(L, -2, "set_allow_tf32");
    lua_getfield(L, module, "_cuda_bench_gemm");
    lua_setfield(L, -2, "_bench_gemm");
    lua_setfield(L, module, "cuda");
}
