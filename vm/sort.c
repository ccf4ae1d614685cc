/* sort.c: sort and topk along a dim.
 *
 * Every value becomes an unsigned 64-bit key whose order is the value order (NaN greatest,
 * -0 equal to +0, as PyTorch compares), inverted for descending order, so one merge sort on
 * (key, index) pairs serves every dtype and both directions; sorting pairs that start in
 * index order makes it stable. topk keeps the k best in a heap when k is small. Lines are
 * independent and split across the pool. The values record an autograd node whose rule
 * (vm/backward_reduce.c) scatters the gradient back through the indices.
 *
 * CUDA tensors take a host round trip: copied to the CPU, sorted there, the results copied
 * back. A stable device sort (radix or merge) is a kernel of its own; sort and topk are rare
 * next to the ops a training step runs, so the copy is the simple choice for now. */
#include "autograd.h"
#include "cuda.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key;
    int64_t idx;
} entry;

static uint64_t value_key(fl_dtype dt, const void *base, int64_t i)
{
    if (fl_dtype_is_float(dt)) {
        double v = fl_load_f64(dt, base, i);
        if (v != v)
            return UINT64_MAX;
        if (v == 0)
            v = 0.0;   /* -0 sorts with +0 */
        uint64_t u;
        memcpy(&u, &v, sizeof u);
        return (u >> 63) ? ~u : u | (1ull << 63);
    }
    return (uint64_t)fl_load_i64(dt, base, i) ^ (1ull << 63);
}

static inline bool before(const entry *a, const entry *b)
{
    return a->key < b->key || (a->key == b->key && a->idx < b->idx);
}

/* Bottom-up merge sort of e[0..n) by (key, idx), using tmp[0..n). */
static void sort_entries(entry *e, entry *tmp, int64_t n)
{
    entry *src = e, *dst = tmp;
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = before(&src[j], &src[i]) ? src[j++] : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        entry *s = src;
        src = dst;
        dst = s;
    }
    if (src != e)
        memcpy(e, src, (size_t)n * sizeof *e);
}

/* Max-heap on (key, idx): the root is the worst of the k kept. */
static void sift_down(entry *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&h[m], &h[l]))
            m = l;
        if (r < n && before(&h[m], &h[r]))
            m = r;
        if (m == i)
            return;
        entry t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

typedef struct {
    fl_dtype dt;
    size_t es;
    const char *x;
    char *values;
    int64_t *indices;
    int64_t n, k, inner, base;
    bool invert;          /* descending / largest */
    _Atomic int failed;
} sort_job;

/* Lines [begin, end): line l is (outer l / inner, inner position l % inner). */
static void sort_lines(void *ctx, int64_t begin, int64_t end)
{
    sort_job *job = ctx;
    int64_t n = job->n, k = job->k, inner = job->inner;
    bool heap = 4 * k < n;
    int64_t cap = heap ? k : n;
    entry *e = malloc((size_t)(2 * cap > 0 ? 2 * cap : 1) * sizeof *e);
    if (!e) {
        atomic_store(&job->failed, 1);
        return;
    }
    entry *tmp = e + cap;
    uint64_t flip = job->invert ? UINT64_MAX : 0;
    for (int64_t l = begin; l < end; l++) {
        int64_t o = l / inner, r = l % inner;
        int64_t in0 = o * n * inner + r, out0 = o * k * inner + r;
        int64_t m = 0;
        for (int64_t j = 0; j < n; j++) {
            entry v = {value_key(job->dt, job->x, in0 + j * inner) ^ flip, j};
            if (!heap) {
                e[m++] = v;
            } else if (m < k) {
                e[m++] = v;
                if (m == k)
                    for (int64_t i = k / 2; i >= 0; i--)
                        sift_down(e, k, i);
            } else if (v.key < e[0].key) {   /* later indices lose ties */
                e[0] = v;
                sift_down(e, k, 0);
            }
        }
        sort_entries(e, tmp, m);
        for (int64_t j = 0; j < k; j++) {
            int64_t src = in0 + e[j].idx * inner, dst = out0 + j * inner;
            memcpy(job->values + dst * (int64_t)job->es, job->x + src * (int64_t)job->es, job->es);
            job->indices[dst] = e[j].idx + job->base;
        }
    }
    free(e);
}

static int sort_common(const fl_tensor *t, int dim, int64_t k, bool invert, int64_t base,
                       fl_tensor **values, fl_tensor **indices)
{
    *values = *indices = NULL;
    if (t->ndim == 0 ? (dim != 0 && dim != -1) : (dim < 0 || dim >= t->ndim)) {
        fl_error("dimension %d is out of range for a tensor of %d dimensions", dim, t->ndim);
        return -1;
    }
    int64_t n = t->ndim ? t->shape[dim] : 1, outer = 1, inner = 1;
    if (k < 0 || k > n) {
        fl_error("k (%lld) is out of range for a dimension of size %lld",
                 (long long)k, (long long)n);
        return -1;
    }
    int64_t shape[FL_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) {
        shape[d] = d == dim ? k : t->shape[d];
        if (d < dim)
            outer *= t->shape[d];
        else if (d > dim)
            inner *= t->shape[d];
    }
    fl_tensor *x = fl_contiguous((fl_tensor *)t);
    fl_tensor *v = x ? fl_tensor_empty(t->dtype, t->ndim, shape, FL_CPU) : NULL;
    fl_tensor *ix = v ? fl_tensor_empty(FL_DTYPE_I64, t->ndim, shape, FL_CPU) : NULL;
    int rc = ix ? 0 : -1;
    if (ix && v->numel > 0) {
        sort_job job = {t->dtype, fl_dtype_size(t->dtype), fl_tensor_data(x), fl_tensor_data(v),
                        fl_tensor_data(ix), n, k, inner, base, invert, 0};
        int64_t lines = outer * inner;
        int64_t grain = n > 0 ? 16384 / n + 1 : lines;
        if (lines > 1 && t->numel >= 32768)
            fl_parallel_for(lines, grain, sort_lines, &job);
        else
            sort_lines(&job, 0, lines);
        if (atomic_load(&job.failed)) {
            fl_error("out of memory");
            rc = -1;
        }
    }
    fl_tensor_release(x);
    if (rc < 0) {
        fl_tensor_release(v);
        fl_tensor_release(ix);
        return -1;
    }
    *values = v;
    *indices = ix;
    return 0;
}

/* sort_common on a device tensor: through the host (see the top of the file). */
static int sort_any(const fl_tensor *t, int dim, int64_t k, bool invert, int64_t base,
                    fl_tensor **values, fl_tensor **indices)
{
    if (!fl_is_cuda(t))
        return sort_common(t, dim, k, invert, base, values, indices);
    fl_device dev = t->storage->device;
    fl_tensor *h = fl_move(t, FL_CPU), *hv = NULL, *hi = NULL;
    int rc = h ? sort_common(h, dim, k, invert, base, &hv, &hi) : -1;
    fl_tensor_release(h);
    *values = rc == 0 ? fl_move(hv, dev) : NULL;
    *indices = *values ? fl_move(hi, dev) : NULL;
    fl_tensor_release(hv);
    fl_tensor_release(hi);
    if (rc == 0 && !*indices) {
        fl_tensor_release(*values);
        *values = NULL;
        rc = -1;
    }
    return rc;
}

/* The values' node (after a successful sort). */
static int record(const fl_tensor *t, int dim, int64_t base, const char *name,
                  fl_tensor **values, fl_tensor **indices)
{
    if (!fl_needs_grad(t) || !fl_dtype_is_float(t->dtype))
        return 0;
    fl_node *n = fl_node_new(FL_GRAD_SORT, name, 1, &t);
    if (!n || fl_node_save(n, 0, *indices) < 0) {
        fl_node_release(n);
        fl_tensor_release(*values);
        fl_tensor_release(*indices);
        *values = *indices = NULL;
        return -1;
    }
    n->iargs[0] = dim < 0 ? 0 : dim;
    n->iargs[1] = base;
    fl_node_attach(n, *values);
    return 0;
}

int fl_sort(const fl_tensor *t, int dim, bool descending, int64_t base,
            fl_tensor **values, fl_tensor **indices)
{
    int64_t n = t->ndim == 0 ? 1 : (dim >= 0 && dim < t->ndim) ? t->shape[dim] : 0;
    if (sort_any(t, dim, n, descending, base, values, indices) < 0)
        return -1;
    return record(t, dim, base, "sort", values, indices);
}

int fl_topk(const fl_tensor *t, int64_t k, int dim, bool largest, bool sorted, int64_t base,
            fl_tensor **values, fl_tensor **indices)
{
    (void)sorted;   /* always sorted: the cheapest order to promise */
    if (sort_any(t, dim, k, largest, base, values, indices) < 0)
        return -1;
    return record(t, dim, base, "topk", values, indices);
}
