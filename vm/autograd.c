/* autograd.c: grad mode, graph nodes and the backward engine (see autograd.h). */
#include "autograd.h"
#include "cuda.h"
#include "recycle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Ops with a backward rule that are not elementwise binary/unary ops (those are listed from
 * their own tables) nor in another area's list. Every op must have a gradcheck case. */
static const char *const other_differentiable_ops[] = {
    "clamp", "where", "to", "softmax", "log_softmax", "cross_entropy", "nll_loss",
    "binary_cross_entropy_with_logits", "mse_loss", NULL,
};

int fl_differentiable_ops(const char **names, int max)
{
    int n = 0;
    for (int op = 0; op < FL_BINOP_COUNT; op++)
        if (op < FL_BINOP_EQ && n < max)
            names[n++] = fl_binop_name((fl_binop)op);
    for (int op = 0; op < FL_UNOP_COUNT; op++)
        if (op != FL_UNOP_NOT && op != FL_UNOP_ISNAN && op != FL_UNOP_ISINF && op != FL_UNOP_ISFINITE && n < max)
            names[n++] = fl_unop_name((fl_unop)op);
    const char *const *lists[] = {other_differentiable_ops, fl_view_grad_ops, fl_reduce_grad_ops, fl_nn_grad_ops};
    for (size_t l = 0; l < sizeof lists / sizeof *lists; l++)
        for (const char *const *p = lists[l]; *p && n < max; p++)
            names[n++] = *p;
    return n;
}

/* ---------------------------------------------------------------- modes */

static _Thread_local bool grad_disabled;
static bool anomaly;
static char *(*where_callback)(void);

static fl_hook_callbacks hooks;

void fl_set_hook_callbacks(const fl_hook_callbacks *cb) { hooks = *cb; }

void fl_hooks_forget(const void *key)
{
    if (hooks.forget)
        hooks.forget(key);
}

/* Lets the hooks of key see (and replace) the gradient. */
static int run_hooks(const void *key, fl_tensor **g)
{
    return hooks.run ? hooks.run(key, g) : 0;
}

bool fl_grad_enabled(void) { return !grad_disabled; }
void fl_set_grad_enabled(bool on) { grad_disabled = !on; }
void fl_set_anomaly_mode(bool on) { anomaly = on; }
bool fl_anomaly_mode(void) { return anomaly; }
void fl_set_where_callback(char *(*where)(void)) { where_callback = where; }

int fl_set_requires_grad(fl_tensor *t, bool on)
{
    if (on && !fl_dtype_is_float(t->dtype)) {
        fl_error("only floating point tensors can require gradients, got %s", fl_dtype_name(t->dtype));
        return -1;
    }
    if (!on && t->grad_fn) {
        fl_error("requires_grad can only be turned off on leaf tensors (use x:detach())");
        return -1;
    }
    t->requires_grad = on;
    return 0;
}

/* ---------------------------------------------------------------- dynamic node stacks */

typedef struct {
    fl_node **items;
    size_t len, cap;
} node_stack;

static int stack_push(node_stack *s, fl_node *n)
{
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        fl_node **items = realloc(s->items, cap * sizeof *items);
        if (!items) {
            fl_error("out of memory in backward");
            return -1;
        }
        s->items = items;
        s->cap = cap;
    }
    s->items[s->len++] = n;
    return 0;
}

/* ---------------------------------------------------------------- nodes */

static _Thread_local fl_recycler nodes;

static fl_node *accumulate_node(fl_tensor *leaf)
{
    fl_node *n = fl_recycle_get(&nodes, sizeof *n);
    if (!n) {
        fl_error("out of memory");
        return NULL;
    }
    n->refcount = 1;
    n->rule = FL_GRAD_ACCUMULATE;
    n->name = "leaf";
    n->leaf = fl_tensor_retain(leaf);
    return n;
}

/* The node an input's gradient flows to: its grad_fn, or (for a leaf) a new accumulate
 * node. NULL when the input needs no gradient. */
static int edge_for(const fl_tensor *t, fl_node **out)
{
    *out = NULL;
    if (!t || !t->requires_grad)
        return 0;
    fl_node *n = t->grad_fn ? t->grad_fn : t->grad_acc;
    if (n) {
        n->refcount++;
        *out = n;
        return 0;
    }
    /* one accumulate node per leaf, so that its gradient is summed before hooks see it */
    *out = accumulate_node((fl_tensor *)t);
    if (!*out)
        return -1;
    ((fl_tensor *)t)->grad_acc = *out;
    return 0;
}

fl_node *fl_node_new(fl_grad_rule rule, const char *name, int nin, const fl_tensor *const *inputs)
{
    fl_node *n = fl_recycle_get(&nodes, sizeof *n);
    if (!n) {
        fl_error("out of memory");
        return NULL;
    }
    n->refcount = 1;
    n->rule = rule;
    n->name = name;
    n->nin = nin;
    for (int i = 0; i < nin; i++) {
        if (edge_for(inputs[i], &n->next[i]) < 0) {
            fl_node_release(n);
            return NULL;
        }
        if (inputs[i]) {
            n->in_ndim[i] = inputs[i]->ndim;
            memcpy(n->in_shape[i], inputs[i]->shape, sizeof inputs[i]->shape);
            n->in_dtype[i] = inputs[i]->dtype;
        }
    }
    if (anomaly && where_callback)
        n->where = where_callback();
    return n;
}

fl_tensor *fl_detach(const fl_tensor *t)
{
    return fl_tensor_view_of(t, t->ndim, t->shape, t->strides, t->offset);
}

int fl_node_save(fl_node *n, int i, const fl_tensor *t)
{
    fl_tensor *d = fl_detach(t);
    if (!d)
        return -1;
    n->saved[i] = d;
    n->saved_version[i] = t->storage->version;
    return 0;
}

void fl_node_attach(fl_node *n, fl_tensor *out)
{
    fl_node_release(out->grad_fn);
    out->grad_fn = n;
    out->requires_grad = true;
}

static void free_saved(fl_node *n)
{
    for (int i = 0; i < FL_NODE_MAX_SAVED; i++) {
        fl_tensor_release(n->saved[i]);
        n->saved[i] = NULL;
    }
    n->freed = true;
}

/* Iterative, so that dropping a graph of a million nodes cannot overflow the C stack. */
void fl_node_release(fl_node *n)
{
    if (!n || --n->refcount > 0)
        return;
    node_stack todo = {0};
    for (;;) {
        for (int i = 0; i < n->nin; i++) {
            fl_node *m = n->next[i];
            if (m && --m->refcount == 0 && stack_push(&todo, m) < 0)
                m->refcount = 1;   /* out of memory: leak rather than crash */
        }
        free_saved(n);
        if (n->has_hooks)
            fl_hooks_forget(n);
        if (n->leaf)
            n->leaf->grad_acc = NULL;
        fl_tensor_release(n->leaf);
        fl_tensor_release(n->grad);
        free(n->where);
        fl_recycle_put(&nodes, n);
        if (todo.len == 0)
            break;
        n = todo.items[--todo.len];
    }
    free(todo.items);
}

/* ---------------------------------------------------------------- backward */

static int accumulate_into(fl_node *dst, fl_tensor *g)
{
    if (!dst->grad) {
        dst->grad = g;
        return 0;
    }
    fl_tensor *sum = fl_binary(FL_BINOP_ADD, dst->grad, g);
    fl_tensor_release(g);
    if (!sum)
        return -1;
    fl_tensor_release(dst->grad);
    dst->grad = sum;
    return 0;
}

static int accumulate_leaf(fl_tensor *leaf, const fl_tensor *g)
{
    if (!fl_shape_equal(leaf, g)) {
        char b1[160], b2[160];
        fl_error("gradient of shape %s does not match its tensor's shape %s",
                 fl_shape_str(b1, sizeof b1, g->ndim, g->shape), fl_shape_str(b2, sizeof b2, leaf->ndim, leaf->shape));
        return -1;
    }
    if (!leaf->grad) {
        /* a gradient nobody else holds becomes .grad as it is; otherwise a fresh copy, so
         * that .grad never aliases another tensor */
        bool sole = g->refcount == 1 && g->storage->refcount == 1 && fl_tensor_is_contiguous(g) &&
                    g->offset == 0 && g->dtype == leaf->dtype;
        leaf->grad = sole ? fl_tensor_retain((fl_tensor *)g) : fl_cast(g, leaf->dtype);
        return leaf->grad ? 0 : -1;
    }
    return fl_binary_(FL_BINOP_ADD, leaf->grad, g);
}

static bool has_nonfinite(const fl_tensor *g)
{
    /* a device gradient's flags are read on the host (anomaly mode only: a debugging aid) */
    fl_tensor *finite = fl_unary(FL_UNOP_ISFINITE, g);
    fl_tensor *bad = finite ? fl_move(finite, FL_CPU) : NULL;
    fl_tensor_release(finite);
    if (!bad)
        return false;
    bool any = false;
    const fl_tensor *c = bad;
    const uint8_t *p = fl_tensor_data(c);
    for (int64_t i = 0; i < c->numel && !any; i++)
        any = !p[i];
    fl_tensor_release(bad);
    return any;
}

static int check_saved_versions(const fl_node *n)
{
    for (int i = 0; i < FL_NODE_MAX_SAVED; i++) {
        const fl_tensor *s = n->saved[i];
        if (s && s->storage->version != n->saved_version[i]) {
            fl_error("a tensor needed to compute the gradient of '%s' was modified in place after it was "
                     "used (its version is %u, expected %u); use an out-of-place op or x:clone()",
                     n->name, s->storage->version, n->saved_version[i]);
            return -1;
        }
    }
    return 0;
}

static int run_node(fl_node *n, node_stack *ready, bool retain)
{
    fl_tensor *g = n->grad;
    n->grad = NULL;
    int rc = 0;
    if (n->rule == FL_GRAD_ACCUMULATE) {
        if (g && n->leaf->has_hooks)
            rc = run_hooks(n->leaf, &g);
        if (g && rc == 0)
            rc = accumulate_leaf(n->leaf, g);
        fl_tensor_release(g);
        return rc;
    }
    if (n->freed) {
        fl_tensor_release(g);
        fl_error("backward through '%s' a second time: its saved tensors were freed by the first "
                 "backward (pass {retain_graph = true} to the first call)", n->name);
        return -1;
    }
    fl_tensor *grads[FL_NODE_MAX_IN] = {0};
    if (g && n->has_hooks)
        rc = run_hooks(n, &g);
    if (g && rc == 0) {
        rc = check_saved_versions(n);
        if (rc == 0)
            rc = fl_backward_rule(n, g, grads);
    }
    fl_tensor_release(g);
    for (int i = 0; i < n->nin; i++) {
        fl_node *m = n->next[i];
        if (rc == 0 && grads[i] && anomaly && has_nonfinite(grads[i])) {
            fl_error("anomaly: the gradient computed by '%s' (input %d) has NaN or Inf values%s%s",
                     n->name, i + 1, n->where ? "; its forward ran at " : "", n->where ? n->where : "");
            rc = -1;
        }
        if (!m || rc < 0) {
            fl_tensor_release(grads[i]);
            continue;
        }
        if (grads[i] && accumulate_into(m, grads[i]) < 0)
            rc = -1;
        if (--m->deps == 0 && stack_push(ready, m) < 0)
            rc = -1;
    }
    if (!retain)
        free_saved(n);
    return rc;
}

static uint64_t backward_pass;

int fl_backward(fl_tensor *root, const fl_tensor *grad, bool retain_graph)
{
    if (!root->requires_grad) {
        fl_error("the tensor does not require grad and has no grad_fn (did you call x:requires_grad() on an input?)");
        return -1;
    }
    fl_tensor *g0;
    if (grad) {
        if (!fl_shape_equal(root, grad)) {
            char b1[160], b2[160];
            fl_error("gradient of shape %s does not match the output's shape %s",
                     fl_shape_str(b1, sizeof b1, grad->ndim, grad->shape), fl_shape_str(b2, sizeof b2, root->ndim, root->shape));
            return -1;
        }
        g0 = fl_cast(grad, root->dtype);
    } else {
        if (root->numel != 1) {
            char b[160];
            fl_error("a gradient can only be implied for a one-element output, got shape %s "
                     "(pass the gradient: y:backward(g))", fl_shape_str(b, sizeof b, root->ndim, root->shape));
            return -1;
        }
        g0 = fl_tensor_empty(root->dtype, root->ndim, root->shape, root->storage->device);
        if (g0)
            fl_fill(g0, 1);
    }
    if (!g0)
        return -1;
    bool was_enabled = fl_grad_enabled();
    fl_set_grad_enabled(false);
    if (!root->grad_fn) {
        int rc = root->has_hooks ? run_hooks(root, &g0) : 0;
        if (rc == 0)
            rc = accumulate_leaf(root, g0);
        fl_tensor_release(g0);
        fl_set_grad_enabled(was_enabled);
        return rc;
    }
    /* count, for every node reachable from the root, the edges that lead into it */
    node_stack all = {0}, todo = {0}, ready = {0};
    uint64_t pass = ++backward_pass;
    fl_node *r = root->grad_fn;
    int rc = 0;
    r->pass = pass;
    r->deps = 0;
    rc |= stack_push(&todo, r) | stack_push(&all, r);
    while (rc == 0 && todo.len) {
        fl_node *n = todo.items[--todo.len];
        for (int i = 0; i < n->nin; i++) {
            fl_node *m = n->next[i];
            if (!m)
                continue;
            if (m->pass != pass) {
                m->pass = pass;
                m->deps = 0;
                rc |= stack_push(&todo, m) | stack_push(&all, m);
            }
            m->deps++;
        }
    }
    if (rc == 0) {
        r->grad = g0;
        g0 = NULL;
        rc = stack_push(&ready, r);
    }
    while (rc == 0 && ready.len)
        rc = run_node(ready.items[--ready.len], &ready, retain_graph);
    /* on error, drop the partial gradients still parked in nodes */
    for (size_t i = 0; i < all.len; i++) {
        fl_tensor_release(all.items[i]->grad);
        all.items[i]->grad = NULL;
    }
    fl_tensor_release(g0);
    free(all.items);
    free(todo.items);
    free(ready.items);
    fl_set_grad_enabled(was_enabled);
    return rc;
}
