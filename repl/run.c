/* run.c: running chunks for the `flare` executable: a traceback handler around every call,
 * and Ctrl-C. As in lua.c, the SIGINT handler never touches the Lua state beyond setting a
 * hook, which raises "interrupted!" at the next Lua instruction; it also raises the engine's
 * interrupt flag (vm/interrupt.h), so a long C kernel stops at its next block boundary.
 * Sections run through flare.uninterruptible (an optimizer step, a file write) defer the
 * interrupt until they end. While the prompt reads a line, Ctrl-C abandons that line. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "../vm/interrupt.h"
#include "repl.h"

static lua_State *main_L;
static volatile sig_atomic_t reading_line;     /* the prompt is in readline() */
static volatile sig_atomic_t line_interrupted; /* Ctrl-C pressed while reading */
static volatile sig_atomic_t unserviced;       /* Ctrl-C presses not acted on yet */

/* Presses of Ctrl-C with no effect (a C call that never polls) before flare gives up and
 * lets the default action end the process. */
#define GIVE_UP_PRESSES 3

double fl_repl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- Ctrl-C */

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    if (fl_interrupt_deferred())
        return;   /* delivered when the section ends */
    fl_interrupt_clear();
    unserviced = 0;
    lua_pushliteral(L, "interrupted!");
    lua_error(L);
}

static void on_sigint(int sig)
{
    (void)sig;
    if (reading_line) {
        line_interrupted = 1;
        return;
    }
    if (++unserviced >= GIVE_UP_PRESSES) {
        static const char msg[] = "\nflare: Ctrl-C pressed 3 times with no effect; quitting\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
        return;
    }
    if (fl_interrupt_request() && main_L)
        lua_sethook(main_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

void fl_repl_set_reading(int reading)
{
    reading_line = reading;
    if (reading && main_L) {
        /* a Ctrl-C that came between two commands is not carried into the next one */
        if (lua_gethook(main_L) == stop_hook)
            lua_sethook(main_L, NULL, 0, 0);
        fl_interrupt_clear();
        unserviced = 0;
    }
}

int fl_repl_line_interrupt_pending(void)
{
    return line_interrupted;
}

int fl_repl_line_interrupted(void)
{
    int was = line_interrupted;
    line_interrupted = 0;
    return was;
}

/* ---------------------------------------------------------------- uninterruptible sections */

/* registry['flare.defer'](): opens a section and returns a to-be-closed guard whose __close
 * ends it (flare.uninterruptible in stdlib/flare/init.lua uses it). */
static int defer_close(lua_State *L)
{
    if (fl_interrupt_defer_end() && lua_isnil(L, 2)) {
        unserviced = 0;
        lua_pushliteral(L, "interrupted!");
        return lua_error(L);
    }
    return 0;
}

static int defer_begin(lua_State *L)
{
    fl_interrupt_defer_begin();
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}

void fl_repl_setup(lua_State *L)
{
    main_L = L;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   /* no SA_RESTART: a blocking read returns EINTR */
    sigaction(SIGINT, &sa, NULL);

    lua_newtable(L);   /* the guard: an empty table whose metatable closes the section */
    lua_newtable(L);
    lua_pushcfunction(L, defer_close);
    lua_setfield(L, -2, "__close");
    lua_setmetatable(L, -2);
    lua_pushcclosure(L, defer_begin, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "flare.defer");
}

/* ---------------------------------------------------------------- protected calls */

static int msg_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (strcmp(msg, "interrupted!") == 0)
        return 1;   /* no traceback for Ctrl-C */
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int fl_repl_docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msg_handler);
    lua_insert(L, base);
    unserviced = 0;
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    if (lua_gethook(L) == stop_hook)
        lua_sethook(L, NULL, 0, 0);
    /* An interrupt that arrived during the last C call, with no Lua instruction after it to
     * run the hook: the results may be incomplete, so they are dropped. */
    if (status == LUA_OK && fl_interrupted()) {
        lua_settop(L, base - 1);
        lua_pushliteral(L, "interrupted!");
        status = LUA_ERRRUN;
    }
    fl_interrupt_clear();
    unserviced = 0;
    return status;
}

int fl_repl_report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg && strcmp(msg, "interrupted!") == 0)
            fprintf(stderr, "\ninterrupted!\n");
        else
            fprintf(stderr, "%s: %s\n", fl_repl_progname, msg ? msg : "(error object is not a string)");
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}
