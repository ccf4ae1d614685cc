/* prompt.c: the interactive prompt: line editing through libedit's readline interface,
 * persistent history, tab completion, multi-line chunks, printing of results, timing.
 * What the prompt decides in Lua (completion candidates, printing, `_`, the :commands and
 * `?name`) lives in stdlib/flare/repl.lua; this file is the terminal side. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include <editline/readline.h>

#include "repl.h"

#define PROMPT "> "
#define PROMPT_MORE ">> "
#define HISTORY_MAX 1000   /* entries kept in the history file */

static lua_State *prompt_L;

/* ---------------------------------------------------------------- the Lua half */

/* Pushes field `name` of the flare.repl module (registry "flare.repl.module"). */
static int push_repl_field(lua_State *L, const char *name)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, "flare.repl.module") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    int t = lua_getfield(L, -1, name);
    lua_remove(L, -2);
    return t;
}

static int repl_option(lua_State *L, const char *name)
{
    int on = 0;
    if (push_repl_field(L, "options") == LUA_TTABLE) {
        lua_getfield(L, -1, name);
        on = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return on;
}

/* Prints an error through repl.error_text (which trims the prompt's own frames from the
 * traceback and colours it), or as it is. Pops the message. */
static void report_error(lua_State *L)
{
    if (push_repl_field(L, "error_text") == LUA_TFUNCTION) {
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isstring(L, -1)) {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
            fflush(stderr);
            lua_pop(L, 2);
            return;
        }
    }
    lua_pop(L, 1);
    fl_repl_report(L, LUA_ERRRUN);
}

/* ---------------------------------------------------------------- reading keys */

/* libedit's getc, replaced so that Ctrl-C (which interrupts read() with EINTR: the handler
 * is installed without SA_RESTART) ends the line; the loop then drops it. Decodes UTF-8,
 * since libedit takes the returned value as one character. */
static int read_byte(FILE *f)
{
    unsigned char c;
    for (;;) {
        if (fl_repl_line_interrupt_pending())
            return -2;
        ssize_t n = read(fileno(f), &c, 1);
        if (n == 1)
            return c;
        if (n == 0 || errno != EINTR)
            return -1;
    }
}

/* Ctrl-D typed ahead, while a command ran with the terminal in canonical mode, reaches us as
 * a NUL byte once libedit switches to raw mode; as the first key of a line that was already
 * waiting when the prompt appeared, it is taken for what it was: end of input. */
static int typed_ahead, keys_this_line;

static int prompt_getc(FILE *f)
{
    int c = read_byte(f);
    if (c == -2)
        return '\n';
    if (c == 0 && typed_ahead && keys_this_line == 0)
        return -1;
    keys_this_line++;
    if (c < 0x80)
        return c;
    int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    int cp = c & (0x3f >> more);
    for (int i = 0; i < more; i++) {
        int d = read_byte(f);
        if (d == -2)
            return '\n';
        if (d < 0)
            return -1;
        cp = (cp << 6) | (d & 0x3f);
    }
    return cp;
}

/* ---------------------------------------------------------------- history */

static char history_path[4096];
static char *last_entry;
static char **session_entries;
static size_t nsession, capsession;

static void history_init(void)
{
    const char *env = getenv("FLARE_HISTORY");
    const char *home = getenv("HOME");
    if (env)
        snprintf(history_path, sizeof history_path, "%s", env);   /* "" turns the file off */
    else if (home && *home)
        snprintf(history_path, sizeof history_path, "%s/.flare_history", home);
    using_history();
    if (!history_path[0])
        return;
    FILE *f = fopen(history_path, "r");
    if (!f)
        return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[strspn(line, " \t")] == '\0' || (last_entry && strcmp(line, last_entry) == 0))
            continue;
        add_history(line);
        free(last_entry);
        last_entry = strdup(line);
    }
    fclose(f);
}

/* Adds a line to the history, skipping blank lines and repeats of the previous entry. */
static void history_add(const char *line)
{
    if (line[strspn(line, " \t")] == '\0' || strchr(line, '\n'))
        return;
    if (last_entry && strcmp(line, last_entry) == 0)
        return;
    add_history(line);
    free(last_entry);
    last_entry = strdup(line);
    if (nsession == capsession) {
        size_t cap = capsession ? 2 * capsession : 64;
        char **grown = realloc(session_entries, cap * sizeof *grown);
        if (!grown)
            return;
        session_entries = grown;
        capsession = cap;
    }
    char *copy = strdup(line);
    if (copy)
        session_entries[nsession++] = copy;
}

/* Appends this session's entries to the file as it is now (so that sessions running side by
 * side both keep theirs), keeps the last HISTORY_MAX, and replaces the file atomically. */
static void history_save(void)
{
    if (!history_path[0] || nsession == 0)
        goto done;
    size_t n = 0, cap = 256;
    char **lines = malloc(cap * sizeof *lines);
    if (!lines)
        goto done;
    FILE *f = fopen(history_path, "r");
    char buf[4096];
    while (f && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        if (n == cap) {
            char **grown = realloc(lines, 2 * cap * sizeof *lines);
            if (!grown)
                break;
            lines = grown;
            cap *= 2;
        }
        if ((lines[n] = strdup(buf)) != NULL)
            n++;
    }
    if (f)
        fclose(f);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", history_path, (long)getpid());
    FILE *out = fopen(tmp, "w");
    if (out) {
        /* the file's entries, then the session's, without repeats of the previous line */
        size_t total = n + nsession, first = total > HISTORY_MAX ? total - HISTORY_MAX : 0;
        const char *prev = NULL;
        for (size_t i = first; i < total; i++) {
            const char *s = i < n ? lines[i] : session_entries[i - n];
            if (prev && strcmp(prev, s) == 0)
                continue;
            fprintf(out, "%s\n", s);
            prev = s;
        }
        int ok = fflush(out) == 0 && fsync(fileno(out)) == 0;
        ok = (fclose(out) == 0) && ok;
        if (!ok || rename(tmp, history_path) != 0) {
            fprintf(stderr, "%s: cannot save the history to %s: %s\n", fl_repl_progname, history_path, strerror(errno));
            remove(tmp);
        } else {
            chmod(history_path, 0600);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
done:
    for (size_t i = 0; i < nsession; i++)
        free(session_entries[i]);
    free(session_entries);
    session_entries = NULL;
    nsession = capsession = 0;
    free(last_entry);
    last_entry = NULL;
}

/* ---------------------------------------------------------------- completion */

/* Candidates of the current completion (from Lua or the file system), handed out one by one
 * to rl_completion_matches through complete_next. */
static char **cands;
static size_t ncands, capcands, nextcand;

static void cands_clear(void)
{
    for (size_t i = 0; i < ncands; i++)
        free(cands[i]);
    ncands = nextcand = 0;
}

static void cands_add(const char *s)
{
    if (ncands == capcands) {
        size_t cap = capcands ? 2 * capcands : 64;
        char **grown = realloc(cands, cap * sizeof *grown);
        if (!grown)
            return;
        cands = grown;
        capcands = cap;
    }
    char *copy = strdup(s);
    if (copy)
        cands[ncands++] = copy;
}

static char *complete_next(const char *text, int state)
{
    (void)text;
    if (state == 0)
        nextcand = 0;
    return nextcand < ncands ? strdup(cands[nextcand++]) : NULL;
}

/* File names starting with `word` (a path typed inside a string literal); directories get a
 * trailing '/'. A leading ~/ stands for $HOME. */
static void complete_files(const char *word)
{
    const char *slash = strrchr(word, '/');
    char dir[4096], shown[4096];
    size_t dirlen = slash ? (size_t)(slash - word) + 1 : 0;
    const char *base = word + dirlen;
    snprintf(shown, sizeof shown, "%.*s", (int)dirlen, word);
    if (dirlen == 0)
        snprintf(dir, sizeof dir, ".");
    else if (word[0] == '~' && word[1] == '/' && getenv("HOME"))
        snprintf(dir, sizeof dir, "%s/%.*s", getenv("HOME"), (int)dirlen - 2, word + 2);
    else
        snprintf(dir, sizeof dir, "%.*s", (int)dirlen, word);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    size_t blen = strlen(base);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strncmp(e->d_name, base, blen) != 0 || (e->d_name[0] == '.' && base[0] != '.'))
            continue;
        char path[8400], cand[8400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        int isdir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        snprintf(cand, sizeof cand, "%s%s%s", shown, e->d_name, isdir ? "/" : "");
        cands_add(cand);
    }
    closedir(d);
}

/* Asks repl.complete(line before the word, word) for candidates; it answers with a list, or
 * with "file" inside a string literal. */
static char **complete(const char *text, int start, int end)
{
    (void)end;
    lua_State *L = prompt_L;
    rl_attempted_completion_over = 1;   /* no fallback to libedit's own file names */
    rl_completion_append_character = '\0';
    cands_clear();
    int top = lua_gettop(L);
    if (push_repl_field(L, "complete") == LUA_TFUNCTION) {
        lua_pushlstring(L, rl_line_buffer, (size_t)start);
        lua_pushstring(L, text);
        if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
            if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "file") == 0) {
                complete_files(text);
            } else if (lua_istable(L, -1)) {
                lua_Integer n = luaL_len(L, -1);
                for (lua_Integer i = 1; i <= n; i++) {
                    if (lua_rawgeti(L, -1, i) == LUA_TSTRING)
                        cands_add(lua_tostring(L, -1));
                    lua_pop(L, 1);
                }
            }
        }
    }
    lua_settop(L, top);
    if (ncands == 0)
        return NULL;
    return rl_completion_matches(text, complete_next);
}

/* ---------------------------------------------------------------- reading a chunk */

enum { CHUNK_RUN, CHUNK_NONE, CHUNK_EOF, CHUNK_QUIT };

/* Reads one line; NULL at end of input. The line is NULL too when Ctrl-C abandoned it, with
 * *interrupted set. */
static char *read_line(const char *prompt, int *interrupted)
{
    fflush(stdout);
    fflush(stderr);
    struct pollfd pfd = {.fd = fileno(rl_instream ? rl_instream : stdin), .events = POLLIN};
    typed_ahead = poll(&pfd, 1, 0) > 0;
    keys_this_line = 0;
    fl_repl_set_reading(1);
    char *line = readline(prompt);
    fl_repl_set_reading(0);
    *interrupted = fl_repl_line_interrupted();
    if (*interrupted) {
        free(line);
        return NULL;
    }
    return line;
}

static int is_incomplete(lua_State *L, int status)
{
    if (status != LUA_ERRSYNTAX)
        return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    return msg && len >= 5 && strcmp(msg + len - 5, "<eof>") == 0;
}

/* Compiles the chunk on top of the stack: first as `return <chunk>` (so that expressions
 * print) unless it ends with ';', then as statements, then (for "expr;") as an expression
 * without the ';'. Replaces it with the function (and returns LUA_OK), or with the error
 * message. *more is set when the chunk is incomplete. */
static int compile(lua_State *L, int *more)
{
    size_t n;
    const char *code = lua_tolstring(L, -1, &n);
    size_t end = n;
    while (end > 0 && (code[end - 1] == ' ' || code[end - 1] == '\t'))
        end--;
    int suppress = end > 0 && code[end - 1] == ';';
    int ret_incomplete = 0;
    if (!suppress) {
        lua_pushliteral(L, "return ");
        lua_pushvalue(L, -2);
        lua_concat(L, 2);
        size_t rn;
        const char *ret = lua_tolstring(L, -1, &rn);
        int status = luaL_loadbuffer(L, ret, rn, "=stdin");
        if (status == LUA_OK) {
            lua_replace(L, -3);
            lua_pop(L, 1);
            *more = 0;
            return LUA_OK;
        }
        ret_incomplete = is_incomplete(L, status);
        lua_pop(L, 2);
    }
    code = lua_tolstring(L, -1, &n);
    int status = luaL_loadbuffer(L, code, n, "=stdin");
    if (status != LUA_OK && suppress && !is_incomplete(L, status)) {
        /* "x;" is an expression whose value is not to be printed */
        lua_pushliteral(L, "return ");
        lua_pushlstring(L, code, end - 1);
        lua_concat(L, 2);
        size_t rn;
        const char *ret = lua_tolstring(L, -1, &rn);
        if (luaL_loadbuffer(L, ret, rn, "=stdin") == LUA_OK) {
            lua_replace(L, -4);
            lua_pop(L, 2);
            *more = 0;
            return LUA_OK;
        }
        lua_pop(L, 2);
    }
    *more = status != LUA_OK && (is_incomplete(L, status) || ret_incomplete);
    lua_replace(L, -2);
    return status;
}

/* A line starting with ':' (":time on") or '?' ("?flare.randn") is a prompt command,
 * handled by repl.command. Returns CHUNK_QUIT for ":quit". */
static int run_command(lua_State *L, const char *line)
{
    if (push_repl_field(L, "command") != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return CHUNK_NONE;
    }
    lua_pushstring(L, line);
    int status = fl_repl_docall(L, 1, 1);
    if (status != LUA_OK) {
        report_error(L);
        return CHUNK_NONE;
    }
    int quit = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "quit") == 0;
    lua_pop(L, 1);
    return quit ? CHUNK_QUIT : CHUNK_NONE;
}

static int is_command(const char *line)
{
    line += strspn(line, " \t");
    return line[0] == '?' || (line[0] == ':' && line[1] != ':' && line[1] != '\0');
}

/* Reads lines until they make a complete chunk, and pushes its function (CHUNK_RUN) or
 * reports the syntax error (CHUNK_NONE). *suppress is set by a trailing ';'. */
static int read_chunk(lua_State *L, int *suppress)
{
    int interrupted;
    char *line = read_line(PROMPT, &interrupted);
    if (!line)
        return interrupted ? CHUNK_NONE : CHUNK_EOF;
    history_add(line);
    if (line[strspn(line, " \t")] == '\0') {
        free(line);
        return CHUNK_NONE;
    }
    if (is_command(line)) {
        int r = run_command(L, line);
        free(line);
        return r;
    }
    lua_pushstring(L, line);
    free(line);
    for (;;) {
        size_t n;
        const char *code = lua_tolstring(L, -1, &n);
        size_t end = n;
        while (end > 0 && (code[end - 1] == ' ' || code[end - 1] == '\t'))
            end--;
        *suppress = end > 0 && code[end - 1] == ';';
        lua_pushvalue(L, -1);
        int more, status = compile(L, &more);
        if (!more) {
            lua_remove(L, -2);
            if (status == LUA_OK)
                return CHUNK_RUN;
            report_error(L);
            return CHUNK_NONE;
        }
        lua_pop(L, 1);
        char *next = read_line(PROMPT_MORE, &interrupted);
        if (!next) {   /* Ctrl-C or Ctrl-D: the chunk is dropped */
            lua_pop(L, 1);
            if (!interrupted)
                fputc('\n', stdout);
            return CHUNK_NONE;
        }
        history_add(next);
        lua_pushliteral(L, "\n");
        lua_pushstring(L, next);
        free(next);
        lua_concat(L, 3);
    }
}

/* ---------------------------------------------------------------- the loop */

static void print_results(lua_State *L, int n)
{
    if (push_repl_field(L, "print") != LUA_TFUNCTION) {
        lua_pop(L, 1);
        lua_getglobal(L, "print");
    }
    lua_insert(L, -(n + 1));
    if (fl_repl_docall(L, n, 0) != LUA_OK)
        report_error(L);
}

static void print_time(lua_State *L, double seconds)
{
    if (push_repl_field(L, "time_text") == LUA_TFUNCTION) {
        lua_pushnumber(L, seconds);
        if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isstring(L, -1))
            printf("%s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
        printf("time: %.3f s\n", seconds);
    }
}

void fl_repl_prompt(lua_State *L)
{
    prompt_L = L;
    rl_readline_name = "flare";
    rl_catch_signals = 0;          /* our handler: libedit's would re-raise SIGINT */
    rl_getc_function = prompt_getc;
    rl_attempted_completion_function = complete;
    static char breaks[] = " \t\n\"'`()[]{},;=<>";   /* not . : for paths, / ~ for files */
    rl_completer_word_break_characters = breaks;
    rl_basic_word_break_characters = breaks;
    rl_initialize();   /* before the history: libedit's initialisation clears it */
    history_init();
    for (;;) {
        int suppress = 0;
        int r = read_chunk(L, &suppress);
        if (r == CHUNK_EOF || r == CHUNK_QUIT)
            break;
        if (r == CHUNK_RUN) {
            int base = lua_gettop(L) - 1;
            double t0 = fl_repl_now();
            int status = fl_repl_docall(L, 0, LUA_MULTRET);
            double elapsed = fl_repl_now() - t0;
            if (status != LUA_OK)
                report_error(L);
            else if (!suppress && lua_gettop(L) > base)
                print_results(L, lua_gettop(L) - base);
            if (repl_option(L, "time"))
                print_time(L, elapsed);
        }
        lua_settop(L, 0);
        fflush(stdout);
    }
    fputc('\n', stdout);
    fflush(stdout);
    history_save();
    cands_clear();
    free(cands);
    cands = NULL;
    capcands = 0;
}
