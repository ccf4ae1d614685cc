# add_large.py: PyTorch's side of add_large: c = a + b on 16M-element float32 tensors, a new
# result each time; also the in-place a.add_(b). Prints milliseconds per add.
import benchlib
import torch

n = 16 << 20
torch.manual_seed(0)
a, b = torch.randn(n), torch.randn(n)


def body(iters):
    for _ in range(iters):
        c = a + b
    return c


def body_inplace(iters):
    for _ in range(iters):
        a.add_(b)


benchlib.report('add_large', benchlib.time(body, iters=10, repeats=5) * 1e3, 'ms')
benchlib.report('add_large:inplace', benchlib.time(body_inplace, iters=10, repeats=5) * 1e3, 'ms')
