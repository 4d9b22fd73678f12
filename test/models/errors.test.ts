// Shape errors in models: a layer that gets the wrong input shape raises a ShapeError whose
// message names the layer (its path in the model, e.g. "model.1", and its type, e.g.
// "nn.Linear(6 -> 3)") and both the expected size and the shape it got; outputShape()
// raises the same error without running anything; the benchmark models given the wrong
// image size fail at the layer where it goes wrong instead of producing garbage; and a
// failed forward leaves the model usable (the next correct forward and backward give
// bit-for-bit the results of before).
import t from 'tap';
import { MODELS, inceptionBlock, inceptionV1 } from '../../engine/models/index.js';
import {
  ClassNLLCriterion, Concat, Dropout, Linear, ReLU, Sequential, ShapeError, SpatialAveragePooling, SpatialBatchNormalization, SpatialConvolution,
  View, type Module,
} from '../../engine/nn/index.js';
import { Tensor } from '../../engine/tensor/tensor.js';
import { Rng, caught, forEachBackend, randArray, sameBits, type Tap } from '../conformance/util.js';

function randomInput(seed: number, shape: number[]): Tensor {
  return new Tensor(shape, randArray(new Rng(seed), shape.reduce((a, b) => a * b, 1)));
}

/** Asserts fn throws or rejects with a ShapeError whose message contains every string of `parts`; returns the message. */
async function shapeError(t: Tap, fn: () => unknown, parts: string[], what: string): Promise<string> {
  const err = await caught(fn);
  if (err === undefined) {
    t.fail(`${what}: expected a ShapeError, but it did not throw`);
    return '';
  }
  const msg = (err as Error).message ?? String(err);
  t.ok(err instanceof ShapeError, `${what}: a ShapeError (got ${(err as Error).constructor?.name}: ${msg})`);
  t.ok(err instanceof RangeError, `${what}: a RangeError`);
  const missing = parts.filter((p) => !msg.includes(p));
  t.same(missing, [], `${what}: the message names ${parts.map((p) => JSON.stringify(p)).join(', ')}: "${msg}"`);
  return msg;
}

/** A copy of the output and of the flat gradients after forward + NLL backward (training mode). */
async function step(m: Module, x: Tensor, target: Int32Array): Promise<{ y: Float32Array; grads: Float32Array }> {
  m.zeroGradParameters();
  const y = await m.forward(x);
  const crit = new ClassNLLCriterion();
  crit.forward(y, target);
  await m.backward(x, crit.backward(y, target));
  return { y: y.data.slice(), grads: m.flatParameters().grads.slice() };
}

// ---------------------------------------------------------------------------------------
// outputShape: no backend needed

t.test('outputShape names the layer and both shapes', async (t) => {
  const lin = new Sequential(new Linear(10, 5), new Linear(6, 3));
  await shapeError(t, () => lin.outputShape([2, 10]), ['model.1', 'nn.Linear(6 -> 3)', '6', '[2, 5]'], 'Linear(10, 5) into Linear(6, 3)');

  const conv = new Sequential(new SpatialConvolution(3, 8, 3, 3), new ReLU(), new SpatialConvolution(4, 8, 3, 3));
  await shapeError(t, () => conv.outputShape([2, 3, 10, 10]), ['model.2', 'nn.SpatialConvolution(4 -> 8, 3x3', 'channels', '4', '[2, 8, 8, 8]'],
    'conv with 4 input channels after one with 8 outputs');

  // nested containers give the whole path
  const block = new Sequential(inceptionBlock(192, 64, 96, 128, 16, 32, 32));
  await shapeError(t, () => block.outputShape([2, 100, 8, 8]), ['model.0.0.0', 'nn.SpatialConvolution(192 -> 64, 1x1', '192', '[2, 100, 8, 8]'],
    'inception block given 100 channels');

  const concat = new Sequential(new Concat(1, new SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1), new SpatialConvolution(3, 4, 3, 3)));
  await shapeError(t, () => concat.outputShape([2, 3, 8, 8]), ['model.0', 'nn.Concat(1)', 'branch 1', '[2, 4, 6, 6]', '[2, 4, 8, 8]'],
    'Concat of branches with different spatial sizes');

  // the benchmark models given the wrong image
  const lenet = MODELS.lenet5!.build();
  await shapeError(t, () => lenet.outputShape([2, 1, 32, 32]), ['model.6', 'nn.View(192)', '[12, 5, 5]', '300'], 'lenet5 on 32x32 (at the View)');
  await shapeError(t, () => lenet.outputShape([2, 3, 28, 28]), ['model.0', 'nn.SpatialConvolution(1 -> 6, 5x5', '[2, 3, 28, 28]'], 'lenet5 on 3 channels');
  await shapeError(t, () => lenet.outputShape([2, 784]), ['model.0', 'nn.SpatialConvolution', '4-d', '[2, 784]'], 'lenet5 on flat vectors');

  const vgg = MODELS.vgg_cifar!.build();
  const vggView = vgg.children().findIndex((m) => m instanceof View);
  await shapeError(t, () => vgg.outputShape([2, 3, 64, 64]), [`model.${vggView}`, 'nn.View(512)', '[512, 2, 2]', '2048'], 'vgg_cifar on 64x64 (at the View)');
  await shapeError(t, () => vgg.outputShape([2, 1, 32, 32]), ['model.0', 'nn.SpatialConvolution(3 -> 64, 3x3', '[2, 1, 32, 32]'], 'vgg_cifar on grey images');

  // (PyTorch fails at the same layer: its AvgPool2d(7) reports an output size that is too small)
  const inception = inceptionV1();
  const avg = inception.children().findIndex((m) => m instanceof SpatialAveragePooling);
  await shapeError(t, () => inception.outputShape([1, 3, 64, 64]), [`model.${avg}`, 'nn.SpatialAveragePooling(7x7', '2x2'], 'inception_v1 on 64x64 (at the 7x7 average pool)');

  t.same(lenet.outputShape([2, 1, 28, 28]), [2, 10], 'the right shape still works');
});

// ---------------------------------------------------------------------------------------
// forward on each backend

forEachBackend(t, async (t, be) => {
  await t.test('forward names the layer and both shapes, like outputShape', async (t) => {
    const lin = new Sequential(new Linear(10, 5), new Linear(6, 3)).reset(1).to(be);
    const msg = await shapeError(t, () => lin.forward(randomInput(1, [2, 10])), ['model.1', 'nn.Linear(6 -> 3)', '6', '[2, 5]'], 'Linear(10, 5) into Linear(6, 3)');
    t.equal(msg, (await caught(() => lin.outputShape([2, 10])) as Error).message, 'same message as outputShape');
    lin.dispose();

    const conv = new Sequential(new SpatialConvolution(3, 8, 3, 3), new ReLU(), new SpatialConvolution(4, 8, 3, 3)).reset(2).to(be);
    await shapeError(t, () => conv.forward(randomInput(2, [2, 3, 10, 10])), ['model.2', 'nn.SpatialConvolution(4 -> 8, 3x3', '4', '[2, 8, 8, 8]'],
      'conv with the wrong number of input channels');
    conv.dispose();
  });

  await t.test('backward with a gradOutput of the wrong shape names the layer', async (t) => {
    const m = MODELS.lenet5!.build().reset(3).to(be);
    const x = randomInput(3, [2, 1, 28, 28]);
    await m.forward(x);
    await shapeError(t, () => m.backward(x, Tensor.zeros([2, 9])), ['model.10', 'nn.LogSoftMax', '[2, 9]', '[2, 10]'], 'gradOutput [2, 9] for output [2, 10]');
    m.dispose();
  });

  await t.test('lenet5 on 32x32 fails at the View and stays usable', async (t) => {
    const m = MODELS.lenet5!.build().reset(4).to(be);
    const x = randomInput(4, [3, 1, 28, 28]);
    const target = Int32Array.from([1, 7, 2]);
    const before = await step(m, x, target);
    await shapeError(t, () => m.forward(randomInput(5, [3, 1, 32, 32])), ['model.6', 'nn.View(192)', '[12, 5, 5]', '300'], 'forward on 32x32');
    await shapeError(t, () => m.forward(randomInput(5, [3, 3, 28, 28])), ['model.0', '[3, 3, 28, 28]'], 'forward on 3 channels');
    await shapeError(t, () => m.backward(x, Tensor.zeros([3, 11])), ['model.10', '[3, 11]'], 'backward with a wrong gradOutput');
    const after = await step(m, x, target);
    sameBits(t, after.y, before.y, 'the next forward gives the same output');
    sameBits(t, after.grads, before.grads, 'and the same parameter gradients');
    m.evaluate();
    await shapeError(t, () => m.forward(randomInput(5, [2, 1, 32, 32])), ['model.6'], 'in evaluation mode too');
    sameBits(t, (await m.forward(x)).data, before.y, 'evaluation forward afterwards gives the same output (no dropout or BN in LeNet)');
    m.dispose();
  });

  await t.test('vgg_cifar on 64x64 fails at the View and stays usable (evaluation mode)', async (t) => {
    const m = MODELS.vgg_cifar!.build().reset(6).to(be).evaluate();
    const x = randomInput(6, [2, 3, 32, 32]);
    const before = (await m.forward(x)).data.slice();
    const view = m.children().findIndex((l) => l instanceof View);
    await shapeError(t, () => m.forward(randomInput(7, [1, 3, 64, 64])), [`model.${view}`, 'nn.View(512)', '[512, 2, 2]', '2048'], 'forward on 64x64');
    sameBits(t, (await m.forward(x)).data, before, 'the next forward gives the same output');
    m.dispose();
  });

  // The root checks every layer's shape before running any, so a failed forward has no side effects.
  await t.test('a failed training forward changes no state', async (t) => {
    // [b, 3, 6, 6] gives 64 values per sample at the View; [b, 3, 7, 7] gives 100 and fails there
    const build = (): Module => new Sequential(new SpatialConvolution(3, 4, 3, 3), new SpatialBatchNormalization(4), new Dropout(0.5),
      new View(64), new Linear(64, 2)).reset(8).to(be);
    const m = build();
    const bn = m.states().filter((s) => s.module instanceof SpatialBatchNormalization);
    const stats = bn.map((s) => s.value.data.slice());
    await shapeError(t, () => m.forward(randomInput(8, [2, 3, 7, 7])), ['model.3', 'nn.View(64)'], 'forward on 7x7');
    const changed = bn.filter((s, i) => s.value.data.some((v, j) => v !== stats[i]![j])).map((s) => `${s.module.path()}.${s.name}`);
    t.same(changed, [], 'BatchNorm running statistics unchanged by the failed forward');
    const fresh = build();
    const x = randomInput(9, [2, 3, 6, 6]);
    const a = (await m.forward(x)).data;
    const b = (await fresh.forward(x)).data;
    t.ok(a.every((v, i) => Object.is(v, b[i])), 'the next forward draws the dropout mask a fresh model draws first');
    m.dispose();
    fresh.dispose();
  });
});
