// loadModel tells formats apart by content, whatever the file is called: every fixture is
// copied under a misleading name (an ONNX file as .squall, a Squall file as .onnx, a
// prototxt as .bin ...) and must be recognised and loaded as what it is. Files that are no
// model, and a .caffemodel given without its prototxt, are refused naming the file. The
// Caffe and Torch7 fixtures are the other importers' (skipped with the reason when their
// importer or fixture is missing from this build).
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { detectModelFormat, loadModel, saveModel, type ModelFormat } from '../../engine/io/index.js';
import { saveModel as saveCheckpointModel } from '../../engine/io/checkpoint/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { Sequential, Linear } from '../../engine/nn/index.js';
import { type Tap } from '../conformance/util.js';
import { scratchDir } from './checkpoint-util.js';
import { rejectsModelError, type Part } from './model-errors.js';
import { FIXTURES } from './onnx-util.js';

const dir = scratchDir(t, 'load-detect');

async function refused(t: Tap, p: Promise<unknown>, file: string, parts: Part[], what: string): Promise<void> {
  const err = await rejectsModelError(t, p, parts, what);
  if (err) t.equal(err.file, file, `${what}: names the file`);
}

interface Case {
  name: string;
  /** Source fixture and the misleading name it is copied to. */
  source: string;
  disguise: string;
  format: ModelFormat;
  weights?: string;
}

const squallFile = join(dir, 'made.squall');
const cases: Case[] = [
  { name: 'ONNX named .squall', source: join(FIXTURES, 'lenet5.onnx'), disguise: 'lenet.squall', format: 'onnx' },
  { name: 'ONNX named .prototxt', source: join(FIXTURES, 'lenet5.onnx'), disguise: 'lenet.prototxt', format: 'onnx' },
  { name: 'Squall named .onnx', source: squallFile, disguise: 'model.onnx', format: 'squall' },
  { name: 'Caffe prototxt named .bin', source: join(FIXTURES, 'lenet5-caffe.prototxt'), disguise: 'net.bin', format: 'caffe', weights: join(FIXTURES, 'lenet5-caffe.caffemodel') },
  { name: 'Caffe V1 prototxt named .onnx', source: join(FIXTURES, 'lenet5-caffe-v1.prototxt'), disguise: 'net-v1.onnx', format: 'caffe', weights: join(FIXTURES, 'lenet5-caffe-v1.caffemodel') },
  { name: 'Torch7 named .onnx', source: join(FIXTURES, 'lenet5-torch7.t7'), disguise: 'torch.onnx', format: 'torch7' },
];

t.before(async () => {
  await saveModel(squallFile, lenet5().reset(3), { inputShape: [1, 28, 28] });
});

for (const c of cases) {
  if (c.source !== squallFile && !existsSync(c.source)) {
    t.test(c.name, { skip: `no fixture ${c.source} in this build` }, () => {});
    continue;
  }
  t.test(c.name, async (t) => {
    const path = join(dir, c.disguise);
    copyFileSync(c.source, path);
    let format: ModelFormat;
    try {
      format = await detectModelFormat(path);
    } catch (err) {
      // Only an importer missing from this build may stop it, and it must say so.
      t.match((err as Error).message, /has no (Caffe|Torch7) importer/, `${c.name}: ${(err as Error).message.slice(0, 200)}`);
      return;
    }
    t.equal(format, c.format, `${c.disguise} is ${c.format} by its content`);
    const loaded = await loadModel(path, { ...(c.weights ? { weights: c.weights } : {}), ...(c.format === 'torch7' ? { inputShape: [1, 28, 28] } : {}) });
    t.equal(loaded.format, c.format);
    t.equal(loaded.model.parameterCount(), lenet5().parameterCount(), 'a LeNet-5 with all its parameters');
    t.same(loaded.model.outputShape([2, 1, 28, 28]), [2, 10], 'it takes 1x28x28 images to 10 classes');
    t.same(loaded.inputShape, [1, 28, 28]);
  });
}

const caffemodel = join(FIXTURES, 'lenet5-caffe.caffemodel');
t.test('a .caffemodel alone asks for its prototxt', existsSync(caffemodel) ? {} : { skip: `no fixture ${caffemodel}` }, async (t) => {
  const source = caffemodel;
  const path = join(dir, 'weights.onnx');
  copyFileSync(source, path);
  await refused(t, loadModel(path), path, ['.caffemodel', 'prototxt', '--weights'], 'a caffemodel alone');
});

t.test('files that are not models, and wrong options', async (t) => {
  const cases: [string, Uint8Array | string, (string | RegExp)[]][] = [
    ['empty.onnx', new Uint8Array(0), ['empty']],
    ['notes.onnx', 'These are notes, not a model.\n', ['not a model file Squall reads', 'ONNX', 'Caffe', 'Torch7']],
    ['zeros.squall', new Uint8Array(100), ['not a model file Squall reads']],
    ['image.t7', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]), ['not a model file Squall reads', '.PNG']],
  ];
  for (const [name, content, parts] of cases) {
    const path = join(dir, name);
    writeFileSync(path, content);
    await refused(t, loadModel(path), path, parts, name);
  }
  const onnx = join(FIXTURES, 'lenet5.onnx');
  await refused(t, loadModel(onnx, { weights: onnx }), onnx, ['goes with a Caffe prototxt', 'an ONNX model'],
    'a weights file for a non-Caffe model');
  await refused(t, loadModel(onnx, { inputShape: [1, 32, 32] }), onnx, ['declares the input shape [1, 28, 28]', '[1, 32, 32]'],
    'an input shape the file contradicts');
  await refused(t, loadModel(squallFile, { inputShape: [3, 28, 28] }), squallFile, ['saved for inputs [1, 28, 28]'],
    'an input shape the Squall file contradicts');
  await t.rejects(loadModel(join(dir, 'missing.onnx')), { code: 'ENOENT' }, 'a missing file is the file system\'s error');

  // A Squall file with weights only (no architecture, no MODELS name) cannot be built.
  const bare = join(dir, 'bare.squall');
  await saveCheckpointModel(bare, new Sequential(new Linear(3, 2)));
  await refused(t, loadModel(bare), bare, ['weights only', 'saveModel'], 'weights without an architecture');
});
