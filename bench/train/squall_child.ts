// One Squall training or inference throughput measurement, in its own process (so each
// backend, thread count and model starts clean):
//   node dist/bench/train/squall_child.js '{"model":"lenet5","backend":"native","threads":2,"mode":"train"}'
// Prints one JSON line. Same protocol as torch_train_bench.py: synthetic data, forward +
// NLL loss + backward + SGD momentum step (train) or an evaluation-mode forward (infer),
// after warm-up, median over timed iterations within a time budget.
import { loadBackend } from '../../engine/backends/registry.js';
import { syntheticBatch } from '../../engine/data/index.js';
import { modelSpec } from '../../engine/models/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';
import { median } from '../common.js';

interface Request { model: string; backend: string; threads: number; mode: 'train' | 'infer'; batch?: number; iters?: number; warmup?: number; budget?: number }

const r = JSON.parse(process.argv[2] ?? '{}') as Request;
const spec = modelSpec(r.model);
const batch = r.batch ?? spec.batch;
const be = loadBackend(r.backend);
be.setThreads(r.threads);
const model = spec.build(spec.classes).reset(1).to(be);
const data = syntheticBatch({ batchSize: batch, shape: spec.input, classes: spec.classes, seed: 2 });
const criterion = new ClassNLLCriterion();
const flat = model.flatParameters();
const opt = new SGD(be, flat.length, { lr: 0.01, momentum: 0.9, alloc: (n) => be.allocFloat32(n), free: (a) => be.free(a) });

const step = r.mode === 'train'
  ? async (): Promise<void> => {
    model.zeroGradParameters();
    const out = await model.forward(data.input);
    criterion.forward(out, data.target);
    await model.backwardParameters(data.input, criterion.backward(out, data.target));
    opt.step(flat.values, flat.grads);
  }
  : async (): Promise<void> => {
    await model.forward(data.input);
  };
if (r.mode === 'infer') model.evaluate();

const iters = r.iters ?? 20;
const budget = (r.budget ?? 25) * 1000;
for (let i = 0; i < (r.warmup ?? 3); i++) await step();
const times: number[] = [];
const t0 = performance.now();
while (times.length < iters && (times.length < 3 || performance.now() - t0 < budget)) {
  const t = performance.now();
  await step();
  times.push((performance.now() - t) / 1000);
}
const med = median(times);
console.log(JSON.stringify({ model: r.model, backend: r.backend, threads: r.threads, mode: r.mode, batch, n: times.length, medianSeconds: med,
  imgPerSec: batch / med, imgPerSecBest: batch / Math.min(...times), blas: be.info().blas, params: model.parameterCount() }));
