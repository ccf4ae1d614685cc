/* backward_nn.c: derivative rules of the neural-network kernels (vm/conv.c, vm/pool.c and
 * friends), written with the engine's own ops or their own backward kernels. */
#include "autograd.h"
#include "nn.h"
#include "rnn.h"

const char *const fl_nn_grad_ops[] = {
    "conv1d", "conv2d", "conv_transpose2d",
    "max_pool1d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "fused_lstm_cell", "fused_gru_cell", "fused_rnn_layer",
    NULL,
};

int fl_backward_nn(fl_node *n, const fl_tensor *g, fl_tensor **grads)
{
    switch (n->rule) {
    case FL_GRAD_CONV:
    case FL_GRAD_CONV_TRANSPOSE:
        return fl_conv_backward(n, g, grads);
    case FL_GRAD_MAX_POOL:
    case FL_GRAD_AVG_POOL:
    case FL_GRAD_ADAPTIVE_AVG_POOL:
        return fl_pool_backward(n, g, grads);
    case FL_GRAD_LSTM_CELL:
    case FL_GRAD_GRU_CELL:
    case FL_GRAD_RNN_LAYER:
        return fl_rnn_backward(n, g, grads);
    default:
        fl_error("no backward rule for '%s'", n->name);
        return -1;
    }
}
