/* data.h: engine helpers for flare.data (stdlib/flare/data): raw deflate for .npz (zip)
 * entries and affine resampling of image batches for augmentation. */
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

#endif
