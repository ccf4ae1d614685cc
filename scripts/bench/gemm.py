# gemm.py: PyTorch's side of gemm: torch.mm on square float32 matrices. Prints GFLOP/s.
import sys

import benchlib
import torch

for n in [int(x) for x in sys.argv[1:]] or [256, 1024, 2048]:
    torch.manual_seed(0)
    a, b = torch.randn(n, n), torch.randn(n, n)

    def body(iters):
        for _ in range(iters):
            c = torch.mm(a, b)
        return c

    s = benchlib.time(body, repeats=5, min_s=0.2)
    benchlib.report('gemm:n=%d' % n, 2 * n ** 3 / s / 1e9, 'gflops')
