/* data.h: engine helpers for flare.data (stdlib/flare/data): raw deflate for .npz (zip)
 * entries, affine resampling of image batches for augmentation, and a background gather of
 * batch rows so that loading the next batch overlaps with compute (loader prefetch). */
#ifndef FL_DATA_H
#define FL_DATA_H

#include "flare.h"

/* Inflates the raw deflate stream (no zlib or gzip wrapper, as zip stores it) of len bytes
 * at in into exactly out_len bytes at out. Fails if the stream is corrupt, ends early, or
 * holds more or fewer bytes than out_len. */
int fl_inflate_raw(const void *in, size_t len, void *out, size_t out_len);
/* The CRC-32 of len bytes, as zip and gzip store it. */
uint32_t fl_crc32(const void *p, size_t len);

/* Resamples each image of x ((N, C, H, W), or (C, H, W) with one theta) through the affine
 * map of its theta ((N, 2, 3), or (2, 3) shared by all images) into an (oh, ow) image (0:
 * the input's size): output pixel (y, x) reads the input at theta . (u, v, 1), where
 * (u, v) = (x - (ow - 1) / 2, y - (oh - 1) / 2) are pixel coordinates from the output's
 * centre, and the result is read from the input's centre (so theta = [R | t] rotates about
 * the centre and shifts by t pixels). Nearest (round half up) or bilinear sampling; taps
 * outside the image read `fill`. x is float32 or float64; so is the result. */
fl_tensor *fl_warp_affine(const fl_tensor *x, const fl_tensor *theta, int64_t oh, int64_t ow, bool bilinear,
                          double fill);

/* A batch gather running on its own thread: rows idx[j] - base (along dim 0) of each source
 * are copied into new contiguous tensors allocated here, on the calling thread. The worker
 * touches raw memory only (tensor refcounts are not thread-safe), and the sources are
 * retained until fl_prefetch_free. Sources must be CPU tensors whose rows are contiguous. */
typedef struct fl_prefetch fl_prefetch;
fl_prefetch *fl_prefetch_start(int count, fl_tensor *const *src, const fl_tensor *idx, int64_t base);
/* Waits for the copy and hands out the outputs (count new references); once only. */
int fl_prefetch_wait(fl_prefetch *p, fl_tensor **out);
/* Waits if still running, then releases everything the gather holds. */
void fl_prefetch_free(fl_prefetch *p);

#endif
