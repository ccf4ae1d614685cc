# tiny_add.py: PyTorch's side of tiny_add: c = a + b on 4-element float32 tensors,
# 100,000 iterations per timed run; tiny_add_grad: the same with `a` requiring grad.
# Prints microseconds per op.
import benchlib
import torch


def time_add(a, b):
    def body(n):
        for _ in range(n):
            c = a + b
        return c

    return benchlib.time(body, iters=100000, repeats=7)


torch.manual_seed(0)
a, b = torch.randn(4), torch.randn(4)
benchlib.report('tiny_add', time_add(a, b) * 1e6, 'us')
benchlib.report('tiny_add_grad', time_add(torch.randn(4).requires_grad_(), b) * 1e6, 'us')
