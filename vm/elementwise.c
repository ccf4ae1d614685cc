/* elementwise.c: broadcasting binary and unary ops, casts, copies and fills, with PyTorch's
 * type promotion. Shapes and dtypes are worked out here; the arithmetic is in kernels/. */
#include "autograd.h"
#include "cuda.h"
#include "iter.h"
#include "../kernels/cuda/elementwise.h"
#include "../kernels/cpu/kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

static const char *binop_names[FL_BINOP_COUNT] = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "fmod", "atan2",
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor",
};
static const char *unop_names[FL_UNOP_COUNT] = {
    "neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh",
    "sigmoid", "relu", "gelu", "silu", "floor", "ceil", "round", "sign", "reciprocal", "square",
    "log2", "softplus", "logical_not", "isnan", "isinf", "isfinite", "trunc", "tan", "asin",
    "acos", "atan", "sinh", "cosh", "erf",
};
_Static_assert(FL_BINOP_COUNT == 18, "binop table out of date");
_Static_assert(FL_UNOP_COUNT == 35, "unop table out of date");

const char *fl_binop_name(fl_binop op) { return binop_names[op]; }
const char *fl_unop_name(fl_unop op) { return unop_names[op]; }

static bool binop_is_predicate(fl_binop op) { return op >= FL_BINOP_EQ; }

/* ---------------------------------------------------------------- shapes and dtypes */

int fl_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t x = ia >= 0 ? sa[ia] : 1, y = ib >= 0 ? sb[ib] : 1;
        if (x != y && x != 1 && y != 1) {
            char b1[160], b2[160];
            fl_error("shapes %s and %s cannot be broadcast together (dimension %d: %lld vs %lld)",
                     fl_shape_str(b1, sizeof b1, na, sa), fl_shape_str(b2, sizeof b2, nb, sb),
                     i + 1, (long long)x, (long long)y);
            return -1;
        }
        out[i] = x == 1 ? y : x;
    }
    return n;
}

static int category(fl_dtype dt)
{
    return dt == FL_DTYPE_BOOL ? 0 : fl_dtype_is_float(dt) ? 2 : 1;
}

/* PyTorch's rule: dimensioned operands decide the type unless a 0-dim operand is of a higher
 * category (bool < integer < float). */
static fl_dtype promote_operands(const fl_tensor *a, const fl_tensor *b)
{
    bool za = a->ndim == 0, zb = b->ndim == 0;
    if (za == zb)
        return fl_dtype_promote(a->dtype, b->dtype);
    const fl_tensor *dim = za ? b : a, *zero = za ? a : b;
    return category(zero->dtype) > category(dim->dtype) ? zero->dtype : dim->dtype;
}

static fl_dtype compute_dtype(fl_binop op, fl_dtype dt)
{
    if ((op == FL_BINOP_DIV || op == FL_BINOP_ATAN2) && !fl_dtype_is_float(dt))
        return FL_DTYPE_F32;
    return dt;
}

fl_dtype fl_binop_result_dtype(fl_binop op, const fl_tensor *a, const fl_tensor *b)
{
    return binop_is_predicate(op) ? FL_DTYPE_BOOL : compute_dtype(op, promote_operands(a, b));
}

fl_dtype fl_unop_result_dtype(fl_unop op, fl_dtype in)
{
    switch (op) {
    case FL_UNOP_NOT: case FL_UNOP_ISNAN: case FL_UNOP_ISINF: case FL_UNOP_ISFINITE:
        return FL_DTYPE_BOOL;
    case FL_UNOP_NEG: case FL_UNOP_ABS: case FL_UNOP_RELU: case FL_UNOP_SIGN: case FL_UNOP_SQUARE:
    case FL_UNOP_FLOOR: case FL_UNOP_CEIL: case FL_UNOP_ROUND: case FL_UNOP_TRUNC:
        return in;
    default:
        return fl_dtype_is_float(in) ? in : FL_DTYPE_F32;
    }
}

static int check_same_device(const fl_tensor *a, const fl_tensor *b)
{
    if (a->storage->device.type != b->storage->device.type) {
        fl_error("expected all tensors on the same device, got %s and %s",
                 a->storage->device.type == FL_DEVICE_CPU ? "cpu" : "cuda",
                 b->storage->device.type == FL_DEVICE_CPU ? "cpu" : "cuda");
        return -1;
    }
    return 0;
}

/* Returns t itself (retained) when it already has dtype dt, else a converted copy. */
static fl_tensor *as_dtype(const fl_tensor *t, fl_dtype dt)
{
    return t->dtype == dt ? fl_tensor_retain((fl_tensor *)t) : fl_cast(t, dt);
}

/* ---------------------------------------------------------------- kernels through the iterator */

typedef struct {
    fl_binop op;
    fl_dtype dt;
    _Atomic int failed;
} binary_ctx;

static void binary_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    binary_ctx *c = p;
    if (fl_cpu_binary(c->op, c->dt, ptr[0], ptr[1], ptr[2], n, st[0], st[1], st[2]) < 0)
        atomic_store(&c->failed, 1);
}

static int binary_into(fl_binop op, fl_tensor *out, const fl_tensor *a, const fl_tensor *b)
{
    fl_iter it;
    const fl_tensor *ts[3] = {out, a, b};
    fl_iter_init(&it, out->ndim, out->shape, 3, ts);
    if (fl_is_cuda(out))
        return fl_cuda_status(FL_CUDA(fl_cuda_binary)(op, a->dtype, &it));
    binary_ctx c = {op, a->dtype, 0};
    fl_iter_run(&it, binary_run, &c, true);
    if (atomic_load(&c.failed)) {
        fl_error(op == FL_BINOP_POW ? "integers to negative integer powers are not allowed"
                                    : "integer division by zero");
        return -1;
    }
    return 0;
}

typedef struct {
    fl_unop op;
    fl_dtype dt;
} unary_ctx;

static void unary_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    unary_ctx *c = p;
    fl_cpu_unary(c->op, c->dt, ptr[0], ptr[1], n, st[0], st[1]);
}

static void cast_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    const fl_dtype *dts = p;
    fl_cpu_cast(dts[0], ptr[0], dts[1], ptr[1], n, st[0], st[1]);
}

/* ---------------------------------------------------------------- autograd records */

static int record(fl_node *n, fl_tensor *out, int nsave, const fl_tensor *const *save)
{
    if (!n)
        return -1;
    for (int i = 0; i < nsave; i++) {
        if (save[i] && fl_node_save(n, i, save[i]) < 0) {
            fl_node_release(n);
            return -1;
        }
    }
    fl_node_attach(n, out);
    return 0;
}

static int record_binary(fl_binop op, fl_tensor *out, const fl_tensor *a, const fl_tensor *b)
{
    const fl_tensor *in[2] = {a, b};
    fl_node *n = fl_node_new(FL_GRAD_BINARY, fl_binop_name(op), 2, in);
    if (n)
        n->iargs[0] = op;
    /* add and sub need nothing saved; pow also needs its output */
    const fl_tensor *save[3] = {a, b, op == FL_BINOP_POW ? out : NULL};
    bool linear = op == FL_BINOP_ADD || op == FL_BINOP_SUB;
    return record(n, out, linear ? 0 : 3, save);
}

static bool unop_is_differentiable(fl_unop op)
{
    return op != FL_UNOP_NOT && op != FL_UNOP_ISNAN && op != FL_UNOP_ISINF && op != FL_UNOP_ISFINITE;
}

/* In-place writes bypass the tape, so they are refused on tensors that take part in it. */
static int check_inplace(const fl_tensor *t)
{
    if (fl_needs_grad(t)) {
        fl_error("in-place operation on a tensor that requires grad (%s); use the out-of-place "
                 "form, or flare.no_grad() for updates such as optimizer steps",
                 t->grad_fn ? "it has a grad_fn" : "a leaf");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- binary */

fl_tensor *fl_binary(fl_binop op, const fl_tensor *a, const fl_tensor *b)
{
    int64_t shape[FL_MAX_DIMS];
    if (check_same_device(a, b) < 0)
        return NULL;
    int nd = fl_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, shape);
    if (nd < 0)
        return NULL;
    fl_dtype cdt = compute_dtype(op, promote_operands(a, b));
    fl_dtype odt = binop_is_predicate(op) ? FL_DTYPE_BOOL : cdt;
    fl_tensor *ca = as_dtype(a, cdt), *cb = ca ? as_dtype(b, cdt) : NULL;
    fl_tensor *out = cb ? fl_tensor_empty(odt, nd, shape, a->storage->device) : NULL;
    if (out && binary_into(op, out, ca, cb) < 0) {
        fl_tensor_release(out);
        out = NULL;
    }
    fl_tensor_release(ca);
    fl_tensor_release(cb);
    if (out && !binop_is_predicate(op) && (fl_needs_grad(a) || fl_needs_grad(b)) &&
        record_binary(op, out, a, b) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return out;
}

fl_tensor *fl_scalar_tensor(double v, fl_dtype dt, fl_device dev)
{
    fl_tensor *t = fl_tensor_empty(dt, 0, NULL, dev);
    if (t && fl_fill(t, v) < 0) {
        fl_tensor_release(t);
        return NULL;
    }
    return t;
}

/* A Lua number next to a tensor: keeps the tensor's dtype unless the number is of a
 * higher category (a float with an integer tensor gives float32, PyTorch's default). */
fl_dtype fl_scalar_operand_dtype(const fl_tensor *a, double s)
{
    bool integral = s == floor(s) && fabs(s) < 9.2e18;
    int cs = integral ? 1 : 2;
    if (category(a->dtype) >= cs)
        return a->dtype;
    return integral ? FL_DTYPE_I64 : FL_DTYPE_F32;
}

fl_tensor *fl_binary_scalar(fl_binop op, const fl_tensor *a, double s, bool reversed)
{
    fl_tensor *st = fl_scalar_tensor(s, fl_scalar_operand_dtype(a, s), a->storage->device);
    if (!st)
        return NULL;
    /* a 0-dim wrapper of the result dtype keeps the tensor's own width */
    fl_tensor *r = reversed ? fl_binary(op, st, a) : fl_binary(op, a, st);
    fl_tensor_release(st);
    return r;
}

int fl_binary_(fl_binop op, fl_tensor *a, const fl_tensor *b)
{
    int64_t shape[FL_MAX_DIMS];
    char b1[160], b2[160];
    if (check_same_device(a, b) < 0)
        return -1;
    int nd = fl_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, shape);
    if (nd < 0)
        return -1;
    if (nd != a->ndim || memcmp(shape, a->shape, (size_t)nd * sizeof *shape) != 0) {
        fl_error("shape %s cannot be broadcast to the in-place target's shape %s",
                 fl_shape_str(b1, sizeof b1, b->ndim, b->shape),
                 fl_shape_str(b2, sizeof b2, a->ndim, a->shape));
        return -1;
    }
    fl_dtype cdt = compute_dtype(op, promote_operands(a, b));
    if (binop_is_predicate(op) || category(cdt) > category(a->dtype)) {
        fl_error("result of type %s cannot be stored in the in-place target of type %s",
                 fl_dtype_name(binop_is_predicate(op) ? FL_DTYPE_BOOL : cdt),
                 fl_dtype_name(a->dtype));
        return -1;
    }
    if (check_inplace(a) < 0)
        return -1;
    int rc = -1;
    fl_tensor *ca = as_dtype(a, cdt), *cb = ca ? as_dtype(b, cdt) : NULL;
    if (cb) {
        if (ca == a) {
            rc = binary_into(op, a, a, cb);
        } else {
            fl_tensor *tmp = fl_tensor_empty(cdt, a->ndim, a->shape, a->storage->device);
            rc = tmp ? binary_into(op, tmp, ca, cb) : -1;
            if (rc == 0)
                rc = fl_copy(a, tmp);
            fl_tensor_release(tmp);
        }
    }
    fl_tensor_release(ca);
    fl_tensor_release(cb);
    a->storage->version++;
    return rc;
}

/* ---------------------------------------------------------------- unary */

fl_tensor *fl_unary(fl_unop op, const fl_tensor *a)
{
    fl_dtype odt = fl_unop_result_dtype(op, a->dtype);
    /* float ops on integers are computed in float32 */
    fl_dtype idt = (odt != FL_DTYPE_BOOL && fl_dtype_is_float(odt)) ? odt : a->dtype;
    fl_tensor *ca = as_dtype(a, idt);
    fl_tensor *out = ca ? fl_tensor_empty(odt, a->ndim, a->shape, a->storage->device) : NULL;
    if (out) {
        fl_iter it;
        const fl_tensor *ts[2] = {out, ca};
        fl_iter_init(&it, out->ndim, out->shape, 2, ts);
        unary_ctx c = {op, idt};
        if (!fl_is_cuda(out)) {
            fl_iter_run(&it, unary_run, &c, true);
        } else if (fl_cuda_status(FL_CUDA(fl_cuda_unary)(op, idt, odt, &it)) < 0) {
            fl_tensor_release(out);
            out = NULL;
        }
    }
    fl_tensor_release(ca);
    if (out && unop_is_differentiable(op) && fl_needs_grad(a)) {
        fl_node *n = fl_node_new(FL_GRAD_UNARY, fl_unop_name(op), 1, &a);
        if (n)
            n->iargs[0] = op;
        const fl_tensor *save[2] = {a, out};
        if (record(n, out, 2, save) < 0) {
            fl_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

int fl_unary_(fl_unop op, fl_tensor *a)
{
    if (check_inplace(a) < 0)
        return -1;
    if (fl_unop_result_dtype(op, a->dtype) != a->dtype) {
        fl_error("result of type %s cannot be stored in the in-place target of type %s",
                 fl_dtype_name(fl_unop_result_dtype(op, a->dtype)),
                 fl_dtype_name(a->dtype));
        return -1;
    }
    fl_iter it;
    const fl_tensor *ts[2] = {a, a};
    fl_iter_init(&it, a->ndim, a->shape, 2, ts);
    unary_ctx c = {op, a->dtype};
    a->storage->version++;
    if (fl_is_cuda(a))
        return fl_cuda_status(FL_CUDA(fl_cuda_unary)(op, a->dtype, a->dtype, &it));
    fl_iter_run(&it, unary_run, &c, true);
    return 0;
}

typedef struct {
    fl_dtype dt;
    double lo, hi;
    int has_lo, has_hi;
} clamp_ctx;

static void clamp_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    clamp_ctx *c = p;
    fl_cpu_clamp(c->dt, ptr[0], ptr[1], n, st[0], st[1], c->lo, c->hi, c->has_lo, c->has_hi);
}

fl_tensor *fl_clamp(const fl_tensor *a, double lo, double hi)
{
    fl_tensor *out = fl_tensor_empty(a->dtype, a->ndim, a->shape, a->storage->device);
    if (!out)
        return NULL;
    fl_iter it;
    const fl_tensor *ts[2] = {out, a};
    fl_iter_init(&it, out->ndim, out->shape, 2, ts);
    clamp_ctx c = {a->dtype, lo, hi, !isnan(lo), !isnan(hi)};
    if (!fl_is_cuda(out)) {
        fl_iter_run(&it, clamp_run, &c, true);
    } else if (fl_cuda_status(FL_CUDA(fl_cuda_clamp)(c.dt, &it, lo, hi, c.has_lo, c.has_hi)) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    if (fl_needs_grad(a)) {
        fl_node *n = fl_node_new(FL_GRAD_CLAMP, "clamp", 1, &a);
        if (n) {
            n->dargs[0] = lo;
            n->dargs[1] = hi;
        }
        if (record(n, out, 1, &a) < 0) {
            fl_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

typedef struct {
    fl_dtype dt;
} where_ctx;

static void where_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    where_ctx *c = p;
    fl_cpu_where(c->dt, ptr[0], (const uint8_t *)ptr[1], ptr[2], ptr[3], n, st[0], st[1], st[2], st[3]);
}

fl_tensor *fl_where(const fl_tensor *cond, const fl_tensor *a, const fl_tensor *b)
{
    int64_t s1[FL_MAX_DIMS], shape[FL_MAX_DIMS];
    if (cond->dtype != FL_DTYPE_BOOL) {
        fl_error("condition must be a bool tensor, got %s", fl_dtype_name(cond->dtype));
        return NULL;
    }
    if (check_same_device(cond, a) < 0 || check_same_device(a, b) < 0)
        return NULL;
    int n1 = fl_broadcast_shape(cond->ndim, cond->shape, a->ndim, a->shape, s1);
    int nd = n1 < 0 ? -1 : fl_broadcast_shape(n1, s1, b->ndim, b->shape, shape);
    if (nd < 0)
        return NULL;
    fl_dtype dt = promote_operands(a, b);
    fl_tensor *ca = as_dtype(a, dt), *cb = ca ? as_dtype(b, dt) : NULL;
    fl_tensor *out = cb ? fl_tensor_empty(dt, nd, shape, a->storage->device) : NULL;
    if (out) {
        fl_iter it;
        const fl_tensor *ts[4] = {out, cond, ca, cb};
        fl_iter_init(&it, nd, shape, 4, ts);
        where_ctx c = {dt};
        if (!fl_is_cuda(out)) {
            fl_iter_run(&it, where_run, &c, true);
        } else if (fl_cuda_status(FL_CUDA(fl_cuda_where)(dt, &it)) < 0) {
            fl_tensor_release(out);
            out = NULL;
        }
    }
    fl_tensor_release(ca);
    fl_tensor_release(cb);
    if (out && (fl_needs_grad(a) || fl_needs_grad(b))) {
        const fl_tensor *in[3] = {NULL, a, b};
        if (record(fl_node_new(FL_GRAD_WHERE, "where", 3, in), out, 1, &cond) < 0) {
            fl_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

/* ---------------------------------------------------------------- copies and fills */

int fl_copy(fl_tensor *dst, const fl_tensor *src)
{
    int64_t shape[FL_MAX_DIMS];
    char b1[160], b2[160];
    if (check_inplace(dst) < 0)
        return -1;
    if (dst->storage->device.type != src->storage->device.type) {
        /* across devices: move the source first, then copy (and convert) on dst's side */
        fl_tensor *moved = fl_move(src, dst->storage->device);
        int rc = moved ? fl_copy(dst, moved) : -1;
        fl_tensor_release(moved);
        return rc;
    }
    int nd = fl_broadcast_shape(dst->ndim, dst->shape, src->ndim, src->shape, shape);
    if (nd != dst->ndim || memcmp(shape, dst->shape, (size_t)nd * sizeof *shape) != 0) {
        fl_error("source of shape %s cannot be broadcast to destination shape %s",
                 fl_shape_str(b1, sizeof b1, src->ndim, src->shape),
                 fl_shape_str(b2, sizeof b2, dst->ndim, dst->shape));
        return -1;
    }
    fl_iter it;
    const fl_tensor *ts[2] = {dst, src};
    fl_iter_init(&it, dst->ndim, dst->shape, 2, ts);
    fl_dtype dts[2] = {dst->dtype, src->dtype};
    dst->storage->version++;
    if (fl_is_cuda(dst))
        return fl_cuda_status(FL_CUDA(fl_cuda_cast)(dst->dtype, src->dtype, &it));
    fl_iter_run(&it, cast_run, dts, true);
    return 0;
}

static void fill_run(void *p, char **ptr, const int64_t *st, int64_t n)
{
    const double *v = p;
    fl_cpu_fill((fl_dtype)(int)v[1], ptr[0], n, st[0], v[0]);
}

int fl_fill(fl_tensor *t, double v)
{
    if (check_inplace(t) < 0)
        return -1;
    fl_iter it;
    const fl_tensor *ts[1] = {t};
    fl_iter_init(&it, t->ndim, t->shape, 1, ts);
    double args[2] = {v, (double)t->dtype};
    t->storage->version++;
    if (fl_is_cuda(t))
        return fl_cuda_status(FL_CUDA(fl_cuda_fill)(t->dtype, &it, v));
    fl_iter_run(&it, fill_run, args, true);
    return 0;
}

fl_tensor *fl_cast(const fl_tensor *t, fl_dtype dt)
{
    fl_tensor *out = fl_tensor_empty(dt, t->ndim, t->shape, t->storage->device);
    if (out && fl_copy(out, t) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    if (out && fl_dtype_is_float(dt) && fl_needs_grad(t) &&
        record(fl_node_new(FL_GRAD_CAST, "to", 1, &t), out, 0, NULL) < 0) {
        fl_tensor_release(out);
        return NULL;
    }
    return out;
}

fl_tensor *fl_clone(const fl_tensor *t)
{
    return fl_cast(t, t->dtype);
}

fl_tensor *fl_contiguous(fl_tensor *t)
{
    return fl_tensor_is_contiguous(t) ? fl_tensor_retain(t) : fl_clone(t);
}
