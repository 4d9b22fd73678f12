#!/usr/bin/env python3
"""PyTorch side of bench/accuracy --controlled: the run of ../shared/peers/fashion_lenet_train.py
for one seed, with everything random written out so that Squall can replay it.

For seed s, exactly as fashion_lenet_train.py: torch.manual_seed(s), LeNet5(10) from models.py
(the data loading in between draws nothing from torch's generator), SGD lr 0.05 momentum 0.9,
a torch.Generator seeded s whose only use is one torch.randperm(60000) per epoch, batches of
128 cut from the permutation (the last one of each epoch 96), F.nll_loss (mean over the batch),
test accuracy on batches of 1000 after each epoch. Data: the training images scaled to [0, 1]
in float32 and normalised with numpy's float32 xtr.mean() and xtr.std().

With --mean M --std S the images are normalised as Squall's engine/data normalise does instead:
(x - M) / S in float64, rounded once to float32 (M and S given as float64, e.g. Squall's meanStd);
everything else is unchanged. bench/accuracy uses this as a baseline: how far PyTorch drifts from
its own run when only the rounding of the inputs changes.

usage: /usr/bin/python3 torch_controlled.py --peers DIR --seed S --out DIR [--epochs 2] [--threads 2]
                                            [--mean M --std S]
Writes into --out (raw little-endian arrays):
  init.f32    the initial parameters, model.parameters() order, each flattened row-major
  perm.i32    the permutation of each epoch, epochs x 60000
  loss.f64    the loss of every iteration, loss.item()
  grad1.f32   the parameter gradients of the first iteration
  step1.f32   the parameters after the first optimiser step
  final.f32   the parameters after training
  meta.json   torch version, mean/std, parameter names and shapes, per-epoch test accuracy, ...
"""
import argparse, json, os, sys, time
_thr = sys.argv[sys.argv.index('--threads') + 1] if '--threads' in sys.argv else '2'
os.environ.setdefault('OPENBLAS_NUM_THREADS', _thr); os.environ.setdefault('OMP_NUM_THREADS', _thr)
import numpy as np
import torch
import torch.nn.functional as F


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors]).numpy().astype('<f4')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--peers', required=True, help='directory of models.py and fashion_lenet_train.py')
    ap.add_argument('--seed', type=int, required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--lr', type=float, default=0.05)
    ap.add_argument('--mean', type=float, default=None)
    ap.add_argument('--std', type=float, default=None)
    a = ap.parse_args()
    if (a.mean is None) != (a.std is None):
        ap.error('--mean and --std go together')
    sys.path.insert(0, a.peers)
    from models import LeNet5
    from fashion_lenet_train import D, read_idx  # the reference's own reader and data directory

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr = read_idx(f'{D}/train-images-idx3-ubyte.gz').astype(np.float32) / 255.
    ytr = read_idx(f'{D}/train-labels-idx1-ubyte.gz').astype(np.int64)
    xte = read_idx(f'{D}/t10k-images-idx3-ubyte.gz').astype(np.float32) / 255.
    yte = read_idx(f'{D}/t10k-labels-idx1-ubyte.gz').astype(np.int64)
    mean, std = xtr.mean(), xtr.std()
    if a.mean is None:  # fashion_lenet_train.py: float32 statistics and arithmetic
        norm = lambda x: (x - mean) / std
    else:  # Squall's: float64 arithmetic, one rounding to float32
        norm = lambda x: ((x.astype(np.float64) - a.mean) / a.std).astype(np.float32)
    xtr = torch.from_numpy(norm(xtr)).unsqueeze(1); ytr = torch.from_numpy(ytr)
    xte = torch.from_numpy(norm(xte)).unsqueeze(1); yte = torch.from_numpy(yte)

    model = LeNet5(10)
    params = list(model.parameters())
    os.makedirs(a.out, exist_ok=True)
    flat(params).tofile(os.path.join(a.out, 'init.f32'))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    g = torch.Generator().manual_seed(a.seed)

    losses, perms, hist = [], [], []
    t0 = time.perf_counter()
    for ep in range(1, a.epochs + 1):
        model.train()
        perm = torch.randperm(xtr.shape[0], generator=g)
        perms.append(perm.numpy().astype('<i4'))
        for i in range(0, xtr.shape[0], a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad(set_to_none=True)
            loss = F.nll_loss(model(xtr[idx]), ytr[idx])
            loss.backward()
            if not losses:
                flat([p.grad for p in params]).tofile(os.path.join(a.out, 'grad1.f32'))
            opt.step()
            if not losses:
                flat(params).tofile(os.path.join(a.out, 'step1.f32'))
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(xte[i:i + 1000]).argmax(1) for i in range(0, xte.shape[0], 1000)])
        hist.append(dict(epoch=ep, test_acc=(pred == yte).float().mean().item()))
    seconds = time.perf_counter() - t0

    flat(params).tofile(os.path.join(a.out, 'final.f32'))
    np.concatenate(perms).tofile(os.path.join(a.out, 'perm.i32'))
    np.asarray(losses, dtype='<f8').tofile(os.path.join(a.out, 'loss.f64'))
    with open(os.path.join(a.out, 'meta.json'), 'w') as f:
        json.dump(dict(
            torch=torch.__version__, seed=a.seed, epochs=a.epochs, threads=a.threads, batch=a.batch, lr=a.lr,
            train=int(xtr.shape[0]), iterations=len(losses),
            mean=float(mean), std=float(std), meanDtype=str(mean.dtype), stdDtype=str(std.dtype),
            normalisedWith=None if a.mean is None else dict(mean=a.mean, std=a.std),
            paramNames=[n for n, _ in model.named_parameters()], paramShapes=[list(p.shape) for p in params],
            hist=hist, seconds=seconds), f)


if __name__ == '__main__':
    main()
