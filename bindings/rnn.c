/* rnn.c: Lua bindings for the fused recurrent cells and layers (vm/rnn.c), which nn.LSTM,
 * nn.GRU, nn.RNN and their cells run on.
 *
 *   h', c' = flare.fused_lstm_cell(gi, gh, c)          gi, gh (N, 4H); c (N, H)
 *   h'     = flare.fused_gru_cell(gi, gh, h)           gi, gh (N, 3H); h (N, H)
 *   out, h_n [, c_n] = flare.fused_rnn_layer(mode, gi, hh, state0 [, reverse])
 *
 * mode is 'lstm', 'gru', 'tanh' or 'relu'; gi (T, N, G) is the input projection of every
 * step; hh is W_hh (G, H) or W_hh with b_hh as an extra last column (G, H + 1); state0 is
 * h0 (N, H), or h0 and c0 stacked (2, N, H) for 'lstm'. out is (T, N, H) in time order. */
#include "lua_tensor.h"
#include "../vm/rnn.h"

#include <string.h>

/* fused_lstm_cell (upvalue 1 = 1) / fused_gru_cell (0) */
static int f_cell(lua_State *L)
{
    bool lstm = lua_tointeger(L, lua_upvalueindex(1)) == 1;
    const char *fname = lstm ? "fused_lstm_cell" : "fused_gru_cell";
    fl_tensor *gi = fl_lua_checktensor(L, 1), *gh = fl_lua_checktensor(L, 2), *s = fl_lua_checktensor(L, 3);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, lstm ? fl_lstm_cell(gi, gh, s) : fl_gru_cell(gi, gh, s), fname);
    if (!lstm)
        return 1;
    int packed = lua_gettop(L);
    for (int k = 0; k < 2; k++) {
        fl_tensor **part = fl_lua_newslot(L);
        fl_lua_fill(L, part, fl_select(*slot, 0, k), fname);
    }
    lua_remove(L, packed);
    return 2;
}

static int f_rnn_layer(lua_State *L)
{
    static const char *const modes[] = {"tanh", "relu", "lstm", "gru", NULL};
    static const fl_rnn_mode values[] = {FL_RNN_TANH, FL_RNN_RELU, FL_RNN_LSTM, FL_RNN_GRU};
    fl_rnn_mode mode = values[luaL_checkoption(L, 1, NULL, modes)];
    fl_tensor *gi = fl_lua_checktensor(L, 2), *hh = fl_lua_checktensor(L, 3), *s0 = fl_lua_checktensor(L, 4);
    if (!lua_isnoneornil(L, 5))
        luaL_checktype(L, 5, LUA_TBOOLEAN);
    bool reverse = lua_toboolean(L, 5);
    fl_tensor **slot = fl_lua_newslot(L);
    fl_lua_fill(L, slot, fl_rnn_layer(mode, gi, hh, s0, reverse), "fused_rnn_layer");
    fl_tensor *Y = *slot;
    if (mode != FL_RNN_LSTM) {   /* Y is the output itself */
        fl_tensor **hn = fl_lua_newslot(L);
        fl_lua_fill(L, hn, fl_select(Y, 0, reverse ? 0 : Y->shape[0] - 1), "fused_rnn_layer");
        return 2;
    }
    /* LSTM: Y holds the outputs, then the final cell state */
    int packed = lua_gettop(L);
    int64_t T = Y->shape[0] - 1;
    fl_tensor **out = fl_lua_newslot(L);
    fl_lua_fill(L, out, fl_narrow(Y, 0, 0, T), "fused_rnn_layer");
    fl_tensor **hn = fl_lua_newslot(L);
    fl_lua_fill(L, hn, fl_select(Y, 0, reverse ? 0 : T - 1), "fused_rnn_layer");
    fl_tensor **cn = fl_lua_newslot(L);
    fl_lua_fill(L, cn, fl_select(Y, 0, T), "fused_rnn_layer");
    lua_remove(L, packed);
    return 3;
}

static const fl_lua_reg rnn_regs[] = {
    {"fused_lstm_cell", f_cell, FL_REG_MODULE, 1},
    {"fused_gru_cell", f_cell, FL_REG_MODULE, 0},
    {"fused_rnn_layer", f_rnn_layer, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_rnn(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, rnn_regs);
}
