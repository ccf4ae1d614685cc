/* autograd.h: the tape. Ops that see an input requiring grad (in grad mode) record a node:
 * which backward rule to run, edges to the nodes that produced their inputs, and the
 * tensors the rule needs (saved as detached views, with their storage version so that an
 * in-place change before backward is caught). Leaves get an accumulate node that adds into
 * their .grad. Backward walks the graph iteratively (no recursion), then frees what it saved
 * unless asked to retain the graph. */
#ifndef FL_AUTOGRAD_H
#define FL_AUTOGRAD_H

#include "flare.h"

/* The backward rules, one per differentiable primitive (vm/backward.c). */
typedef enum {
    FL_GRAD_ACCUMULATE,      /* leaf: adds into .grad */
    FL_GRAD_BINARY,          /* iargs[0] = fl_binop */
    FL_GRAD_UNARY,           /* iargs[0] = fl_unop */
    FL_GRAD_CLAMP,           /* dargs = lo, hi (NaN = absent) */
    FL_GRAD_WHERE,           /* saved[0] = condition */
    FL_GRAD_CAST,            /* back to the input's dtype */
    FL_GRAD_TO_DEVICE,       /* vm/cuda.c: back to the input's device, iargs = type, index */
    FL_GRAD_SOFTMAX,         /* vm/loss.c: iargs = dim, log */
    FL_GRAD_CROSS_ENTROPY,   /* vm/loss.c */
    FL_GRAD_NLL,             /* vm/loss.c */
    FL_GRAD_BCE_LOGITS,      /* vm/loss.c */
    FL_GRAD_MSE,             /* vm/loss.c */
    /* views, movement and indexing ops: rules in vm/backward_view.c */
    FL_GRAD_VIEW_FIRST,
    FL_GRAD_SELECT = FL_GRAD_VIEW_FIRST,   /* iargs = dim, index */
    FL_GRAD_SLICE,           /* narrow, slice: iargs = dim, start, stop, step */
    FL_GRAD_INDEX_SLICES,    /* x[{...}]: saved[0] = the specs, (n, 4) int64 */
    FL_GRAD_RESHAPE,         /* view, reshape, flatten, squeeze, unsqueeze */
    FL_GRAD_TRANSPOSE,       /* iargs = d1, d2 */
    FL_GRAD_PERMUTE,         /* iargs[0] = dims, 4 bits each */
    FL_GRAD_EXPAND,          /* the engine sums the broadcast dims */
    FL_GRAD_UNFOLD,          /* iargs = dim, size, step */
    FL_GRAD_CAT,             /* cat, stack: iargs = dim, stack, chained (input 2: the rest) */
    FL_GRAD_INDEX_SELECT,    /* index_select, x[idx]: saved[0] = idx; iargs = dim, base */
    FL_GRAD_GATHER,          /* saved[0] = idx; iargs = dim, base */
    FL_GRAD_SCATTER,         /* inputs t, src; saved[0] = idx; iargs = dim, base, mode */
    FL_GRAD_INDEX_UPDATE,    /* index_copy/add/fill: as FL_GRAD_SCATTER */
    FL_GRAD_MASKED_FILL,     /* inputs t, -, value; saved[0] = mask */
    FL_GRAD_MASKED_SELECT,   /* masked_select, x[mask]: saved[0] = mask */
    FL_GRAD_MASKED_SCATTER,  /* inputs t, src; saved[0] = mask */
    FL_GRAD_VIEW_LAST = FL_GRAD_VIEW_FIRST + 63,
    /* reductions, sorting and linear algebra: rules in vm/backward_reduce.c */
    FL_GRAD_REDUCE_FIRST,
    FL_GRAD_SUM = FL_GRAD_REDUCE_FIRST,   /* iargs = mask of reduced dims, keepdim */
    FL_GRAD_MEAN,            /* the same */
    FL_GRAD_PROD,            /* iargs as sum; saved = input, output */
    FL_GRAD_AMAX,            /* amax, amin, max(), min(): as prod (ties share the gradient) */
    FL_GRAD_MAX_DIM,         /* max(dim), min(dim): saved[0] = indices; iargs = dim, keepdim, base */
    FL_GRAD_VAR,             /* iargs as sum; saved[0] = input; dargs[0] = correction */
    FL_GRAD_STD,             /* the same; saved[1] = output */
    FL_GRAD_NORM,            /* iargs as sum; saved = input, output; dargs[0] = p */
    FL_GRAD_LOGSUMEXP,       /* iargs as sum; saved = input, output */
    FL_GRAD_CUMSUM,          /* iargs[0] = dim */
    FL_GRAD_CUMPROD,         /* iargs[0] = dim; saved = input, output */
    FL_GRAD_SORT,            /* sort, topk: saved[0] = indices; iargs = dim, base */
    FL_GRAD_MATMUL,          /* matmul, mm, bmm, mv, dot: saved = a (if b needs grad), b (if a does) */
    FL_GRAD_OUTER,           /* the same */
    FL_GRAD_ADDMM,           /* inputs m, a, b; saved as matmul; dargs = beta, alpha */
    FL_GRAD_REDUCE_LAST = FL_GRAD_REDUCE_FIRST + 63,
    /* neural-network kernels (convolution, pooling, normalization, recurrent cells,
     * embedding): rules in vm/backward_nn.c */
    FL_GRAD_NN_FIRST,
    FL_GRAD_CONV = FL_GRAD_NN_FIRST,   /* conv1d, conv2d (vm/conv.c): iargs = stride, dilation, padding */
    FL_GRAD_CONV_TRANSPOSE,            /* conv_transpose2d: the same */
    FL_GRAD_MAX_POOL,                  /* vm/pool.c: saved[0] = indices; iargs = base, plane size */
    FL_GRAD_AVG_POOL,                  /* iargs = kernel, stride, padding, flags */
    FL_GRAD_ADAPTIVE_AVG_POOL,
    FL_GRAD_LSTM_CELL,                 /* vm/rnn.c: saved = activations, c, (h', c') */
    FL_GRAD_GRU_CELL,                  /* vm/rnn.c: saved = workspace, h */
    FL_GRAD_RNN_LAYER,                 /* vm/rnn.c: saved = workspace, output, hh, state0; iargs = mode, reverse */
    FL_GRAD_NN_LAST = FL_GRAD_NN_FIRST + 63,
    FL_GRAD_COUNT
} fl_grad_rule;


/* The names of all ops that record a backward rule (the registry the gradcheck spec walks). */
int fl_differentiable_ops(const char **names, int max);

#define FL_NODE_MAX_IN 3
#define FL_NODE_MAX_SAVED 4

typedef struct fl_node {
    int64_t refcount;
    fl_grad_rule rule;
    const char *name;                       /* the forward op, for messages: "mul", "exp" */
    int nin;
    struct fl_node *next[FL_NODE_MAX_IN];   /* where each input's gradient goes (NULL: none) */
    /* shapes and dtypes of the inputs, to reduce broadcast gradients back */
    int in_ndim[FL_NODE_MAX_IN];
    int64_t in_shape[FL_NODE_MAX_IN][FL_MAX_DIMS];
    fl_dtype in_dtype[FL_NODE_MAX_IN];
    fl_tensor *saved[FL_NODE_MAX_SAVED];
    uint32_t saved_version[FL_NODE_MAX_SAVED];
    int64_t iargs[4];
    double dargs[2];
    fl_tensor *leaf;                        /* FL_GRAD_ACCUMULATE only */
    bool freed;                             /* saved tensors released after backward */
    bool has_hooks;                         /* gradient hooks registered on its output */
    char *where;                            /* forward's source line (anomaly mode) */
    /* scratch for one backward pass */
    uint64_t pass;
    int64_t deps;
    fl_tensor *grad;
} fl_node;

bool fl_grad_enabled(void);
void fl_set_grad_enabled(bool on);

static inline bool fl_needs_grad(const fl_tensor *t)
{
    return t->requires_grad && fl_grad_enabled();
}

/* Marks t as a leaf requiring grad (float tensors only). */
int fl_set_requires_grad(fl_tensor *t, bool on);

/* Starts a node for `rule` over the inputs that feed it; inputs that do not require grad
 * get no edge. NULL (message set) on failure. */
fl_node *fl_node_new(fl_grad_rule rule, const char *name, int nin, const fl_tensor *const *inputs);
/* Saves a detached view of t in slot i. */
int fl_node_save(fl_node *n, int i, const fl_tensor *t);
/* Makes n the grad_fn of out (takes the caller's reference). */
void fl_node_attach(fl_node *n, fl_tensor *out);
void fl_node_release(fl_node *n);

/* Runs backward from root with initial gradient `grad` (NULL: ones, root must have one
 * element). */
int fl_backward(fl_tensor *root, const fl_tensor *grad, bool retain_graph);

/* A view of t sharing its storage, with no grad history. */
fl_tensor *fl_detach(const fl_tensor *t);

/* Anomaly mode: when on, nodes remember where their forward ran (through the callback the
 * binding installs) and backward checks every gradient for NaN/Inf. */
void fl_set_anomaly_mode(bool on);
bool fl_anomaly_mode(void);
void fl_set_where_callback(char *(*where)(void));

/* Gradient hooks live in the binding layer, keyed by the node (non-leaf tensors) or the
 * tensor (leaves). `run` may replace *grad; `forget` drops the hooks of a freed key. */
typedef struct {
    int (*run)(const void *key, fl_tensor **grad);
    void (*forget)(const void *key);
} fl_hook_callbacks;
void fl_set_hook_callbacks(const fl_hook_callbacks *cb);
void fl_hooks_forget(const void *key);

/* Each area's rules: fill grads[i] (input i's gradient, before the engine sums broadcast
 * dims and casts to the input's dtype) for inputs with an edge. */
int fl_backward_view(fl_node *n, const fl_tensor *g, fl_tensor **grads);
int fl_backward_reduce(fl_node *n, const fl_tensor *g, fl_tensor **grads);
int fl_backward_nn(fl_node *n, const fl_tensor *g, fl_tensor **grads);
/* Each area lists the ops it records (the registry the gradcheck spec walks). */
extern const char *const fl_view_grad_ops[];
extern const char *const fl_reduce_grad_ops[];
extern const char *const fl_nn_grad_ops[];

/* Backward rule dispatch (vm/backward.c): fills grads[i] for each input with an edge. */
int fl_backward_rule(fl_node *n, const fl_tensor *grad, fl_tensor **grads);
/* The fused rules of vm/loss.c. */
int fl_loss_backward(fl_node *n, const fl_tensor *g, fl_tensor **grads);
/* Sums g over the dimensions broadcast from shape (ndim, shape). */
fl_tensor *fl_sum_to_shape(const fl_tensor *g, int ndim, const int64_t *shape);

#endif
