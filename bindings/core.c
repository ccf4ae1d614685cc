/* core.c: luaopen_flare_core, the one entry point of the C module. It builds the module
 * table and the tensor methods table, lets each binding file register its area, and
 * reports the build (BLAS, threads, CUDA) for the banner. */
#include "lua_tensor.h"
#include "../vm/alloc.h"

#include <dlfcn.h>
#include <time.h>

static int f_set_num_threads(lua_State *L)
{
    int64_t n = fl_lua_checkint(L, 1);
    if (n < 1 || n > 1024)
        return luaL_argerror(L, 1, lua_pushfstring(L, "expected a thread count from 1 to 1024, got %I", (lua_Integer)n));
    fl_set_num_threads((int)n);
    return 0;
}

static int f_get_num_threads(lua_State *L)
{
    lua_pushinteger(L, fl_get_num_threads());
    return 1;
}

static int f_blas_info(lua_State *L)
{
    lua_pushstring(L, fl_blas_info());
    return 1;
}

static int f_bytes_allocated(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)fl_bytes_allocated());
    return 1;
}

/* flare._set_alloc_budget(bytes | nil): caps (or uncaps) the tensor bytes this thread may
 * allocate; returns the bytes that were left, or nil when there was no cap. */
static int f_set_alloc_budget(lua_State *L)
{
    bool on = !lua_isnoneornil(L, 1);
    lua_Integer n = on ? luaL_checkinteger(L, 1) : 0;
    if (n < 0)
        return luaL_argerror(L, 1, "expected a non-negative byte count");
    size_t prev = fl_set_alloc_budget((size_t)n, on);
    if (prev == SIZE_MAX)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)prev);
    return 1;
}

/* flare.clock(): monotonic wall-clock seconds, for timings and rate limits. */
static int f_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

static const fl_lua_reg core_regs[] = {
    {"clock", f_clock, FL_REG_MODULE, 0},
    {"set_num_threads", f_set_num_threads, FL_REG_MODULE, 0},
    {"get_num_threads", f_get_num_threads, FL_REG_MODULE, 0},
    {"blas_info", f_blas_info, FL_REG_MODULE, 0},
    {"bytes_allocated", f_bytes_allocated, FL_REG_MODULE, 0},
    {"_set_alloc_budget", f_set_alloc_budget, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

/* The thread pool's workers live as long as the process; if Lua unloaded this module at
 * lua_close, a worker could be running code that is no longer mapped. Pin the module. */
static void pin_module(void)
{
    Dl_info info;
    if (dladdr((void *)pin_module, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

int luaopen_flare_core(lua_State *L);
int luaopen_flare_core(lua_State *L)
{
    pin_module();
    if (fl_blas_init() < 0)
        return luaL_error(L, "flare: %s", fl_last_error());
    lua_newtable(L);
    int module = lua_gettop(L);
    lua_newtable(L);
    int methods = lua_gettop(L);
    lua_pushvalue(L, methods);
    lua_setfield(L, module, "_methods");
    fl_lua_register(L, module, methods, core_regs);
    fl_bind_tensor(L, module, methods);
    fl_bind_creation(L, module, methods);
    fl_bind_math(L, module, methods);
    fl_bind_autograd(L, module, methods);
    fl_bind_loss(L, module, methods);
    fl_bind_view(L, module, methods);
    fl_bind_reduce(L, module, methods);
    fl_bind_linalg(L, module, methods);
    fl_bind_nn(L, module, methods);
    fl_bind_optim(L, module, methods);
    fl_bind_io(L, module, methods);
    fl_bind_data(L, module, methods);
    fl_bind_serialize(L, module, methods);
    fl_bind_rnn(L, module, methods);
    fl_bind_cuda(L, module, methods);
    lua_pushliteral(L, FL_VERSION);
    lua_setfield(L, module, "version");
    lua_settop(L, module);
    return 1;
}
