/* main.c: the `flare` executable. Creates a Lua state, embeds the flare C module (the same
 * code as flare/core.so), finds the Lua stdlib, and runs a script, `-e` chunks or the
 * interactive prompt. Modelled on lua.c: a traceback handler around every chunk, SIGINT
 * only sets a hook, `return <line>` is tried first so expressions print, and input keeps
 * being read while the chunk is incomplete. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <editline/readline.h>

#include "../vm/flare.h"

int luaopen_flare_core(lua_State *L);

static lua_State *global_L;
static const char *progname = "flare";

/* ---------------------------------------------------------------- interrupts (as lua.c) */

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_sigint(int sig)
{
    int flags = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    signal(sig, SIG_DFL);
    lua_sethook(global_L, stop_hook, flags, 1);
}

static int msg_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msg_handler);
    lua_insert(L, base);
    global_L = L;
    signal(SIGINT, on_sigint);
    int status = lua_pcall(L, narg, nres, base);
    signal(SIGINT, SIG_DFL);
    lua_remove(L, base);
    return status;
}

static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

/* ---------------------------------------------------------------- set-up */

/* Puts the stdlib beside the executable first on package.path: <exe>/../../stdlib for the
 * build tree, <exe>/../share/lua/5.4 for an installed copy. */
static void set_paths(lua_State *L)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = '\0';
    lua_getglobal(L, "package");
    lua_pushfstring(L,
                    "%s/../../stdlib/?.lua;%s/../../stdlib/?/init.lua;"
                    "%s/../share/lua/5.4/?.lua;%s/../share/lua/5.4/?/init.lua;",
                    exe, exe, exe, exe);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

static int open_flare(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_flare_core);
    lua_setfield(L, -2, "flare.core");
    lua_pop(L, 1);
    set_paths(L);
    /* flare.open_globals sets `flare` and the stdlib modules as globals */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "flare");
    if (docall(L, 1, 1) != LUA_OK)
        return report(L, LUA_ERRRUN);
    lua_getfield(L, -1, "open_globals");
    if (lua_isfunction(L, -1))
        return report(L, docall(L, 0, 0));
    lua_pop(L, 1);
    lua_setglobal(L, "flare");
    return LUA_OK;
}

/* ---------------------------------------------------------------- the prompt */

static void print_results(lua_State *L, int n)
{
    if (n == 0)
        return;
    lua_getglobal(L, "flare");
    if (lua_istable(L, -1) && lua_getfield(L, -1, "repl_print") == LUA_TFUNCTION) {
        lua_remove(L, -2);
        lua_insert(L, -(n + 1));
        report(L, docall(L, n, 0));
        return;
    }
    lua_settop(L, lua_gettop(L) - (lua_istable(L, -1) ? 2 : 1));
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, -(n + 1));
    report(L, docall(L, n, 0));
}

static int incomplete(lua_State *L, int status)
{
    if (status == LUA_ERRSYNTAX) {
        size_t len;
        const char *msg = lua_tolstring(L, -1, &len);
        if (len >= 5 && strcmp(msg + len - 5, "<eof>") == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

/* Reads one chunk (possibly several lines) and compiles it; pushes the function. Returns
 * -1 at end of input. */
static int load_chunk(lua_State *L)
{
    char *line = readline("> ");
    if (!line)
        return -1;
    size_t len = strlen(line);
    int suppress = len > 0 && line[len - 1] == ';';
    if (len > 0)
        add_history(line);
    /* try as an expression first */
    if (!suppress) {
        const char *ret = lua_pushfstring(L, "return %s", line);
        if (luaL_loadbuffer(L, ret, strlen(ret), "=stdin") == LUA_OK) {
            lua_remove(L, -2);
            free(line);
            return LUA_OK;
        }
        lua_pop(L, 2);
    }
    lua_pushstring(L, line);
    free(line);
    for (;;) {
        size_t n;
        const char *code = lua_tolstring(L, -1, &n);
        int status = luaL_loadbuffer(L, code, n, "=stdin");
        if (!incomplete(L, status)) {
            lua_remove(L, -2);
            return status;
        }
        char *more = readline(">> ");
        if (!more)
            return LUA_ERRSYNTAX;
        if (*more)
            add_history(more);
        lua_pushliteral(L, "\n");
        lua_pushstring(L, more);
        free(more);
        lua_concat(L, 3);
    }
}

static void repl(lua_State *L)
{
    int status;
    while ((status = load_chunk(L)) != -1) {
        if (status == LUA_OK) {
            int base = lua_gettop(L) - 1;
            status = docall(L, 0, LUA_MULTRET);
            if (status == LUA_OK)
                print_results(L, lua_gettop(L) - base);
        }
        report(L, status);
        lua_settop(L, 0);
    }
    fputc('\n', stdout);
}

static void banner(lua_State *L)
{
    printf("flare %s — %s, %s, CUDA: not available\n", FL_VERSION, LUA_RELEASE, fl_blas_info());
    (void)L;
}

/* ---------------------------------------------------------------- command line */

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [options] [script [args]]\n"
            "  -e code   run code\n"
            "  -i        enter the prompt after running the script\n"
            "  -v        print the version\n"
            "  -         run standard input\n",
            progname);
}

static int run_script(lua_State *L, char **argv, int script, int argc)
{
    lua_createtable(L, argc - script, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
    const char *fname = strcmp(argv[script], "-") == 0 ? NULL : argv[script];
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = argc - script - 1;
        luaL_checkstack(L, n + 1, "too many arguments to script");
        for (int i = script + 1; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = docall(L, n, LUA_MULTRET);
    }
    return report(L, status);
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    int interactive = 0, ran = 0, script = 0;
    luaL_openlibs(L);
    if (open_flare(L) != LUA_OK)
        return 0;
    for (int i = 1; i < argc && !script; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            printf("flare %s — %s\n", FL_VERSION, LUA_RELEASE);
            ran = 1;
        } else if (strcmp(argv[i], "-i") == 0) {
            interactive = 1;
        } else if (strcmp(argv[i], "-e") == 0) {
            if (i + 1 >= argc) {
                usage();
                return 0;
            }
            const char *code = argv[++i];
            if (report(L, luaL_loadbuffer(L, code, strlen(code), "=(command line)")) != LUA_OK ||
                report(L, docall(L, 0, 0)) != LUA_OK)
                return 0;
            ran = 1;
        } else if (strcmp(argv[i], "--") == 0) {
            script = i + 1 < argc ? i + 1 : 0;
            break;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "%s: unrecognized option '%s'\n", progname, argv[i]);
            usage();
            return 0;
        } else {
            script = i;
        }
    }
    if (script && run_script(L, argv, script, argc) != LUA_OK)
        return 0;
    if (interactive || (!script && !ran)) {
        if (isatty(0) || interactive) {
            banner(L);
            repl(L);
        } else if (report(L, luaL_loadfile(L, NULL)) == LUA_OK && report(L, docall(L, 0, 0)) != LUA_OK) {
            return 0;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", progname);
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = lua_toboolean(L, -1);
    report(L, status);
    lua_close(L);
    return (ok && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
