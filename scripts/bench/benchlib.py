# benchlib.py: what the PyTorch side of every benchmark shares: the common settings
# (2 threads), a timer that warms up, repeats and reports the median, and "<case> <value>
# <unit>" result lines that run.sh pairs with flare's (the same as benchlib.lua).
import statistics
import time as _time

import torch

torch.set_num_threads(2)
clock = _time.perf_counter


def time(body, iters=None, repeats=5, min_s=0.2):
    """Seconds per iteration of body(iters): median of `repeats` runs after a warm-up."""
    if iters is None:
        iters = 1
        while True:
            t0 = clock()
            body(iters)
            if clock() - t0 >= min_s / 4 or iters >= 1 << 30:
                break
            iters *= 2
        iters *= 4
    body(iters)
    runs = []
    for _ in range(repeats):
        t0 = clock()
        body(iters)
        runs.append((clock() - t0) / iters)
    return statistics.median(runs)


def report(case, value, unit):
    print('%s %.6g %s' % (case, value, unit), flush=True)
