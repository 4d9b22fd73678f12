#!/usr/bin/env python3
"""PyTorch's side of bench/train's paired measurement: one model, mode and thread count,
kept warm in one process and stepped on request, so that Squall and PyTorch can take turns
on the machine (bench/train/run.ts).

The step is ../shared/peers/torch_train_bench.py's, unchanged: torch.manual_seed(0), the
models.py model, x = randn(batch, *shape), y = randint(classes); train = zero_grad,
nll_loss(model(x), y), backward, SGD(lr 0.01, momentum 0.9).step(); infer = eval-mode
forward under no_grad. Three warm-up steps, then one line per request on stdin:
  "<n>"   run n steps; answer {"times": [seconds per step]} on stdout
  "quit"  exit
usage: /usr/bin/python3 torch_stepper.py --model M --threads T --mode train|infer
"""
import argparse, json, os, sys, time
# As torch_train_bench.py: Debian's OpenBLAS has its own thread pool; pin it (and OpenMP)
# to --threads before torch is imported.
_thr = sys.argv[sys.argv.index('--threads') + 1] if '--threads' in sys.argv else '1'
os.environ.setdefault('OPENBLAS_NUM_THREADS', _thr)
os.environ.setdefault('OMP_NUM_THREADS', _thr)
import torch
import torch.nn.functional as F
sys.path.insert(0, os.environ.get('SQUALL_PEERS_DIR', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'peers')))
from models import MODELS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True, choices=list(MODELS))
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--mode', required=True, choices=['train', 'infer'])
    ap.add_argument('--batch', type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ctor, shape, ncls, dbatch = MODELS[a.model]
    bs = a.batch or dbatch
    model = ctor()
    x = torch.randn(bs, *shape)
    y = torch.randint(0, ncls, (bs,))
    if a.mode == 'train':
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.nll_loss(model(x), y)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
    for _ in range(3):
        step()
    print(json.dumps(dict(ready=True, batch=bs, torch=torch.__version__)), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if line == 'quit':
            break
        times = []
        for _ in range(int(line)):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        print(json.dumps(dict(times=times)), flush=True)


if __name__ == '__main__':
    main()
