/* io.h: bytes in and out: whole files (gzip read transparently) and tensors from raw
 * little- or big-endian bytes. Parsers of file formats (IDX, NPY, CSV, ...) build on these. */
#ifndef FL_IO_H
#define FL_IO_H

#include "flare.h"

/* Reads the whole file at path (decompressing gzip) into a malloc'd buffer. Fails, naming
 * the file, if it cannot be read or holds more than max_bytes once decompressed. */
int fl_read_file(const char *path, size_t max_bytes, char **data, size_t *len);
/* A new tensor of the given shape from len bytes at p (which must hold exactly numel
 * elements of dt); big_endian swaps each element's bytes. */
fl_tensor *fl_from_bytes(const void *p, size_t len, fl_dtype dt, int ndim, const int64_t *shape, bool big_endian);

#endif
