// A valid checkpoint restored into something it does not fit: the error names the tensor
// and both shapes (or the optimiser and what differs), and nothing is changed.
import t from 'tap';
import { join } from 'node:path';
import {
  CheckpointMismatchError, loadCheckpoint, loadModelFile, restoreModel, restoreOptimizer, saveCheckpoint, saveModel,
} from '../../engine/io/checkpoint/index.js';
import { lenet5, vggCifar } from '../../engine/models/index.js';
import type { Backend } from '../../engine/backends/backend.js';
import { Linear, Sequential, type Module } from '../../engine/nn/index.js';
import { Adam, SGD } from '../../engine/optim/index.js';
import type { Tap } from '../conformance/util.js';
import { rejection, scratchDir } from './checkpoint-util.js';

const fakeBackend = { sgdUpdate: () => {}, adamUpdate: () => {} } as unknown as Backend;

function snapshot(m: Module): Float32Array[] {
  return [...m.parameters().map((p) => p.value.data.slice()), ...m.states().map((s) => s.value.data.slice())];
}

function unchanged(t: Tap, m: Module, before: Float32Array[], what: string): void {
  const after = snapshot(m);
  t.ok(before.length === after.length && before.every((b, i) => b.every((v, k) => Object.is(v, after[i]![k]))), `${what}: the model is unchanged`);
}

function mismatch(t: Tap, fn: () => unknown, file: string, words: (string | RegExp)[], what: string): void {
  try {
    fn();
    t.fail(`${what}: expected CheckpointMismatchError`);
  } catch (err) {
    const ok = err instanceof CheckpointMismatchError && err.path === file && err.message.startsWith(`${file}: `) &&
      words.every((w) => (typeof w === 'string' ? err.message.includes(w) : w.test(err.message)));
    t.ok(ok, `${what}: ${(err as Error).message}`, ok ? {} : { words: words.map(String) });
  }
}

t.test('restoring into the wrong model', async (t) => {
  const dir = scratchDir(t, 'ckpt-mismatch');
  const path = join(dir, 'lenet.sqck');
  const src = lenet5().reset(1);
  const opt = new SGD(fakeBackend, src.parameterCount(), { lr: 0.1, momentum: 0.9 });
  opt.step(new Float32Array(src.parameterCount()), new Float32Array(src.parameterCount()));
  await saveCheckpoint(path, { model: src, modelSpec: 'lenet5', optimizers: [opt] });
  const ck = await loadCheckpoint(path);

  t.test('lenet5 into vgg_cifar', (t) => {
    const vgg = vggCifar();
    vgg.parameters()[0]!.value.fill(0.5);
    const first = (): Float32Array[] => vgg.parameters().slice(0, 3).map((p) => p.value.data.slice());
    const before = first();
    mismatch(t, () => restoreModel(vgg, ck), path,
      ['lenet5', 'model.0.weight has shape [6, 1, 5, 5] in the checkpoint but [64, 3, 3, 3] in the model', /and \d+ more/],
      'lenet5 checkpoint into vgg_cifar');
    t.ok(first().every((a, i) => a.every((v, k) => v === before[i]![k])), 'vgg_cifar unchanged');
    t.end();
  });

  t.test('lenet5 into lenet5 with 7 classes', async (t) => {
    const m7 = lenet5(7).reset(2);
    const before = snapshot(m7);
    mismatch(t, () => restoreModel(m7, ck), path, [
      'model.9.weight has shape [10, 100] in the checkpoint but [7, 100] in the model',
      'model.9.bias has shape [10] in the checkpoint but [7] in the model',
    ], 'classes 10 into classes 7');
    unchanged(t, m7, before, 'classes 10 into classes 7');
    const err = await rejection(t, loadModelFile(path, m7), 'loadModelFile into a 7-class model');
    t.ok(err instanceof CheckpointMismatchError && err.message.includes('[7, 100]'), 'loadModelFile reports the same');
    unchanged(t, m7, before, 'after loadModelFile');
  });

  t.test('missing and extra tensors', async (t) => {
    const small = (): Sequential => new Sequential(new Linear(4, 3));
    const big = (): Sequential => new Sequential(new Linear(4, 3), new Linear(3, 2));
    const bigPath = join(dir, 'big.sqm');
    const smallPath = join(dir, 'small.sqm');
    await saveModel(bigPath, big().reset(1));
    await saveModel(smallPath, small().reset(1));
    const bigCk = await loadCheckpoint(bigPath);
    const smallCk = await loadCheckpoint(smallPath);

    const s = small().reset(5);
    const before = snapshot(s);
    mismatch(t, () => restoreModel(s, bigCk), bigPath,
      ['model.1.weight (parameter [2, 3] in the checkpoint) is not in the model', 'model.1.bias'], 'extra tensors are an error');
    unchanged(t, s, before, 'extra tensors');
    t.same(restoreModel(s, bigCk, { allowExtra: true }), { parameters: 2, states: 0 }, 'allowExtra: restores what the model has');
    t.same(Array.from(s.parameters()[0]!.value.data), Array.from(bigCk.tensor('model.0.weight').data), 'values copied');

    const b = big().reset(5);
    const beforeB = snapshot(b);
    mismatch(t, () => restoreModel(b, smallCk), smallPath,
      ['model.1.weight (parameter [2, 3] in the model) is not in the checkpoint'], 'missing tensors');
    mismatch(t, () => restoreModel(b, smallCk, { allowExtra: true }), smallPath, ['model.1.weight'], 'allowExtra does not allow missing');
    unchanged(t, b, beforeB, 'missing tensors');
  });

  t.test('optimiser state that does not fit', async (t) => {
    mismatch(t, () => restoreOptimizer(new SGD(fakeBackend, src.parameterCount() + 1), ck, '0'), path,
      ['optimiser "0"', 'momentum', `length ${src.parameterCount()}`, `${src.parameterCount() + 1}`], 'wrong slice length');
    mismatch(t, () => restoreOptimizer(new Adam(fakeBackend, src.parameterCount()), ck, '0'), path,
      ['optimiser "0"', 'sgd', 'adam'], 'wrong optimiser');
    mismatch(t, () => restoreOptimizer(new SGD(fakeBackend, src.parameterCount()), ck, '1'), path,
      ['no optimiser "1"', '"0"'], 'missing key');
    const fresh = new SGD(fakeBackend, src.parameterCount() + 1, { lr: 0.3 });
    try {
      restoreOptimizer(fresh, ck, '0');
    } catch { /* checked above */ }
    t.same(fresh.state(), new SGD(fakeBackend, src.parameterCount() + 1, { lr: 0.3 }).state(), 'a rejected state changes nothing');
    mismatch(t, () => ck.tensor('model.99.weight'), path, ['no tensor "model.99.weight"'], 'missing tensor by name');
  });

  t.test('kind checks', async (t) => {
    const err = await rejection(t, loadCheckpoint(path, { kind: 'squall-model' }), 'kind');
    t.ok(err instanceof CheckpointMismatchError && err.message.includes('squall-checkpoint, not a squall-model'), (err as Error).message);
  });
});
