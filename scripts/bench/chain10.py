# chain10.py: PyTorch's side of chain10 (see chain10.lua): ten scalar ops with autograd,
# backward, gradients reset; 20,000 iterations per timed run. Prints microseconds per op.
import statistics

import benchlib
import torch

ITERS = 20000
x = torch.tensor([0.5], requires_grad=True)
w = torch.tensor([1.5], requires_grad=True)
b = torch.tensor([-0.3], requires_grad=True)


def body(n):
    for _ in range(n):
        t1 = x * w
        t2 = t1 + b
        t3 = t2.tanh()
        t4 = t3 * t3
        t5 = t4 - x
        t6 = t5.sigmoid()
        t7 = t6 * w
        t8 = t7.exp()
        t9 = t8 + t1
        y = t9 * t9
        y.backward()
        x.grad = w.grad = b.grad = None


# a short warm-up, then the median of 3 timed runs (each takes seconds)
body(ITERS // 10)
runs = []
for _ in range(3):
    t0 = benchlib.clock()
    body(ITERS)
    runs.append((benchlib.clock() - t0) / ITERS)
s = statistics.median(runs)
benchlib.report('chain10', s / 10 * 1e6, 'us')
