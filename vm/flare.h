/* flare.h: the public interface of the engine core (vm/).
 *
 * Everything here is plain C: no Lua. Functions that can fail return NULL (or a negative
 * status) and leave a message in fl_last_error(); they never abort and never leak on the
 * error path. Tensors are refcounted views (shape, strides, offset) over refcounted storage. */
#ifndef FLARE_H
#define FLARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_VERSION "0.1"
#define FL_MAX_DIMS 8

/* ---------------------------------------------------------------- dtypes and devices */

typedef enum {
    FL_DTYPE_F32,
    FL_DTYPE_F64,
    FL_DTYPE_I64,
    FL_DTYPE_I32,
    FL_DTYPE_U8,
    FL_DTYPE_BOOL,
    FL_DTYPE_COUNT
} fl_dtype;

size_t fl_dtype_size(fl_dtype dt);
const char *fl_dtype_name(fl_dtype dt);        /* "float32", ... */
int fl_dtype_from_name(const char *name);      /* -1 if unknown */
bool fl_dtype_is_float(fl_dtype dt);
fl_dtype fl_dtype_promote(fl_dtype a, fl_dtype b);

typedef enum { FL_DEVICE_CPU, FL_DEVICE_CUDA } fl_device_type;
typedef struct {
    fl_device_type type;
    int index;
} fl_device;

#define FL_CPU ((fl_device){FL_DEVICE_CPU, 0})

/* ---------------------------------------------------------------- errors */

const char *fl_last_error(void);
void fl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes "[2, 3]" into buf. */
const char *fl_shape_str(char *buf, size_t len, int ndim, const int64_t *shape);

/* ---------------------------------------------------------------- storage and tensors */

typedef struct fl_storage {
    void *data;
    size_t nbytes;
    int64_t refcount;
    fl_device device;
    uint32_t version;      /* bumped by every in-place write; autograd checks it */
    bool pinned;           /* page-locked host memory (CPU storage from fl_pin_memory) */
} fl_storage;

struct fl_node;

typedef struct fl_tensor {
    int64_t refcount;
    fl_dtype dtype;
    int ndim;
    int64_t shape[FL_MAX_DIMS];
    int64_t strides[FL_MAX_DIMS];  /* in elements */
    int64_t offset;                /* in elements */
    int64_t numel;
    fl_storage *storage;
    /* autograd */
    bool requires_grad;
    struct fl_tensor *grad;
    struct fl_node *grad_fn;       /* NULL for leaves */
    bool has_hooks;                /* gradient hooks registered (leaf tensors) */
    struct fl_node *grad_acc;      /* a leaf's accumulate node while one exists (weak) */
} fl_tensor;

/* Contiguous, uninitialised tensor. */
fl_tensor *fl_tensor_empty(fl_dtype dt, int ndim, const int64_t *shape, fl_device dev);
fl_tensor *fl_tensor_zeros(fl_dtype dt, int ndim, const int64_t *shape, fl_device dev);
/* A new view over t's storage. */
fl_tensor *fl_tensor_view_of(const fl_tensor *t, int ndim, const int64_t *shape,
                             const int64_t *strides, int64_t offset);
fl_tensor *fl_tensor_retain(fl_tensor *t);
/* dst takes src's storage, dtype and layout, keeping its identity (Module:to moves parameters
 * in place); refused on tensors in a graph. */
int fl_tensor_set_(fl_tensor *dst, const fl_tensor *src);
void fl_tensor_release(fl_tensor *t);

static inline void *fl_tensor_data(const fl_tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)fl_dtype_size(t->dtype);
}
bool fl_tensor_is_contiguous(const fl_tensor *t);
/* A matrix stored column by column (the transpose of a contiguous one)? */
bool fl_matrix_is_transposed(const fl_tensor *t);
bool fl_shape_equal(const fl_tensor *a, const fl_tensor *b);
void fl_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
/* numel of a shape, or -1 on overflow / negative size (message set). */
int64_t fl_shape_numel(int ndim, const int64_t *shape);

/* Bytes of tensor data currently allocated; used by the binding to pace Lua's GC. */
size_t fl_bytes_allocated(void);
size_t fl_bytes_allocated_total(void);

/* Element access as double / int64 (any dtype, any strides); index in elements of storage. */
double fl_load_f64(fl_dtype dt, const void *base, int64_t i);
int64_t fl_load_i64(fl_dtype dt, const void *base, int64_t i);
void fl_store_f64(fl_dtype dt, void *base, int64_t i, double v);
void fl_store_i64(fl_dtype dt, void *base, int64_t i, int64_t v);

/* ---------------------------------------------------------------- ops: creation */

int fl_fill(fl_tensor *t, double v);                     /* in place, any layout */
int fl_copy(fl_tensor *dst, const fl_tensor *src);       /* broadcast + cast */
fl_tensor *fl_contiguous(fl_tensor *t);                  /* retains t if already */
fl_tensor *fl_clone(const fl_tensor *t);
fl_tensor *fl_cast(const fl_tensor *t, fl_dtype dt);
fl_tensor *fl_arange(double start, double end, double step, fl_dtype dt);
fl_tensor *fl_linspace(double start, double end, int64_t n, fl_dtype dt);
fl_tensor *fl_eye(int64_t n, int64_t m, fl_dtype dt);

/* ---------------------------------------------------------------- random */

void fl_manual_seed(uint64_t seed);
void fl_rng_get_state(uint64_t *seed, uint64_t *offset);
void fl_rng_set_state(uint64_t seed, uint64_t offset);
int fl_rand_uniform(fl_tensor *t, double lo, double hi);    /* in place */
int fl_rand_normal(fl_tensor *t, double mean, double std);  /* in place */
int fl_rand_int(fl_tensor *t, int64_t lo, int64_t hi);      /* [lo, hi) */
int fl_rand_bernoulli(fl_tensor *t, double p);
fl_tensor *fl_randperm(int64_t n, fl_dtype dt);
uint64_t fl_rng_next_u64(void);

/* ---------------------------------------------------------------- elementwise */

typedef enum {
    FL_BINOP_ADD, FL_BINOP_SUB, FL_BINOP_MUL, FL_BINOP_DIV, FL_BINOP_POW,
    FL_BINOP_MAXIMUM, FL_BINOP_MINIMUM, FL_BINOP_FMOD, FL_BINOP_ATAN2,
    FL_BINOP_EQ, FL_BINOP_NE, FL_BINOP_LT, FL_BINOP_LE, FL_BINOP_GT, FL_BINOP_GE,
    FL_BINOP_AND, FL_BINOP_OR, FL_BINOP_XOR,
    FL_BINOP_COUNT
} fl_binop;

typedef enum {
    FL_UNOP_NEG, FL_UNOP_ABS, FL_UNOP_EXP, FL_UNOP_LOG, FL_UNOP_LOG1P, FL_UNOP_EXPM1,
    FL_UNOP_SQRT, FL_UNOP_RSQRT, FL_UNOP_SIN, FL_UNOP_COS, FL_UNOP_TANH, FL_UNOP_SIGMOID,
    FL_UNOP_RELU, FL_UNOP_GELU, FL_UNOP_SILU, FL_UNOP_FLOOR, FL_UNOP_CEIL, FL_UNOP_ROUND,
    FL_UNOP_SIGN, FL_UNOP_RECIPROCAL, FL_UNOP_SQUARE, FL_UNOP_LOG2, FL_UNOP_SOFTPLUS,
    FL_UNOP_NOT, FL_UNOP_ISNAN, FL_UNOP_ISINF, FL_UNOP_ISFINITE, FL_UNOP_TRUNC, FL_UNOP_TAN,
    FL_UNOP_ASIN, FL_UNOP_ACOS, FL_UNOP_ATAN, FL_UNOP_SINH, FL_UNOP_COSH, FL_UNOP_ERF,
    FL_UNOP_COUNT
} fl_unop;

const char *fl_binop_name(fl_binop op);
const char *fl_unop_name(fl_unop op);

/* Result dtype of a binary op; `a_scalar`/`b_scalar` mark Lua numbers wrapped as 0-dim
 * tensors, which (as in PyTorch) do not raise the result's category-internal width. */
fl_dtype fl_binop_result_dtype(fl_binop op, const fl_tensor *a, const fl_tensor *b);
fl_dtype fl_unop_result_dtype(fl_unop op, fl_dtype in);
/* Broadcast shape of a and b into out (ndim returned), or -1 with a message. */
int fl_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int64_t *out);

fl_tensor *fl_binary(fl_binop op, const fl_tensor *a, const fl_tensor *b);
/* In place: a = a op b (b broadcast to a's shape, result cast to a's dtype). */
int fl_binary_(fl_binop op, fl_tensor *a, const fl_tensor *b);
fl_tensor *fl_unary(fl_unop op, const fl_tensor *a);
int fl_unary_(fl_unop op, fl_tensor *a);
/* Scalar fast path: a op s (or s op a if reversed), result dtype as for a Lua number. */
fl_tensor *fl_binary_scalar(fl_binop op, const fl_tensor *a, double s, bool reversed);
fl_dtype fl_scalar_operand_dtype(const fl_tensor *a, double s);
fl_tensor *fl_scalar_tensor(double v, fl_dtype dt, fl_device dev);
fl_tensor *fl_clamp(const fl_tensor *a, double lo, double hi);   /* NaN bounds = absent */
fl_tensor *fl_where(const fl_tensor *cond, const fl_tensor *a, const fl_tensor *b);

/* ---------------------------------------------------------------- views (dims 0-based here) */

fl_tensor *fl_select(const fl_tensor *t, int dim, int64_t index);
fl_tensor *fl_narrow(const fl_tensor *t, int dim, int64_t start, int64_t length);

/* ---------------------------------------------------------------- movement and indexing ops
 * (views, reshape, cat/stack, gather/scatter, masks, nonzero; vm/view.c, vm/index.c) */

/* Views share t's storage. Shapes for view/reshape may hold one -1 (inferred). */
fl_tensor *fl_view(const fl_tensor *t, int ndim, const int64_t *shape);      /* error if impossible */
fl_tensor *fl_reshape(const fl_tensor *t, int ndim, const int64_t *shape);   /* copies only then */
fl_tensor *fl_transpose(const fl_tensor *t, int d1, int d2);
fl_tensor *fl_permute(const fl_tensor *t, const int *dims);                  /* t->ndim entries */
fl_tensor *fl_squeeze(const fl_tensor *t, int dim);                          /* dim < 0: all */
fl_tensor *fl_unsqueeze(const fl_tensor *t, int dim);                        /* 0 <= dim <= ndim */
fl_tensor *fl_expand(const fl_tensor *t, int ndim, const int64_t *shape);    /* -1 keeps a size */
fl_tensor *fl_flatten(const fl_tensor *t, int start, int end);               /* dims inclusive */
fl_tensor *fl_unfold(const fl_tensor *t, int dim, int64_t size, int64_t step);
/* Elements start, start + step, ... below stop along dim (step > 0). */
fl_tensor *fl_slice(const fl_tensor *t, int dim, int64_t start, int64_t stop, int64_t step);

/* One entry of x[{...}]: select `start` (the dim goes away) or slice [start, stop) by step. */
typedef struct {
    bool select;
    int64_t start, stop, step;
} fl_slice_spec;
/* Applies n specs to t's leading dims in one view; dims past n are kept whole. */
fl_tensor *fl_index_slices(const fl_tensor *t, int n, const fl_slice_spec *specs);

/* Copies with PyTorch's dtype promotion. cat skips 1-d tensors of size 0 (PyTorch's rule). */
fl_tensor *fl_cat(int n, const fl_tensor *const *ts, int dim);
fl_tensor *fl_stack(int n, const fl_tensor *const *ts, int dim);            /* 0 <= dim <= ndim */

/* Index tensors are int64 or int32 and hold indices counted from `base` (Lua passes 1). */
typedef enum { FL_SCATTER_SET, FL_SCATTER_ADD } fl_scatter_mode;
/* out[..., j, ...] = t[..., idx[j], ...] along dim; idx is 1-d (or 0-dim). */
fl_tensor *fl_index_select(const fl_tensor *t, int dim, const fl_tensor *idx, int64_t base);
/* out[p] = t[p with p[dim] = idx[p]]; idx has t's ndim, out has idx's shape. */
fl_tensor *fl_gather(const fl_tensor *t, int dim, const fl_tensor *idx, int64_t base);
/* t[p with p[dim] = idx[p]] = (or +=) src[p] for p over idx; a 0-dim src is one value for
 * all. Repeated indices: SET keeps the last, ADD accumulates. */
int fl_scatter_(fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src,
                fl_scatter_mode mode, int64_t base);
fl_tensor *fl_scatter(const fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src,
                      fl_scatter_mode mode, int64_t base);
/* t.select(dim, idx[j]) = (or +=) src.select(dim, j): index_copy_ / index_add_; a 0-dim
 * src is index_fill_. idx is 1-d (or 0-dim). */
int fl_index_update_(fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src,
                     fl_scatter_mode mode, int64_t base);
fl_tensor *fl_index_update(const fl_tensor *t, int dim, const fl_tensor *idx, const fl_tensor *src,
                           fl_scatter_mode mode, int64_t base);

/* Bool masks broadcast against t; value is a 0-dim tensor (cast to t's dtype). */
int fl_masked_fill_(fl_tensor *t, const fl_tensor *mask, const fl_tensor *value);
fl_tensor *fl_masked_fill(const fl_tensor *t, const fl_tensor *mask, const fl_tensor *value);
fl_tensor *fl_masked_select(const fl_tensor *t, const fl_tensor *mask);      /* 1-d */
/* Writes src's elements, in order, where mask is true; src needs at least that many. */
int fl_masked_scatter_(fl_tensor *t, const fl_tensor *mask, const fl_tensor *src);
fl_tensor *fl_masked_scatter(const fl_tensor *t, const fl_tensor *mask, const fl_tensor *src);
/* (count, ndim) int64 tensor of the coordinates of non-zero elements, counted from base. */
fl_tensor *fl_nonzero(const fl_tensor *t, int64_t base);

/* Lua's x[mask] / x[mask] = v (a bool mask over t's leading dims; the result is
 * (count, remaining dims...)) and x[idx] / x[idx] = v (along dim 0; the result is
 * idx's shape followed by t's remaining dims). v broadcasts to the indexed shape. */
fl_tensor *fl_index_mask(const fl_tensor *t, const fl_tensor *mask);
int fl_index_put_mask_(fl_tensor *t, const fl_tensor *mask, const fl_tensor *v);
fl_tensor *fl_index_rows(const fl_tensor *t, const fl_tensor *idx, int64_t base);
int fl_index_put_rows_(fl_tensor *t, const fl_tensor *idx, const fl_tensor *v, int64_t base);

/* ---------------------------------------------------------------- reductions, sorting and
 * linear algebra (vm/reduce.c, vm/sort.c, vm/linalg.c)
 *
 * Reductions take a set of dims (0-based, distinct; ndims == 0 means every dim) and keepdim.
 * Results follow PyTorch: sum/prod of integers and bools give int64; mean, var, std, norm
 * need a float tensor; all/any give bool; returned indices are int64 and count from `base`
 * (bindings pass 1). float32 accumulates in double; large reductions run on the pool with
 * a split that depends only on the shape, so results do not depend on the thread count. */

fl_tensor *fl_sum(const fl_tensor *t, int ndims, const int *dims, bool keepdim);
fl_tensor *fl_mean(const fl_tensor *t, int ndims, const int *dims, bool keepdim);
fl_tensor *fl_prod(const fl_tensor *t, int ndims, const int *dims, bool keepdim);
/* Values only (several dims allowed); an empty reduction is an error. */
fl_tensor *fl_amax(const fl_tensor *t, int ndims, const int *dims, bool keepdim);
fl_tensor *fl_amin(const fl_tensor *t, int ndims, const int *dims, bool keepdim);
fl_tensor *fl_all(const fl_tensor *t, int ndims, const int *dims, bool keepdim);
fl_tensor *fl_any(const fl_tensor *t, int ndims, const int *dims, bool keepdim);
fl_tensor *fl_logsumexp(const fl_tensor *t, int ndims, const int *dims, bool keepdim);
/* Divides by max(0, N - correction): 1 is Bessel's correction, 0 the population variance. */
fl_tensor *fl_var(const fl_tensor *t, int ndims, const int *dims, double correction, bool keepdim);
fl_tensor *fl_std(const fl_tensor *t, int ndims, const int *dims, double correction, bool keepdim);
/* p-norm: p = 2 (also 'fro'), 1, INFINITY (max |x|), -INFINITY (min |x|), 0 (count of
 * non-zeros), or any other p: (sum |x|^p)^(1/p). */
fl_tensor *fl_norm(const fl_tensor *t, double p, int ndims, const int *dims, bool keepdim);
/* Max/min along one dim: values and the index of the first extreme (NaN counts as the
 * extreme). Returns 0 and sets both outputs, or -1. */
int fl_max_dim(const fl_tensor *t, int dim, bool keepdim, int64_t base,
               fl_tensor **values, fl_tensor **indices);
int fl_min_dim(const fl_tensor *t, int dim, bool keepdim, int64_t base,
               fl_tensor **values, fl_tensor **indices);
/* Index of the first max/min along dim, or of the flattened tensor when dim < 0 (a 0-dim
 * result, or all-ones shape with keepdim). */
fl_tensor *fl_argmax(const fl_tensor *t, int dim, bool keepdim, int64_t base);
fl_tensor *fl_argmin(const fl_tensor *t, int dim, bool keepdim, int64_t base);
fl_tensor *fl_cumsum(const fl_tensor *t, int dim);
fl_tensor *fl_cumprod(const fl_tensor *t, int dim);

/* Stable sort along dim (NaN sorts as the greatest value). Returns 0 or -1. */
int fl_sort(const fl_tensor *t, int dim, bool descending, int64_t base,
            fl_tensor **values, fl_tensor **indices);
/* The k largest (or smallest) along dim, best first; ties go to the lower index. `sorted`
 * is accepted for PyTorch compatibility: results are always sorted. */
int fl_topk(const fl_tensor *t, int64_t k, int dim, bool largest, bool sorted, int64_t base,
            fl_tensor **values, fl_tensor **indices);

/* Matrix products on BLAS (float32, float64; integer types use a plain loop). Operands must
 * share a dtype. matmul follows PyTorch: 1-D.1-D is a dot product, 2-D.1-D a matrix-vector
 * product, more dims a batched product with broadcast batch dims. */
fl_tensor *fl_matmul(const fl_tensor *a, const fl_tensor *b);
fl_tensor *fl_mm(const fl_tensor *a, const fl_tensor *b);          /* (n,k).(k,m) */
fl_tensor *fl_bmm(const fl_tensor *a, const fl_tensor *b);         /* (b,n,k).(b,k,m) */
fl_tensor *fl_mv(const fl_tensor *a, const fl_tensor *b);          /* (n,k).(k) */
fl_tensor *fl_dot(const fl_tensor *a, const fl_tensor *b);         /* (k).(k) -> 0-dim */
fl_tensor *fl_outer(const fl_tensor *a, const fl_tensor *b);       /* (n),(m) -> (n,m) */
/* beta * m + alpha * (a . b); m broadcasts to (n, m) and is not read when beta is 0. */
fl_tensor *fl_addmm(const fl_tensor *m, const fl_tensor *a, const fl_tensor *b,
                    double beta, double alpha);

/* ---------------------------------------------------------------- autocast
 * Under autocast, the matrix products above and the convolutions (vm/conv.c) of float32
 * CUDA tensors multiply bfloat16-rounded operands with float32 accumulation and a float32
 * result, as PyTorch's autocast does on CUDA; their backward uses the forward's setting.
 * CPU tensors and float64 are not affected. The setting belongs to the calling thread. */
typedef enum { FL_AUTOCAST_OFF, FL_AUTOCAST_BF16 } fl_autocast_mode;
/* Sets the mode; returns the previous one. */
fl_autocast_mode fl_set_autocast(fl_autocast_mode mode);
fl_autocast_mode fl_autocast(void);
/* float32 products on CUDA may use TF32 tensor cores (10-bit mantissas in, float32 out).
 * Off by default, as in PyTorch; one setting for the process. Returns the previous one. */
bool fl_set_allow_tf32(bool on);
bool fl_allow_tf32(void);

/* ---------------------------------------------------------------- threads and BLAS */

void fl_set_num_threads(int n);
int fl_get_num_threads(void);
/* Runs fn over [0, n) split in chunks of at least `grain`, on the pool. */
typedef void (*fl_range_fn)(void *ctx, int64_t begin, int64_t end);
void fl_parallel_for(int64_t n, int64_t grain, fl_range_fn fn, void *ctx);

/* Loads OpenBLAS (choosing the right kernels for this CPU first). 0 on success. */
int fl_blas_init(void);
const char *fl_blas_info(void);   /* "OpenBLAS 0.3.21 SkylakeX (2 threads)" */

#endif
