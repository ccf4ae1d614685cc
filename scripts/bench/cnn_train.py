# cnn_train.py: PyTorch's side of cnn_train (see cnn_train.lua): two conv-relu-pool blocks
# and two linear layers on one fixed batch (64, 1, 28, 28), cross-entropy, Adam lr 1e-3.
# Prints steps/s. `cnn_train.py gpu`: the GPU variant (batch 512 on cuda, cuDNN autotuned
# as for a fixed shape; PyTorch's other defaults kept), or "cnn_train_gpu unavailable".
import sys

import benchlib
import torch
from torch import nn

gpu = sys.argv[1:2] == ['gpu']
case = 'cnn_train_gpu' if gpu else 'cnn_train'
if gpu and not torch.cuda.is_available():
    print(case + ' unavailable', flush=True)
    sys.exit(0)
device = 'cuda' if gpu else 'cpu'
batch = 512 if gpu else 64
if gpu:
    torch.backends.cudnn.benchmark = True

torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
).to(device)
X = torch.randn(batch, 1, 28, 28, device=device)
y = torch.randint(0, 10, (batch,), device=device)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()


def body(n):
    for _ in range(n):
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
    if gpu:
        torch.cuda.synchronize()


s = benchlib.time(body, iters=20 if gpu else 5, repeats=5)
benchlib.report(case, 1 / s, 'steps/s')
