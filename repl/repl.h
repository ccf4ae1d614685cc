/* repl.h: what the files of the `flare` executable share: protected calls with Ctrl-C
 * handling (run.c), the interactive prompt (prompt.c), and the program name (main.c). */
#ifndef FL_REPL_H
#define FL_REPL_H

#include <lua.h>

extern const char *fl_repl_progname;

/* ---------------------------------------------------------------- run.c */

/* Installs the SIGINT handler and the registry hook behind flare.uninterruptible. */
void fl_repl_setup(lua_State *L);
/* Calls the function below narg arguments with a traceback handler; Ctrl-C during the call
 * ends it with the error "interrupted!". Returns the lua_pcall status. */
int fl_repl_docall(lua_State *L, int narg, int nres);
/* Prints the error on top of the stack (if status is not LUA_OK) and pops it. */
int fl_repl_report(lua_State *L, int status);
/* While the prompt reads a line, Ctrl-C only marks the line as abandoned. */
void fl_repl_set_reading(int reading);
/* Was Ctrl-C pressed while reading? Clears the mark. */
int fl_repl_line_interrupted(void);
int fl_repl_line_interrupt_pending(void);
/* Seconds on a monotonic clock. */
double fl_repl_now(void);

/* ---------------------------------------------------------------- prompt.c */

/* Runs the interactive prompt until Ctrl-D; saves the history. */
void fl_repl_prompt(lua_State *L);

#endif
