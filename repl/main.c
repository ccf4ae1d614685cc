/* main.c: the `flare` executable. Creates a Lua state, embeds the flare C module (the same
 * code as flare/core.so), finds the Lua stdlib, and runs a script, `-e` chunks or the
 * interactive prompt (prompt.c); Ctrl-C and protected calls are in run.c. Modelled on
 * lua.c. Start-up stays lean (the prompt's Lua half and the help texts load on demand),
 * so the first prompt appears in a few milliseconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../vm/flare.h"
#include "repl.h"

int luaopen_flare_core(lua_State *L);

const char *fl_repl_progname = "flare";

/* ---------------------------------------------------------------- set-up */

/* Puts the stdlib beside the executable first on package.path: <exe>/../../stdlib (and
 * ../../../stdlib for the sanitized build) for the build tree, <exe>/../share/lua/5.4 for an installed copy. */
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
    /* build/bin/flare and build/asan/bin/flare sit two and three levels below the tree */
    lua_pushfstring(L,
                    "%s/../../stdlib/?.lua;%s/../../stdlib/?/init.lua;"
                    "%s/../../../stdlib/?.lua;%s/../../../stdlib/?/init.lua;"
                    "%s/../share/lua/5.4/?.lua;%s/../share/lua/5.4/?/init.lua;",
                    exe, exe, exe, exe, exe, exe);
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
    lua_getglobal(L, "require");
    lua_pushliteral(L, "flare");
    if (fl_repl_docall(L, 1, 1) != LUA_OK)
        return fl_repl_report(L, LUA_ERRRUN);
    /* flare.open_globals sets `flare` and the stdlib modules as globals */
    lua_getfield(L, -1, "open_globals");
    if (lua_isfunction(L, -1)) {
        lua_remove(L, -2);
        return fl_repl_report(L, fl_repl_docall(L, 0, 0));
    }
    lua_pop(L, 1);
    lua_setglobal(L, "flare");
    return LUA_OK;
}

/* Loads flare.repl (the prompt's Lua half) and keeps it in the registry for prompt.c;
 * repl.init records the globals present before the user's own (for who()). */
static int open_repl(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "flare.repl");
    if (fl_repl_report(L, fl_repl_docall(L, 1, 1)) != LUA_OK)
        return LUA_ERRRUN;
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "flare.repl.module");
    lua_getfield(L, -1, "init");
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return LUA_OK;
    }
    const char *nocolor = getenv("NO_COLOR"), *term = getenv("TERM");
    int color = isatty(STDOUT_FILENO) && !(nocolor && *nocolor) && !(term && strcmp(term, "dumb") == 0);
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, color);
    lua_setfield(L, -2, "color");
    lua_pushliteral(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    return fl_repl_report(L, fl_repl_docall(L, 1, 0));
}

/* FLARE_INIT (code, or @file) if set, else ~/.flarerc if it exists: run before the prompt
 * opens (not for scripts, so that they behave the same on every machine). */
static int run_init(lua_State *L)
{
    const char *init = getenv("FLARE_INIT");
    int status;
    if (init && init[0] == '@') {
        status = luaL_loadfile(L, init + 1);
    } else if (init) {
        status = luaL_loadbuffer(L, init, strlen(init), "=FLARE_INIT");
    } else {
        const char *home = getenv("HOME");
        if (!home)
            return LUA_OK;
        lua_pushfstring(L, "%s/.flarerc", home);
        const char *path = lua_tostring(L, -1);
        if (access(path, R_OK) != 0) {
            lua_pop(L, 1);
            return LUA_OK;
        }
        status = luaL_loadfile(L, path);
        lua_remove(L, -2);
    }
    if (status == LUA_OK)
        status = fl_repl_docall(L, 0, 0);
    return fl_repl_report(L, status);
}

static void banner(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "flare.repl.module");
    if (lua_istable(L, -1) && lua_getfield(L, -1, "banner") == LUA_TFUNCTION) {
        lua_remove(L, -2);
        if (fl_repl_docall(L, 0, 1) == LUA_OK && lua_isstring(L, -1)) {
            printf("%s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
            return;
        }
        fl_repl_report(L, LUA_ERRRUN);
    } else {
        lua_pop(L, lua_istable(L, -1) ? 2 : 1);
    }
    printf("flare %s — %s, %s\n", FL_VERSION, LUA_RELEASE, fl_blas_info());
}

/* ---------------------------------------------------------------- command line */

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [options] [script [args]]\n"
            "  -e code   run code\n"
            "  -i        enter the prompt after running the script\n"
            "  -v        print the version\n"
            "  -         run standard input\n"
            "The prompt runs $FLARE_INIT (code or @file) or ~/.flarerc first; its history is\n"
            "kept in $FLARE_HISTORY or ~/.flare_history.\n",
            fl_repl_progname);
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
        status = fl_repl_docall(L, n, LUA_MULTRET);
    }
    return fl_repl_report(L, status);
}

/* First pass over the arguments: will the prompt open? (-i, or nothing to run and a
 * terminal on stdin.) Returns -1 on a usage error. */
static int wants_prompt(int argc, char **argv)
{
    int interactive = 0, runs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-i") == 0) {
            interactive = 1;
        } else if (strcmp(argv[i], "-e") == 0) {
            if (i + 1 >= argc)
                return -1;
            i++;
            runs = 1;
        } else if (strcmp(argv[i], "-v") == 0) {
            runs = 1;
        } else if (strcmp(argv[i], "--") == 0) {
            runs |= i + 1 < argc;
            break;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return -1;
        } else {
            runs = 1;
            break;
        }
    }
    return interactive || (!runs && isatty(STDIN_FILENO));
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    int interactive = 0, ran = 0, script = 0;
    int prompt = wants_prompt(argc, argv);
    luaL_openlibs(L);
    fl_repl_setup(L);
    if (open_flare(L) != LUA_OK)
        return 0;
    if (prompt == 1) {
        if (open_repl(L) != LUA_OK)
            return 0;
        banner(L);
        run_init(L);   /* an error there is reported; the prompt still opens */
    }
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
            if (fl_repl_report(L, luaL_loadbuffer(L, code, strlen(code), "=(command line)")) != LUA_OK ||
                fl_repl_report(L, fl_repl_docall(L, 0, 0)) != LUA_OK)
                return 0;
            ran = 1;
        } else if (strcmp(argv[i], "--") == 0) {
            script = i + 1 < argc ? i + 1 : 0;
            break;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "%s: unrecognized option '%s'\n", fl_repl_progname, argv[i]);
            usage();
            return 0;
        } else {
            script = i;
        }
    }
    if (script && run_script(L, argv, script, argc) != LUA_OK && !interactive)
        return 0;
    if (interactive || (!script && !ran)) {
        if (prompt == 1) {
            fl_repl_prompt(L);
        } else if (fl_repl_report(L, luaL_loadfile(L, NULL)) == LUA_OK && fl_repl_report(L, fl_repl_docall(L, 0, 0)) != LUA_OK) {
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
        fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", fl_repl_progname);
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = lua_toboolean(L, -1);
    fl_repl_report(L, status);
    lua_close(L);
    return (ok && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
