/* optim.c: Lua bindings for the fused optimizer steps and gradient clipping (flare._optim_*,
 * flare._clip_grad_*). stdlib/flare/optim calls them with Lua lists of tensors, one entry
 * per parameter, so that one call updates a whole parameter group. State not created yet
 * is `false` in its list; the step creates it and stores the new tensor there. */
#include "lua_tensor.h"
#include "../vm/optim.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- argument readers */

/* Length of the params list at arg (a table of tensors). */
static int list_length(lua_State *L, int arg)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
    if (n > 1 << 24)
        luaL_argerror(L, arg, "too many parameters");
    return (int)n;
}

/* Reads n tensors from the list at arg into a scratch array (a userdata left on the stack,
 * so it is collected whatever happens). With `optional`, nil/false entries read as NULL. */
static fl_tensor **read_list(lua_State *L, int arg, int n, const char *what, bool optional)
{
    if (lua_type(L, arg) != LUA_TTABLE)
        luaL_typeerror(L, arg, lua_pushfstring(L, "list of %s", what));
    fl_tensor **a = lua_newuserdatauv(L, (n ? (size_t)n : 1) * sizeof *a, 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, arg, i + 1);
        a[i] = fl_lua_totensor(L, -1);
        if (!a[i] && !(optional && !lua_toboolean(L, -1)))
            luaL_argerror(L, arg, lua_pushfstring(L, "entry %d of the %s list: expected a tensor%s, got %s", i + 1, what,
                                                  optional ? " or false" : "", luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    return a;
}

static int64_t *read_steps(lua_State *L, int arg, int n)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    int64_t *s = lua_newuserdatauv(L, (n ? (size_t)n : 1) * sizeof *s, 0);
    for (int i = 0; i < n; i++) {
        int isnum;
        lua_rawgeti(L, arg, i + 1);
        s[i] = (int64_t)lua_tointegerx(L, -1, &isnum);
        if (!isnum)
            luaL_argerror(L, arg, lua_pushfstring(L, "entry %d of the step list: expected an integer, got %s", i + 1,
                                                  luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    return s;
}

static double opt_number(lua_State *L, int opts, const char *name, double def)
{
    double v = def;
    int t = lua_getfield(L, opts, name);
    if (t == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else if (t != LUA_TNIL || isnan(def))
        luaL_argerror(L, opts, lua_pushfstring(L, "option '%s': expected a number, got %s", name, luaL_typename(L, -1)));
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int opts, const char *name)
{
    lua_getfield(L, opts, name);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Betas as opts.betas = {beta1, beta2}. */
static void opt_betas(lua_State *L, int opts, double *b1, double *b2)
{
    if (lua_getfield(L, opts, "betas") != LUA_TTABLE)
        luaL_argerror(L, opts, lua_pushfstring(L, "option 'betas': expected a table {beta1, beta2}, got %s",
                                               luaL_typename(L, -1)));
    for (int k = 1; k <= 2; k++) {
        if (lua_rawgeti(L, -1, k) != LUA_TNUMBER)
            luaL_argerror(L, opts, lua_pushfstring(L, "option 'betas': entry %d is not a number", k));
        *(k == 1 ? b1 : b2) = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- new state */

/* For each missing entry of state list `a` (read from the table at arg), puts an empty
 * tensor userdata in the table now, so that handing over the tensor the step creates
 * cannot fail (nor leak). Returns the slots (NULL where the entry existed). */
static fl_tensor ***reserve_slots(lua_State *L, int arg, fl_tensor **a, int n)
{
    if (!a)
        return NULL;
    fl_tensor ***slots = lua_newuserdatauv(L, (n ? (size_t)n : 1) * sizeof *slots, 0);
    int keep = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        slots[i] = NULL;
        if (a[i])
            continue;
        slots[i] = fl_lua_newslot(L);
        lua_rawseti(L, arg, i + 1);
    }
    lua_settop(L, keep);
    return slots;
}

/* After the step: fills the reserved slots (success), or puts `false` back (failure). */
static void settle_slots(lua_State *L, int arg, fl_tensor **a, fl_tensor ***slots, int n, bool ok)
{
    if (!slots)
        return;
    for (int i = 0; i < n; i++) {
        if (!slots[i])
            continue;
        if (ok) {
            *slots[i] = a[i];
            fl_lua_account(L, a[i]->storage->nbytes);
        } else {
            lua_pushboolean(L, 0);
            lua_rawseti(L, arg, i + 1);
        }
    }
}

/* ---------------------------------------------------------------- steps */

/* flare._optim_sgd_step(params, grads, bufs, opts): opts has lr, momentum, dampening,
 * weight_decay, nesterov, maximize. bufs may be nil when momentum is 0. */
static int f_sgd_step(lua_State *L)
{
    int n = list_length(L, 1);
    luaL_checktype(L, 4, LUA_TTABLE);
    fl_sgd_opts o = {
        .lr = opt_number(L, 4, "lr", NAN),
        .momentum = opt_number(L, 4, "momentum", 0),
        .dampening = opt_number(L, 4, "dampening", 0),
        .weight_decay = opt_number(L, 4, "weight_decay", 0),
        .nesterov = opt_bool(L, 4, "nesterov"),
        .maximize = opt_bool(L, 4, "maximize"),
    };
    fl_tensor **params = read_list(L, 1, n, "parameters", false);
    fl_tensor **grads = read_list(L, 2, n, "gradients", false);
    fl_tensor **bufs = o.momentum != 0 ? read_list(L, 3, n, "momentum buffers", true) : NULL;
    fl_tensor ***slots = reserve_slots(L, 3, bufs, n);
    int rc = fl_sgd_step(n, params, grads, bufs, &o);
    settle_slots(L, 3, bufs, slots, n, rc == 0);
    if (rc < 0)
        return fl_lua_error(L, "SGD step");
    return 0;
}

/* flare._optim_adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, opts):
 * opts has lr, betas, eps, weight_decay, amsgrad, maximize; upvalue 1 is AdamW's decoupled
 * weight decay. max_exp_avg_sqs may be nil without amsgrad. */
static int f_adam_step(lua_State *L)
{
    bool decoupled = lua_tointeger(L, lua_upvalueindex(1)) != 0;
    const char *name = decoupled ? "AdamW step" : "Adam step";
    int n = list_length(L, 1);
    luaL_checktype(L, 7, LUA_TTABLE);
    fl_adam_opts o = {
        .lr = opt_number(L, 7, "lr", NAN),
        .eps = opt_number(L, 7, "eps", 1e-8),
        .weight_decay = opt_number(L, 7, "weight_decay", decoupled ? 1e-2 : 0),
        .amsgrad = opt_bool(L, 7, "amsgrad"),
        .maximize = opt_bool(L, 7, "maximize"),
        .decoupled = decoupled,
    };
    opt_betas(L, 7, &o.beta1, &o.beta2);
    fl_tensor **params = read_list(L, 1, n, "parameters", false);
    fl_tensor **grads = read_list(L, 2, n, "gradients", false);
    fl_tensor **m = read_list(L, 3, n, "exp_avg", true);
    fl_tensor **v = read_list(L, 4, n, "exp_avg_sq", true);
    fl_tensor **vmax = o.amsgrad ? read_list(L, 5, n, "max_exp_avg_sq", true) : NULL;
    int64_t *steps = read_steps(L, 6, n);
    fl_tensor ***sm = reserve_slots(L, 3, m, n), ***sv = reserve_slots(L, 4, v, n);
    fl_tensor ***svmax = reserve_slots(L, 5, vmax, n);
    int rc = fl_adam_step(n, params, grads, m, v, vmax, steps, &o);
    settle_slots(L, 3, m, sm, n, rc == 0);
    settle_slots(L, 4, v, sv, n, rc == 0);
    settle_slots(L, 5, vmax, svmax, n, rc == 0);
    if (rc < 0)
        return fl_lua_error(L, name);
    return 0;
}

/* flare._optim_adagrad_step(params, grads, sums, steps, opts): opts has lr, lr_decay,
 * weight_decay, eps, initial_accumulator_value, maximize. */
static int f_adagrad_step(lua_State *L)
{
    int n = list_length(L, 1);
    luaL_checktype(L, 5, LUA_TTABLE);
    fl_adagrad_opts o = {
        .lr = opt_number(L, 5, "lr", NAN),
        .lr_decay = opt_number(L, 5, "lr_decay", 0),
        .weight_decay = opt_number(L, 5, "weight_decay", 0),
        .eps = opt_number(L, 5, "eps", 1e-10),
        .initial_accumulator_value = opt_number(L, 5, "initial_accumulator_value", 0),
        .maximize = opt_bool(L, 5, "maximize"),
    };
    fl_tensor **params = read_list(L, 1, n, "parameters", false);
    fl_tensor **grads = read_list(L, 2, n, "gradients", false);
    fl_tensor **sums = read_list(L, 3, n, "sum", true);
    int64_t *steps = read_steps(L, 4, n);
    fl_tensor ***slots = reserve_slots(L, 3, sums, n);
    int rc = fl_adagrad_step(n, params, grads, sums, steps, &o);
    settle_slots(L, 3, sums, slots, n, rc == 0);
    if (rc < 0)
        return fl_lua_error(L, "Adagrad step");
    return 0;
}

/* flare._optim_rmsprop_step(params, grads, square_avgs, grad_avgs, bufs, opts): opts has lr,
 * alpha, eps, weight_decay, momentum, centered, maximize. grad_avgs may be nil unless
 * centered, bufs unless momentum > 0. */
static int f_rmsprop_step(lua_State *L)
{
    int n = list_length(L, 1);
    luaL_checktype(L, 6, LUA_TTABLE);
    fl_rmsprop_opts o = {
        .lr = opt_number(L, 6, "lr", NAN),
        .alpha = opt_number(L, 6, "alpha", 0.99),
        .eps = opt_number(L, 6, "eps", 1e-8),
        .weight_decay = opt_number(L, 6, "weight_decay", 0),
        .momentum = opt_number(L, 6, "momentum", 0),
        .centered = opt_bool(L, 6, "centered"),
        .maximize = opt_bool(L, 6, "maximize"),
    };
    fl_tensor **params = read_list(L, 1, n, "parameters", false);
    fl_tensor **grads = read_list(L, 2, n, "gradients", false);
    fl_tensor **sq = read_list(L, 3, n, "square_avg", true);
    fl_tensor **gavg = o.centered ? read_list(L, 4, n, "grad_avg", true) : NULL;
    fl_tensor **bufs = o.momentum > 0 ? read_list(L, 5, n, "momentum buffers", true) : NULL;
    fl_tensor ***ssq = reserve_slots(L, 3, sq, n), ***sgavg = reserve_slots(L, 4, gavg, n);
    fl_tensor ***sbufs = reserve_slots(L, 5, bufs, n);
    int rc = fl_rmsprop_step(n, params, grads, sq, gavg, bufs, &o);
    settle_slots(L, 3, sq, ssq, n, rc == 0);
    settle_slots(L, 4, gavg, sgavg, n, rc == 0);
    settle_slots(L, 5, bufs, sbufs, n, rc == 0);
    if (rc < 0)
        return fl_lua_error(L, "RMSprop step");
    return 0;
}

/* flare._optim_adadelta_step(params, grads, square_avgs, acc_deltas, opts): opts has lr,
 * rho, eps, weight_decay, maximize. */
static int f_adadelta_step(lua_State *L)
{
    int n = list_length(L, 1);
    luaL_checktype(L, 5, LUA_TTABLE);
    fl_adadelta_opts o = {
        .lr = opt_number(L, 5, "lr", NAN),
        .rho = opt_number(L, 5, "rho", 0.9),
        .eps = opt_number(L, 5, "eps", 1e-6),
        .weight_decay = opt_number(L, 5, "weight_decay", 0),
        .maximize = opt_bool(L, 5, "maximize"),
    };
    fl_tensor **params = read_list(L, 1, n, "parameters", false);
    fl_tensor **grads = read_list(L, 2, n, "gradients", false);
    fl_tensor **sq = read_list(L, 3, n, "square_avg", true);
    fl_tensor **acc = read_list(L, 4, n, "acc_delta", true);
    fl_tensor ***ssq = reserve_slots(L, 3, sq, n), ***sacc = reserve_slots(L, 4, acc, n);
    int rc = fl_adadelta_step(n, params, grads, sq, acc, &o);
    settle_slots(L, 3, sq, ssq, n, rc == 0);
    settle_slots(L, 4, acc, sacc, n, rc == 0);
    if (rc < 0)
        return fl_lua_error(L, "Adadelta step");
    return 0;
}

/* ---------------------------------------------------------------- gradient clipping */

/* Norm type: a number, or 'inf' / '-inf' (math.huge works too). */
static double check_norm_type(lua_State *L, int arg)
{
    if (lua_isnoneornil(L, arg))
        return 2;
    if (lua_type(L, arg) == LUA_TSTRING) {
        const char *s = lua_tostring(L, arg);
        if (strcmp(s, "inf") == 0)
            return INFINITY;
        if (strcmp(s, "-inf") == 0)
            return -INFINITY;
        luaL_argerror(L, arg, lua_pushfstring(L, "expected a number, 'inf' or '-inf', got '%s'", s));
    }
    double p = luaL_checknumber(L, arg);
    if (isnan(p))
        luaL_argerror(L, arg, "expected a number, 'inf' or '-inf', got nan");
    return p;
}

/* flare._clip_grad_norm(grads, max_norm[, norm_type = 2[, error_if_nonfinite = false]]):
 * scales the gradients in place; returns the total norm before clipping as a 0-dim tensor
 * of the first gradient's dtype, on its device (as PyTorch). */
static int f_clip_grad_norm(lua_State *L)
{
    int n = list_length(L, 1);
    double max_norm = luaL_checknumber(L, 2);
    double p = check_norm_type(L, 3);
    bool error_if_nonfinite = lua_toboolean(L, 4);
    fl_tensor **grads = read_list(L, 1, n, "gradients", false);
    fl_dtype dt = n > 0 ? grads[0]->dtype : FL_DTYPE_F32;
    fl_device dev = n > 0 ? grads[0]->storage->device : FL_CPU;
    fl_tensor **slot = fl_lua_newslot(L);
    double total;
    if (fl_clip_grad_norm(n, grads, max_norm, p, error_if_nonfinite, &total) < 0)
        return fl_lua_error(L, "clip_grad_norm_");
    fl_lua_fill(L, slot, fl_scalar_tensor(total, fl_dtype_is_float(dt) ? dt : FL_DTYPE_F32, dev), "clip_grad_norm_");
    return 1;
}

/* flare._clip_grad_value(grads, clip_value): clamps every gradient to [-v, v] in place. */
static int f_clip_grad_value(lua_State *L)
{
    int n = list_length(L, 1);
    double v = luaL_checknumber(L, 2);
    fl_tensor **grads = read_list(L, 1, n, "gradients", false);
    if (fl_clip_grad_value(n, grads, v) < 0)
        return fl_lua_error(L, "clip_grad_value_");
    return 0;
}

static const fl_lua_reg optim_regs[] = {
    {"_optim_sgd_step", f_sgd_step, FL_REG_MODULE, 0},
    {"_optim_adam_step", f_adam_step, FL_REG_MODULE, 0},
    {"_optim_adamw_step", f_adam_step, FL_REG_MODULE, 1},
    {"_optim_adagrad_step", f_adagrad_step, FL_REG_MODULE, 0},
    {"_optim_rmsprop_step", f_rmsprop_step, FL_REG_MODULE, 0},
    {"_optim_adadelta_step", f_adadelta_step, FL_REG_MODULE, 0},
    {"_clip_grad_norm", f_clip_grad_norm, FL_REG_MODULE, 0},
    {"_clip_grad_value", f_clip_grad_value, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_optim(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, optim_regs);
}
