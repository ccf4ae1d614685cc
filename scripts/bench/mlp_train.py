# mlp_train.py: PyTorch's side of mlp_train (see mlp_train.lua): the three-layer perceptron on
# one fixed batch, cross-entropy, SGD lr 0.01 momentum 0.9. Prints steps/s and the peak
# resident memory of the process (MiB).
import benchlib
import torch
from torch import nn


def peak_rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return None


torch.manual_seed(0)
model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
X = torch.randn(128, 784)
y = torch.randint(0, 10, (128,))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()


def body(n):
    for _ in range(n):
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()


s = benchlib.time(body, repeats=5, min_s=0.3)
benchlib.report('mlp_train', 1 / s, 'steps/s')
rss = peak_rss_mib()
if rss is not None:
    benchlib.report('mlp_train:rss', rss, 'MiB')
