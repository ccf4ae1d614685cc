# matmul_grad.py: PyTorch's side of matmul_grad (see matmul_grad.lua): torch.mm on 1024x1024
# float32, plain and with A requiring grad, timed in alternation. Prints ms per product.
import statistics

import benchlib
import torch

n = 1024
torch.manual_seed(0)
a, b = torch.randn(n, n), torch.randn(n, n)
ag = a.detach().requires_grad_()


def time(x, iters):
    t0 = benchlib.clock()
    for _ in range(iters):
        torch.mm(x, b)
    return (benchlib.clock() - t0) / iters


plain, grad = [], []
time(a, 3)
time(ag, 3)
for _ in range(7):
    plain.append(time(a, 10))
    grad.append(time(ag, 10))
benchlib.report('matmul_grad:plain', statistics.median(plain) * 1e3, 'ms')
benchlib.report('matmul_grad:requires_grad', statistics.median(grad) * 1e3, 'ms')
