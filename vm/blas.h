/* blas.h: the few BLAS entry points flare calls, resolved at run time (see blas.c). */
#ifndef FL_BLAS_H
#define FL_BLAS_H

#include "flare.h"

enum { FL_BLAS_ROW_MAJOR = 101 };
enum { FL_BLAS_NO_TRANS = 111, FL_BLAS_TRANS = 112 };

typedef struct {
    void (*sgemm)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc);
    void (*dgemm)(int order, int ta, int tb, int m, int n, int k, double alpha, const double *a,
                  int lda, const double *b, int ldb, double beta, double *c, int ldc);
    void (*sgemv)(int order, int ta, int m, int n, float alpha, const float *a, int lda,
                  const float *x, int incx, float beta, float *y, int incy);
    void (*dgemv)(int order, int ta, int m, int n, double alpha, const double *a, int lda,
                  const double *x, int incx, double beta, double *y, int incy);
    void (*set_num_threads)(int n);
    char *(*get_corename)(void);
    char *(*get_config)(void);
} fl_blas_api;

extern fl_blas_api fl_blas;

#endif
