/* elementwise.h: CUDA elementwise kernels over an fl_iter (vm/iter.h), whose data pointers
 * are device pointers. Operand order and semantics match the CPU kernels of
 * kernels/cpu/kernels.h, element for element. */
#ifndef FL_CUDA_ELEMENTWISE_H
#define FL_CUDA_ELEMENTWISE_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "../../vm/iter.h"

/* out, a, b: a and b of dtype dt; out dt, or bool for comparisons. Integer division by zero
 * and integer negative powers are reported (-1). */
int fl_cuda_binary(fl_binop op, fl_dtype dt, const fl_iter *it);
/* out, a: a of dtype in, out of fl_unop_result_dtype(op, in) (float ops get float input: the
 * caller converts). */
int fl_cuda_unary(fl_unop op, fl_dtype in, fl_dtype out, const fl_iter *it);
/* out, a: conversion with the CPU's rules (floats saturate into integers, integers wrap). */
int fl_cuda_cast(fl_dtype dst, fl_dtype src, const fl_iter *it);
int fl_cuda_clamp(fl_dtype dt, const fl_iter *it, double lo, double hi, int has_lo, int has_hi);
/* out, cond (bool), a, b, all but cond of dtype dt. */
int fl_cuda_where(fl_dtype dt, const fl_iter *it);
/* out = v */
int fl_cuda_fill(fl_dtype dt, const fl_iter *it, double v);

#ifdef __cplusplus
}
#endif
#endif
