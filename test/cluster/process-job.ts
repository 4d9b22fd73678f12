// The job of the worker-process tests (processes.test.ts over TCP, webrtc.test.ts over
// WebRTC): LeNet-5 on 320 synthetic images, global batch 64, SGD; the one-process training
// it must end equal to (the oracle), and launchLocal options with every worker's output kept
// and shown when a test fails.
import type { BackendName } from '../../engine/backends/backend.js';
import { loadBackend } from '../../engine/backends/registry.js';
import { loadJobData } from '../../engine/cluster/job.js';
import type { LocalLaunchOptions } from '../../engine/cluster/launch.js';
import { MODELS, lenet5 } from '../../engine/models/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';
import { train } from '../../engine/train/index.js';
import t from 'tap';

export const B = 64;
export const SEED = 5;
export const SIZE = 320;
export const LR = 0.05;
export const MOMENTUM = 0.9;

let data: ReturnType<typeof loadJobData>['train'] | undefined;
const refs = new Map<string, Float32Array>();

/** The weights after `iterations` iterations of one process on `backend` with the same global batch. */
export async function reference(backend: BackendName, iterations: number): Promise<Float32Array> {
  const key = `${backend}:${iterations}`;
  if (refs.has(key)) return refs.get(key)!;
  data ??= loadJobData({ dataset: 'synthetic', syntheticSize: SIZE, seed: SEED, test: false }, MODELS.lenet5!, B).train;
  const b = loadBackend(backend);
  const model = lenet5().reset(SEED).to(b);
  await train({
    model, criterion: new ClassNLLCriterion(),
    optimizer: new SGD(b, model.flatParameters().length, { lr: LR, momentum: MOMENTUM, alloc: (k) => b.allocFloat32(k), free: (a) => b.free(a) }),
    train: data, epochs: Math.ceil(iterations / 5), batchSize: B, seed: SEED, progress: null, maxIterations: iterations,
  });
  const w = model.flatParameters().values.slice();
  model.dispose();
  refs.set(key, w);
  return w;
}

const output: string[] = [];

/** launchLocal options of the test job (group mode, G=3, 8 iterations unless overridden). */
export function job(o: Partial<LocalLaunchOptions> & { backends: BackendName[] }): LocalLaunchOptions {
  return {
    model: { name: 'lenet5' }, seed: SEED, data: { dataset: 'synthetic', syntheticSize: SIZE, seed: SEED, test: false }, batchSize: B,
    optimizer: { name: 'sgd', hyper: { lr: LR, momentum: MOMENTUM } }, schedule: 'group', groupSize: 3, epochs: 2, maxIterations: 8,
    collectWeights: true, progress: null, threads: 1, timeoutMs: 5000, exitGraceMs: 2000,
    onWorkerOutput: (r, l) => output.push(`worker ${r}: ${l}`), ...o,
  };
}

/** Shows the workers' output under a failed test (call once at the top of a test file). */
export function showWorkerOutputOnFailure(): void {
  t.afterEach(async (t) => {
    if (t.passing()) output.length = 0;
    else t.comment(`worker output:\n${output.splice(0).join('\n')}`);
  });
}
