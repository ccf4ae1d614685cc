# rnn_train.py: PyTorch's side of lstm_train and gru_train (see rnn_train.lua): Embedding(65,64)
# → one-layer LSTM or GRU (64→256, batch-first) → Linear(256,65) on every step, batch 32,
# sequence 64, one fixed batch, cross-entropy over all 2048 positions, Adam lr 1e-3. Prints
# steps/s and tokens/s for each cell type named on the command line (default lstm gru).
# `rnn_train.py gpu [lstm ...]`: the GPU variant (batch 256 on cuda, cuDNN's RNN; default
# lstm), or "lstm_train_gpu unavailable" when torch sees no GPU.
import os
import sys

import benchlib
import torch
from torch import nn

args = sys.argv[1:]
gpu = args[:1] == ['gpu']
if gpu:
    args = args[1:]
device = 'cuda' if gpu else 'cpu'
V, E, H, N, T = 65, 64, 256, 256 if gpu else 32, 64


def run(kind):
    case = kind + '_train' + ('_gpu' if gpu else '')
    if gpu and not torch.cuda.is_available():
        print(case + ' unavailable', flush=True)
        return
    torch.manual_seed(0)
    emb = nn.Embedding(V, E).to(device)
    rnn = (nn.LSTM if kind == 'lstm' else nn.GRU)(E, H, batch_first=True).to(device)
    head = nn.Linear(H, V).to(device)
    params = list(emb.parameters()) + list(rnn.parameters()) + list(head.parameters())
    tokens = torch.randint(0, V, (N, T + 1), device=device)
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
        if gpu:
            torch.cuda.synchronize()

    iters = int(os.environ.get('BENCH_RNN_ITERS', 10 if gpu else 3))
    s = benchlib.time(body, iters=iters, repeats=5)
    benchlib.report(case, 1 / s, 'steps/s')
    benchlib.report(case + ':tokens', N * T / s, 'tokens/s')


for kind in args or (['lstm'] if gpu else ['lstm', 'gru']):
    run(kind)
