# rnn_train.py: PyTorch's side of lstm_train and gru_train (see rnn_train.lua): Embedding(65,64)
# → one-layer LSTM or GRU (64→256, batch-first) → Linear(256,65) on every step, batch 32,
# sequence 64, one fixed batch, cross-entropy over all 2048 positions, Adam lr 1e-3. Prints
# steps/s and tokens/s for each cell type named on the command line (default lstm gru).
import os
import sys

import benchlib
import torch
from torch import nn

V, E, H, N, T = 65, 64, 256, 32, 64


def run(kind):
    torch.manual_seed(0)
    emb = nn.Embedding(V, E)
    rnn = (nn.LSTM if kind == 'lstm' else nn.GRU)(E, H, batch_first=True)
    head = nn.Linear(H, V)
    params = list(emb.parameters()) + list(rnn.parameters()) + list(head.parameters())
    tokens = torch.randint(0, V, (N, T + 1))
    inputs, targets = tokens[:, :T], tokens[:, 1:].reshape(N * T)
    opt = torch.optim.Adam(params, lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def body(iters):
        for _ in range(iters):
            opt.zero_grad()
            out, _ = rnn(emb(inputs))   # zero initial state
            loss = loss_fn(head(out).reshape(N * T, V), targets)
            loss.backward()
            opt.step()

    s = benchlib.time(body, iters=int(os.environ.get('BENCH_RNN_ITERS', 3)), repeats=5)
    benchlib.report(kind + '_train', 1 / s, 'steps/s')
    benchlib.report(kind + '_train:tokens', N * T / s, 'tokens/s')


for kind in sys.argv[1:] or ['lstm', 'gru']:
    run(kind)
