/* json.h: JSON (RFC 8259) for file headers: a pull reader over text in memory, and a growable
 * buffer with the string escaping writers need. The reader builds no tree: callers walk the
 * text and keep only what they need, so memory never grows with what a hostile file
 * declares, and nesting deeper than max_depth is an error, not a deep recursion. */
#ifndef FL_JSON_H
#define FL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    FL_JSON_NULL, FL_JSON_FALSE, FL_JSON_TRUE, FL_JSON_NUMBER, FL_JSON_STRING,
    FL_JSON_ARRAY, FL_JSON_OBJECT,
    FL_JSON_BAD          /* no value can start here (message set) */
} fl_json_kind;

typedef struct {
    const char *text;
    size_t len, pos;
    int depth, max_depth;
} fl_json;

/* Errors say "at byte N: what was expected"; callers prefix what was being read. */
void fl_json_init(fl_json *j, const char *text, size_t len, int max_depth);
/* The kind of the next value, after white space, without consuming it. */
fl_json_kind fl_json_peek(fl_json *j);

/* Containers: begin consumes '{' or '[' (-1 past max_depth). more(j, close, count) is called
 * before each element with the number read so far: 1 when one follows (the comma before it
 * consumed), 0 when the container ends (close consumed), -1 on malformed text. In an
 * object, each element is a key (fl_json_string) then fl_json_colon, then a value. */
int fl_json_begin(fl_json *j, char open);
int fl_json_more(fl_json *j, char close, size_t count);
int fl_json_colon(fl_json *j);

/* Strings: string_size gives an upper bound on the decoded length of the next string (the
 * bytes between its quotes); string decodes it into dst, which has room for that many. The
 * decoded bytes are UTF-8 (\u escapes, surrogate pairs included, are encoded) and may hold
 * NUL bytes written as \u0000. */
int fl_json_string_size(fl_json *j, size_t *size);
int fl_json_string(fl_json *j, char *dst, size_t *len);

/* Numbers: an integer literal (no fraction, no exponent) that fits int64 sets *is_int and
 * *i; any number sets *d. fl_json_int accepts integer literals only. */
int fl_json_number(fl_json *j, bool *is_int, int64_t *i, double *d);
int fl_json_int(fl_json *j, int64_t *i);
/* Consumes true, false or null; returns its kind. */
fl_json_kind fl_json_literal(fl_json *j);
/* Skips one value of any kind. */
int fl_json_skip(fl_json *j);
/* Only white space may follow. */
int fl_json_finish(fl_json *j);

/* Is s (len bytes) well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF)? */
bool fl_utf8_valid(const char *s, size_t len);

/* ---------------------------------------------------------------- writing */

/* A growable byte buffer; after a failed allocation it stays `failed` and ignores writes,
 * so a writer checks once at the end. */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} fl_strbuf;

void fl_strbuf_add(fl_strbuf *b, const void *s, size_t n);
void fl_strbuf_printf(fl_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fl_strbuf_free(fl_strbuf *b);
/* s (len bytes of UTF-8) as a quoted JSON string: '"', '\' and control bytes escaped. */
void fl_json_write_string(fl_strbuf *b, const char *s, size_t len);

#endif
