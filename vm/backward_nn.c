/* backward_nn.c: derivative rules of the neural-network kernels (vm/conv.c, vm/pool.c and
 * friends), written with the engine's own ops or their own backward kernels. */
#include "autograd.h"

const char *const fl_nn_grad_ops[] = {NULL};

int fl_backward_nn(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    (void)g;
    (void)grads;
    fl_error("no backward rule for '%s'", n->name);
    return -1;
}
