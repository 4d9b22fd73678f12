// Squall's side of bench/train's paired measurement: one model, backend, mode and thread
// count, kept warm in one process and stepped on request (the protocol of torch_stepper.py):
//   node dist/bench/train/squall_stepper.js '{"model":"lenet5","backend":"native","threads":2,"mode":"train"}'
// The step is the one torch_train_bench.py times: synthetic data, forward + NLL loss +
// backward + SGD momentum step (train), or an evaluation-mode forward (infer). Three warm-up
// steps and a {"ready":true,...} line; then per stdin line "<n>" it runs n steps and answers
// {"times":[seconds per step]}; "quit" (or the end of stdin) ends it.
import { createInterface } from 'node:readline';
import { loadBackend } from '../../engine/backends/registry.js';
import { syntheticBatch } from '../../engine/data/index.js';
import { modelSpec } from '../../engine/models/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';

interface Request { model: string; backend: string; threads: number; mode: 'train' | 'infer'; batch?: number }

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

for (let i = 0; i < 3; i++) await step();
console.log(JSON.stringify({ ready: true, batch, blas: be.info().blas, params: model.parameterCount() }));
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'quit') break;
  const times: number[] = [];
  for (let i = Number(line); i > 0; i--) {
    const t = performance.now();
    await step();
    times.push((performance.now() - t) / 1000);
  }
  console.log(JSON.stringify({ times }));
}
// The wasm backend's worker threads would keep the process alive.
process.exit(0);
