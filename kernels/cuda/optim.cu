/* optim.cu: fused optimizer updates and gradient clipping on the GPU (see optim.h). A launch
 * updates a batch of up to LIST_MAX tensors, passed by value: block b finds its tensor in
 * the batch's table of first blocks and walks that tensor grid-stride, so a model's many
 * small parameters cost a few launches, not one each. The per-element arithmetic is the CPU
 * kernels' (kernels/cpu/optim.c), line for line. */
#include "common.cuh"
#include "math.cuh"
#include "optim.h"

namespace {

#define LIST_MAX 24
#define UPDATE_BLOCKS_MAX 1024   /* blocks per tensor of an update; threads loop past that */
#define NORM_BLOCKS_MAX 256      /* blocks per tensor of a norm (partials kept per block) */
static_assert(LIST_MAX <= 32, "norm_gather_kernel runs one warp, a thread per tensor");

/* A batch of tensors of one dtype: tensor k owns blocks [first_block[k], first_block[k + 1]). */
template <typename T> struct tensor_list {
    int count;
    int first_block[LIST_MAX + 1];
    int index[LIST_MAX];         /* its place in the caller's array */
    int64_t n[LIST_MAX];
    T *p[LIST_MAX];
    T *s[3][LIST_MAX];
    const T *g[LIST_MAX];
    T s1[LIST_MAX], s2[LIST_MAX];
    int init[LIST_MAX];
};

/* The batch entry of this block, and the block's rank within its tensor. */
template <typename T> __device__ __forceinline__ int entry_of(const tensor_list<T> &L, int b)
{
    int k = 0;
    while (k + 1 < L.count && b >= L.first_block[k + 1])
        k++;
    return k;
}

/* The options rounded to T once, on the host, as the CPU kernels round them. */
template <typename T> struct consts {
    T lr, wd, mom, keep, sign, b1, b2, c1, c2, eps, shrink, alpha, c;
    int use_wd, nesterov, coupled_wd, decoupled_wd;
};

template <typename T> consts<T> consts_of(fl_cuda_optim_kind kind, const fl_cuda_optim_opts *o)
{
    consts<T> k;
    memset(&k, 0, sizeof k);
    k.sign = o->maximize ? (T)-1 : (T)1;
    k.wd = (T)o->weight_decay;
    k.use_wd = o->weight_decay != 0;
    k.eps = (T)o->eps;
    switch (kind) {
    case FL_CUDA_OPTIM_SGD:
        k.lr = (T)o->lr;
        k.mom = (T)o->momentum;
        k.keep = (T)(1 - o->dampening);
        k.nesterov = o->nesterov;
        break;
    case FL_CUDA_OPTIM_ADAM:
        k.b1 = (T)o->beta1;
        k.b2 = (T)o->beta2;
        k.c1 = (T)(1 - o->beta1);
        k.c2 = (T)(1 - o->beta2);
        k.shrink = (T)(1 - o->lr * o->weight_decay);
        k.coupled_wd = !o->decoupled && o->weight_decay != 0;
        k.decoupled_wd = o->decoupled && o->weight_decay != 0;
        break;
    case FL_CUDA_OPTIM_RMSPROP:
        k.alpha = (T)o->alpha;
        k.c = (T)(1 - o->alpha);
        k.mom = (T)o->momentum;
        k.lr = (T)-o->lr;
        break;
    case FL_CUDA_OPTIM_ADADELTA:
        k.alpha = (T)o->rho;
        k.c = (T)(1 - o->rho);
        k.lr = (T)-o->lr;
        break;
    case FL_CUDA_OPTIM_SCALE:
    case FL_CUDA_OPTIM_CLIP_VALUE:
        k.lr = (T)o->lr;
        break;
    default:
        break;
    }
    return k;
}

/* ---------------------------------------------------------------- per-element updates */

/* buf is NULL when momentum is 0 */
template <typename T>
__device__ __forceinline__ void sgd(const consts<T> &c, T *p, T *buf, const T *g, int init, int64_t i)
{
    T d = c.sign * g[i];
    d = c.use_wd ? d + c.wd * p[i] : d;
    if (buf) {
        T b = init ? d : buf[i] * c.mom + c.keep * d;
        buf[i] = b;
        d = c.nesterov ? d + c.mom * b : b;
    }
    p[i] = p[i] - c.lr * d;
}

/* vmax is NULL unless amsgrad; step = -step_size, bc2 = sqrt(1 - beta2^t) */
template <typename T>
__device__ __forceinline__ void adam(const consts<T> &c, T *p, T *m, T *v, T *vmax, const T *g, T step, T bc2,
                                     int64_t i)
{
    T gi = c.sign * g[i], pi = p[i];
    gi = c.coupled_wd ? gi + c.wd * pi : gi;
    pi = c.decoupled_wd ? pi * c.shrink : pi;
    T mi = m[i] * c.b1 + c.c1 * gi;
    T vi = v[i] * c.b2 + c.c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    if (vmax) {
        T vm = vmax[i];
        vm = (vi > vm || vi != vi) ? vi : vm;   /* torch.maximum: NaN wins */
        vmax[i] = vm;
        vi = vm;
    }
    p[i] = pi + step * (mi / (fl_sqrt(vi) / bc2 + c.eps));
}

/* clr = -lr / (1 + (t - 1) lr_decay) */
template <typename T>
__device__ __forceinline__ void adagrad(const consts<T> &c, T *p, T *sum, const T *g, T clr, int64_t i)
{
    T gi = c.sign * g[i];
    gi = c.use_wd ? gi + c.wd * p[i] : gi;
    T s = sum[i] + gi * gi;
    sum[i] = s;
    p[i] = p[i] + clr * (gi / (fl_sqrt(s) + c.eps));
}

/* gavg is NULL unless centered, buf NULL unless momentum > 0 */
template <typename T>
__device__ __forceinline__ void rmsprop(const consts<T> &c, T *p, T *sq, T *gavg, T *buf, const T *g, int64_t i)
{
    T gi = c.sign * g[i];
    gi = c.use_wd ? gi + c.wd * p[i] : gi;
    T s = sq[i] * c.alpha + c.c * gi * gi;
    sq[i] = s;
    T avg;
    if (gavg) {
        T ga = gavg[i] * c.alpha + c.c * gi;
        gavg[i] = ga;
        avg = fl_sqrt(s - ga * ga) + c.eps;
    } else {
        avg = fl_sqrt(s) + c.eps;
    }
    if (buf) {
        T b = buf[i] * c.mom + gi / avg;
        buf[i] = b;
        p[i] = p[i] + c.lr * b;
    } else {
        p[i] = p[i] + c.lr * (gi / avg);
    }
}

/* alpha = rho, c = 1 - rho */
template <typename T>
__device__ __forceinline__ void adadelta(const consts<T> &c, T *p, T *sq, T *acc, const T *g, int64_t i)
{
    T gi = c.sign * g[i];
    gi = c.use_wd ? gi + c.wd * p[i] : gi;
    T s = sq[i] * c.alpha + c.c * gi * gi;
    sq[i] = s;
    T delta = fl_sqrt(acc[i] + c.eps) / fl_sqrt(s + c.eps) * gi;
    acc[i] = acc[i] * c.alpha + c.c * delta * delta;
    p[i] = p[i] + c.lr * delta;
}

template <typename T, int KIND> __global__ void update_kernel(consts<T> c, tensor_list<T> L)
{
    int b = (int)blockIdx.x, k = entry_of(L, b);
    int64_t nb = L.first_block[k + 1] - L.first_block[k], n = L.n[k];
    T *p = L.p[k], *st0 = L.s[0][k], *st1 = L.s[1][k], *st2 = L.s[2][k];
    const T *g = L.g[k];
    for (int64_t i = (int64_t)(b - L.first_block[k]) * blockDim.x + threadIdx.x; i < n; i += nb * blockDim.x) {
        switch (KIND) {
        case FL_CUDA_OPTIM_SGD: sgd(c, p, st0, g, L.init[k], i); break;
        case FL_CUDA_OPTIM_ADAM: adam(c, p, st0, st1, st2, g, L.s1[k], L.s2[k], i); break;
        case FL_CUDA_OPTIM_ADAGRAD: adagrad(c, p, st0, g, L.s1[k], i); break;
        case FL_CUDA_OPTIM_RMSPROP: rmsprop(c, p, st0, st1, st2, g, i); break;
        case FL_CUDA_OPTIM_ADADELTA: adadelta(c, p, st0, st1, g, i); break;
        case FL_CUDA_OPTIM_SCALE: p[i] = p[i] * c.lr; break;
        case FL_CUDA_OPTIM_CLIP_VALUE:
            if (p[i] > c.lr)
                p[i] = c.lr;
            else if (p[i] < -c.lr)
                p[i] = -c.lr;
            break;
        default: break;
        }
    }
}

/* ---------------------------------------------------------------- norms */

enum { NORM_SUM_POW, NORM_SUM_SQ, NORM_SUM_ABS, NORM_COUNT, NORM_MAX, NORM_MIN };

__device__ __forceinline__ double norm_combine(int op, double a, double b)
{
    if (op != NORM_MAX && op != NORM_MIN)
        return a + b;
    if (a != a)
        return a;
    if (b != b)
        return b;
    return op == NORM_MAX ? (a > b ? a : b) : (a < b ? a : b);
}

__device__ __forceinline__ double norm_identity(int op) { return op == NORM_MIN ? (double)INFINITY : 0.0; }

/* partials[b] = block b's part of its tensor's norm; a tree in shared memory, so the result
 * depends only on the launch shape */
template <typename T> __global__ void norm_kernel(tensor_list<T> L, int op, double p, double *partials)
{
    __shared__ double buf[FL_THREADS];
    int b = (int)blockIdx.x, k = entry_of(L, b);
    int64_t nb = L.first_block[k + 1] - L.first_block[k], n = L.n[k];
    const T *x = L.g[k];
    double acc = norm_identity(op);
    for (int64_t i = (int64_t)(b - L.first_block[k]) * blockDim.x + threadIdx.x; i < n; i += nb * blockDim.x) {
        double v = (double)x[i], term;
        switch (op) {
        case NORM_SUM_SQ: term = v * v; break;
        case NORM_SUM_ABS: term = fl_fabs(v); break;
        case NORM_COUNT: term = v != 0; break;
        case NORM_SUM_POW: term = fl_pow(fl_fabs(v), p); break;
        default: term = fl_fabs(v); break;
        }
        acc = norm_combine(op, acc, term);
    }
    buf[threadIdx.x] = acc;
    __syncthreads();
    for (int s = FL_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            buf[threadIdx.x] = norm_combine(op, buf[threadIdx.x], buf[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0)
        partials[b] = buf[0];
}

/* parts[index[k]] = the partials of tensor k's blocks, combined in order */
template <typename T> __global__ void norm_gather_kernel(tensor_list<T> L, int op, const double *partials, double *parts)
{
    int k = (int)threadIdx.x;
    if (k >= L.count)
        return;
    double acc = norm_identity(op);
    for (int b = L.first_block[k]; b < L.first_block[k + 1]; b++)
        acc = norm_combine(op, acc, partials[b]);
    parts[L.index[k]] = acc;
}

/* ---------------------------------------------------------------- launchers */

template <typename T> void list_reset(tensor_list<T> &L)
{
    memset(&L, 0, sizeof L);
}

/* Appends ts to L with `blocks` blocks. */
template <typename T>
void list_add(tensor_list<T> &L, fl_cuda_optim_kind kind, const fl_cuda_optim_tensor *t, int index, int blocks)
{
    int k = L.count++;
    L.index[k] = index;
    L.n[k] = t->n;
    L.p[k] = (T *)t->p;
    for (int j = 0; j < 3; j++)
        L.s[j][k] = (T *)t->state[j];
    L.g[k] = (const T *)t->g;
    /* the per-tensor scalars, rounded as the CPU kernels round them */
    L.s1[k] = kind == FL_CUDA_OPTIM_ADAM || kind == FL_CUDA_OPTIM_ADAGRAD ? (T)-t->s1 : (T)0;
    L.s2[k] = kind == FL_CUDA_OPTIM_ADAM ? (T)t->s2 : (T)0;
    L.init[k] = t->init;
    L.first_block[k + 1] = L.first_block[k] + blocks;
}

int blocks_for(int64_t n, int cap)
{
    int64_t b = (n + FL_THREADS - 1) / FL_THREADS;
    return (int)(b > cap ? cap : b);
}

template <typename T, int KIND>
int run_updates(fl_dtype dt, const fl_cuda_optim_opts *o, const fl_cuda_optim_tensor *ts, int n)
{
    consts<T> c = consts_of<T>((fl_cuda_optim_kind)KIND, o);
    tensor_list<T> L;
    list_reset(L);
    for (int i = 0; i <= n; i++) {
        if (L.count > 0 && (i == n || L.count == LIST_MAX)) {
            auto kernel = update_kernel<T, KIND>;   /* a name without a comma, for the macro */
            FL_LAUNCH(kernel, L.first_block[L.count], FL_THREADS, c, L);
            if (FL_CHECK_LAUNCH("optimizer step") < 0)
                return -1;
            list_reset(L);
        }
        if (i < n && ts[i].dtype == dt && ts[i].n > 0)
            list_add(L, (fl_cuda_optim_kind)KIND, &ts[i], i, blocks_for(ts[i].n, UPDATE_BLOCKS_MAX));
    }
    return 0;
}

template <typename T>
int updates_of(fl_cuda_optim_kind kind, fl_dtype dt, const fl_cuda_optim_opts *o, const fl_cuda_optim_tensor *ts,
               int n)
{
    switch (kind) {
    case FL_CUDA_OPTIM_SGD: return run_updates<T, FL_CUDA_OPTIM_SGD>(dt, o, ts, n);
    case FL_CUDA_OPTIM_ADAM: return run_updates<T, FL_CUDA_OPTIM_ADAM>(dt, o, ts, n);
    case FL_CUDA_OPTIM_ADAGRAD: return run_updates<T, FL_CUDA_OPTIM_ADAGRAD>(dt, o, ts, n);
    case FL_CUDA_OPTIM_RMSPROP: return run_updates<T, FL_CUDA_OPTIM_RMSPROP>(dt, o, ts, n);
    case FL_CUDA_OPTIM_ADADELTA: return run_updates<T, FL_CUDA_OPTIM_ADADELTA>(dt, o, ts, n);
    case FL_CUDA_OPTIM_SCALE: return run_updates<T, FL_CUDA_OPTIM_SCALE>(dt, o, ts, n);
    case FL_CUDA_OPTIM_CLIP_VALUE: return run_updates<T, FL_CUDA_OPTIM_CLIP_VALUE>(dt, o, ts, n);
    default: return fl_cuda_fail("optimizer step: unknown kind %d", (int)kind);
    }
}

int check_dtypes(const fl_cuda_optim_tensor *ts, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (ts[i].dtype != FL_DTYPE_F32 && ts[i].dtype != FL_DTYPE_F64)
            return fl_cuda_fail("%s: tensor %d has dtype %d, expected float32 or float64", what, i + 1,
                                (int)ts[i].dtype);
    return 0;
}

template <typename T>
int run_norms(fl_dtype dt, const fl_cuda_optim_tensor *ts, int n, int op, double p, double *partials, double *parts)
{
    tensor_list<T> L;
    list_reset(L);
    for (int i = 0; i <= n; i++) {
        if (L.count > 0 && (i == n || L.count == LIST_MAX)) {
            if (L.first_block[L.count] > 0) {
                FL_LAUNCH(norm_kernel<T>, L.first_block[L.count], FL_THREADS, L, op, p, partials);
                if (FL_CHECK_LAUNCH("gradient norm") < 0)
                    return -1;
            }
            FL_LAUNCH(norm_gather_kernel<T>, 1, 32, L, op, (const double *)partials, parts);
            if (FL_CHECK_LAUNCH("gradient norm") < 0)
                return -1;
            list_reset(L);
        }
        if (i < n && ts[i].dtype == dt)   /* empty tensors too: they get the identity */
            list_add(L, FL_CUDA_OPTIM_SCALE, &ts[i], i, blocks_for(ts[i].n, NORM_BLOCKS_MAX));
    }
    return 0;
}

}  // namespace

extern "C" int fl_cuda_optim_step(fl_cuda_optim_kind kind, const fl_cuda_optim_opts *o, const fl_cuda_optim_tensor *ts,
                                  int n)
{
    if (check_dtypes(ts, n, "optimizer step") < 0)
        return -1;
    if (updates_of<float>(kind, FL_DTYPE_F32, o, ts, n) < 0)
        return -1;
    return updates_of<double>(kind, FL_DTYPE_F64, o, ts, n);
}

extern "C" int fl_cuda_grad_norm_parts(const fl_cuda_optim_tensor *ts, int n, double p, double *parts)
{
    if (n <= 0)
        return 0;
    if (check_dtypes(ts, n, "gradient norm") < 0)
        return -1;
    int op = p == 2 ? NORM_SUM_SQ : p == 1 ? NORM_SUM_ABS : p == 0 ? NORM_COUNT
           : p == (double)INFINITY ? NORM_MAX : p == -(double)INFINITY ? NORM_MIN : NORM_SUM_POW;
    size_t pbytes = (size_t)LIST_MAX * NORM_BLOCKS_MAX * sizeof(double), nbytes = (size_t)n * sizeof(double);
    double *partials = (double *)fl_cuda_malloc(pbytes), *dparts = (double *)fl_cuda_malloc(nbytes);
    int rc = partials && dparts ? 0 : fl_cuda_fail("gradient norm: out of device memory");
    if (rc == 0)
        rc = run_norms<float>(FL_DTYPE_F32, ts, n, op, p, partials, dparts);
    if (rc == 0)
        rc = run_norms<double>(FL_DTYPE_F64, ts, n, op, p, partials, dparts);
    if (rc == 0)
        rc = fl_cuda_memcpy(parts, dparts, nbytes, FL_COPY_D2H);
    if (partials)
        fl_cuda_free(partials, pbytes);
    if (dparts)
        fl_cuda_free(dparts, nbytes);
    return rc;
}
