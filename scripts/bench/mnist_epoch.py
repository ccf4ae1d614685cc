# mnist_epoch.py: PyTorch's side of mnist_epoch (see mnist_epoch.lua): one shuffled epoch of
# 60,000 synthetic samples, batch 128, the mlp_train model and optimizer; batches gathered
# by index from a fresh permutation (faster than a DataLoader, which collates sample by
# sample). Prints seconds per epoch.
import os
import statistics

import benchlib
import torch
from torch import nn

SAMPLES, BATCH = 60000, 128
torch.manual_seed(0)
X = torch.rand(SAMPLES, 784) * 2 - 1
Y = torch.randint(0, 10, (SAMPLES,))
model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()


def epoch(batches=None):
    perm = torch.randperm(SAMPLES)
    for k, start in enumerate(range(0, SAMPLES, BATCH)):
        if batches is not None and k >= batches:
            break
        idx = perm[start:start + BATCH]
        opt.zero_grad()
        loss = loss_fn(model(X[idx]), Y[idx])
        loss.backward()
        opt.step()


epoch(20)
runs = []
for _ in range(int(os.environ.get('EPOCHS', 1))):
    t0 = benchlib.clock()
    epoch()
    runs.append(benchlib.clock() - t0)
benchlib.report('mnist_epoch', statistics.median(runs), 's')
