// Checkpoint round trips: a trained LeNet-5 restored into a freshly built model gives
// bitwise identical outputs, its SGD optimiser continues bit for bit, BatchNorm running
// statistics come back, and model files rebuild their model from MODELS by name.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Checkpoint, CheckpointMismatchError, loadCheckpoint, loadModelFile, modelTensorNames, optimizerState, parseCheckpoint,
  restoreModel, restoreOptimizer, saveCheckpoint, saveModel,
} from '../../engine/io/checkpoint/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { BatchNormalization, Linear, LogSoftMax, ReLU, Sequential } from '../../engine/nn/index.js';
import { Adam, SGD } from '../../engine/optim/index.js';
import { forEachBackend, sameBits } from '../conformance/util.js';
import { batch, layoutOf, listDir, outputOf, scratchDir, trainStep } from './checkpoint-util.js';

const SGD_CFG = { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 };

forEachBackend(t, async (t, be) => {
  const dir = scratchDir(t, `ckpt-rt-${be.name}`);
  const test = batch(1, 6, [1, 28, 28], 10);
  const train = [batch(2, 8, [1, 28, 28], 10), batch(3, 8, [1, 28, 28], 10), batch(4, 8, [1, 28, 28], 10)];

  t.test('lenet5 + SGD: identical outputs after restore, and training continues identically', async (t) => {
    const a = lenet5().reset(7).to(be);
    const opt = new SGD(be, a.flatParameters().length, SGD_CFG);
    for (const b of train) await trainStep(a, opt, b.x, b.y);
    opt.setEpoch(1);
    a.evaluate();
    const want = await outputOf(a, test.x);
    a.train();

    const path = join(dir, 'lenet.sqck');
    const meta = { epoch: 1, iteration: 3, globalBatch: 8, seed: 7, dataset: 'synthetic', time: '2024-06-01T00:00:00Z', nested: { a: [1, 2, null] } };
    const res = await saveCheckpoint(path, { model: a, modelSpec: { name: 'lenet5', classes: 10 }, optimizers: [opt], meta });
    t.equal(res.tensors, 8 + 1, 'eight parameter tensors and one momentum buffer');
    t.same(listDir(dir), ['lenet.sqck'], 'no temporary file left behind');

    const ck = await loadCheckpoint(path);
    t.ok(ck instanceof Checkpoint);
    t.equal(ck.kind, 'squall-checkpoint');
    t.equal(ck.version, 1);
    t.same(ck.model, { name: 'lenet5', args: { classes: 10 } }, 'model description');
    t.same(ck.meta, meta, 'meta round trips');
    t.ok(!Number.isNaN(Date.parse(ck.created)), 'creation time recorded');
    t.same(ck.optimizers['0'], {
      name: 'sgd', iteration: 3, epoch: 1, hyper: { lr: 0.05, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 1e-3 },
      sliceLength: a.flatParameters().length, buffers: { momentum: 'optimizer.0.momentum' },
    }, 'optimizer entry');
    t.same(ck.names().slice(0, 3), ['model.0.weight', 'model.0.bias', 'model.4.weight'], 'tensor names follow module paths');
    t.same(ck.tensor('model.9.weight').shape, [10, 100]);
    t.equal(readFileSync(path).length, res.bytes, 'reported size is the file size');
    const l = layoutOf(readFileSync(path));
    t.equal(l.payloadStart % 64, 0, 'payload is 64-byte aligned');
    const tensors = l.header.tensors as { offset: number }[];
    t.ok(tensors.every((e) => e.offset % 64 === 0), 'every tensor is 64-byte aligned');

    const b = lenet5().reset(99).to(be); // different weights, all to be overwritten
    t.same(restoreModel(b, ck), { parameters: 8, states: 0 });
    sameBits(t, b.flatParameters().values, a.flatParameters().values, 'flat parameters');
    b.evaluate();
    sameBits(t, await outputOf(b, test.x), want, 'forward output of the restored model');
    b.train();

    const opt2 = new SGD(be, b.flatParameters().length); // default hyper-parameters: the checkpoint brings its own
    restoreOptimizer(opt2, ck, '0');
    t.same({ ...opt2.state(), buffers: {} }, { ...opt.state(), buffers: {} }, 'optimizer iteration, epoch, hyper-parameters');
    sameBits(t, opt2.state().buffers.momentum!, opt.state().buffers.momentum!, 'momentum buffer');

    for (const s of [4, 5]) {
      const { x, y } = batch(s, 8, [1, 28, 28], 10);
      const la = await trainStep(a, opt, x, y);
      const lb = await trainStep(b, opt2, x, y);
      t.equal(lb, la, `loss of continued step ${s}`);
    }
    sameBits(t, b.flatParameters().values, a.flatParameters().values, 'parameters after two continued steps');
    sameBits(t, opt2.state().buffers.momentum!, opt.state().buffers.momentum!, 'momentum after two continued steps');
    a.evaluate();
    b.evaluate();
    sameBits(t, await outputOf(b, test.x), await outputOf(a, test.x), 'outputs after two continued steps');

    const same = parseCheckpoint(readFileSync(path), path);
    t.same(same.header, ck.header, 'parseCheckpoint on the bytes gives the same header');
    a.dispose();
    b.dispose();
    opt.dispose();
    opt2.dispose();
  });

  t.test('model files: loadModelFile builds the named model, with its class count', async (t) => {
    const a = lenet5(7).reset(11).to(be).evaluate();
    const path = join(dir, 'lenet7.sqm');
    await saveModel(path, a, { modelSpec: { name: 'lenet5', classes: 7 }, meta: { note: 'seven classes' } });
    const { model, checkpoint } = await loadModelFile(path);
    t.equal(checkpoint.kind, 'squall-model');
    t.same(Object.keys(checkpoint.optimizers), [], 'no optimiser state');
    t.equal(checkpoint.meta.note, 'seven classes');
    model.to(be).evaluate();
    const x = batch(12, 3, [1, 28, 28], 7).x;
    const got = await outputOf(model, x);
    t.equal(got.length, 3 * 7, 'seven classes');
    sameBits(t, got, await outputOf(a, x), 'output of the model built from the file');
    model.dispose();

    await saveModel(path, a, { modelSpec: 'lenet5' }); // replaces the file; classes not recorded
    const ck = await loadCheckpoint(path);
    t.same(ck.model, { name: 'lenet5', args: {} });
    const err = await loadModelFile(path).then(() => null, (e: unknown) => e);
    t.ok(err instanceof CheckpointMismatchError && /model\.9\.weight has shape \[7, 100\] in the checkpoint but \[10, 100\]/.test(err.message),
      `the default class count (10) does not fit a 7-class file: ${(err as Error).message}`);
    a.dispose();
  });

  t.test('BatchNorm running statistics round trip; a model not from MODELS needs an instance', async (t) => {
    const build = (): Sequential => new Sequential(new Linear(6, 5), new BatchNormalization(5), new ReLU(), new Linear(5, 3), new LogSoftMax());
    const a = build().reset(5).to(be);
    const opt = new Adam(be, a.flatParameters().length, { lr: 0.01 });
    for (const s of [21, 22, 23]) {
      const { x, y } = batch(s, 10, [6], 3);
      await trainStep(a, opt, x, y);
    }
    const mean = a.states()[0]!.value.data;
    t.ok(mean.some((v) => v !== 0), 'running mean has moved');
    const path = join(dir, 'bn.sqck');
    const sgdSnapshot = new SGD(be, 4, { lr: 0.5 }).state();
    await saveCheckpoint(path, { model: a, optimizers: { main: opt, other: sgdSnapshot }, extra: { marks: new Float32Array([1, 2, 3]) } });

    const noModel = await loadModelFile(path).then(() => null, (e: unknown) => e);
    t.ok(noModel instanceof CheckpointMismatchError && /does not name a model/.test(noModel.message),
      `no model named: ${(noModel as Error).message}`);

    const b = build().to(be);
    const { checkpoint: ck } = await loadModelFile(path, b); // a checkpoint is a model file too
    t.same(ck.names().filter((n) => n.includes('running')), ['model.1.runningMean', 'model.1.runningVar'], 'state tensor names');
    sameBits(t, b.states()[0]!.value.data, mean, 'running mean');
    sameBits(t, b.states()[1]!.value.data, a.states()[1]!.value.data, 'running variance');
    a.evaluate();
    b.evaluate();
    const x = batch(30, 4, [6], 3).x;
    sameBits(t, await outputOf(b, x), await outputOf(a, x), 'evaluation output');

    const opt2 = new Adam(be, b.flatParameters().length);
    restoreOptimizer(opt2, ck, 'main');
    t.same(opt2.state().hyper, opt.state().hyper, 'Adam hyper-parameters');
    for (const k of Object.keys(opt.state().buffers)) sameBits(t, opt2.state().buffers[k]!, opt.state().buffers[k]!, `Adam buffer ${k}`);
    t.same(optimizerState(ck, 'other'), sgdSnapshot, 'an OptimizerState snapshot is stored as given');
    t.same(Array.from(ck.tensor('extra.marks').data), [1, 2, 3], 'extra tensor');
    a.dispose();
    b.dispose();
  });

  t.test('tensor names do not depend on the root module\'s name', (t) => {
    const m = lenet5();
    m.name = 'net';
    t.same(modelTensorNames(m).map((e) => e.name).slice(0, 2), ['model.0.weight', 'model.0.bias']);
    t.end();
  });
});
