/* inflate.c: raw deflate streams (zip entries) through zlib, for the .npz reader. */
#include "data.h"

#include <string.h>
#include <zlib.h>

#define CHUNK (1u << 30)   /* zlib counts in uInt: feed and drain at most 1 GiB at a time */

int fl_inflate_raw(const void *in, size_t len, void *out, size_t out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {   /* negative window bits: no header */
        fl_error("cannot start zlib: out of memory");
        return -1;
    }
    const unsigned char *src = in;
    unsigned char *dst = out;
    size_t in_left = len, out_left = out_len;
    /* once the bytes declared are out, one spare byte tells a stream that holds more from
     * one whose end marker is still to come */
    unsigned char spare;
    int spare_given = 0, rc;
    for (;;) {
        if (zs.avail_in == 0 && in_left > 0) {
            zs.next_in = (unsigned char *)src;
            zs.avail_in = in_left < CHUNK ? (uInt)in_left : CHUNK;
            src += zs.avail_in;
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left > 0) {
            zs.next_out = dst;
            zs.avail_out = out_left < CHUNK ? (uInt)out_left : CHUNK;
            dst += zs.avail_out;
            out_left -= zs.avail_out;
        } else if (zs.avail_out == 0 && !spare_given) {
            zs.next_out = &spare;
            zs.avail_out = 1;
            spare_given = 1;
        }
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END || (spare_given && zs.avail_out == 0))
            break;
        if (rc == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0)
            break;   /* no input left and no end marker */
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            break;
    }
    size_t produced = (size_t)zs.total_out;
    const char *msg = zs.msg;
    size_t unused = zs.avail_in + in_left;
    inflateEnd(&zs);
    if (produced > out_len) {
        fl_error("the compressed data holds more than the %zu bytes declared", out_len);
        return -1;
    }
    if (rc == Z_BUF_ERROR) {
        fl_error("the compressed data ends early (%zu of %zu bytes out)", produced, out_len);
        return -1;
    }
    if (rc != Z_STREAM_END) {
        fl_error("corrupt compressed data (zlib: %s)", msg ? msg : zError(rc));
        return -1;
    }
    if (produced != out_len) {
        fl_error("the compressed data holds %zu bytes, %zu were declared", produced, out_len);
        return -1;
    }
    if (unused > 0) {
        fl_error("%zu bytes follow the end of the compressed data", unused);
        return -1;
    }
    return 0;
}

uint32_t fl_crc32(const void *p, size_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *b = p;
    while (len > 0) {
        uInt n = len < CHUNK ? (uInt)len : CHUNK;
        crc = crc32(crc, b, n);
        b += n;
        len -= n;
    }
    return (uint32_t)crc;
}
