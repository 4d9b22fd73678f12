"""PyTorch oracle for the tests of engine/models (test/models/*.test.ts).

Run with Debian's Python, which sees python3-torch: /usr/bin/python3 torch_oracle.py ...
The reference model definitions come from models.py in the peers directory
(--peers DIR, default ../shared/peers beside the repository).

  probe                 prints {"torch": version, "numpy": version}; fails when torch or models.py cannot be imported
  shapes                prints, for each model of models.MODELS that Squall has (lenet5, vgg_cifar,
                        inception_v1, vgg16): its input shape, classes and batch, parameter count,
                        ordered parameter names and shapes, buffer names and shapes (BatchNorm's
                        running statistics) and the shape of model(torch.zeros(2, *input)) in eval mode
  run DIR               reads DIR/job.json and DIR/in.f32 (raw float32 little-endian), runs every task
                        in float64, writes DIR/out.json and DIR/out.f64 (raw float64 little-endian)

A task of `run`:
  {"name", "model": "lenet5" | "vgg_cifar" | "inception_block" | "inception_stem", "args": [...],
   "params": [{"offset", "shape"}...]   values in the model's parameters() order,
   "buffers": [{"offset", "shape"}...]  running_mean / running_var of each BatchNorm in module order,
   "input": {"offset", "shape"}, "mode": "eval" | "train_nll", "target": [class...] (train_nll),
   "layers": true to record the output of every child of a top-level nn.Sequential}
Offsets and sizes count elements. Its result:
  {"output": {"offset", "shape"}, "layers": [{"offset", "shape"}...], "loss",
   "grads": {"offset", "size"} (parameter gradients concatenated in parameters() order),
   "gradInput": {"offset", "shape"}}  or  {"error": message}.
"""
import argparse
import json
import os
import sys
import traceback


def load_models(peers):
    sys.path.insert(0, peers)
    import torch  # noqa: F401
    import models
    return models


SQUALL_MODELS = ['lenet5', 'vgg_cifar', 'inception_v1', 'vgg16']


def cmd_probe(models):
    import numpy
    import torch
    print(json.dumps({'torch': torch.__version__, 'numpy': numpy.__version__, 'models': models.__file__}))


def pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def layout(m, models):
    """A canonical description of a module tree, matched by layoutOf() in test/models/oracle.ts."""
    import torch.nn as nn
    if isinstance(m, nn.Sequential):
        return ['Sequential', [layout(c, models) for c in m]]
    if isinstance(m, models.InceptionV1Layer):
        return ['Concat', 1, [layout(b, models) for b in (m.b1, m.b3, m.b5, m.bp)]]
    if isinstance(m, nn.Conv2d):
        return ['Conv', m.in_channels, m.out_channels, *pair(m.kernel_size), *pair(m.stride), *pair(m.padding),
                *pair(m.dilation), m.groups, m.bias is not None]
    if isinstance(m, nn.Linear):
        return ['Linear', m.in_features, m.out_features, m.bias is not None]
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return ['BN1d' if isinstance(m, nn.BatchNorm1d) else 'BN2d', m.num_features, m.eps, m.momentum, m.affine]
    if isinstance(m, nn.MaxPool2d):
        if pair(m.dilation) != [1, 1]:
            raise ValueError('dilated max pool')
        return ['MaxPool', *pair(m.kernel_size), *pair(m.stride if m.stride is not None else m.kernel_size), *pair(m.padding), bool(m.ceil_mode)]
    if isinstance(m, nn.AvgPool2d):
        if m.divisor_override is not None:
            raise ValueError('avg pool with divisor_override')
        return ['AvgPool', *pair(m.kernel_size), *pair(m.stride if m.stride is not None else m.kernel_size), *pair(m.padding),
                bool(m.ceil_mode), bool(m.count_include_pad)]
    if isinstance(m, nn.LocalResponseNorm):
        return ['LRN', m.size, m.alpha, m.beta, m.k]
    if isinstance(m, nn.Dropout):
        return ['Dropout', m.p]
    if isinstance(m, nn.Flatten):
        if (m.start_dim, m.end_dim) != (1, -1):
            raise ValueError('flatten of other dims')
        return ['Flatten']
    if isinstance(m, nn.LogSoftmax):
        return ['LogSoftMax', m.dim]
    if isinstance(m, (nn.ReLU, nn.Tanh)):
        return [type(m).__name__]
    raise ValueError(f'no canonical layout for {type(m).__name__}')


def cmd_shapes(models):
    import torch
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    import torch.nn.init as init
    out = {}
    for name in SQUALL_MODELS:
        ctor, shape, classes, batch = models.MODELS[name]
        # Only shapes matter here: skip the random initialisation (about 1 s for VGG-16's 138M values)
        saved = init.kaiming_uniform_, init.uniform_
        init.kaiming_uniform_ = init.uniform_ = lambda t, *a, **k: t.detach().zero_()
        try:
            m = ctor()
        finally:
            init.kaiming_uniform_, init.uniform_ = saved
        m.eval()
        with torch.no_grad():
            y = m(torch.zeros(2, *shape))
        named = list(m.named_parameters())
        bufs = [(n, b) for n, b in m.named_buffers() if not n.endswith('num_batches_tracked')]
        out[name] = {
            'input': list(shape), 'classes': classes, 'batch': batch,
            'paramCount': sum(p.numel() for _, p in named),
            'paramNames': [n for n, _ in named],
            'paramShapes': [list(p.shape) for _, p in named],
            'bufferNames': [n for n, _ in bufs],
            'bufferShapes': [list(b.shape) for _, b in bufs],
            'outputShape': list(y.shape),
            # LeNet5 is a custom nn.Module whose forward uses functional ops: no layout to compare
            'layout': layout(m, models) if isinstance(m, torch.nn.Sequential) else None,
        }
        del m, y
    print(json.dumps(out))


def build(models, task):
    import torch.nn as nn
    kind = task['model']
    if kind == 'lenet5':
        return models.LeNet5(*task.get('args', []))
    if kind == 'vgg_cifar':
        return models.vgg_cifar(*task.get('args', []))
    if kind == 'inception_block':
        return models.InceptionV1Layer(*task['args'])
    if kind == 'inception_stem':
        # conv 7x7 s2 + ReLU + ceil max pool + LRN(5, 1e-4, 0.75): the first four layers of inception_v1
        stem = models.inception_v1(1000)[:4]
        kinds = [type(m) for m in stem]
        if kinds != [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.LocalResponseNorm]:
            raise ValueError(f'inception_v1 stem is {kinds}')
        return stem
    raise ValueError(f'unknown model {kind!r}')


def run_task(models, task, inp, out_chunks, out_len):
    import numpy as np
    import torch
    import torch.nn.functional as F

    def take(spec):
        n = 1
        for d in spec['shape']:
            n *= d
        a = inp[spec['offset']:spec['offset'] + n]
        if a.size != n:
            raise ValueError(f'input file too short for {spec}')
        return torch.from_numpy(a.astype(np.float64)).reshape(spec['shape'])

    def put(t):
        a = t.detach().to(torch.float64).contiguous().numpy().ravel()
        off = out_len[0]
        out_chunks.append(a)
        out_len[0] += a.size
        return off

    model = build(models, task).double()
    params = list(model.parameters())
    if len(params) != len(task['params']):
        raise ValueError(f'{task["name"]}: torch model has {len(params)} parameters, Squall sent {len(task["params"])}')
    bufs = [b for n, b in model.named_buffers() if not n.endswith('num_batches_tracked')]
    if len(bufs) != len(task.get('buffers', [])):
        raise ValueError(f'{task["name"]}: torch model has {len(bufs)} buffers, Squall sent {len(task.get("buffers", []))}')
    with torch.no_grad():
        for i, (p, spec) in enumerate(zip(params, task['params'])):
            if list(p.shape) != list(spec['shape']):
                raise ValueError(f'{task["name"]}: parameter {i} has shape {list(p.shape)} in torch, {spec["shape"]} in Squall')
            p.copy_(take(spec))
        for i, (b, spec) in enumerate(zip(bufs, task.get('buffers', []))):
            if list(b.shape) != list(spec['shape']):
                raise ValueError(f'{task["name"]}: buffer {i} has shape {list(b.shape)} in torch, {spec["shape"]} in Squall')
            b.copy_(take(spec))

    x = take(task['input'])
    layers = []
    if task.get('layers'):
        if not isinstance(model, torch.nn.Sequential):
            raise ValueError(f'{task["name"]}: layers needs a top-level nn.Sequential')
        for child in model:
            child.register_forward_hook(lambda m, i, o: layers.append(o.detach().clone()))

    res = {}
    if task['mode'] == 'eval':
        model.eval()
        with torch.no_grad():
            y = model(x)
    elif task['mode'] == 'train_nll':
        model.train()
        x.requires_grad_(True)
        y = model(x)
        loss = F.nll_loss(y, torch.tensor(task['target'], dtype=torch.long))
        loss.backward()
        res['loss'] = loss.item()
        g = torch.cat([p.grad.reshape(-1) for p in params])
        res['grads'] = {'offset': put(g), 'size': g.numel()}
        res['gradInput'] = {'offset': put(x.grad), 'shape': list(x.grad.shape)}
    else:
        raise ValueError(f'unknown mode {task["mode"]!r}')
    res['output'] = {'offset': put(y), 'shape': list(y.shape)}
    res['layers'] = [{'offset': put(o), 'shape': list(o.shape)} for o in layers]
    return res


def cmd_run(models, d):
    import numpy as np
    import torch
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    with open(os.path.join(d, 'job.json')) as f:
        job = json.load(f)
    inp = np.fromfile(os.path.join(d, 'in.f32'), dtype='<f4')
    chunks, length = [], [0]
    results = {}
    for task in job['tasks']:
        try:
            results[task['name']] = run_task(models, task, inp, chunks, length)
        except Exception as e:  # reported per task, so the other tasks still give their answers
            results[task['name']] = {'error': f'{type(e).__name__}: {e}\n{traceback.format_exc()}'}
    (np.concatenate(chunks) if chunks else np.zeros(0)).astype('<f8').tofile(os.path.join(d, 'out.f64'))
    with open(os.path.join(d, 'out.json'), 'w') as f:
        json.dump({'torch': torch.__version__, 'dtype': 'float64', 'results': results}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--peers', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'peers'))
    ap.add_argument('command', choices=['probe', 'shapes', 'run'])
    ap.add_argument('dir', nargs='?')
    a = ap.parse_args()
    try:
        models = load_models(a.peers)
        import numpy  # noqa: F401
    except ImportError as e:  # exit status 3: the tests skip with this reason
        print(f'{sys.executable} cannot import torch, numpy or models.py (from {os.path.abspath(a.peers)}): {e}', file=sys.stderr)
        sys.exit(3)
    if a.command == 'probe':
        cmd_probe(models)
    elif a.command == 'shapes':
        cmd_shapes(models)
    else:
        if not a.dir:
            ap.error('run needs a directory')
        cmd_run(models, a.dir)


if __name__ == '__main__':
    main()
