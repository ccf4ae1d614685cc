/* json.c: see json.h. The grammar is RFC 8259's, strictly: no comments, no trailing commas,
 * no leading zeros, no raw control characters in strings. */
#include "json.h"

#include "flare.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- reading */

void fl_json_init(fl_json *j, const char *text, size_t len, int max_depth)
{
    j->text = text;
    j->len = len;
    j->pos = 0;
    j->depth = 0;
    j->max_depth = max_depth;
}

static void skip_ws(fl_json *j)
{
    while (j->pos < j->len) {
        char c = j->text[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        j->pos++;
    }
}

/* "at byte N: expected X, got 'c'" (or "got the end of the text"). */
static int bad(fl_json *j, const char *expected)
{
    if (j->pos >= j->len) {
        fl_error("at byte %zu: expected %s, got the end of the text", j->pos, expected);
    } else {
        unsigned char c = (unsigned char)j->text[j->pos];
        if (c >= 0x20 && c < 0x7f)
            fl_error("at byte %zu: expected %s, got '%c'", j->pos, expected, c);
        else
            fl_error("at byte %zu: expected %s, got byte 0x%02x", j->pos, expected, c);
    }
    return -1;
}

fl_json_kind fl_json_peek(fl_json *j)
{
    skip_ws(j);
    if (j->pos >= j->len) {
        bad(j, "a value");
        return FL_JSON_BAD;
    }
    switch (j->text[j->pos]) {
    case '{': return FL_JSON_OBJECT;
    case '[': return FL_JSON_ARRAY;
    case '"': return FL_JSON_STRING;
    case 't': return FL_JSON_TRUE;
    case 'f': return FL_JSON_FALSE;
    case 'n': return FL_JSON_NULL;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return FL_JSON_NUMBER;
    default:
        bad(j, "a value");
        return FL_JSON_BAD;
    }
}

int fl_json_begin(fl_json *j, char open)
{
    skip_ws(j);
    if (j->pos >= j->len || j->text[j->pos] != open)
        return bad(j, open == '{' ? "'{'" : "'['");
    if (j->depth >= j->max_depth) {
        fl_error("at byte %zu: nested more than %d levels deep", j->pos, j->max_depth);
        return -1;
    }
    j->pos++;
    j->depth++;
    return 0;
}

int fl_json_more(fl_json *j, char close, size_t count)
{
    skip_ws(j);
    if (j->pos < j->len && j->text[j->pos] == close) {
        j->pos++;
        j->depth--;
        return 0;
    }
    if (count == 0)
        return 1;
    if (j->pos >= j->len || j->text[j->pos] != ',')
        return bad(j, close == '}' ? "',' or '}'" : "',' or ']'");
    j->pos++;
    skip_ws(j);
    if (j->pos < j->len && j->text[j->pos] == close)
        return bad(j, "a value after ','");
    return 1;
}

int fl_json_colon(fl_json *j)
{
    skip_ws(j);
    if (j->pos >= j->len || j->text[j->pos] != ':')
        return bad(j, "':'");
    j->pos++;
    return 0;
}

int fl_json_string_size(fl_json *j, size_t *size)
{
    skip_ws(j);
    if (j->pos >= j->len || j->text[j->pos] != '"')
        return bad(j, "a string");
    size_t p = j->pos + 1;
    while (p < j->len && j->text[p] != '"') {
        if (j->text[p] == '\\')
            p++;
        p++;
    }
    if (p >= j->len) {
        fl_error("at byte %zu: string never ends", j->pos);
        return -1;
    }
    *size = p - j->pos - 1;
    return 0;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

static size_t put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int fl_json_string(fl_json *j, char *dst, size_t *len)
{
    size_t size;
    if (fl_json_string_size(j, &size) < 0)
        return -1;
    const char *s = j->text;
    size_t p = j->pos + 1, end = p + size, n = 0;
    while (p < end) {
        unsigned char c = (unsigned char)s[p];
        if (c < 0x20) {
            fl_error("at byte %zu: control character 0x%02x in a string (write it as an escape)", p, c);
            return -1;
        }
        if (c != '\\') {
            dst[n++] = (char)c;
            p++;
            continue;
        }
        char e = s[p + 1];   /* p + 1 < end: string_size skipped the escaped byte */
        p += 2;
        switch (e) {
        case '"': dst[n++] = '"'; break;
        case '\\': dst[n++] = '\\'; break;
        case '/': dst[n++] = '/'; break;
        case 'b': dst[n++] = '\b'; break;
        case 'f': dst[n++] = '\f'; break;
        case 'n': dst[n++] = '\n'; break;
        case 'r': dst[n++] = '\r'; break;
        case 't': dst[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 4 || hex4(s + p, &cp) < 0) {
                fl_error("at byte %zu: \\u must be followed by four hex digits", p - 2);
                return -1;
            }
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                /* a high surrogate needs its low half: \uD83D\uDE00 */
                if (end - p < 6 || s[p] != '\\' || s[p + 1] != 'u' || hex4(s + p + 2, &lo) < 0 ||
                    lo < 0xdc00 || lo >= 0xe000) {
                    fl_error("at byte %zu: unpaired surrogate \\u%04x", p - 6, cp);
                    return -1;
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                fl_error("at byte %zu: unpaired surrogate \\u%04x", p - 6, cp);
                return -1;
            }
            n += put_utf8(dst + n, cp);
            break;
        }
        default:
            fl_error("at byte %zu: unknown escape '\\%c'", p - 2, e >= 0x20 && e < 0x7f ? e : '?');
            return -1;
        }
    }
    j->pos = end + 1;
    *len = n;
    return 0;
}

/* Scans a number's literal; sets where it ends and whether it is a plain integer. */
static int scan_number(fl_json *j, size_t *end, bool *integral)
{
    skip_ws(j);
    const char *s = j->text;
    size_t p = j->pos, n = j->len;
    *integral = true;
    if (p < n && s[p] == '-')
        p++;
    if (p < n && s[p] == '0') {
        p++;
    } else if (p < n && s[p] >= '1' && s[p] <= '9') {
        while (p < n && s[p] >= '0' && s[p] <= '9')
            p++;
    } else {
        return bad(j, "a number");
    }
    if (p < n && s[p] == '.') {
        *integral = false;
        p++;
        if (p >= n || s[p] < '0' || s[p] > '9') {
            j->pos = p;
            return bad(j, "a digit after '.'");
        }
        while (p < n && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        *integral = false;
        p++;
        if (p < n && (s[p] == '+' || s[p] == '-'))
            p++;
        if (p >= n || s[p] < '0' || s[p] > '9') {
            j->pos = p;
            return bad(j, "a digit in the exponent");
        }
        while (p < n && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    *end = p;
    return 0;
}

/* The integer literal [pos, end) as int64, or -1 if it does not fit. */
static int parse_int(const char *s, size_t pos, size_t end, int64_t *out)
{
    bool neg = s[pos] == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t p = pos + neg; p < end; p++) {
        unsigned d = (unsigned)(s[p] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int fl_json_number(fl_json *j, bool *is_int, int64_t *i, double *d)
{
    size_t end;
    bool integral;
    if (scan_number(j, &end, &integral) < 0)
        return -1;
    char buf[64], *tmp = NULL;
    size_t n = end - j->pos;
    char *lit = buf;
    if (n >= sizeof buf) {
        tmp = malloc(n + 1);
        if (!tmp) {
            fl_error("out of memory");
            return -1;
        }
        lit = tmp;
    }
    memcpy(lit, j->text + j->pos, n);
    lit[n] = 0;
    *d = strtod(lit, NULL);
    free(tmp);
    *is_int = integral && parse_int(j->text, j->pos, end, i) == 0;
    j->pos = end;
    return 0;
}

int fl_json_int(fl_json *j, int64_t *i)
{
    size_t end;
    bool integral;
    if (scan_number(j, &end, &integral) < 0)
        return -1;
    if (!integral)
        return bad(j, "an integer");
    if (parse_int(j->text, j->pos, end, i) < 0) {
        fl_error("at byte %zu: integer %.*s does not fit in 64 bits", j->pos, (int)(end - j->pos), j->text + j->pos);
        return -1;
    }
    j->pos = end;
    return 0;
}

fl_json_kind fl_json_literal(fl_json *j)
{
    static const struct { const char *word; fl_json_kind kind; } words[] = {
        {"true", FL_JSON_TRUE}, {"false", FL_JSON_FALSE}, {"null", FL_JSON_NULL},
    };
    skip_ws(j);
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(words[k].word);
        if (j->len - j->pos >= n && memcmp(j->text + j->pos, words[k].word, n) == 0) {
            j->pos += n;
            return words[k].kind;
        }
    }
    bad(j, "true, false or null");
    return FL_JSON_BAD;
}

/* Checks a string (escapes, control bytes) without keeping it. */
static int skip_string(fl_json *j)
{
    size_t size;
    if (fl_json_string_size(j, &size) < 0)
        return -1;
    char *tmp = malloc(size ? size : 1);
    if (!tmp) {
        fl_error("out of memory");
        return -1;
    }
    int rc = fl_json_string(j, tmp, &size);
    free(tmp);
    return rc;
}

int fl_json_skip(fl_json *j)
{
    bool is_int;
    int64_t i;
    double d;
    size_t count = 0;
    int more;
    switch (fl_json_peek(j)) {
    case FL_JSON_BAD: return -1;
    case FL_JSON_NUMBER: return fl_json_number(j, &is_int, &i, &d);
    case FL_JSON_STRING: return skip_string(j);
    case FL_JSON_ARRAY:
        if (fl_json_begin(j, '[') < 0)
            return -1;
        while ((more = fl_json_more(j, ']', count++)) == 1)
            if (fl_json_skip(j) < 0)
                return -1;
        return more;
    case FL_JSON_OBJECT:
        if (fl_json_begin(j, '{') < 0)
            return -1;
        while ((more = fl_json_more(j, '}', count++)) == 1)
            if (skip_string(j) < 0 || fl_json_colon(j) < 0 || fl_json_skip(j) < 0)
                return -1;
        return more;
    default:
        return fl_json_literal(j) == FL_JSON_BAD ? -1 : 0;
    }
}

int fl_json_finish(fl_json *j)
{
    skip_ws(j);
    if (j->pos < j->len)
        return bad(j, "the end of the text");
    return 0;
}

bool fl_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; min = 0x80; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; min = 0x800; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
            return false;
        i += n + 1;
    }
    return true;
}

/* ---------------------------------------------------------------- writing */

static bool reserve(fl_strbuf *b, size_t n)
{
    if (b->failed)
        return false;
    if (b->cap - b->len >= n)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void fl_strbuf_add(fl_strbuf *b, const void *s, size_t n)
{
    if (n && reserve(b, n)) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    }
}

void fl_strbuf_printf(fl_strbuf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        fl_strbuf_add(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void fl_strbuf_free(fl_strbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

void fl_json_write_string(fl_strbuf *b, const char *s, size_t len)
{
    fl_strbuf_add(b, "\"", 1);
    size_t run = 0;   /* bytes copied as they are, flushed before each escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        fl_strbuf_add(b, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            fl_strbuf_add(b, esc, 2);
        } else if (c == '\n') {
            fl_strbuf_add(b, "\\n", 2);
        } else if (c == '\t') {
            fl_strbuf_add(b, "\\t", 2);
        } else {
            fl_strbuf_printf(b, "\\u%04x", c);
        }
    }
    fl_strbuf_add(b, s + run, len - run);
    fl_strbuf_add(b, "\"", 1);
}
