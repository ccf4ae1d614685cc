/* optim.c: fused optimizer steps and gradient clipping (see optim.h). A step is planned in
 * full first (checks, contiguous copies, new state), then run as one parallel pass over
 * every element of every CPU parameter and a few batched launches for the GPU's
 * (kernels/cuda/optim.cu), then non-contiguous tensors are written back. Only the planning
 * can fail (and, on the GPU, a launch: a broken device), so a failed step changes nothing. */
#include "optim.h"
#include "autograd.h"
#include "cuda.h"
#include "interrupt.h"
#include "../kernels/cpu/optim.h"
#include "../kernels/cuda/optim.h"

#include <math.h>
#include <stdlib.h>

#define MAX_STATE 3
#define STEP_GRAIN 32768   /* elements per chunk of the parallel pass, at least */

typedef enum { KIND_SGD, KIND_ADAM, KIND_ADAGRAD, KIND_RMSPROP, KIND_ADADELTA } step_kind;

/* One parameter's update: the tensors the kernel writes (contiguous: the caller's tensor
 * or a copy written back at the end), its gradient (contiguous), and the scalars that
 * depend on the parameter's step count. */
typedef struct {
    fl_tensor *work[1 + MAX_STATE];   /* [0] the parameter, then its state; NULL if unused */
    fl_tensor *grad;
    bool created[MAX_STATE];          /* state made by this step (handed to the caller) */
    int64_t begin;                    /* its first element's place in the whole pass */
    double s1, s2;                    /* Adam: step size, sqrt(bias correction 2); Adagrad: clr */
} plan_entry;

typedef struct {
    step_kind kind;
    int n;
    fl_tensor *const *params;
    fl_tensor **state[MAX_STATE];     /* the caller's arrays; NULL: that state is not used */
    double init[MAX_STATE];           /* the value new state starts with */
    const char *names[MAX_STATE];
    plan_entry *e;
    int64_t total;
    const void *opts;
} plan;

/* ---------------------------------------------------------------- planning */

static int check_like(int i, const fl_tensor *p, const fl_tensor *t, const char *what)
{
    char b1[160], b2[160];
    if (t->dtype != p->dtype || !fl_shape_equal(t, p)) {
        fl_error("%s of parameter %d is %s of shape %s, expected %s of shape %s (the parameter's)", what, i + 1,
                 fl_dtype_name(t->dtype), fl_shape_str(b1, sizeof b1, t->ndim, t->shape),
                 fl_dtype_name(p->dtype), fl_shape_str(b2, sizeof b2, p->ndim, p->shape));
        return -1;
    }
    if (t->storage->device.type != p->storage->device.type) {
        fl_error("expected all tensors on the same device, got %s (parameter %d) and %s (%s)",
                 fl_is_cuda(p) ? "cuda" : "cpu", i + 1, fl_is_cuda(t) ? "cuda" : "cpu", what);
        return -1;
    }
    return 0;
}

static int check_param(int i, const fl_tensor *p, const fl_tensor *g)
{
    if (!p || !g) {
        fl_error("parameter %d has no %s", i + 1, p ? "gradient" : "tensor");
        return -1;
    }
    if (!fl_dtype_is_float(p->dtype)) {
        fl_error("parameter %d is %s; optimizers update floating point tensors", i + 1, fl_dtype_name(p->dtype));
        return -1;
    }
    return check_like(i, p, g, "the gradient");
}

/* The contiguous tensor the kernel writes for t: t itself, or a copy. */
static fl_tensor *writable(fl_tensor *t)
{
    return fl_tensor_is_contiguous(t) ? fl_tensor_retain(t) : fl_clone(t);
}

static fl_tensor *new_state(const fl_tensor *p, double init)
{
    fl_tensor *t = fl_tensor_empty(p->dtype, p->ndim, p->shape, p->storage->device);
    if (t && fl_fill(t, init) < 0) {
        fl_tensor_release(t);
        return NULL;
    }
    return t;
}

static void plan_free(plan *pl)
{
    if (!pl->e)
        return;
    for (int i = 0; i < pl->n; i++) {
        for (int k = 0; k < 1 + MAX_STATE; k++)
            fl_tensor_release(pl->e[i].work[k]);
        fl_tensor_release(pl->e[i].grad);
    }
    free(pl->e);
    pl->e = NULL;
}

static int plan_alloc(plan *pl, fl_tensor *const *grads)
{
    if (pl->n < 0) {
        fl_error("negative parameter count %d", pl->n);
        return -1;
    }
    pl->e = calloc(pl->n ? (size_t)pl->n : 1, sizeof *pl->e);
    if (!pl->e) {
        fl_error("out of memory planning an optimizer step over %d parameters", pl->n);
        return -1;
    }
    pl->total = 0;
    for (int i = 0; i < pl->n; i++) {
        fl_tensor *p = pl->params[i];
        plan_entry *e = &pl->e[i];
        if (check_param(i, p, grads[i]) < 0)
            goto fail;
        for (int k = 0; k < MAX_STATE; k++) {
            fl_tensor *s = pl->state[k] ? pl->state[k][i] : NULL;
            if (s && check_like(i, p, s, pl->names[k]) < 0)
                goto fail;
        }
        e->begin = pl->total;
        if (!fl_is_cuda(p))   /* the CPU pass counts CPU elements only */
            pl->total += p->numel;
    }
    for (int i = 0; i < pl->n; i++) {
        fl_tensor *p = pl->params[i];
        plan_entry *e = &pl->e[i];
        if (!(e->work[0] = writable(p)) || !(e->grad = fl_contiguous(grads[i])))
            goto fail;
        for (int k = 0; k < MAX_STATE; k++) {
            if (!pl->state[k])
                continue;
            fl_tensor *s = pl->state[k][i];
            e->created[k] = s == NULL;
            if (!(e->work[1 + k] = s ? writable(s) : new_state(p, pl->init[k])))
                goto fail;
        }
    }
    return 0;
fail:
    plan_free(pl);
    return -1;
}

/* Checks everything and allocates what the pass needs; on failure frees it all. */
static int plan_build(plan *pl, fl_tensor *const *grads)
{
    bool grad_mode = fl_grad_enabled();
    fl_set_grad_enabled(false);        /* copies of parameters are not on the tape */
    int rc = plan_alloc(pl, grads);
    fl_set_grad_enabled(grad_mode);
    return rc;
}

/* ---------------------------------------------------------------- the pass */

/* Updates elements [lo, hi) of entry e (0-based within the parameter). */
static void run_entry(const plan *pl, const plan_entry *e, int64_t lo, int64_t hi)
{
    fl_tensor *const *w = e->work;
    int64_t n = hi - lo;
    bool f32 = w[0]->dtype == FL_DTYPE_F32;
#define AT(t, T) ((t) ? (T *)fl_tensor_data(t) + lo : NULL)
#define GRAD(T) ((const T *)fl_tensor_data(e->grad) + lo)
    switch (pl->kind) {
    case KIND_SGD: {
        const fl_sgd_opts *o = pl->opts;
        fl_cpu_sgd_args a = {o->lr, o->momentum, o->dampening, o->weight_decay, o->nesterov, o->maximize,
                             e->created[0]};
        if (f32)
            fl_cpu_sgd_f32(AT(w[0], float), AT(w[1], float), GRAD(float), n, &a);
        else
            fl_cpu_sgd_f64(AT(w[0], double), AT(w[1], double), GRAD(double), n, &a);
        break;
    }
    case KIND_ADAM: {
        const fl_adam_opts *o = pl->opts;
        fl_cpu_adam_args a = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, e->s1, e->s2,
                              o->amsgrad, o->maximize, o->decoupled};
        if (f32)
            fl_cpu_adam_f32(AT(w[0], float), AT(w[1], float), AT(w[2], float), AT(w[3], float), GRAD(float), n, &a);
        else
            fl_cpu_adam_f64(AT(w[0], double), AT(w[1], double), AT(w[2], double), AT(w[3], double), GRAD(double), n, &a);
        break;
    }
    case KIND_ADAGRAD: {
        const fl_adagrad_opts *o = pl->opts;
        fl_cpu_adagrad_args a = {e->s1, o->weight_decay, o->eps, o->maximize};
        if (f32)
            fl_cpu_adagrad_f32(AT(w[0], float), AT(w[1], float), GRAD(float), n, &a);
        else
            fl_cpu_adagrad_f64(AT(w[0], double), AT(w[1], double), GRAD(double), n, &a);
        break;
    }
    case KIND_RMSPROP: {
        const fl_rmsprop_opts *o = pl->opts;
        fl_cpu_rmsprop_args a = {o->lr, o->alpha, o->eps, o->weight_decay, o->momentum, o->centered, o->maximize};
        if (f32)
            fl_cpu_rmsprop_f32(AT(w[0], float), AT(w[1], float), AT(w[2], float), AT(w[3], float), GRAD(float), n, &a);
        else
            fl_cpu_rmsprop_f64(AT(w[0], double), AT(w[1], double), AT(w[2], double), AT(w[3], double), GRAD(double), n,
                               &a);
        break;
    }
    case KIND_ADADELTA: {
        const fl_adadelta_opts *o = pl->opts;
        fl_cpu_adadelta_args a = {o->lr, o->rho, o->eps, o->weight_decay, o->maximize};
        if (f32)
            fl_cpu_adadelta_f32(AT(w[0], float), AT(w[1], float), AT(w[2], float), GRAD(float), n, &a);
        else
            fl_cpu_adadelta_f64(AT(w[0], double), AT(w[1], double), AT(w[2], double), GRAD(double), n, &a);
        break;
    }
    }
#undef AT
#undef GRAD
}

/* fl_parallel_for callback: [begin, end) counts elements across all parameters. */
static void run_range(void *ctx, int64_t begin, int64_t end)
{
    const plan *pl = ctx;
    int lo = 0, hi = pl->n - 1;
    while (lo < hi) {   /* the last entry starting at or before begin */
        int mid = (lo + hi + 1) / 2;
        if (pl->e[mid].begin <= begin)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (int i = lo; i < pl->n && pl->e[i].begin < end; i++) {
        const plan_entry *e = &pl->e[i];
        if (fl_is_cuda(e->work[0]))
            continue;
        int64_t numel = e->work[0]->numel;
        int64_t a = begin > e->begin ? begin - e->begin : 0;
        int64_t b = end - e->begin < numel ? end - e->begin : numel;
        if (a < b)
            run_entry(pl, e, a, b);
    }
}

/* The options of a step in the GPU kernels' form. */
static fl_cuda_optim_opts device_opts(const plan *pl)
{
    switch (pl->kind) {
    case KIND_SGD: {
        const fl_sgd_opts *o = pl->opts;
        return (fl_cuda_optim_opts){.lr = o->lr, .momentum = o->momentum, .dampening = o->dampening,
                                    .weight_decay = o->weight_decay, .nesterov = o->nesterov,
                                    .maximize = o->maximize};
    }
    case KIND_ADAM: {
        const fl_adam_opts *o = pl->opts;
        return (fl_cuda_optim_opts){.lr = o->lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
                                    .weight_decay = o->weight_decay, .amsgrad = o->amsgrad,
                                    .maximize = o->maximize, .decoupled = o->decoupled};
    }
    case KIND_ADAGRAD: {   /* lr and lr_decay reach the kernel as each parameter's clr */
        const fl_adagrad_opts *o = pl->opts;
        return (fl_cuda_optim_opts){.weight_decay = o->weight_decay, .eps = o->eps, .maximize = o->maximize};
    }
    case KIND_RMSPROP: {
        const fl_rmsprop_opts *o = pl->opts;
        return (fl_cuda_optim_opts){.lr = o->lr, .alpha = o->alpha, .eps = o->eps, .weight_decay = o->weight_decay,
                                    .momentum = o->momentum, .centered = o->centered, .maximize = o->maximize};
    }
    case KIND_ADADELTA: {
        const fl_adadelta_opts *o = pl->opts;
        return (fl_cuda_optim_opts){.lr = o->lr, .rho = o->rho, .eps = o->eps, .weight_decay = o->weight_decay,
                                    .maximize = o->maximize};
    }
    }
    return (fl_cuda_optim_opts){0};
}

static const fl_cuda_optim_kind device_kind[] = {
    [KIND_SGD] = FL_CUDA_OPTIM_SGD, [KIND_ADAM] = FL_CUDA_OPTIM_ADAM, [KIND_ADAGRAD] = FL_CUDA_OPTIM_ADAGRAD,
    [KIND_RMSPROP] = FL_CUDA_OPTIM_RMSPROP, [KIND_ADADELTA] = FL_CUDA_OPTIM_ADADELTA,
};

/* The GPU parameters of a plan, updated by a few batched launches. `list` has room for every
 * entry (allocated by the caller with the plan). */
static int run_device(const plan *pl, fl_cuda_optim_tensor *list)
{
    int m = 0;
    for (int i = 0; i < pl->n; i++) {
        const plan_entry *e = &pl->e[i];
        if (!fl_is_cuda(e->work[0]))
            continue;
        fl_cuda_optim_tensor *t = &list[m++];
        *t = (fl_cuda_optim_tensor){.dtype = e->work[0]->dtype, .n = e->work[0]->numel,
                                    .p = fl_tensor_data(e->work[0]), .g = fl_tensor_data(e->grad),
                                    .s1 = e->s1, .s2 = e->s2, .init = e->created[0]};
        for (int k = 0; k < MAX_STATE; k++)
            t->state[k] = e->work[1 + k] ? fl_tensor_data(e->work[1 + k]) : NULL;
    }
    if (m == 0)
        return 0;
    fl_cuda_optim_opts o = device_opts(pl);
    return fl_cuda_status(FL_CUDA(fl_cuda_optim_step)(device_kind[pl->kind], &o, list, m));
}

/* Runs a built plan: the pass, the write-backs, the version bumps, and hands new state to
 * the caller. Fails only when the GPU does (its tensors are then in an unknown state). */
static int plan_run(plan *pl)
{
    fl_cuda_optim_tensor *list = calloc(pl->n ? (size_t)pl->n : 1, sizeof *list);
    if (!list) {
        fl_error("out of memory");
        return -1;
    }
    bool grad_mode = fl_grad_enabled();
    fl_set_grad_enabled(false);        /* the write-backs are not on the tape */
    fl_interrupt_defer_begin();        /* the pool must not skip chunks on Ctrl-C */
    /* the GPU's launches are queued first, so they overlap the CPU pass */
    int rc = run_device(pl, list);
    if (pl->total > 0)
        fl_parallel_for(pl->total, STEP_GRAIN, run_range, pl);
    for (int i = 0; i < pl->n; i++) {
        plan_entry *e = &pl->e[i];
        for (int k = 0; k < 1 + MAX_STATE; k++) {
            fl_tensor *orig = k == 0 ? pl->params[i] : pl->state[k - 1] ? pl->state[k - 1][i] : NULL;
            if (k > 0 && e->created[k - 1]) {
                pl->state[k - 1][i] = fl_tensor_retain(e->work[k]);
                continue;
            }
            if (!orig)
                continue;
            if (orig != e->work[k] && fl_copy(orig, e->work[k]) < 0)   /* same shape, dtype and device */
                rc = -1;   /* only a failing GPU */
            orig->storage->version++;
        }
    }
    if (fl_interrupt_defer_end())
        fl_interrupt_request();        /* deliver it now that the step is whole */
    fl_set_grad_enabled(grad_mode);
    free(list);
    return rc;
}

static int run_step(plan *pl, fl_tensor *const *grads)
{
    if (plan_build(pl, grads) < 0)
        return -1;
    int rc = plan_run(pl);
    plan_free(pl);
    return rc;
}

/* Options that must be >= 0 (not NaN). */
static int check_scalar(const char *name, double v)
{
    if (isnan(v) || v < 0) {
        fl_error("invalid %s %g (expected >= 0)", name, v);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the optimizers */

int fl_sgd_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **bufs,
                const fl_sgd_opts *o)
{
    if (check_scalar("lr", o->lr) < 0 || check_scalar("momentum", o->momentum) < 0 ||
        check_scalar("weight_decay", o->weight_decay) < 0)
        return -1;
    if (o->momentum != 0 && !bufs) {
        fl_error("momentum %g needs momentum buffers", o->momentum);
        return -1;
    }
    plan pl = {.kind = KIND_SGD, .n = n, .params = params, .opts = o};
    pl.state[0] = o->momentum != 0 ? bufs : NULL;
    pl.init[0] = 0;        /* the kernel sets a new buffer to the gradient (`init`) */
    pl.names[0] = "the momentum buffer";
    return run_step(&pl, grads);
}

int fl_adam_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **exp_avg,
                 fl_tensor **exp_avg_sq, fl_tensor **max_exp_avg_sq, const int64_t *steps,
                 const fl_adam_opts *o)
{
    if (check_scalar("lr", o->lr) < 0 || check_scalar("eps", o->eps) < 0 ||
        check_scalar("weight_decay", o->weight_decay) < 0)
        return -1;
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1)) {
        fl_error("invalid betas (%g, %g) (expected each in [0, 1))", o->beta1, o->beta2);
        return -1;
    }
    if (!exp_avg || !exp_avg_sq || (o->amsgrad && !max_exp_avg_sq) || !steps) {
        fl_error("missing state arrays");
        return -1;
    }
    plan pl = {.kind = KIND_ADAM, .n = n, .params = params, .opts = o};
    pl.state[0] = exp_avg;
    pl.state[1] = exp_avg_sq;
    pl.state[2] = o->amsgrad ? max_exp_avg_sq : NULL;
    pl.names[0] = "exp_avg";
    pl.names[1] = "exp_avg_sq";
    pl.names[2] = "max_exp_avg_sq";
    if (plan_build(&pl, grads) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (steps[i] < 1) {
            fl_error("step count of parameter %d is %lld, expected 1 or more", i + 1, (long long)steps[i]);
            plan_free(&pl);
            return -1;
        }
        double t = (double)steps[i];
        pl.e[i].s1 = o->lr / (1 - pow(o->beta1, t));
        pl.e[i].s2 = sqrt(1 - pow(o->beta2, t));
    }
    int rc = plan_run(&pl);
    plan_free(&pl);
    return rc;
}

int fl_adagrad_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **sums,
                    const int64_t *steps, const fl_adagrad_opts *o)
{
    if (check_scalar("lr", o->lr) < 0 || check_scalar("lr_decay", o->lr_decay) < 0 ||
        check_scalar("weight_decay", o->weight_decay) < 0 || check_scalar("eps", o->eps) < 0 ||
        check_scalar("initial_accumulator_value", o->initial_accumulator_value) < 0)
        return -1;
    if (!sums || !steps) {
        fl_error("missing state arrays");
        return -1;
    }
    plan pl = {.kind = KIND_ADAGRAD, .n = n, .params = params, .opts = o};
    pl.state[0] = sums;
    pl.init[0] = o->initial_accumulator_value;
    pl.names[0] = "sum";
    if (plan_build(&pl, grads) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (steps[i] < 1) {
            fl_error("step count of parameter %d is %lld, expected 1 or more", i + 1, (long long)steps[i]);
            plan_free(&pl);
            return -1;
        }
        pl.e[i].s1 = o->lr / (1 + (double)(steps[i] - 1) * o->lr_decay);
    }
    int rc = plan_run(&pl);
    plan_free(&pl);
    return rc;
}

int fl_rmsprop_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **square_avg,
                    fl_tensor **grad_avg, fl_tensor **bufs, const fl_rmsprop_opts *o)
{
    if (check_scalar("lr", o->lr) < 0 || check_scalar("alpha", o->alpha) < 0 ||
        check_scalar("eps", o->eps) < 0 || check_scalar("weight_decay", o->weight_decay) < 0 ||
        check_scalar("momentum", o->momentum) < 0)
        return -1;
    if (!square_avg || (o->centered && !grad_avg) || (o->momentum > 0 && !bufs)) {
        fl_error("missing state arrays");
        return -1;
    }
    plan pl = {.kind = KIND_RMSPROP, .n = n, .params = params, .opts = o};
    pl.state[0] = square_avg;
    pl.state[1] = o->centered ? grad_avg : NULL;
    pl.state[2] = o->momentum > 0 ? bufs : NULL;
    pl.names[0] = "square_avg";
    pl.names[1] = "grad_avg";
    pl.names[2] = "the momentum buffer";
    return run_step(&pl, grads);
}

int fl_adadelta_step(int n, fl_tensor *const *params, fl_tensor *const *grads, fl_tensor **square_avg,
                     fl_tensor **acc_delta, const fl_adadelta_opts *o)
{
    if (check_scalar("lr", o->lr) < 0 || check_scalar("eps", o->eps) < 0 ||
        check_scalar("weight_decay", o->weight_decay) < 0)
        return -1;
    if (!(o->rho >= 0 && o->rho <= 1)) {
        fl_error("invalid rho %g (expected a value in [0, 1])", o->rho);
        return -1;
    }
    if (!square_avg || !acc_delta) {
        fl_error("missing state arrays");
        return -1;
    }
    plan pl = {.kind = KIND_ADADELTA, .n = n, .params = params, .opts = o};
    pl.state[0] = square_avg;
    pl.state[1] = acc_delta;
    pl.names[0] = "square_avg";
    pl.names[1] = "acc_delta";
    return run_step(&pl, grads);
}

/* ---------------------------------------------------------------- gradient clipping */

/* Floating point gradients, all on one device. */
static int check_grads(int n, fl_tensor *const *grads)
{
    for (int i = 0; i < n; i++) {
        const fl_tensor *g = grads[i];
        if (!g || !fl_dtype_is_float(g->dtype)) {
            fl_error("gradient %d is %s; expected a floating point tensor", i + 1,
                     !g ? "missing" : fl_dtype_name(g->dtype));
            return -1;
        }
        if (g->storage->device.type != grads[0]->storage->device.type) {
            fl_error("expected all tensors on the same device, got %s (gradient 1) and %s (gradient %d)",
                     fl_is_cuda(grads[0]) ? "cuda" : "cpu", fl_is_cuda(g) ? "cuda" : "cpu", i + 1);
            return -1;
        }
    }
    return 0;
}

/* The contiguous tensors of a GPU call as the kernels' list: p (in place), or g (read). */
static fl_cuda_optim_tensor *device_list(int n, fl_tensor *const *ts, bool in_place)
{
    fl_cuda_optim_tensor *list = calloc(n ? (size_t)n : 1, sizeof *list);
    if (!list) {
        fl_error("out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        list[i] = (fl_cuda_optim_tensor){.dtype = ts[i]->dtype, .n = ts[i]->numel};
        if (in_place)
            list[i].p = fl_tensor_data(ts[i]);
        else
            list[i].g = fl_tensor_data(ts[i]);
    }
    return list;
}

/* An in-place update of every (contiguous) gradient: x * arg, or x clamped to [-arg, arg]. */
static int update_grads(int n, fl_tensor *const *work, fl_cuda_optim_kind kind, double arg)
{
    if (fl_is_cuda(work[0])) {
        fl_cuda_optim_tensor *list = device_list(n, work, true);
        fl_cuda_optim_opts o = {.lr = arg};
        int rc = list ? fl_cuda_status(FL_CUDA(fl_cuda_optim_step)(kind, &o, list, n)) : -1;
        free(list);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        fl_tensor *g = work[i];
        bool f32 = g->dtype == FL_DTYPE_F32;
        if (kind == FL_CUDA_OPTIM_SCALE && f32)
            fl_cpu_scale_f32(fl_tensor_data(g), g->numel, (float)arg);
        else if (kind == FL_CUDA_OPTIM_SCALE)
            fl_cpu_scale_f64(fl_tensor_data(g), g->numel, arg);
        else if (f32)
            fl_cpu_clip_value_f32(fl_tensor_data(g), g->numel, (float)arg);
        else
            fl_cpu_clip_value_f64(fl_tensor_data(g), g->numel, arg);
    }
    return 0;
}

/* Updates every gradient in place (kind and arg as update_grads): all contiguous copies are
 * made first, so a failed allocation changes nothing. */
static int each_grad(int n, fl_tensor *const *grads, fl_cuda_optim_kind kind, double arg)
{
    fl_tensor **work = calloc(n ? (size_t)n : 1, sizeof *work);
    if (!work) {
        fl_error("out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!(work[i] = writable(grads[i]))) {
            for (int j = 0; j < i; j++)
                fl_tensor_release(work[j]);
            free(work);
            return -1;
        }
    bool grad_mode = fl_grad_enabled();
    fl_set_grad_enabled(false);
    fl_interrupt_defer_begin();
    int rc = n > 0 ? update_grads(n, work, kind, arg) : 0;
    for (int i = 0; i < n; i++) {
        if (work[i] != grads[i] && fl_copy(grads[i], work[i]) < 0)
            rc = -1;   /* only a failing GPU */
        grads[i]->storage->version++;
        fl_tensor_release(work[i]);
    }
    if (fl_interrupt_defer_end())
        fl_interrupt_request();
    fl_set_grad_enabled(grad_mode);
    free(work);
    return rc;
}

/* parts[i] = fl_cpu_norm_part of gradient i (see kernels/cpu/optim.h). On the GPU: one pass
 * over all gradients, and one read back of the n parts. */
static int norm_parts(int n, fl_tensor *const *grads, double p, double *parts)
{
    if (!fl_is_cuda(grads[0])) {
        for (int i = 0; i < n; i++) {
            fl_tensor *g = fl_contiguous(grads[i]);
            if (!g)
                return -1;
            parts[i] = g->dtype == FL_DTYPE_F32 ? fl_cpu_norm_part_f32(fl_tensor_data(g), g->numel, p)
                                                : fl_cpu_norm_part_f64(fl_tensor_data(g), g->numel, p);
            fl_tensor_release(g);
        }
        return 0;
    }
    fl_tensor **c = calloc((size_t)n, sizeof *c);
    int rc = c ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++)
        if (!(c[i] = fl_contiguous(grads[i])))
            rc = -1;
    fl_cuda_optim_tensor *list = rc == 0 ? device_list(n, c, false) : NULL;
    if (list)
        rc = fl_cuda_status(FL_CUDA(fl_cuda_grad_norm_parts)(list, n, p, parts));
    else if (rc == 0)
        rc = -1;
    for (int i = 0; c && i < n; i++)
        fl_tensor_release(c[i]);
    free(c);
    free(list);
    if (!c)
        fl_error("out of memory");
    return rc;
}

int fl_clip_grad_norm(int n, fl_tensor *const *grads, double max_norm, double norm_type,
                      bool error_if_nonfinite, double *total)
{
    *total = 0;
    if (isnan(max_norm) || isnan(norm_type)) {
        fl_error("max_norm and norm_type must be numbers, got %g and %g", max_norm, norm_type);
        return -1;
    }
    if (n == 0)
        return 0;
    if (check_grads(n, grads) < 0)
        return -1;
    double *parts = calloc((size_t)n, sizeof *parts);
    if (!parts) {
        fl_error("out of memory");
        return -1;
    }
    double p = norm_type;
    if (norm_parts(n, grads, p, parts) < 0) {
        free(parts);
        return -1;
    }
    /* PyTorch's definition: the norm of the vector of per-gradient norms */
    double acc = isinf(p) && p < 0 ? INFINITY : 0;
    for (int i = 0; i < n && !isnan(acc); i++) {
        double part = parts[i];
        double norm = isinf(p) || p == 0 || p == 1 ? part : pow(part, 1 / p);
        if (isnan(norm))
            acc = NAN;
        else if (isinf(p))
            acc = p > 0 ? fmax(acc, norm) : fmin(acc, norm);
        else if (p == 0)
            acc += norm != 0;
        else
            acc += pow(norm, p);
    }
    free(parts);
    double t = isinf(p) || p == 0 || isnan(acc) ? acc : pow(acc, 1 / p);
    if (grads[0]->dtype == FL_DTYPE_F32)
        t = (float)t;
    *total = t;
    if (error_if_nonfinite && !isfinite(t)) {
        fl_error("the total norm of order %g of the gradients is non-finite, so it cannot be clipped "
                 "(pass error_if_nonfinite = false to clip anyway)", norm_type);
        return -1;
    }
    double coef = max_norm / (t + 1e-6);
    if (grads[0]->dtype == FL_DTYPE_F32)
        coef = (float)max_norm / ((float)t + 1e-6f);
    if (coef >= 1)
        return 0;   /* PyTorch multiplies by 1 here: nothing changes */
    return each_grad(n, grads, FL_CUDA_OPTIM_SCALE, coef);
}

int fl_clip_grad_value(int n, fl_tensor *const *grads, double clip_value)
{
    if (isnan(clip_value) || clip_value < 0) {
        fl_error("invalid clip_value %g (expected a number >= 0)", clip_value);
        return -1;
    }
    if (check_grads(n, grads) < 0)
        return -1;
    return each_grad(n, grads, FL_CUDA_OPTIM_CLIP_VALUE, clip_value);
}
