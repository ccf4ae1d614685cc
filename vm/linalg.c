/* linalg.c: matrix products (matmul, mm, bmm, mv, dot, outer, addmm) on OpenBLAS, or on
 * cuBLAS for CUDA tensors (kernels/cuda/blas.cu); the autocast and TF32 settings.
 *
 * Every product is reduced to a loop of C (M, N) = alpha A (M, K) . B (K, N) + beta C over the
 * broadcast batch dims, with C contiguous. Operands are handed to BLAS as they lie in memory:
 * a transposed-contiguous matrix goes with the Trans flag, a strided row or column with its
 * leading dimension; only a layout BLAS cannot describe (a zero or odd stride) is copied.
 * When B is shared by every batch and A's batches lie back to back, the batch is folded
 * into M: one large call instead of many small ones. M or N of 1 calls gemv. Integer
 * dtypes use the plain loop in kernels/cpu/gemm.c. Each product records its autograd node
 * last (rules in vm/backward_reduce.c).
 *
 * On CUDA the same operands go to cuBLAS as strided batches: the batch dims that collapse
 * into one stride make one call, the others are looped here. Integer products on CUDA make
 * a round trip through the host (rare; cuBLAS has no integer GEMM). */
#include "autograd.h"
#include "blas.h"
#include "cuda.h"
#include "../kernels/cpu/gemm.h"
#include "../kernels/cuda/blas.h"

#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* ---------------------------------------------------------------- settings */

/* Per thread, as PyTorch's autocast; TF32 is one switch for the process. */
static _Thread_local fl_autocast_mode autocast_mode;
static _Atomic bool allow_tf32;

fl_autocast_mode fl_set_autocast(fl_autocast_mode mode)
{
    fl_autocast_mode prev = autocast_mode;
    autocast_mode = mode;
    return prev;
}

fl_autocast_mode fl_autocast(void) { return autocast_mode; }

bool fl_set_allow_tf32(bool on)
{
    return atomic_exchange(&allow_tf32, on);
}

bool fl_allow_tf32(void) { return atomic_load(&allow_tf32); }

/* How a float32 product on CUDA runs under autocast mode ac. */
static fl_gemm_mode gemm_mode(fl_dtype dt, fl_autocast_mode ac)
{
    if (dt != FL_DTYPE_F32)
        return FL_GEMM_EXACT;
    return ac == FL_AUTOCAST_BF16 ? FL_GEMM_BF16 : fl_allow_tf32() ? FL_GEMM_TF32 : FL_GEMM_EXACT;
}

/* ---------------------------------------------------------------- operands */

/* How BLAS reads an (r, c) matrix with strides (rs, cs): FL_BLAS_NO_TRANS or FL_BLAS_TRANS
 * with leading dimension *ld, or 0 when it cannot (the matrix must be copied first). */
static int blas_layout(int64_t r, int64_t c, int64_t rs, int64_t cs, int64_t *ld)
{
    /* a stride along a dim of size 1 is free: pick the one that works */
    if (r == 1)
        rs = cs == 1 ? (c > 1 ? c : 1) : 1;
    if (c == 1)
        cs = rs == 1 ? (r > 1 ? r : 1) : 1;
    if (cs == 1 && rs >= (c > 1 ? c : 1) && rs <= INT_MAX) {
        *ld = rs;
        return FL_BLAS_NO_TRANS;
    }
    if (rs == 1 && cs >= (r > 1 ? r : 1) && cs <= INT_MAX) {
        *ld = cs;
        return FL_BLAS_TRANS;
    }
    return 0;
}

/* A matrix operand seen through the output's batch dims. */
typedef struct {
    const char *data;
    int64_t rows, cols, rs, cs;
    int64_t bstride[FL_MAX_DIMS];   /* per output batch dim; 0 where broadcast */
} mat_arg;

/* t as a matrix: 1-D tensors become a row (as_row) or a column. */
static void mat_arg_init(mat_arg *m, const fl_tensor *t, bool as_row, int nb)
{
    m->data = fl_tensor_data(t);
    if (t->ndim == 1) {
        m->rows = as_row ? 1 : t->shape[0];
        m->cols = as_row ? t->shape[0] : 1;
        m->rs = as_row ? 0 : t->strides[0];
        m->cs = as_row ? t->strides[0] : 0;
    } else {
        m->rows = t->shape[t->ndim - 2];
        m->cols = t->shape[t->ndim - 1];
        m->rs = t->strides[t->ndim - 2];
        m->cs = t->strides[t->ndim - 1];
    }
    int tb = t->ndim > 2 ? t->ndim - 2 : 0;
    for (int i = 0; i < nb; i++) {
        int d = i - (nb - tb);
        m->bstride[i] = (d < 0 || t->shape[d] == 1) ? 0 : t->strides[d];
    }
}

/* t itself (retained) when BLAS can read its matrix (or vector) layout, else a
 * contiguous copy. */
static fl_tensor *blas_ready(const fl_tensor *t)
{
    int64_t ld;
    bool ok;
    if (t->ndim == 1)
        ok = t->shape[0] <= 1 || (t->strides[0] >= 1 && t->strides[0] <= INT_MAX);
    else
        ok = blas_layout(t->shape[t->ndim - 2], t->shape[t->ndim - 1],
                         t->strides[t->ndim - 2], t->strides[t->ndim - 1], &ld) != 0;
    return ok ? fl_tensor_retain((fl_tensor *)t) : fl_clone(t);
}

/* ---------------------------------------------------------------- one product */

/* C (M, N), contiguous, = alpha A . B + beta C for float32/float64 on BLAS. */
static void gemm_one(fl_dtype dt, char *c, int64_t M, int64_t N, int64_t K, const char *a,
                     int64_t rsa, int64_t csa, const char *b, int64_t rsb, int64_t csb,
                     double alpha, double beta)
{
    int64_t lda = 0, ldb = 0;
    int ta = blas_layout(M, K, rsa, csa, &lda), tb = blas_layout(K, N, rsb, csb, &ldb);
    bool f32 = dt == FL_DTYPE_F32;
    if (N == 1) {
        /* c = A b: b is a column (its entries rsb apart) */
        int incx = K > 1 ? (int)rsb : 1;
        int trans = ta == FL_BLAS_NO_TRANS ? FL_BLAS_NO_TRANS : FL_BLAS_TRANS;
        int m = ta == FL_BLAS_NO_TRANS ? (int)M : (int)K, n = ta == FL_BLAS_NO_TRANS ? (int)K : (int)M;
        if (f32)
            fl_blas.sgemv(FL_BLAS_ROW_MAJOR, trans, m, n, (float)alpha, (const float *)a, (int)lda,
                          (const float *)b, incx, (float)beta, (float *)c, 1);
        else
            fl_blas.dgemv(FL_BLAS_ROW_MAJOR, trans, m, n, alpha, (const double *)a, (int)lda,
                          (const double *)b, incx, beta, (double *)c, 1);
        return;
    }
    if (M == 1) {
        /* c = B^T a: a is a row (its entries csa apart) */
        int incx = K > 1 ? (int)csa : 1;
        int trans = tb == FL_BLAS_NO_TRANS ? FL_BLAS_TRANS : FL_BLAS_NO_TRANS;
        int m = tb == FL_BLAS_NO_TRANS ? (int)K : (int)N, n = tb == FL_BLAS_NO_TRANS ? (int)N : (int)K;
        if (f32)
            fl_blas.sgemv(FL_BLAS_ROW_MAJOR, trans, m, n, (float)alpha, (const float *)b, (int)ldb,
                          (const float *)a, incx, (float)beta, (float *)c, 1);
        else
            fl_blas.dgemv(FL_BLAS_ROW_MAJOR, trans, m, n, alpha, (const double *)b, (int)ldb,
                          (const double *)a, incx, beta, (double *)c, 1);
        return;
    }
    if (f32)
        fl_blas.sgemm(FL_BLAS_ROW_MAJOR, ta, tb, (int)M, (int)N, (int)K, (float)alpha,
                      (const float *)a, (int)lda, (const float *)b, (int)ldb, (float)beta,
                      (float *)c, (int)N);
    else
        fl_blas.dgemm(FL_BLAS_ROW_MAJOR, ta, tb, (int)M, (int)N, (int)K, alpha,
                      (const double *)a, (int)lda, (const double *)b, (int)ldb, beta,
                      (double *)c, (int)N);
}

/* ---------------------------------------------------------------- batched products */

/* out (bshape..., M, N), contiguous, = alpha A . B + beta out over the batch. */
static void gemm_batch(fl_dtype dt, char *out, const mat_arg *A, const mat_arg *B, int nb,
                       const int64_t *bshape, double alpha, double beta)
{
    int64_t M = A->rows, N = B->cols, K = A->cols;
    size_t es = fl_dtype_size(dt);
    int64_t nbatch = 1;
    for (int i = 0; i < nb; i++)
        nbatch *= bshape[i];
    if (nbatch == 0 || M == 0 || N == 0)
        return;
    if (K == 0) {
        /* nothing to multiply: out = beta out */
        int64_t n = nbatch * M * N;
        for (int64_t i = 0; i < n; i++)
            fl_store_f64(dt, out, i, beta == 0 ? 0 : beta * fl_load_f64(dt, out, i));
        return;
    }
    /* Fold: B the same for every batch, A's batch and row dims one run of rows. */
    bool b_shared = true;
    for (int i = 0; i < nb; i++)
        b_shared = b_shared && (B->bstride[i] == 0 || bshape[i] == 1);
    if (b_shared && nbatch > 1) {
        int64_t size = M, stride = A->rs, ld;
        bool run = true;
        for (int i = nb - 1; i >= 0 && run; i--) {
            if (bshape[i] == 1)
                continue;
            if (size == 1)
                stride = A->bstride[i];
            else if (A->bstride[i] != size * stride)
                run = false;
            size *= bshape[i];
        }
        if (run && M * nbatch <= INT_MAX && blas_layout(size, K, stride, A->cs, &ld)) {
            gemm_one(dt, out, size, N, K, A->data, stride, A->cs, B->data, B->rs, B->cs, alpha, beta);
            return;
        }
    }
    int64_t idx[FL_MAX_DIMS] = {0};
    for (int64_t bi = 0; bi < nbatch; bi++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < nb; i++) {
            oa += idx[i] * A->bstride[i];
            ob += idx[i] * B->bstride[i];
        }
        gemm_one(dt, out + bi * M * N * (int64_t)es, M, N, K, A->data + oa * (int64_t)es,
                 A->rs, A->cs, B->data + ob * (int64_t)es, B->rs, B->cs, alpha, beta);
        for (int i = nb - 1; i >= 0 && ++idx[i] == bshape[i]; i--)
            idx[i] = 0;
    }
}

/* The same on cuBLAS: out (bshape..., M, N), contiguous on the device. */
static int gemm_batch_cuda(fl_dtype dt, char *out, const mat_arg *A, const mat_arg *B, int nb,
                           const int64_t *bshape, double alpha, double beta)
{
    int64_t M = A->rows, N = B->cols, K = A->cols, lda = 0, ldb = 0;
    size_t es = fl_dtype_size(dt);
    fl_gemm_mode mode = gemm_mode(dt, fl_autocast());
    int64_t nbatch = 1;
    for (int i = 0; i < nb; i++)
        nbatch *= bshape[i];
    if (nbatch == 0 || M == 0 || N == 0)
        return 0;
    bool b_shared = true;
    for (int i = 0; i < nb; i++)
        b_shared = b_shared && (B->bstride[i] == 0 || bshape[i] == 1);
    int tb = blas_layout(K, N, B->rs, B->cs, &ldb) == FL_BLAS_TRANS;
    if (b_shared && nbatch > 1) {
        /* A's batches one run of rows: one product with the batch folded into M */
        int64_t size = M, stride = A->rs;
        bool run = true;
        for (int i = nb - 1; i >= 0 && run; i--) {
            if (bshape[i] == 1)
                continue;
            if (size == 1)
                stride = A->bstride[i];
            else if (A->bstride[i] != size * stride)
                run = false;
            size *= bshape[i];
        }
        int ta = blas_layout(size, K, stride, A->cs, &lda);
        if (run && M * nbatch <= INT_MAX && ta)
            return fl_cuda_status(FL_CUDA(fl_cuda_gemm)(dt, mode, ta == FL_BLAS_TRANS, tb, size, N, K, alpha, A->data,
                                                        lda, 0, B->data, ldb, 0, beta, out, N, 0, 1));
    }
    int ta = blas_layout(M, K, A->rs, A->cs, &lda) == FL_BLAS_TRANS;
    /* the innermost batch dims that step A and B by one stride each form one strided batch;
     * the dims before `outer` are looped here */
    int64_t count = 1, sa = 0, sb = 0;
    int outer = nb;
    for (int i = nb - 1; i >= 0; i--) {
        if (bshape[i] == 1) {
            outer = i;
            continue;
        }
        if (count == 1) {
            sa = A->bstride[i];
            sb = B->bstride[i];
        } else if (A->bstride[i] != sa * count || B->bstride[i] != sb * count) {
            break;
        }
        count *= bshape[i];
        outer = i;
    }
    int64_t idx[FL_MAX_DIMS] = {0}, calls = nbatch / count;
    for (int64_t ci = 0; ci < calls; ci++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < outer; i++) {
            oa += idx[i] * A->bstride[i];
            ob += idx[i] * B->bstride[i];
        }
        if (fl_cuda_status(FL_CUDA(fl_cuda_gemm)(dt, mode, ta, tb, M, N, K, alpha, A->data + oa * (int64_t)es, lda,
                                                 sa, B->data + ob * (int64_t)es, ldb, sb, beta,
                                                 out + ci * count * M * N * (int64_t)es, N, M * N, count)) < 0)
            return -1;
        for (int i = outer - 1; i >= 0 && ++idx[i] == bshape[i]; i--)
            idx[i] = 0;
    }
    return 0;
}

/* The same with the integer loop (A, B int64; out int64, overwritten). */
static void gemm_batch_int(int64_t *out, const mat_arg *A, const mat_arg *B, int nb,
                           const int64_t *bshape)
{
    int64_t M = A->rows, N = B->cols, K = A->cols, nbatch = 1;
    for (int i = 0; i < nb; i++)
        nbatch *= bshape[i];
    int64_t idx[FL_MAX_DIMS] = {0};
    for (int64_t bi = 0; bi < nbatch; bi++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < nb; i++) {
            oa += idx[i] * A->bstride[i];
            ob += idx[i] * B->bstride[i];
        }
        fl_cpu_gemm_i64(out + bi * M * N, (const int64_t *)A->data + oa, (const int64_t *)B->data + ob,
                        M, N, K, A->rs, A->cs, B->rs, B->cs);
        for (int i = nb - 1; i >= 0 && ++idx[i] == bshape[i]; i--)
            idx[i] = 0;
    }
}

/* ---------------------------------------------------------------- shapes and checks */

static int check_operands(const fl_tensor *a, const fl_tensor *b)
{
    if (a->storage->device.type != b->storage->device.type) {
        fl_error("expected all tensors on the same device, got %s and %s", fl_is_cuda(a) ? "cuda" : "cpu",
                 fl_is_cuda(b) ? "cuda" : "cpu");
        return -1;
    }
    if (a->dtype != b->dtype) {
        fl_error("expected both operands to have the same dtype, got %s and %s",
                 fl_dtype_name(a->dtype), fl_dtype_name(b->dtype));
        return -1;
    }
    if (a->dtype == FL_DTYPE_BOOL) {
        fl_error("matrix products are not defined for bool tensors (convert them to a number type)");
        return -1;
    }
    return 0;
}

static int shape_error(const char *what, const fl_tensor *a, const fl_tensor *b)
{
    char b1[160], b2[160];
    fl_error("%s, got shapes %s and %s", what, fl_shape_str(b1, sizeof b1, a->ndim, a->shape),
             fl_shape_str(b2, sizeof b2, b->ndim, b->shape));
    return -1;
}

/* The broadcast batch shape of a and b (ndim returned) and the result shape, following
 * matmul's rules; -1 with a message naming both shapes. */
static int product_shapes(const fl_tensor *a, const fl_tensor *b, int64_t *bshape,
                          int *out_ndim, int64_t *out_shape)
{
    char b1[160], b2[160];
    if (a->ndim == 0 || b->ndim == 0)
        return shape_error("expected tensors with at least 1 dimension", a, b);
    int64_t K = a->shape[a->ndim - 1], Kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (K != Kb) {
        fl_error("shapes %s and %s cannot be multiplied (%lld != %lld)",
                 fl_shape_str(b1, sizeof b1, a->ndim, a->shape),
                 fl_shape_str(b2, sizeof b2, b->ndim, b->shape), (long long)K, (long long)Kb);
        return -1;
    }
    int na = a->ndim > 2 ? a->ndim - 2 : 0, nb = b->ndim > 2 ? b->ndim - 2 : 0;
    int n = fl_broadcast_shape(na, a->shape, nb, b->shape, bshape);
    if (n < 0) {
        fl_error("the batch dimensions of shapes %s and %s cannot be broadcast together",
                 fl_shape_str(b1, sizeof b1, a->ndim, a->shape),
                 fl_shape_str(b2, sizeof b2, b->ndim, b->shape));
        return -1;
    }
    *out_ndim = n;
    memcpy(out_shape, bshape, (size_t)n * sizeof *bshape);
    if (a->ndim >= 2)
        out_shape[(*out_ndim)++] = a->shape[a->ndim - 2];
    if (b->ndim >= 2)
        out_shape[(*out_ndim)++] = b->shape[b->ndim - 1];
    int64_t M = a->ndim >= 2 ? a->shape[a->ndim - 2] : 1, N = b->ndim >= 2 ? b->shape[b->ndim - 1] : 1;
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX) {
        fl_error("matrix dimensions above 2^31 - 1 are not supported (BLAS uses int), got shapes %s and %s",
                 fl_shape_str(b1, sizeof b1, a->ndim, a->shape),
                 fl_shape_str(b2, sizeof b2, b->ndim, b->shape));
        return -1;
    }
    return n;
}

/* out = alpha a . b + beta out, where out (the product's shape) already holds the addend
 * unless beta is 0. Float dtypes only. */
static int product_into(fl_tensor *out, const fl_tensor *a, const fl_tensor *b, int nb,
                        const int64_t *bshape, double alpha, double beta)
{
    if (!fl_is_cuda(out) && fl_blas_init() < 0)
        return -1;
    fl_tensor *ca = blas_ready(a), *cb = ca ? blas_ready(b) : NULL;
    int rc = cb ? 0 : -1;
    if (cb) {
        mat_arg A, B;
        mat_arg_init(&A, ca, true, nb);
        mat_arg_init(&B, cb, false, nb);
        if (fl_is_cuda(out))
            rc = gemm_batch_cuda(out->dtype, fl_tensor_data(out), &A, &B, nb, bshape, alpha, beta);
        else
            gemm_batch(out->dtype, fl_tensor_data(out), &A, &B, nb, bshape, alpha, beta);
    }
    fl_tensor_release(ca);
    fl_tensor_release(cb);
    return rc;
}

/* Integer products: in int64, then back to the operands' dtype. On CUDA, through the host:
 * cuBLAS has no integer GEMM and integer products are rare. */
static fl_tensor *product_int(const fl_tensor *a, const fl_tensor *b, int nb, const int64_t *bshape,
                              int out_ndim, const int64_t *out_shape)
{
    if (fl_is_cuda(a)) {
        fl_device dev = a->storage->device;
        fl_tensor *ha = fl_move(a, FL_CPU), *hb = ha ? fl_move(b, FL_CPU) : NULL;
        fl_tensor *hr = hb ? product_int(ha, hb, nb, bshape, out_ndim, out_shape) : NULL;
        fl_tensor *r = hr ? fl_move(hr, dev) : NULL;
        fl_tensor_release(ha);
        fl_tensor_release(hb);
        fl_tensor_release(hr);
        return r;
    }
    fl_tensor *ca = fl_cast(a, FL_DTYPE_I64), *cb = ca ? fl_cast(b, FL_DTYPE_I64) : NULL;
    fl_tensor *acc = cb ? fl_tensor_empty(FL_DTYPE_I64, out_ndim, out_shape, FL_CPU) : NULL;
    if (acc && acc->numel > 0) {
        mat_arg A, B;
        mat_arg_init(&A, ca, true, nb);
        mat_arg_init(&B, cb, false, nb);
        gemm_batch_int(fl_tensor_data(acc), &A, &B, nb, bshape);
    }
    fl_tensor_release(ca);
    fl_tensor_release(cb);
    if (!acc || a->dtype == FL_DTYPE_I64)
        return acc;
    fl_tensor *r = fl_cast(acc, a->dtype);
    fl_tensor_release(acc);
    return r;
}

/* ---------------------------------------------------------------- autograd records */

/* Records the node of a product of in[0..nin) (out is released on failure). a and b, the
 * factors, are saved only where the other one needs a gradient. */
static fl_tensor *record(fl_tensor *out, fl_grad_rule rule, const char *name, int nin,
                         const fl_tensor *const *in, const fl_tensor *a, const fl_tensor *b,
                         double beta, double alpha)
{
    bool any = false;
    for (int i = 0; i < nin; i++)
        any = any || fl_needs_grad(in[i]);
    if (!out || !any || !fl_dtype_is_float(out->dtype))
        return out;
    fl_node *n = fl_node_new(rule, name, nin, in);
    if (!n || (fl_needs_grad(b) && fl_node_save(n, 0, a) < 0) ||
        (fl_needs_grad(a) && fl_node_save(n, 1, b) < 0)) {
        fl_node_release(n);
        fl_tensor_release(out);
        return NULL;
    }
    n->dargs[0] = beta;
    n->dargs[1] = alpha;
    /* the autocast of the forward, for the backward's products (vm/backward_reduce.c) */
    n->iargs[1] = fl_autocast();
    /* which factors are stored column by column: their gradients are made in that layout */
    n->iargs[0] = fl_matrix_is_transposed(a) | fl_matrix_is_transposed(b) << 1;
    fl_node_attach(n, out);
    return out;
}

static fl_tensor *record_product(fl_tensor *out, const char *name, const fl_tensor *a, const fl_tensor *b)
{
    const fl_tensor *in[2] = {a, b};
    return record(out, FL_GRAD_MATMUL, name, 2, in, a, b, 0, 1);
}

/* ---------------------------------------------------------------- the products */

/* matmul without its record (mm, bmm, mv and dot record under their own names). */
static fl_tensor *product(const fl_tensor *a, const fl_tensor *b)
{
    int64_t bshape[FL_MAX_DIMS], shape[FL_MAX_DIMS];
    int ndim;
    if (check_operands(a, b) < 0)
        return NULL;
    int nb = product_shapes(a, b, bshape, &ndim, shape);
    if (nb < 0)
        return NULL;
    if (!fl_dtype_is_float(a->dtype))
        return product_int(a, b, nb, bshape, ndim, shape);
    fl_tensor *out = fl_tensor_empty(a->dtype, ndim, shape, a->storage->device);
    if (out && product_into(out, a, b, nb, bshape, 1, 0) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return out;
}

fl_tensor *fl_matmul(const fl_tensor *a, const fl_tensor *b)
{
    return record_product(product(a, b), "matmul", a, b);
}

fl_tensor *fl_mm(const fl_tensor *a, const fl_tensor *b)
{
    if (a->ndim != 2 || b->ndim != 2) {
        shape_error("expected two 2-D matrices", a, b);
        return NULL;
    }
    return record_product(product(a, b), "mm", a, b);
}

fl_tensor *fl_bmm(const fl_tensor *a, const fl_tensor *b)
{
    if (a->ndim != 3 || b->ndim != 3 || a->shape[0] != b->shape[0]) {
        shape_error("expected two 3-D tensors with the same batch size", a, b);
        return NULL;
    }
    return record_product(product(a, b), "bmm", a, b);
}

fl_tensor *fl_mv(const fl_tensor *a, const fl_tensor *b)
{
    if (a->ndim != 2 || b->ndim != 1) {
        shape_error("expected a 2-D matrix and a 1-D vector", a, b);
        return NULL;
    }
    return record_product(product(a, b), "mv", a, b);
}

fl_tensor *fl_dot(const fl_tensor *a, const fl_tensor *b)
{
    if (a->ndim != 1 || b->ndim != 1) {
        shape_error("expected two 1-D vectors", a, b);
        return NULL;
    }
    return record_product(product(a, b), "dot", a, b);
}

/* a (n, 1) * b (1, m), broadcast; the dtype follows the usual promotion, as in PyTorch. */
fl_tensor *fl_outer(const fl_tensor *a, const fl_tensor *b)
{
    if (a->ndim != 1 || b->ndim != 1) {
        shape_error("expected two 1-D vectors", a, b);
        return NULL;
    }
    int64_t sa[2] = {a->shape[0], 1}, ta[2] = {a->strides[0], 0};
    int64_t sb[2] = {1, b->shape[0]}, tb[2] = {0, b->strides[0]};
    fl_tensor *va = fl_tensor_view_of(a, 2, sa, ta, a->offset);
    fl_tensor *vb = va ? fl_tensor_view_of(b, 2, sb, tb, b->offset) : NULL;
    fl_tensor *r = vb ? fl_binary(FL_BINOP_MUL, va, vb) : NULL;   /* the views carry no grad */
    fl_tensor_release(va);
    fl_tensor_release(vb);
    const fl_tensor *in[2] = {a, b};
    return record(r, FL_GRAD_OUTER, "outer", 2, in, a, b, 0, 1);
}

fl_tensor *fl_addmm(const fl_tensor *m, const fl_tensor *a, const fl_tensor *b,
                    double beta, double alpha)
{
    int64_t bshape[FL_MAX_DIMS], shape[FL_MAX_DIMS];
    int ndim;
    if (a->ndim != 2 || b->ndim != 2) {
        shape_error("expected two 2-D matrices", a, b);
        return NULL;
    }
    if (check_operands(a, b) < 0 || check_operands(m, a) < 0)
        return NULL;
    if (product_shapes(a, b, bshape, &ndim, shape) < 0)
        return NULL;
    int64_t bc[2];
    if (fl_broadcast_shape(m->ndim, m->shape, 2, shape, bc) < 0 || bc[0] != shape[0] || bc[1] != shape[1]) {
        char b1[160], b2[160];
        fl_error("the added tensor of shape %s cannot be broadcast to the product's shape %s",
                 fl_shape_str(b1, sizeof b1, m->ndim, m->shape), fl_shape_str(b2, sizeof b2, 2, shape));
        return NULL;
    }
    if (!fl_dtype_is_float(a->dtype)) {
        if (alpha != floor(alpha) || beta != floor(beta)) {
            fl_error("alpha and beta must be integers for %s tensors", fl_dtype_name(a->dtype));
            return NULL;
        }
        fl_tensor *p = fl_matmul(a, b);
        fl_tensor *ap = p ? fl_binary_scalar(FL_BINOP_MUL, p, alpha, false) : NULL;
        fl_tensor *bm = ap ? fl_binary_scalar(FL_BINOP_MUL, m, beta, false) : NULL;
        fl_tensor *r = bm ? fl_binary(FL_BINOP_ADD, bm, ap) : NULL;
        fl_tensor_release(p);
        fl_tensor_release(ap);
        fl_tensor_release(bm);
        return r;
    }
    fl_tensor *out = fl_tensor_empty(a->dtype, 2, shape, a->storage->device);
    if (out && beta != 0 && fl_copy(out, m) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    if (out && product_into(out, a, b, 0, bshape, alpha, beta) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    const fl_tensor *in[3] = {m, a, b};
    return record(out, FL_GRAD_ADDMM, "addmm", 3, in, a, b, beta, alpha);
}
