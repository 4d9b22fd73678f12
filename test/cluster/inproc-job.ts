// The job of the in-process driver tests (driver.test.ts, aggregate.test.ts): LeNet-5 on 300
// synthetic images, global batch 64, SGD with momentum, driver and workers on one in-process
// mesh; and the one-process training with the same global batches that it must end equal
// to (the oracle).
import type { BackendName } from '../../engine/backends/backend.js';
import { loadBackend } from '../../engine/backends/registry.js';
import type { InProcessJobOptions } from '../../engine/cluster/inproc.js';
import { syntheticDataset, type Dataset } from '../../engine/data/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';
import { train } from '../../engine/train/index.js';

export const B = 64;
export const SEED = 7;
export const data: Dataset = syntheticDataset({ length: 300, shape: [1, 28, 28], classes: 10, seed: 11, separation: 1 });

const refs = new Map<string, { weights: Float32Array; losses: number[] }>();

/** Weights and per-iteration losses of one process after `iterations` iterations on `backend`. */
export async function reference(backend: BackendName, iterations: number): Promise<{ weights: Float32Array; losses: number[] }> {
  const key = `${backend}:${iterations}`;
  const have = refs.get(key);
  if (have) return have;
  const b = loadBackend(backend);
  const model = lenet5().reset(SEED).to(b);
  const losses: number[] = [];
  await train({
    model, criterion: new ClassNLLCriterion(),
    optimizer: new SGD(b, model.flatParameters().length, { lr: 0.05, momentum: 0.9, alloc: (k) => b.allocFloat32(k), free: (a) => b.free(a) }),
    train: data, epochs: Math.ceil(iterations / 5), batchSize: B, seed: SEED, progress: null, maxIterations: iterations,
    onIteration: (i) => losses.push(i.loss),
  });
  const r = { weights: model.flatParameters().values.slice(), losses };
  model.dispose();
  refs.set(key, r);
  return r;
}

/** Options of the test job (group mode, G=3, 7 iterations unless overridden). */
export function job(o: Partial<InProcessJobOptions> & { backends: BackendName[] }): InProcessJobOptions {
  return {
    model: { name: 'lenet5' }, seed: SEED, data: { dataset: 'synthetic', seed: SEED, test: false }, batchSize: B,
    optimizer: { name: 'sgd', hyper: { lr: 0.05, momentum: 0.9 } }, schedule: 'group', groupSize: 3, epochs: 2, maxIterations: 7,
    collectWeights: true, progress: null, loadData: () => ({ train: data }), ...o,
  };
}
