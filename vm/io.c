/* io.c: see io.h. */
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int fl_read_file(const char *path, size_t max_bytes, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fl_error("cannot open '%s': %s", path, errno ? strerror(errno) : "out of memory");
        return -1;
    }
    size_t cap = max_bytes < (1 << 16) ? max_bytes : (1 << 16), n = 0;
    char *buf = malloc(cap ? cap : 1);
    for (;;) {
        if (!buf) {
            gzclose(f);
            fl_error("out of memory reading '%s'", path);
            return -1;
        }
        if (n == cap) {
            if (cap >= max_bytes) {
                char probe;
                if (gzread(f, &probe, 1) > 0) {
                    free(buf);
                    gzclose(f);
                    fl_error("'%s' holds more than %zu bytes (decompressed)", path, max_bytes);
                    return -1;
                }
                break;
            }
            cap = cap * 2 < max_bytes ? cap * 2 : max_bytes;
            char *bigger = realloc(buf, cap);
            if (!bigger)
                free(buf);
            buf = bigger;
            continue;
        }
        int got = gzread(f, buf + n, (unsigned)(cap - n < (1u << 30) ? cap - n : (1u << 30)));
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            fl_error("cannot read '%s': %s", path, zerr == Z_ERRNO ? strerror(errno) : msg);
            free(buf);
            gzclose(f);
            return -1;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    /* a truncated gzip stream reads as a short file: zlib reports it at close */
    int zerr = Z_OK;
    const char *msg = gzerror(f, &zerr);
    if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
        fl_error("cannot read '%s': %s", path, msg);
        free(buf);
        gzclose(f);
        return -1;
    }
    if (gzclose(f) == Z_BUF_ERROR) {
        fl_error("'%s' is truncated (the gzip stream ends early)", path);
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

fl_tensor *fl_from_bytes(const void *p, size_t len, fl_dtype dt, int ndim, const int64_t *shape, bool big_endian)
{
    int64_t numel = fl_shape_numel(ndim, shape);
    if (numel < 0)
        return NULL;
    size_t es = fl_dtype_size(dt);
    if ((uint64_t)numel > len / es || (size_t)numel * es != len) {
        char b[160];
        fl_error("%zu bytes do not hold a %s tensor of shape %s (%lld elements of %zu bytes)", len,
                 fl_dtype_name(dt), fl_shape_str(b, sizeof b, ndim, shape), (long long)numel, es);
        return NULL;
    }
    fl_tensor *t = fl_tensor_empty(dt, ndim, shape, FL_CPU);
    if (!t)
        return NULL;
    unsigned char *dst = fl_tensor_data(t);
    memcpy(dst, p, len);
    if (big_endian && es > 1) {
        for (size_t i = 0; i < len; i += es)
            for (size_t a = i, b = i + es - 1; a < b; a++, b--) {
                unsigned char tmp = dst[a];
                dst[a] = dst[b];
                dst[b] = tmp;
            }
    }
    if (dt == FL_DTYPE_BOOL)
        for (size_t i = 0; i < len; i++)
            dst[i] = dst[i] != 0;
    return t;
}
