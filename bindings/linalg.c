/* linalg.c: Lua bindings for matmul and friends (OpenBLAS, or cuBLAS for CUDA tensors):
 *   a:matmul(b)  a:mm(b)  a:bmm(b)  a:mv(v)  u:dot(v)  u:outer(v)
 *   flare.addmm(M, a, b, {beta = 1, alpha = 1})   -- beta * M + alpha * (a . b)
 * and the settings of products on the GPU:
 *   flare._set_autocast('bfloat16' | nil) -> the previous setting (flare.autocast builds on it)
 *   flare._cuda_set_allow_tf32(bool) -> the previous setting (flare.cuda.set_allow_tf32)
 *   flare._cuda_bench_gemm(n, mode, iters) -> seconds per direct cuBLAS product
 *     (flare.cuda._bench_gemm; mode 'float32', 'tf32', 'bf16' or 'bf16_cast') */
#include "lua_tensor.h"
#include "../vm/cuda.h"
#include "../kernels/cuda/blas.h"

#include <string.h>

typedef fl_tensor *(*product_fn)(const fl_tensor *, const fl_tensor *);

static const struct {
    const char *name;
    product_fn fn;
} products[] = {
    {"matmul", fl_matmul}, {"mm", fl_mm}, {"bmm", fl_bmm}, {"mv", fl_mv}, {"dot", fl_dot},
    {"outer", fl_outer},
};

/* a:op(b): the upvalue indexes `products`. */
static int f_product(lua_State *L)
{
    int which = (int)lua_tointeger(L, lua_upvalueindex(1));
    fl_tensor *a = fl_lua_checktensor(L, 1), *b = fl_lua_checktensor(L, 2);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, products[which].fn(a, b), products[which].name);
    return 1;
}

/* Field `name` of the options table at idx as a number (def if absent). */
static double opt_number(lua_State *L, int idx, const char *name, double def)
{
    double v = def;
    if (lua_getfield(L, idx, name) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': expected a number, got %s", name, luaL_typename(L, -1)));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static int f_addmm(lua_State *L)
{
    fl_tensor *m = fl_lua_checktensor(L, 1), *a = fl_lua_checktensor(L, 2), *b = fl_lua_checktensor(L, 3);
    double beta = 1, alpha = 1;
    if (fl_lua_isoptions(L, 4)) {
        beta = opt_number(L, 4, "beta", 1);
        alpha = opt_number(L, 4, "alpha", 1);
    } else if (!lua_isnoneornil(L, 4)) {
        return luaL_typeerror(L, 4, "options table {beta = ..., alpha = ...}");
    }
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_addmm(m, a, b, beta, alpha), "addmm");
    return 1;
}

/* ---------------------------------------------------------------- GPU settings */

static int f_set_autocast(lua_State *L)
{
    fl_autocast_mode mode = FL_AUTOCAST_OFF;
    if (!lua_isnoneornil(L, 1)) {
        const char *name = luaL_checkstring(L, 1);
        if (strcmp(name, "bfloat16") != 0)
            return luaL_argerror(L, 1, lua_pushfstring(L, "expected 'bfloat16' or nil, got '%s'", name));
        mode = FL_AUTOCAST_BF16;
    }
    fl_autocast_mode prev = fl_set_autocast(mode);
    if (prev == FL_AUTOCAST_BF16)
        lua_pushliteral(L, "bfloat16");
    else
        lua_pushnil(L);
    return 1;
}

static int f_set_allow_tf32(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    lua_pushboolean(L, fl_set_allow_tf32(lua_toboolean(L, 1)));
    return 1;
}

static int f_bench_gemm(lua_State *L)
{
    static const char *const modes[] = {"float32", "tf32", "bf16", "bf16_cast", NULL};
    static const fl_gemm_mode gemm[] = {FL_GEMM_EXACT, FL_GEMM_TF32, FL_GEMM_BF16, FL_GEMM_BF16};
    int64_t n = fl_lua_checkint(L, 1);
    int which = luaL_checkoption(L, 2, "float32", modes);
    int64_t iters = luaL_optinteger(L, 3, 10);
    if (n < 1 || n > 65536)
        return luaL_argerror(L, 1, "expected a size from 1 to 65536");
    if (iters < 1 || iters > 1000000)
        return luaL_argerror(L, 3, "expected from 1 to 1000000 iterations");
    if (!fl_cuda_is_available())
        return luaL_error(L, "_bench_gemm: CUDA is not available: %s", fl_cuda_unavailable_why());
    double seconds = 0;
    if (fl_cuda_status(FL_CUDA(fl_cuda_bench_gemm)(n, gemm[which], which == 3, (int)iters, &seconds)) < 0)
        return fl_lua_error(L, "_bench_gemm");
    lua_pushnumber(L, seconds);
    return 1;
}

static const fl_lua_reg linalg_regs[] = {
    {"matmul", f_product, FL_REG_BOTH, 0},
    {"mm", f_product, FL_REG_BOTH, 1},
    {"bmm", f_product, FL_REG_BOTH, 2},
    {"mv", f_product, FL_REG_BOTH, 3},
    {"dot", f_product, FL_REG_BOTH, 4},
    {"outer", f_product, FL_REG_BOTH, 5},
    {"ger", f_product, FL_REG_BOTH, 5},
    {"addmm", f_addmm, FL_REG_BOTH, 0},
    {"_set_autocast", f_set_autocast, FL_REG_MODULE, 0},
    {"_cuda_set_allow_tf32", f_set_allow_tf32, FL_REG_MODULE, 0},
    {"_cuda_bench_gemm", f_bench_gemm, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_linalg(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, linalg_regs);
}
