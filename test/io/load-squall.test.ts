// Squall's own format for any model: saveModel stores the module tree (the header's
// `architecture`) with the weights, so loadModel rebuilds a model that is not one of
// engine/models' MODELS, here one imported from PyTorch's ONNX file:
//   - the round trip gives the same module tree and bitwise the same outputs on every
//     backend, which are PyTorch's within 1e-4 (the committed LeNet-5 fixture);
//   - the file stays a version-1 checkpoint: loadCheckpoint reads it and older zoo files
//     (model name, no architecture) still load through loadModel;
//   - a hostile architecture (unknown type, missing or wrong arguments, arguments a
//     constructor rejects, nesting 100 deep) is refused naming its place in the tree.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FORMAT_VERSION, loadCheckpoint, saveModel as saveCheckpointModel } from '../../engine/io/checkpoint/index.js';
import {
  buildArchitecture, buildModule, describeArchitecture, loadModel, loadOnnx, saveModel,
} from '../../engine/io/index.js';
import { inceptionV1, lenet5, vggCifar } from '../../engine/models/index.js';
import { close, forEachBackend, sameBits, type Tap } from '../conformance/util.js';
import { layoutOf } from '../models/oracle.js';
import { rejection, scratchDir, withHeader } from './checkpoint-util.js';
import { rejectsModelError, throwsModelError } from './model-errors.js';
import { FIXTURES, readFixture } from './onnx-util.js';

const dir = scratchDir(t, 'load-squall');

t.test('an imported model through Squall\'s format', async (t) => {
  const fx = readFixture(FIXTURES, 'lenet5');
  const graph = await loadOnnx(fx.onnx);
  const imported = buildModule(graph);
  const path = join(dir, 'imported.squall');
  await saveModel(path, imported, { inputShape: [1, 28, 28], meta: { from: 'lenet5.onnx' } });

  const ck = await loadCheckpoint(path);
  t.equal(ck.version, FORMAT_VERSION, 'still a version-1 file');
  t.equal(ck.model, null, 'not a MODELS entry');
  t.same(ck.inputShape, [1, 28, 28]);
  t.same(ck.architecture, describeArchitecture(imported) as unknown, 'the header holds the module tree');

  const loaded = await loadModel(path);
  t.equal(loaded.format, 'squall');
  t.same(loaded.inputShape, [1, 28, 28]);
  t.same(layoutOf(loaded.model), layoutOf(imported), 'the same module tree');
  t.same(loaded.model.modules().map((m) => m.describe()), imported.modules().map((m) => m.describe()), 'module by module');
  forEachBackend(t, async (t, be) => {
    const a = buildModule(graph).to(be).evaluate();
    const b = (await loadModel(path)).model.to(be).evaluate();
    const ya = (await a.forward(fx.input)).data.slice();
    const yb = (await b.forward(fx.input)).data.slice();
    sameBits(t, yb, ya, 'the reloaded model gives bitwise the imported model\'s output');
    close(t, yb, fx.ref, 'which is PyTorch\'s (float64) within 1e-4', 1e-4);
    a.dispose();
    b.dispose();
  });
});

t.test('module trees describe and rebuild exactly', async (t) => {
  for (const [name, m] of [['lenet5', lenet5()], ['inception_v1', inceptionV1()], ['vgg_cifar', vggCifar()]] as const) {
    const json = JSON.parse(JSON.stringify(describeArchitecture(m))) as unknown;
    const rebuilt = buildArchitecture(json, `${name}.squall`);
    t.same(layoutOf(rebuilt), layoutOf(m), `${name}: the rebuilt tree`);
    t.same(rebuilt.parameters().map((p) => `${p.module.path()}.${p.name} [${p.value.shape}]`),
      m.parameters().map((p) => `${p.module.path()}.${p.name} [${p.value.shape}]`), `${name}: parameter names and shapes (what the file's tensors are matched by)`);
  }
});

t.test('a zoo file without architecture still loads', async (t) => {
  const path = join(dir, 'zoo.sqm');
  const m = lenet5(7).reset(2);
  await saveCheckpointModel(path, m, { modelSpec: { name: 'lenet5', classes: 7 } });
  const loaded = await loadModel(path);
  t.same(layoutOf(loaded.model), layoutOf(m), 'built from MODELS by name');
  t.same(loaded.inputShape, [1, 28, 28], 'the MODELS entry\'s input shape');
  sameBits(t, loaded.model.parameters()[0]!.value.data, m.parameters()[0]!.value.data, 'weights restored');
});

function expectArchitectureError(t: Tap, json: unknown, parts: string[], what: string): void {
  throwsModelError(t, () => buildArchitecture(json, 'arch.squall'), parts, what);
}

t.test('hostile architectures', async (t) => {
  const conv = describeArchitecture(lenet5()).children![0]!;
  const seq = (...children: unknown[]): unknown => ({ type: 'Sequential', args: {}, children });
  expectArchitectureError(t, seq({ type: 'Transformer', args: {} }), ['arch.squall', 'architecture.children[0].type', 'unknown module type "Transformer"'], 'an unknown type');
  expectArchitectureError(t, seq({ ...conv, args: { ...conv.args, kW: undefined } }), ['architecture.children[0].args.kW', 'finite number'], 'a missing argument');
  expectArchitectureError(t, seq({ ...conv, args: { ...conv.args, kW: 2.5 } }), ['architecture.children[0].args.kW', 'integer'], 'a fractional kernel');
  expectArchitectureError(t, seq({ ...conv, args: { ...conv.args, groups: 4 } }), ['architecture.children[0]', 'groups (4) must divide'], 'an argument the constructor rejects');
  expectArchitectureError(t, seq({ type: 'View', args: { sizes: 'all' } }), ['architecture.children[0].args.sizes', 'list'], 'a mistyped list');
  expectArchitectureError(t, { type: 'Sequential', args: {}, children: 'none' }, ['architecture.children', 'must be an array'], 'children not a list');
  expectArchitectureError(t, [1, 2], ['architecture', 'must be an object'], 'not an object');
  let deep: unknown = { type: 'ReLU', args: {} };
  for (let i = 0; i < 100; i++) deep = seq(deep);
  expectArchitectureError(t, deep, ['nested more than 64 deep'], 'nesting 100 deep');

  // In a file: the structural checks pass (the header is an object), building names the field.
  const good = join(dir, 'good.squall');
  await saveModel(good, lenet5().reset(1));
  const bad = withHeader(readFileSync(good), (h) => {
    h.architecture.children[1].type = 'Nonsense';
  });
  const path = join(dir, 'bad-architecture.squall');
  writeFileSync(path, bad);
  const err = await rejectsModelError(t, loadModel(path), [path, 'architecture.children[1].type', 'unknown module type "Nonsense"'], 'in a file');
  t.equal(err?.file, path, 'the error names the file');
  const notObject = join(dir, 'architecture-number.squall');
  writeFileSync(notObject, withHeader(readFileSync(good), (h) => {
    h.architecture = 42;
  }));
  const err2 = await rejection(t, loadModel(notObject), 'architecture 42');
  t.match((err2 as Error).message, /header field architecture: must be an object/, 'the file reader checks the field\'s type');
});
