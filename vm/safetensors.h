/* safetensors.h: the safetensors file format (the layout PyTorch, Hugging Face and others use
 * for weights): an 8-byte little-endian header length, a JSON header naming each tensor's
 * dtype, shape and byte range, then the raw bytes. The reader checks every size and offset
 * against the file before allocating anything; the writer replaces a file atomically. */
#ifndef FL_SAFETENSORS_H
#define FL_SAFETENSORS_H

#include "flare.h"

/* The largest header read, as the reference implementation (100 MB). */
#define FL_ST_MAX_HEADER 100000000u

typedef struct {
    char *name;
    size_t name_len;      /* names may hold any UTF-8, NUL included */
    fl_tensor *tensor;
} fl_st_tensor;

/* One entry of the header's __metadata__ (string keys, string values). */
typedef struct {
    char *key, *value;
    size_t key_len, value_len;
} fl_st_pair;

typedef struct {
    size_t n_tensors, n_meta;
    fl_st_tensor *tensors;    /* read: in the order of their bytes in the file */
    fl_st_pair *meta;
} fl_st_file;

/* Reads a whole file. Tensors come back contiguous, on the CPU, as F32, F64, I64, I32, U8
 * or BOOL; F16 and BF16 are widened to float32, I8, I16 and U16 to int32, U32 to int64.
 * Every problem (short file, header too large or past the end of the file, bad UTF-8 or
 * JSON, unknown dtype, size overflow, offsets that overlap, leave gaps or pass the end of
 * the data, trailing bytes, duplicate names) is an error naming the file and the problem. */
fl_st_file *fl_safetensors_read(const char *path);
void fl_st_file_free(fl_st_file *f);

/* Writes f (not modified; any layout of CPU tensors) to path atomically: a temporary file in
 * the same directory, fsync, rename over path, fsync of the directory. A process killed
 * meanwhile leaves the previous file whole. A symbolic link at path is followed. */
int fl_safetensors_write(const char *path, const fl_st_file *f);

/* ---------------------------------------------------------------- atomic replacement
 * For any file writer: begin creates a hidden temporary file beside path (following a
 * symbolic link at path; with the permissions of the file it replaces); write appends to
 * it; commit fsyncs it, renames it over path and fsyncs the directory; abort removes it.
 * After a failed step the temporary file is already gone (abort is then a no-op, as after
 * a commit). Errors read "cannot write 'path': ...". */
typedef struct {
    int fd;
    const char *path;            /* as given; must outlive the write */
    char *target, *dir, *tmp;
} fl_atomic_file;

int fl_atomic_begin(fl_atomic_file *a, const char *path);
int fl_atomic_write(fl_atomic_file *a, const void *p, size_t n);
int fl_atomic_commit(fl_atomic_file *a);
void fl_atomic_abort(fl_atomic_file *a);

#endif
