/* serialize.c: safetensors files and JSON text from Lua, for flare.serialize (flare.save and
 * flare.load are written in Lua on top of these):
 *   flare._safetensors_read(path) -> {name = tensor}, {key = value}, {names in file order}
 *   flare._safetensors_write(path, names, tensors, meta_keys, meta_values)   (atomic)
 *   flare._write_file_atomic(path, bytes)
 *   flare._json_decode(text) -> value */
#include "lua_tensor.h"
#include "../vm/json.h"
#include "../vm/safetensors.h"

#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 2048   /* a model's description nests about 8 levels per container */

static const char FILE_MT = 'F';   /* registry key (its address): a file being handed to Lua */

/* ---------------------------------------------------------------- reading */

/* The file sits in a userdata whose __gc frees what has not been handed to Lua yet, so an
 * error while building the result tables leaks nothing. */
static int file_gc(lua_State *L)
{
    fl_st_file **box = lua_touserdata(L, 1);
    if (box && *box) {
        fl_st_file_free(*box);
        *box = NULL;
    }
    return 0;
}

/* flare._safetensors_read(path) -> tensors, metadata, names */
static int f_safetensors_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    fl_st_file **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &FILE_MT);
    lua_setmetatable(L, -2);
    int boxi = lua_gettop(L);
    *box = fl_safetensors_read(path);
    if (!*box)
        return fl_lua_error(L, "load");
    fl_st_file *f = *box;
    lua_createtable(L, 0, (int)(f->n_tensors < 1u << 20 ? f->n_tensors : 1u << 20));
    int tensors = lua_gettop(L);
    lua_createtable(L, 0, (int)(f->n_meta < 1u << 20 ? f->n_meta : 1u << 20));
    int meta = lua_gettop(L);
    lua_createtable(L, (int)(f->n_tensors < 1u << 20 ? f->n_tensors : 1u << 20), 0);
    int names = lua_gettop(L);
    for (size_t i = 0; i < f->n_tensors; i++) {
        fl_st_tensor *e = &f->tensors[i];
        lua_pushlstring(L, e->name, e->name_len);
        lua_pushvalue(L, -1);
        lua_rawseti(L, names, (lua_Integer)i + 1);
        fl_tensor **slot = fl_lua_newslot(L);
        fl_tensor *t = e->tensor;
        e->tensor = NULL;              /* the slot owns it from here */
        fl_lua_fill(L, slot, t, "load");
        lua_rawset(L, tensors);
    }
    for (size_t i = 0; i < f->n_meta; i++) {
        lua_pushlstring(L, f->meta[i].key, f->meta[i].key_len);
        lua_pushlstring(L, f->meta[i].value, f->meta[i].value_len);
        lua_rawset(L, meta);
    }
    fl_st_file_free(f);
    *box = NULL;
    lua_remove(L, boxi);
    return 3;
}

/* ---------------------------------------------------------------- writing */

/* Checks that t (at arg) is a list of n strings, or of n tensors. */
static void check_list(lua_State *L, int arg, lua_Integer n, int tensors, const char *what)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    if (luaL_len(L, arg) != n)
        luaL_error(L, "save: %I names and %I %s", n, luaL_len(L, arg), what);
    for (lua_Integer i = 1; i <= n; i++) {
        int type = lua_rawgeti(L, arg, i);
        if (tensors ? !fl_lua_totensor(L, -1) : type != LUA_TSTRING)
            luaL_error(L, "save: %s %I is a %s, expected a %s", what, i, luaL_typename(L, -1), tensors ? "tensor" : "string");
        lua_pop(L, 1);
    }
}

/* flare._safetensors_write(path, names, tensors [, meta_keys, meta_values]): lists of the
 * same length, strings and tensors; the metadata is written in the order given. */
static int f_safetensors_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    check_list(L, 2, n, 0, "names");
    check_list(L, 3, n, 1, "tensors");
    lua_Integer n_meta = 0;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        n_meta = luaL_len(L, 4);
        check_list(L, 4, n_meta, 0, "metadata keys");
        check_list(L, 5, n_meta, 0, "metadata values");
    }
    /* the arrays live in userdata, collected whatever happens; the strings and tensors stay
     * referenced by the argument tables */
    fl_st_file f = {(size_t)n, (size_t)n_meta, NULL, NULL};
    f.tensors = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *f.tensors, 0);
    f.meta = lua_newuserdatauv(L, (size_t)(n_meta ? n_meta : 1) * sizeof *f.meta, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        f.tensors[i - 1].name = (char *)lua_tolstring(L, -1, &f.tensors[i - 1].name_len);
        lua_rawgeti(L, 3, i);
        f.tensors[i - 1].tensor = fl_lua_totensor(L, -1);
        lua_pop(L, 2);
    }
    for (lua_Integer i = 1; i <= n_meta; i++) {
        fl_st_pair *p = &f.meta[i - 1];
        lua_rawgeti(L, 4, i);
        p->key = (char *)lua_tolstring(L, -1, &p->key_len);
        lua_rawgeti(L, 5, i);
        p->value = (char *)lua_tolstring(L, -1, &p->value_len);
        lua_pop(L, 2);
    }
    if (fl_safetensors_write(path, &f) < 0)
        return fl_lua_error(L, "save");
    return 0;
}

/* flare._write_file_atomic(path, bytes): any file, replaced atomically (for other writers:
 * .npy files, logs). */
static int f_write_file_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *bytes = luaL_checklstring(L, 2, &len);
    fl_atomic_file a;
    if (fl_atomic_begin(&a, path) < 0 || fl_atomic_write(&a, bytes, len) < 0 || fl_atomic_commit(&a) < 0)
        return fl_lua_error(L, "write_file_atomic");
    return 0;
}

/* ---------------------------------------------------------------- JSON */

static void json_fail(lua_State *L)
{
    luaL_error(L, "json_decode: %s", fl_last_error());
}

static void push_json_string(lua_State *L, fl_json *j)
{
    size_t size, len;
    if (fl_json_string_size(j, &size) < 0)
        json_fail(L);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, size);
    if (fl_json_string(j, p, &len) < 0)
        json_fail(L);
    luaL_pushresultsize(&b, len);
}

/* Pushes the next value: objects as tables with string keys, arrays as sequences, numbers
 * as integers when written as integers that fit, null as nil. */
static void push_json(lua_State *L, fl_json *j)
{
    luaL_checkstack(L, 8, "json_decode: nested too deeply");
    bool is_int;
    int64_t i;
    double d;
    int more;
    switch (fl_json_peek(j)) {
    case FL_JSON_NUMBER:
        if (fl_json_number(j, &is_int, &i, &d) < 0)
            json_fail(L);
        if (is_int)
            lua_pushinteger(L, (lua_Integer)i);
        else
            lua_pushnumber(L, (lua_Number)d);
        return;
    case FL_JSON_STRING:
        push_json_string(L, j);
        return;
    case FL_JSON_ARRAY:
        if (fl_json_begin(j, '[') < 0)
            json_fail(L);
        lua_newtable(L);
        for (size_t n = 0; (more = fl_json_more(j, ']', n)) == 1; n++) {
            push_json(L, j);
            lua_rawseti(L, -2, (lua_Integer)n + 1);
        }
        if (more < 0)
            json_fail(L);
        return;
    case FL_JSON_OBJECT:
        if (fl_json_begin(j, '{') < 0)
            json_fail(L);
        lua_newtable(L);
        for (size_t n = 0; (more = fl_json_more(j, '}', n)) == 1; n++) {
            size_t at = j->pos;
            push_json_string(L, j);
            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) != LUA_TNIL)
                luaL_error(L, "json_decode: near byte %d: key '%s' appears twice in an object", (int)at, lua_tostring(L, -2));
            lua_pop(L, 1);
            if (fl_json_colon(j) < 0)
                json_fail(L);
            push_json(L, j);
            lua_rawset(L, -3);
        }
        if (more < 0)
            json_fail(L);
        return;
    case FL_JSON_BAD:
        json_fail(L);
        return;
    default: {
        fl_json_kind k = fl_json_literal(j);
        if (k == FL_JSON_BAD)
            json_fail(L);
        if (k == FL_JSON_NULL)
            lua_pushnil(L);
        else
            lua_pushboolean(L, k == FL_JSON_TRUE);
        return;
    }
    }
}

/* flare._json_decode(text) -> value (JSON text that is valid UTF-8) */
static int f_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (!fl_utf8_valid(s, len))
        return luaL_error(L, "json_decode: the text is not valid UTF-8");
    fl_json j;
    fl_json_init(&j, s, len, JSON_MAX_DEPTH);
    push_json(L, &j);
    if (fl_json_finish(&j) < 0)
        json_fail(L);
    return 1;
}

static const fl_lua_reg serialize_regs[] = {
    {"_safetensors_read", f_safetensors_read, FL_REG_MODULE, 0},
    {"_safetensors_write", f_safetensors_write, FL_REG_MODULE, 0},
    {"_write_file_atomic", f_write_file_atomic, FL_REG_MODULE, 0},
    {"_json_decode", f_json_decode, FL_REG_MODULE, 0},
    {NULL, NULL, 0, 0},
};

void fl_bind_serialize(lua_State *L, int module, int methods)
{
    fl_lua_register(L, module, methods, serialize_regs);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, file_gc);
    lua_setfield(L, -2, "__gc");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &FILE_MT);
}
