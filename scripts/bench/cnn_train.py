# cnn_train.py: PyTorch's side of cnn_train (see cnn_train.lua): two conv-relu-pool blocks
# and two linear layers on one fixed batch (64, 1, 28, 28), cross-entropy, Adam lr 1e-3.
# Prints steps/s.
import benchlib
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
)
X = torch.randn(64, 1, 28, 28)
y = torch.randint(0, 10, (64,))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()


def body(n):
    for _ in range(n):
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()


s = benchlib.time(body, iters=5, repeats=5)
benchlib.report('cnn_train', 1 / s, 'steps/s')
