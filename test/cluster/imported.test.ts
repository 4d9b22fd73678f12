// An imported model fine-tunes in a cluster job: LeNet-5 written by PyTorch (ONNX, Caffe and
// Torch7 fixtures of test/io/fixtures, weights from torch's own initialisation) is loaded by
// engine/io, handed to the driver with its weights, and trained by 2 workers (native and
// wasm when both load) on Fashion-MNIST. Oracles: the same imported model trained by one
// process on the same global batches (engine/train; relative 1e-5), and the model's own
// test accuracy before the job.
import { join } from 'node:path';
import t from 'tap';
import { loadBackend } from '../../engine/backends/registry.js';
import { runInProcessJob, type InProcessJobResult } from '../../engine/cluster/inproc.js';
import { loadJobData, readParameters, type JobData } from '../../engine/cluster/job.js';
import { describeArchitecture } from '../../engine/io/architecture.js';
import { loadModel } from '../../engine/io/load.js';
import { ClassNLLCriterion, type Module } from '../../engine/nn/index.js';
import { withLogProbabilities } from '../../engine/train/classifier-output.js';
import { SGD } from '../../engine/optim/index.js';
import { evaluate } from '../../engine/train/evaluate.js';
import { train } from '../../engine/train/index.js';
import { within } from '../conformance/util.js';
import { ROOT } from '../models/oracle.js';
import { relErr } from './compare.js';
import { testBackends } from './pm-harness.js';

const FIX = join(ROOT, 'test', 'io', 'fixtures');
const B = 128;
const ITER = 30;
const names = testBackends().map((b) => b.name);
const workers = names.includes('native') && names.includes('wasm') ? (['native', 'wasm'] as const) : ([names[0]!, names[0]!] as const);
const data: JobData = loadJobData({ dataset: 'fashion-mnist', seed: 1, test: true, limit: B * ITER }, { name: 'lenet5', input: [1, 28, 28], classes: 10 }, B);

const files = [
  { format: 'onnx', path: join(FIX, 'lenet5.onnx') },
  { format: 'caffe', path: join(FIX, 'lenet5-caffe.prototxt'), weights: join(FIX, 'lenet5-caffe.caffemodel') },
  { format: 'torch7', path: join(FIX, 'lenet5-torch7.t7') },
];

for (const f of files) {
  t.test(`LeNet-5 from ${f.format} fine-tunes in a 2-worker job (${workers.join(' + ')})`, async (t) => {
    const load = async (): Promise<Module> => withLogProbabilities((await loadModel(f.path, f.weights ? { weights: f.weights, inputShape: [1, 28, 28] } : { inputShape: [1, 28, 28] })).model).model;
    const imported = await load();
    const start = readParameters(imported);
    const architecture = describeArchitecture(imported);
    const job = (backends: readonly ('native' | 'wasm')[], iterations: number): Promise<InProcessJobResult> => within(runInProcessJob({
      backends: [...backends], model: { name: `lenet5.${f.format}`, classes: 10, architecture, input: [1, 28, 28] }, initialWeights: { parameters: start },
      seed: 3, data: { dataset: 'fashion-mnist', seed: 3, test: true, limit: B * ITER }, batchSize: B,
      optimizer: { name: 'sgd', hyper: { lr: 0.05, momentum: 0.9 } }, schedule: 'group', groupSize: 10, epochs: 1, maxIterations: iterations,
      collectWeights: true, progress: null, loadData: () => data,
    }), `${f.format} job`, 180_000);
    // One process, the same global batches: the oracle (a few iterations: the backends' roundings drift apart over many).
    const backend = loadBackend(workers[0]);
    const alone = (await load()).to(backend);
    await train({
      model: alone, criterion: new ClassNLLCriterion(),
      optimizer: new SGD(backend, alone.flatParameters().length, { lr: 0.05, momentum: 0.9, alloc: (k) => backend.allocFloat32(k), free: (a) => backend.free(a) }),
      train: data.train, epochs: 1, batchSize: B, seed: 3, progress: null, maxIterations: 6,
    });
    const ref = alone.flatParameters().values.slice();
    alone.dispose();
    const short = await job([workers[0], workers[0]], 6);
    const e = relErr(short.driver.weights!, ref);
    t.ok(e <= 1e-5, `${f.format}: after 6 iterations the job's weights equal one process's to ${e.toExponential(2)} <= 1e-5`);

    const probe = imported.to(backend);
    const before = await evaluate(probe, data.test!, new ClassNLLCriterion());
    probe.dispose();
    const res = await job(workers, ITER);
    const after = res.driver.evaluation!;
    t.ok(after.accuracy > before.accuracy + 0.3,
      `${f.format}: test accuracy ${(100 * before.accuracy).toFixed(1)}% as imported -> ${(100 * after.accuracy).toFixed(1)}% after ${ITER} iterations`);
    const first = res.driver.losses.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
    const last = res.driver.losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    t.ok(last < 0.6 * first, `${f.format}: loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  });
}
