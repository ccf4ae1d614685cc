/* backward_view.c: derivative rules of the views, movement and indexing ops (vm/view.c,
 * vm/index.c), written with the engine's own ops. */
#include "autograd.h"

const char *const fl_view_grad_ops[] = {NULL};

int fl_backward_view(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    (void)g;
    (void)grads;
    fl_error("no backward rule for '%s'", n->name);
    return -1;
}
