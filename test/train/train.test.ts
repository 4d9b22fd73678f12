// Local training end to end: a short seeded Fashion-MNIST run reaches a loss bound on every
// backend; a run interrupted by maxIterations and resumed from its checkpoint ends with the
// same weights as an uninterrupted run; an explicit order replaces the seeded one; a
// non-finite loss stops training before any update.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../engine/backends/backend.js';
import { epochPermutation, fashionMnistAvailable, loadFashionMnist, meanStd, normalise, sliceDataset, syntheticDataset, type Dataset } from '../../engine/data/index.js';
import { lenet5 } from '../../engine/models/index.js';
import {
  BatchNormalization, ClassNLLCriterion, Dropout, Linear, LogSoftMax, ReLU, Sequential, SpatialBatchNormalization, SpatialConvolution,
  SpatialMaxPooling, View,
} from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';
import { NonFiniteLossError, evaluate, train } from '../../engine/train/index.js';
import { forEachBackend } from '../conformance/util.js';

function fashion(split: 'train' | 'test', n: number): Dataset {
  const full = loadFashionMnist({ split });
  const ds = sliceDataset(full, 0, n);
  const { mean, std } = meanStd(full);
  return normalise({ ...ds, images: ds.images.slice() }, mean, std);
}

function sgd(be: Backend, n: number): SGD {
  return new SGD(be, n, { lr: 0.05, momentum: 0.9, alloc: (k) => be.allocFloat32(k), free: (a) => be.free(a) });
}

const dir = mkdtempSync(join(tmpdir(), 'squall-train-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

forEachBackend(t, async (t, be) => {
  await t.test('LeNet-5 on Fashion-MNIST reaches the loss bound', { skip: fashionMnistAvailable() ? false : 'dataset-fashion-mnist is not installed' }, async (t) => {
    const trainSet = fashion('train', 9600);
    const test = fashion('test', 2000);
    const model = lenet5().reset(3).to(be);
    const losses: number[] = [];
    await train({ model, criterion: new ClassNLLCriterion(), optimizer: sgd(be, model.flatParameters().length), train: trainSet, epochs: 1,
      batchSize: 64, seed: 3, progress: null, onIteration: (i) => losses.push(i.loss) });
    t.equal(losses.length, 150, '150 iterations of 64');
    const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10;
    const last = losses.slice(-50).reduce((a, b) => a + b) / 50;
    t.ok(first > 1.8, `starts near ln(10) (first 10: ${first.toFixed(3)})`);
    t.ok(last < 0.75, `mean loss of the last 50 iterations below 0.75 (${last.toFixed(3)})`);
    const ev = await evaluate(model, test, new ClassNLLCriterion());
    t.ok(ev.accuracy > 0.72, `test accuracy above 72% after 150 iterations (${(100 * ev.accuracy).toFixed(2)}%)`);
    model.dispose();
  });

  await t.test('an interrupted run resumed from its checkpoint ends where an uninterrupted run does', async (t) => {
    // A small VGG-like model: dropout masks and batch-norm statistics must come back too.
    const small = (): Sequential => new Sequential(new SpatialConvolution(3, 8, 3, 3, 1, 1, 1, 1), new SpatialBatchNormalization(8), new ReLU(),
      new Dropout(0.3), new SpatialMaxPooling(2, 2, 2, 2).ceil(), new View(8 * 4 * 4), new Linear(128, 16), new BatchNormalization(16), new ReLU(),
      new Dropout(0.5), new Linear(16, 10), new LogSoftMax());
    const data = syntheticDataset({ length: 96, shape: [3, 8, 8], classes: 10, seed: 5, separation: 1 });
    const run = async (path: string | undefined, maxIterations?: number, resume = false): Promise<Float32Array> => {
      const model = small().reset(9).to(be);
      await train({ model, criterion: new ClassNLLCriterion(), optimizer: sgd(be, model.flatParameters().length), train: data, epochs: 2,
        batchSize: 16, seed: 4, progress: null, checkpointPath: path, resume, maxIterations });
      const w = model.flatParameters().values.slice();
      model.dispose();
      return w;
    };
    const whole = await run(undefined);
    const ck = join(dir, `resume-${be.name}.sqck`);
    await run(ck, 4); // stops mid-epoch 1 (6 iterations per epoch), checkpoint written
    const resumed = await run(ck, undefined, true);
    let same = whole.length === resumed.length;
    for (let i = 0; same && i < whole.length; i++) same = whole[i] === resumed[i];
    t.ok(same, 'bitwise identical weights after 12 iterations');
  });

  await t.test('an explicit order (options.order) is trained exactly like the seeded order it spells out', async (t) => {
    const data = syntheticDataset({ length: 40, shape: [1, 28, 28], classes: 10, seed: 8, separation: 1 });
    const run = async (o: { seed: number; order?: (epoch: number) => Int32Array }): Promise<{ w: Float32Array; losses: number[] }> => {
      const model = lenet5().reset(2).to(be);
      const losses: number[] = [];
      await train({ model, criterion: new ClassNLLCriterion(), optimizer: sgd(be, model.flatParameters().length), train: data, epochs: 2,
        batchSize: 16, progress: null, onIteration: (i) => losses.push(i.loss), ...o });
      const w = model.flatParameters().values.slice();
      model.dispose();
      return { w, losses };
    };
    const seeded = await run({ seed: 7 });
    const explicit = await run({ seed: 1, order: (e) => epochPermutation(data.length, 7, e) });
    t.same(explicit.losses, seeded.losses, 'same losses, iteration by iteration (6 = 2 epochs of 16, 16, 8)');
    t.ok(explicit.w.every((v, i) => v === seeded.w[i]), 'bitwise identical weights');
    const other = await run({ seed: 1 });
    t.not(other.losses[1], seeded.losses[1], 'the seed alone gives another order');
  });

  await t.test('a non-finite loss stops training before any update', async (t) => {
    const data = syntheticDataset({ length: 32, shape: [1, 28, 28], classes: 10, seed: 6 });
    data.images[5] = Number.NaN;
    const model = lenet5().reset(1).to(be);
    const before = model.flatParameters().values.slice();
    await t.rejects(train({ model, criterion: new ClassNLLCriterion(), optimizer: sgd(be, before.length), train: data, epochs: 1, batchSize: 32, seed: 1, progress: null }),
      NonFiniteLossError, 'NonFiniteLossError');
    t.same(Array.from(model.flatParameters().values), Array.from(before), 'parameters unchanged');
    model.dispose();
  });
});
