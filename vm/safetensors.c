/* safetensors.c: see safetensors.h. Reading: stat the file, check the header length against
 * it, parse the header (json.h), check every tensor's size and the byte ranges against each
 * other and the data, and only then allocate tensors and read into them. Writing: header and
 * data into a temporary file beside the target, fsync, rename, fsync the directory. */
#include "safetensors.h"

#include "cuda.h"
#include "interrupt.h"
#include "json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64            /* a header nests 3 levels; anything deeper is not one */
#define CHUNK ((size_t)1 << 24) /* bytes per read: interrupts are checked between chunks */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#define BIG_ENDIAN_HOST 1
#else
#define BIG_ENDIAN_HOST 0
#endif

/* ---------------------------------------------------------------- dtypes */

enum { CONV_NONE, CONV_F16, CONV_BF16, CONV_I8, CONV_I16, CONV_U16, CONV_U32, CONV_UNSUPPORTED };

static const struct {
    const char *name;
    unsigned size;        /* bytes per element in the file */
    fl_dtype dtype;       /* what flare holds it as */
    int conv;
} st_dtypes[] = {
    {"F32", 4, FL_DTYPE_F32, CONV_NONE},
    {"F64", 8, FL_DTYPE_F64, CONV_NONE},
    {"I64", 8, FL_DTYPE_I64, CONV_NONE},
    {"I32", 4, FL_DTYPE_I32, CONV_NONE},
    {"U8", 1, FL_DTYPE_U8, CONV_NONE},
    {"BOOL", 1, FL_DTYPE_BOOL, CONV_NONE},
    {"F16", 2, FL_DTYPE_F32, CONV_F16},
    {"BF16", 2, FL_DTYPE_F32, CONV_BF16},
    {"I8", 1, FL_DTYPE_I32, CONV_I8},
    {"I16", 2, FL_DTYPE_I32, CONV_I16},
    {"U16", 2, FL_DTYPE_I32, CONV_U16},
    {"U32", 4, FL_DTYPE_I64, CONV_U32},
    /* valid safetensors dtypes that flare has no type for */
    {"U64", 8, FL_DTYPE_I64, CONV_UNSUPPORTED},
    {"F8_E4M3", 1, FL_DTYPE_F32, CONV_UNSUPPORTED},
    {"F8_E5M2", 1, FL_DTYPE_F32, CONV_UNSUPPORTED},
    {"F8_E8M0", 1, FL_DTYPE_F32, CONV_UNSUPPORTED},
    {"E8M0", 1, FL_DTYPE_F32, CONV_UNSUPPORTED},
    {"F6_E2M3", 1, FL_DTYPE_F32, CONV_UNSUPPORTED},
    {"F6_E3M2", 1, FL_DTYPE_F32, CONV_UNSUPPORTED},
    {"F4", 1, FL_DTYPE_F32, CONV_UNSUPPORTED},
    {"C64", 8, FL_DTYPE_F32, CONV_UNSUPPORTED},
};
#define N_ST_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

static const char *st_name_of(fl_dtype dt)
{
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (st_dtypes[i].conv == CONV_NONE && st_dtypes[i].dtype == dt)
            return st_dtypes[i].name;
    return NULL;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        float v = ldexpf((float)mant, -24);   /* zero or subnormal */
        return sign ? -v : v;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (mant << 13);
    else
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* n elements of st_dtypes[conv] at src into dst (flare's dtype for it). */
static void convert(int conv, void *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (conv) {
        case CONV_F16: {
            uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            ((float *)dst)[i] = half_to_float(h);
            break;
        }
        case CONV_BF16: {
            uint32_t bits = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
            memcpy((float *)dst + i, &bits, 4);
            break;
        }
        case CONV_I8: ((int32_t *)dst)[i] = (int8_t)src[i]; break;
        case CONV_I16: ((int32_t *)dst)[i] = (int16_t)(uint16_t)(src[2 * i] | src[2 * i + 1] << 8); break;
        case CONV_U16: ((int32_t *)dst)[i] = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8); break;
        case CONV_U32: {
            uint32_t v = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                         (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
            ((int64_t *)dst)[i] = v;
            break;
        }
        default: break;
        }
    }
}

/* ---------------------------------------------------------------- helpers */

void fl_st_file_free(fl_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_tensors; i++) {
        free(f->tensors[i].name);
        if (f->tensors[i].tensor)
            fl_tensor_release(f->tensors[i].tensor);
    }
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f);
}

/* A name for messages: quoted, cut to a readable length. */
static const char *quoted(char *buf, size_t size, const char *s, size_t len)
{
    size_t max = size - 6;
    if (len <= max)
        snprintf(buf, size, "'%.*s'", (int)len, s);
    else
        snprintf(buf, size, "'%.*s...'", (int)(max - 3), s);
    return buf;
}

static bool same_name(const char *a, size_t na, const char *b, size_t nb)
{
    return na == nb && memcmp(a, b, na) == 0;
}

static int cmp_names(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

static int read_full(int fd, void *buf, size_t n, uint64_t at)
{
    char *p = buf;
    while (n > 0) {
        ssize_t got = pread(fd, p, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30), (off_t)at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0) {
            errno = 0;    /* the file shrank while being read */
            return -1;
        }
        p += got;
        at += (uint64_t)got;
        n -= (size_t)got;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t put = write(fd, p, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return -1;
        p += put;
        n -= (size_t)put;
    }
    return 0;
}

static int pair_by_key(const void *a, const void *b)
{
    const fl_st_pair *x = *(const fl_st_pair *const *)a, *y = *(const fl_st_pair *const *)b;
    return cmp_names(x->key, x->key_len, y->key, y->key_len);
}

/* Finds a metadata key given twice by sorting (a hostile header can hold millions of keys:
 * no pairwise comparison). Returns 1 with *dup set, 0 if none, -1 out of memory. */
static int duplicate_key(const fl_st_pair *meta, size_t n, const fl_st_pair **dup)
{
    if (n < 2)
        return 0;
    const fl_st_pair **order = malloc(n * sizeof *order);
    if (!order)
        return -1;
    for (size_t i = 0; i < n; i++)
        order[i] = &meta[i];
    qsort(order, n, sizeof *order, pair_by_key);
    int found = 0;
    for (size_t i = 1; i < n && !found; i++)
        if (pair_by_key(&order[i - 1], &order[i]) == 0) {
            *dup = order[i];
            found = 1;
        }
    free(order);
    return found;
}

/* ---------------------------------------------------------------- reading: the header */

typedef struct {
    char *name;
    size_t name_len;
    int st;                         /* index in st_dtypes */
    int ndim;
    int64_t shape[FL_MAX_DIMS];
    uint64_t begin, end;            /* byte range in the data */
} entry;

typedef struct {
    const char *path;
    fl_json j;
    entry *entries;
    size_t n, cap;
    fl_st_pair *meta;
    size_t n_meta, cap_meta;
    bool has_meta;
} header;

static void header_free(header *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->entries[i].name);
    for (size_t i = 0; i < h->n_meta; i++) {
        free(h->meta[i].key);
        free(h->meta[i].value);
    }
    free(h->entries);
    free(h->meta);
}

/* Turns the reader's message into "'path': invalid JSON in the header: at byte N: ...". */
static int json_failed(header *h)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fl_last_error());
    fl_error("'%s': invalid JSON in the header: %s", h->path, msg);
    return -1;
}

/* The kind of the next value; FL_JSON_BAD (with the message set) if the text is not JSON. */
static fl_json_kind peek(header *h)
{
    fl_json_kind k = fl_json_peek(&h->j);
    if (k == FL_JSON_BAD)
        json_failed(h);
    return k;
}

/* The next JSON string, malloc'd (NUL-terminated, with its length). */
static int take_string(header *h, char **s, size_t *len)
{
    size_t size;
    if (fl_json_string_size(&h->j, &size) < 0)
        return json_failed(h);
    *s = malloc(size + 1);
    if (!*s) {
        fl_error("'%s': out of memory reading the header", h->path);
        return -1;
    }
    if (fl_json_string(&h->j, *s, len) < 0) {
        free(*s);
        *s = NULL;
        return json_failed(h);
    }
    (*s)[*len] = 0;
    return 0;
}

static int grow(void **items, size_t *cap, size_t n, size_t item_size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, c * item_size);
    if (!p)
        return -1;
    *items = p;
    *cap = c;
    return 0;
}

static int read_metadata(header *h)
{
    fl_json_kind kind;
    if (h->has_meta) {
        fl_error("'%s': __metadata__ appears twice in the header", h->path);
        return -1;
    }
    h->has_meta = true;
    if ((kind = peek(h)) != FL_JSON_OBJECT) {
        if (kind == FL_JSON_BAD)
            return -1;
        fl_error("'%s': __metadata__ must be a JSON object of strings", h->path);
        return -1;
    }
    if (fl_json_begin(&h->j, '{') < 0)
        return json_failed(h);
    int more;
    for (size_t count = 0; (more = fl_json_more(&h->j, '}', count)) == 1; count++) {
        if (grow((void **)&h->meta, &h->cap_meta, h->n_meta, sizeof *h->meta) < 0) {
            fl_error("'%s': out of memory reading the header", h->path);
            return -1;
        }
        fl_st_pair *p = &h->meta[h->n_meta];
        memset(p, 0, sizeof *p);
        if (take_string(h, &p->key, &p->key_len) < 0)
            return -1;
        h->n_meta++;
        char qb[120];
        if (fl_json_colon(&h->j) < 0)
            return json_failed(h);
        if ((kind = peek(h)) != FL_JSON_STRING) {
            if (kind == FL_JSON_BAD)
                return -1;
            fl_error("'%s': metadata value of %s must be a string", h->path, quoted(qb, sizeof qb, p->key, p->key_len));
            return -1;
        }
        if (take_string(h, &p->value, &p->value_len) < 0)
            return -1;
    }
    return more < 0 ? json_failed(h) : 0;
}

/* An array of non-negative integers into v (at most max of them); returns the count. */
static int read_ints(header *h, const char *field, const char *qname, int64_t *v, int max)
{
    fl_json_kind kind;
    if ((kind = peek(h)) != FL_JSON_ARRAY) {
        if (kind == FL_JSON_BAD)
            return -1;
        fl_error("'%s': tensor %s: %s must be a list of integers", h->path, qname, field);
        return -1;
    }
    if (fl_json_begin(&h->j, '[') < 0)
        return json_failed(h);
    int n = 0, more;
    while ((more = fl_json_more(&h->j, ']', (size_t)n)) == 1) {
        if (n == max) {
            if (max == 2)
                fl_error("'%s': tensor %s: data_offsets must be [begin, end], got more than 2 numbers", h->path, qname);
            else
                fl_error("'%s': tensor %s: shape has more than %d dims (flare's limit)", h->path, qname, max);
            return -1;
        }
        if ((kind = peek(h)) != FL_JSON_NUMBER) {
            if (kind == FL_JSON_BAD)
                return -1;
            fl_error("'%s': tensor %s: %s must be a list of integers", h->path, qname, field);
            return -1;
        }
        if (fl_json_int(&h->j, &v[n]) < 0 || v[n] < 0) {
            fl_error("'%s': tensor %s: %s must hold non-negative integers (below 2^63)", h->path, qname, field);
            return -1;
        }
        n++;
    }
    return more < 0 ? json_failed(h) : n;
}

static int lookup_dtype(header *h, const char *qname, const char *s, size_t len)
{
    for (size_t i = 0; i < N_ST_DTYPES; i++) {
        if (!same_name(s, len, st_dtypes[i].name, strlen(st_dtypes[i].name)))
            continue;
        if (st_dtypes[i].conv == CONV_UNSUPPORTED) {
            fl_error("'%s': tensor %s has dtype %s, which flare cannot hold (it reads F32, F64, I64, I32, U8, BOOL, "
                     "and F16, BF16, I8, I16, U16, U32 widened)", h->path, qname, st_dtypes[i].name);
            return -1;
        }
        return (int)i;
    }
    char qb[80];
    fl_error("'%s': tensor %s has an unknown dtype %s", h->path, qname, quoted(qb, sizeof qb, s, len));
    return -1;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]} for the entry e->name. */
static int read_tensor_info(header *h, entry *e)
{
    fl_json_kind kind;
    char qname[120];
    quoted(qname, sizeof qname, e->name, e->name_len);
    if ((kind = peek(h)) != FL_JSON_OBJECT) {
        if (kind == FL_JSON_BAD)
            return -1;
        fl_error("'%s': tensor %s: expected an object {dtype, shape, data_offsets}", h->path, qname);
        return -1;
    }
    if (fl_json_begin(&h->j, '{') < 0)
        return json_failed(h);
    bool has_dtype = false, has_shape = false, has_offsets = false;
    int more;
    for (size_t count = 0; (more = fl_json_more(&h->j, '}', count)) == 1; count++) {
        char *key;
        size_t klen;
        if (take_string(h, &key, &klen) < 0)
            return -1;
        int which = same_name(key, klen, "dtype", 5) ? 0 : same_name(key, klen, "shape", 5) ? 1
                  : same_name(key, klen, "data_offsets", 12) ? 2 : 3;
        free(key);
        if (fl_json_colon(&h->j) < 0)
            return json_failed(h);
        bool *seen = which == 0 ? &has_dtype : which == 1 ? &has_shape : which == 2 ? &has_offsets : NULL;
        if (seen && *seen) {
            static const char *fields[] = {"dtype", "shape", "data_offsets"};
            fl_error("'%s': tensor %s: %s appears twice", h->path, qname, fields[which]);
            return -1;
        }
        if (seen)
            *seen = true;
        if (which == 0) {
            if ((kind = peek(h)) != FL_JSON_STRING) {
                if (kind == FL_JSON_BAD)
                    return -1;
                fl_error("'%s': tensor %s: dtype must be a string", h->path, qname);
                return -1;
            }
            char *dt;
            size_t dlen;
            if (take_string(h, &dt, &dlen) < 0)
                return -1;
            e->st = lookup_dtype(h, qname, dt, dlen);
            free(dt);
            if (e->st < 0)
                return -1;
        } else if (which == 1) {
            e->ndim = read_ints(h, "shape", qname, e->shape, FL_MAX_DIMS);
            if (e->ndim < 0)
                return -1;
        } else if (which == 2) {
            int64_t off[2];
            int n = read_ints(h, "data_offsets", qname, off, 2);
            if (n < 0)
                return -1;
            if (n != 2) {
                fl_error("'%s': tensor %s: data_offsets must be [begin, end], got %d number%s", h->path, qname, n, n == 1 ? "" : "s");
                return -1;
            }
            e->begin = (uint64_t)off[0];
            e->end = (uint64_t)off[1];
        } else if (fl_json_skip(&h->j) < 0) {     /* fields of later versions of the format */
            return json_failed(h);
        }
    }
    if (more < 0)
        return json_failed(h);
    if (!has_dtype || !has_shape || !has_offsets) {
        fl_error("'%s': tensor %s has no %s", h->path, qname, !has_dtype ? "dtype" : !has_shape ? "shape" : "data_offsets");
        return -1;
    }
    return 0;
}

static int parse_header(header *h)
{
    fl_json_kind kind;
    if ((kind = peek(h)) != FL_JSON_OBJECT) {
        if (kind == FL_JSON_BAD)
            return -1;
        fl_error("'%s': the header must be a JSON object, it is not", h->path);
        return -1;
    }
    if (fl_json_begin(&h->j, '{') < 0)
        return json_failed(h);
    int more;
    for (size_t count = 0; (more = fl_json_more(&h->j, '}', count)) == 1; count++) {
        char *name;
        size_t len;
        if (take_string(h, &name, &len) < 0)
            return -1;
        if (fl_json_colon(&h->j) < 0) {
            free(name);
            return json_failed(h);
        }
        if (same_name(name, len, "__metadata__", 12)) {
            free(name);
            if (read_metadata(h) < 0)
                return -1;
            continue;
        }
        if (grow((void **)&h->entries, &h->cap, h->n, sizeof *h->entries) < 0) {
            free(name);
            fl_error("'%s': out of memory reading the header", h->path);
            return -1;
        }
        entry *e = &h->entries[h->n++];
        memset(e, 0, sizeof *e);
        e->name = name;
        e->name_len = len;
        if (read_tensor_info(h, e) < 0)
            return -1;
    }
    if (more < 0 || fl_json_finish(&h->j) < 0)
        return json_failed(h);
    return 0;
}

/* ---------------------------------------------------------------- reading: validation */

static int by_name(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    return cmp_names(x->name, x->name_len, y->name, y->name_len);
}

static int by_offset(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Sizes, names and byte ranges; on success `order` lists the entries by offset. */
static int validate(header *h, uint64_t data_len, entry **order)
{
    char qa[120], qb[120], sb[200];
    for (size_t i = 0; i < h->n; i++) {
        entry *e = &h->entries[i];
        order[i] = e;
        uint64_t n = st_dtypes[e->st].size;
        for (int d = 0; d < e->ndim; d++) {
            if (__builtin_mul_overflow(n, (uint64_t)e->shape[d], &n) || n > (uint64_t)INT64_MAX) {
                fl_error("'%s': tensor %s: shape %s of %s is too large (its size in bytes overflows 64 bits)", h->path,
                         quoted(qa, sizeof qa, e->name, e->name_len), fl_shape_str(sb, sizeof sb, e->ndim, e->shape),
                         st_dtypes[e->st].name);
                return -1;
            }
        }
        if (e->end < e->begin) {
            fl_error("'%s': tensor %s: data_offsets [%llu, %llu] end before they begin", h->path,
                     quoted(qa, sizeof qa, e->name, e->name_len), (unsigned long long)e->begin, (unsigned long long)e->end);
            return -1;
        }
        if (e->end - e->begin != n) {
            fl_error("'%s': tensor %s: data_offsets [%llu, %llu] span %llu bytes, but shape %s of %s needs %llu",
                     h->path, quoted(qa, sizeof qa, e->name, e->name_len), (unsigned long long)e->begin,
                     (unsigned long long)e->end, (unsigned long long)(e->end - e->begin),
                     fl_shape_str(sb, sizeof sb, e->ndim, e->shape), st_dtypes[e->st].name, (unsigned long long)n);
            return -1;
        }
    }
    const fl_st_pair *dup;
    int d = duplicate_key(h->meta, h->n_meta, &dup);
    if (d != 0) {
        if (d < 0)
            fl_error("'%s': out of memory checking the metadata", h->path);
        else
            fl_error("'%s': metadata key %s appears twice", h->path, quoted(qa, sizeof qa, dup->key, dup->key_len));
        return -1;
    }
    qsort(order, h->n, sizeof *order, by_name);
    for (size_t i = 1; i < h->n; i++)
        if (by_name(&order[i - 1], &order[i]) == 0) {
            fl_error("'%s': tensor %s appears twice in the header", h->path,
                     quoted(qa, sizeof qa, order[i]->name, order[i]->name_len));
            return -1;
        }
    /* The byte ranges must tile the data exactly, as the reference implementation checks:
     * sorted by offset, each starts where the previous one ended. */
    qsort(order, h->n, sizeof *order, by_offset);
    uint64_t at = 0;
    const entry *prev = NULL;
    for (size_t i = 0; i < h->n; i++) {
        const entry *e = order[i];
        quoted(qa, sizeof qa, e->name, e->name_len);
        if (e->end > data_len) {
            fl_error("'%s': tensor %s runs past the data: data_offsets [%llu, %llu], but the data holds %llu bytes",
                     h->path, qa, (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_len);
            return -1;
        }
        if (e->begin < at) {
            fl_error("'%s': tensors %s (bytes %llu to %llu) and %s (bytes %llu to %llu) overlap", h->path,
                     quoted(qb, sizeof qb, prev->name, prev->name_len), (unsigned long long)prev->begin,
                     (unsigned long long)prev->end, qa, (unsigned long long)e->begin, (unsigned long long)e->end);
            return -1;
        }
        if (e->begin > at) {
            if (prev)
                fl_error("'%s': a gap of %llu bytes between tensors %s (ends at byte %llu) and %s (starts at %llu)",
                         h->path, (unsigned long long)(e->begin - at), quoted(qb, sizeof qb, prev->name, prev->name_len),
                         (unsigned long long)at, qa, (unsigned long long)e->begin);
            else
                fl_error("'%s': a gap of %llu bytes before the first tensor %s (the data starts at byte 0)", h->path,
                         (unsigned long long)e->begin, qa);
            return -1;
        }
        at = e->end;
        prev = e;
    }
    if (at != data_len) {
        fl_error("'%s': %llu trailing bytes after the tensors (they end at byte %llu of %llu bytes of data)", h->path,
                 (unsigned long long)(data_len - at), (unsigned long long)at, (unsigned long long)data_len);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- reading: the data */

/* Reads e's bytes (at file offset `at`) into a new tensor. */
static fl_tensor *read_tensor(int fd, const char *path, const entry *e, uint64_t at)
{
    int conv = st_dtypes[e->st].conv;
    fl_tensor *t = fl_tensor_empty(st_dtypes[e->st].dtype, e->ndim, e->shape, FL_CPU);
    if (!t)
        return NULL;
    size_t total = (size_t)(e->end - e->begin), es = st_dtypes[e->st].size;
    unsigned char *dst = fl_tensor_data(t);
    unsigned char *tmp = NULL;
    if (conv != CONV_NONE && total > 0) {
        tmp = malloc(total < CHUNK ? total : CHUNK);
        if (!tmp) {
            fl_tensor_release(t);
            fl_error("out of memory reading '%s'", path);
            return NULL;
        }
    }
    size_t out_es = fl_dtype_size(t->dtype);
    for (size_t done = 0; done < total;) {
        size_t n = total - done < CHUNK ? total - done : CHUNK;   /* CHUNK is a multiple of es */
        if (fl_interrupt_check() < 0)
            goto fail;
        unsigned char *into = tmp ? tmp : dst + done;
        if (read_full(fd, into, n, at + done) < 0) {
            if (errno)
                fl_error("cannot read '%s': %s", path, strerror(errno));
            else
                fl_error("'%s' ended early (did it change while being read?)", path);
            goto fail;
        }
        if (tmp)
            convert(conv, dst + done / es * out_es, tmp, n / es);
        done += n;
    }
    if (t->dtype == FL_DTYPE_BOOL)   /* any byte but 0 is true; flare's bools are 0 or 1 */
        for (size_t i = 0; i < total; i++)
            dst[i] = dst[i] != 0;
    free(tmp);
    return t;
fail:
    free(tmp);
    fl_tensor_release(t);
    return NULL;
}

fl_st_file *fl_safetensors_read(const char *path)
{
    if (BIG_ENDIAN_HOST) {
        fl_error("'%s': safetensors files are little-endian, and this big-endian build cannot read them yet", path);
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fl_error("cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    header h = {.path = path};
    char *text = NULL;
    entry **order = NULL;
    fl_st_file *f = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        fl_error("cannot read '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        fl_error("'%s' is not a regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    unsigned char len8[8];
    if (size < 8) {
        fl_error("'%s' is too short to be a safetensors file: %llu bytes (the header length alone takes 8)", path,
                 (unsigned long long)size);
        goto fail;
    }
    if (read_full(fd, len8, 8, 0) < 0) {
        fl_error("cannot read '%s': %s", path, errno ? strerror(errno) : "it ended early");
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | len8[i];
    if (hlen > FL_ST_MAX_HEADER) {
        fl_error("'%s': the header is too large: %llu bytes declared, at most %u allowed", path,
                 (unsigned long long)hlen, FL_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        fl_error("'%s': the header runs past the end of the file: %llu bytes declared, the file has %llu after the length",
                 path, (unsigned long long)hlen, (unsigned long long)(size - 8));
        goto fail;
    }
    text = malloc(hlen ? hlen : 1);
    if (!text) {
        fl_error("out of memory reading the header of '%s' (%llu bytes)", path, (unsigned long long)hlen);
        goto fail;
    }
    if (read_full(fd, text, hlen, 8) < 0) {
        fl_error("cannot read '%s': %s", path, errno ? strerror(errno) : "it ended early");
        goto fail;
    }
    if (!fl_utf8_valid(text, hlen)) {
        fl_error("'%s': the header is not valid UTF-8 (not a safetensors file?)", path);
        goto fail;
    }
    fl_json_init(&h.j, text, hlen, MAX_DEPTH);
    if (parse_header(&h) < 0)
        goto fail;
    order = malloc((h.n ? h.n : 1) * sizeof *order);
    if (!order) {
        fl_error("out of memory reading '%s'", path);
        goto fail;
    }
    uint64_t data_start = 8 + hlen;
    if (validate(&h, size - data_start, order) < 0)
        goto fail;

    /* Everything checks out: the tensors' sizes add up to the file's, so allocating them
     * allocates no more than the file holds. */
    f = calloc(1, sizeof *f);
    if (!f || !(f->tensors = calloc(h.n ? h.n : 1, sizeof *f->tensors))) {
        fl_error("out of memory reading '%s'", path);
        goto fail;
    }
    for (size_t i = 0; i < h.n; i++) {
        entry *e = order[i];
        fl_st_tensor *out = &f->tensors[f->n_tensors];
        out->tensor = read_tensor(fd, path, e, data_start + e->begin);
        if (!out->tensor)
            goto fail;
        out->name = e->name;          /* ownership moves to the result */
        out->name_len = e->name_len;
        e->name = NULL;
        f->n_tensors++;
    }
    f->meta = h.meta;
    f->n_meta = h.n_meta;
    h.meta = NULL;
    h.n_meta = 0;
    header_free(&h);
    free(order);
    free(text);
    close(fd);
    return f;
fail:
    fl_st_file_free(f);
    header_free(&h);
    free(order);
    free(text);
    close(fd);
    return NULL;
}

/* ---------------------------------------------------------------- atomic replacement */

/* Permissions for the new file: those of the file it replaces, else 0666 less the umask. */
static mode_t new_file_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return st.st_mode & 07777;
    mode_t mask = umask(022);
    umask(mask);
    return 0666 & ~mask;
}

void fl_atomic_abort(fl_atomic_file *a)
{
    if (a->fd >= 0)
        close(a->fd);
    if (a->tmp)
        unlink(a->tmp);
    free(a->tmp);
    free(a->target);
    free(a->dir);
    a->fd = -1;
    a->tmp = a->target = a->dir = NULL;
}

/* Sets the message "cannot write 'path': <what>" and gives up. */
static int atomic_fail(fl_atomic_file *a, const char *what)
{
    fl_error("cannot write '%s': %s", a->path, what);
    fl_atomic_abort(a);
    return -1;
}

/* Temporary files are named ".<base>.<pid>.XXXXXX". One whose writer no longer exists was
 * left by a process killed mid-write; the next save of the same file removes it. */
static void remove_stale_temporaries(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (name[0] != '.' || strncmp(name + 1, base, bl) != 0 || name[1 + bl] != '.')
            continue;
        char *end;
        long pid = strtol(name + 2 + bl, &end, 10);
        if (end == name + 2 + bl || *end != '.' || strlen(end + 1) != 6 || pid <= 0)
            continue;
        if (pid != (long)getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
            char stale[PATH_MAX];
            if (snprintf(stale, sizeof stale, "%s/%s", dir, name) < (int)sizeof stale)
                unlink(stale);
        }
    }
    closedir(d);
}

int fl_atomic_begin(fl_atomic_file *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->path = path;
    /* write where a symbolic link points, so that the link stays a link */
    struct stat lst;
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        a->target = realpath(path, NULL);
        if (!a->target) {
            char what[300];
            snprintf(what, sizeof what, "cannot follow the symbolic link: %s", strerror(errno));
            return atomic_fail(a, what);
        }
    } else {
        a->target = strdup(path);
    }
    if (!a->target)
        return atomic_fail(a, "out of memory");
    const char *slash = strrchr(a->target, '/');
    const char *base = slash ? slash + 1 : a->target;
    if (!*base)
        return atomic_fail(a, "the name ends with '/'");
    a->dir = slash ? strndup(a->target, slash == a->target ? 1 : (size_t)(slash - a->target)) : strdup(".");
    size_t n = strlen(a->target) + 40;
    a->tmp = a->dir ? malloc(n) : NULL;
    if (!a->tmp)
        return atomic_fail(a, "out of memory");
    remove_stale_temporaries(a->dir, base);
    /* a hidden name beside the target: the same file system, so rename is atomic; the pid
     * tells a later save whether the writer is still alive */
    snprintf(a->tmp, n, "%s/.%s.%ld.XXXXXX", a->dir, base, (long)getpid());
    a->fd = mkostemp(a->tmp, O_CLOEXEC);
    if (a->fd < 0) {
        free(a->tmp);
        a->tmp = NULL;     /* nothing to remove */
        return atomic_fail(a, strerror(errno));
    }
    if (fchmod(a->fd, new_file_mode(a->target)) < 0)
        return atomic_fail(a, strerror(errno));
    return 0;
}

int fl_atomic_write(fl_atomic_file *a, const void *p, size_t n)
{
    if (write_full(a->fd, p, n) < 0)
        return atomic_fail(a, strerror(errno));
    return 0;
}

int fl_atomic_commit(fl_atomic_file *a)
{
    if (fsync(a->fd) < 0)
        return atomic_fail(a, strerror(errno));
    int closed = close(a->fd);
    a->fd = -1;
    if (closed < 0 || rename(a->tmp, a->target) < 0)
        return atomic_fail(a, strerror(errno));
    free(a->tmp);
    a->tmp = NULL;
    /* make the rename durable; best effort, since the new file is in place by now and some
     * file systems cannot sync a directory */
    int dfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    fl_atomic_abort(a);    /* frees the names; nothing is left to remove */
    return 0;
}

/* ---------------------------------------------------------------- writing */

static int index_by_name(const void *a, const void *b, void *ctx)
{
    const fl_st_file *f = ctx;
    const fl_st_tensor *x = &f->tensors[*(const size_t *)a], *y = &f->tensors[*(const size_t *)b];
    return cmp_names(x->name, x->name_len, y->name, y->name_len);
}

/* The reference implementation's order: by dtype (I64, F64, F32, I32, U8, BOOL), wider
 * first, so that with the header padded to 8 bytes every tensor starts aligned for readers
 * that map the file; otherwise in the order given. */
static int dtype_rank(fl_dtype dt)
{
    switch (dt) {
    case FL_DTYPE_I64: return 0;
    case FL_DTYPE_F64: return 1;
    case FL_DTYPE_F32: return 2;
    case FL_DTYPE_I32: return 3;
    case FL_DTYPE_U8: return 4;
    default: return 5;
    }
}

static int index_by_dtype(const void *a, const void *b, void *ctx)
{
    const fl_st_file *f = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int ri = dtype_rank(f->tensors[i].tensor->dtype), rj = dtype_rank(f->tensors[j].tensor->dtype);
    if (ri != rj)
        return ri - rj;
    return (i > j) - (i < j);
}

/* Names (UTF-8, unique, not __metadata__), devices, metadata; sets the order of the data. */
static int check_contents(const char *path, const fl_st_file *f, size_t *order)
{
    char qa[120];
    for (size_t i = 0; i < f->n_tensors; i++) {
        const fl_st_tensor *e = &f->tensors[i];
        quoted(qa, sizeof qa, e->name, e->name_len);
        if (!fl_utf8_valid(e->name, e->name_len)) {
            fl_error("cannot write '%s': tensor name %s is not valid UTF-8", path, qa);
            return -1;
        }
        if (same_name(e->name, e->name_len, "__metadata__", 12)) {
            fl_error("cannot write '%s': '__metadata__' is reserved and cannot name a tensor", path);
            return -1;
        }
        if (!e->tensor) {
            fl_error("cannot write '%s': tensor %s is missing", path, qa);
            return -1;
        }
        order[i] = i;
    }
    for (size_t i = 0; i < f->n_meta; i++) {
        const fl_st_pair *p = &f->meta[i];
        quoted(qa, sizeof qa, p->key, p->key_len);
        if (!fl_utf8_valid(p->key, p->key_len) || !fl_utf8_valid(p->value, p->value_len)) {
            fl_error("cannot write '%s': metadata %s is not valid UTF-8", path, qa);
            return -1;
        }
    }
    const fl_st_pair *dup;
    int d = duplicate_key(f->meta, f->n_meta, &dup);
    if (d != 0) {
        if (d < 0)
            fl_error("cannot write '%s': out of memory", path);
        else
            fl_error("cannot write '%s': metadata key %s given twice", path, quoted(qa, sizeof qa, dup->key, dup->key_len));
        return -1;
    }
    qsort_r(order, f->n_tensors, sizeof *order, index_by_name, (void *)f);
    for (size_t i = 1; i < f->n_tensors; i++) {
        const fl_st_tensor *e = &f->tensors[order[i]];
        if (index_by_name(&order[i - 1], &order[i], (void *)f) == 0) {
            fl_error("cannot write '%s': two tensors are named %s", path, quoted(qa, sizeof qa, e->name, e->name_len));
            return -1;
        }
    }
    for (size_t i = 0; i < f->n_tensors; i++)
        order[i] = i;
    qsort_r(order, f->n_tensors, sizeof *order, index_by_dtype, (void *)f);
    return 0;
}

static uint64_t tensor_bytes(const fl_tensor *t)
{
    return (uint64_t)t->numel * fl_dtype_size(t->dtype);
}

/* The 8-byte length and the header, padded with spaces so that the data starts at a
 * multiple of 8 bytes. */
static int build_header(const char *path, const fl_st_file *f, const size_t *order, fl_strbuf *b)
{
    fl_strbuf_add(b, "\0\0\0\0\0\0\0\0{", 9);
    bool first = true;
    if (f->n_meta) {
        fl_strbuf_add(b, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < f->n_meta; i++) {
            if (i)
                fl_strbuf_add(b, ",", 1);
            fl_json_write_string(b, f->meta[i].key, f->meta[i].key_len);
            fl_strbuf_add(b, ":", 1);
            fl_json_write_string(b, f->meta[i].value, f->meta[i].value_len);
        }
        fl_strbuf_add(b, "}", 1);
        first = false;
    }
    uint64_t at = 0;
    for (size_t k = 0; k < f->n_tensors; k++) {
        const fl_st_tensor *e = &f->tensors[order[k]];
        const fl_tensor *t = e->tensor;
        if (!first)
            fl_strbuf_add(b, ",", 1);
        first = false;
        fl_json_write_string(b, e->name, e->name_len);
        fl_strbuf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", st_name_of(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            fl_strbuf_printf(b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        uint64_t n = tensor_bytes(t);
        fl_strbuf_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at, (unsigned long long)(at + n));
        at += n;
    }
    fl_strbuf_add(b, "}", 1);
    while (b->len % 8)
        fl_strbuf_add(b, " ", 1);
    if (b->failed) {
        fl_error("cannot write '%s': out of memory building the header", path);
        return -1;
    }
    uint64_t hlen = b->len - 8;
    if (hlen > FL_ST_MAX_HEADER) {
        fl_error("cannot write '%s': the header would take %llu bytes, more than readers accept (%u)", path,
                 (unsigned long long)hlen, FL_ST_MAX_HEADER);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        b->data[i] = (char)(hlen >> (8 * i) & 0xff);
    return 0;
}

int fl_safetensors_write(const char *path, const fl_st_file *f)
{
    if (BIG_ENDIAN_HOST) {
        fl_error("cannot write '%s': safetensors files are little-endian, and this big-endian build cannot write them yet", path);
        return -1;
    }
    int rc = -1;
    size_t *order = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *order);
    fl_strbuf hb = {0};
    fl_atomic_file a = {.fd = -1};
    if (!order) {
        fl_error("cannot write '%s': out of memory", path);
        return -1;
    }
    if (check_contents(path, f, order) < 0 || build_header(path, f, order, &hb) < 0)
        goto done;
    if (fl_atomic_begin(&a, path) < 0 || fl_atomic_write(&a, hb.data, hb.len) < 0)
        goto done;
    for (size_t k = 0; k < f->n_tensors; k++) {
        fl_tensor *t = f->tensors[order[k]].tensor;
        if (t->numel == 0)
            continue;
        /* device tensors are copied to the host first, so the file is the same wherever the
         * model was; fl_contiguous gives t itself, retained, when it already is */
        fl_tensor *c = fl_is_cuda(t) ? fl_move(t, FL_CPU) : fl_contiguous(t);
        if (!c) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", fl_last_error());
            fl_error("cannot write '%s': %s", path, msg);
            goto done;
        }
        int w = fl_atomic_write(&a, fl_tensor_data(c), (size_t)tensor_bytes(c));
        fl_tensor_release(c);
        if (w < 0)
            goto done;
    }
    rc = fl_atomic_commit(&a);
done:
    fl_atomic_abort(&a);     /* no-op after a commit or a failed step */
    free(order);
    fl_strbuf_free(&hb);
    return rc;
}
