// `squall convert` and `squall predict` as child processes (bin/squall.mjs), end to end:
//   - convert PyTorch's LeNet-5 ONNX file to Squall's format and back to ONNX (and a Caffe
//     prototxt + caffemodel when that fixture is there);
//   - predict with each converted file, on both backends, on a .npy batch and on a JSON
//     sample: the printed top classes and probabilities are PyTorch's (the fixture's
//     float64 log-probabilities, exponentiated) within 1e-4;
//   - predict on fashion-mnist:test:N: the printed accuracy is the one computed here from
//     the same model and data through the library (skipped without the data set);
//   - every bad argument or input is refused with a message naming it (exit 2 for usage,
//     1 for a bad file).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { encodeNpy, fashionMnistAvailable, loadFashionMnist, meanStd, normalise, sliceDataset } from '../../engine/data/index.js';
import { loadModel } from '../../engine/io/index.js';
import { loadBackend } from '../../engine/backends/registry.js';
import { Tensor } from '../../engine/tensor/tensor.js';
import { type Tap } from '../conformance/util.js';
import { scratchDir } from '../io/checkpoint-util.js';
import { FIXTURES, readFixture } from '../io/onnx-util.js';
import { testBackends } from '../cluster/pm-harness.js';
import { squall, stopSquallProcesses, type Run } from '../cluster/squall-cli.js';

async function ok(t: Tap, args: string[], what: string): Promise<Run> {
  const r = await squall(args);
  t.equal(r.code, 0, `${what}: exit 0${r.code ? ` (stderr: ${r.err.trim()})` : ''}`);
  return r;
}

async function refused(t: Tap, args: string[], code: number, parts: (string | RegExp)[], what: string): Promise<void> {
  const r = await squall(args);
  t.equal(r.code, code, `${what}: exit ${code}`);
  const missing = parts.filter((p) => (typeof p === 'string' ? !r.err.includes(p) : !p.test(r.err)));
  t.same(missing, [], `${what}: ${r.err.trim().split('\n')[0]}`);
}

/** "sample 0: 3 p=0.1234, 7 p=0.1100" -> [[class, p], ...] per printed sample. */
function parsePredictions(out: string): [number, number][][] {
  return out.split('\n').filter((l) => l.startsWith('sample ')).map((l) => l.slice(l.indexOf(': ') + 2).split(', ').map((e) => {
    const m = /^(\d+)(?: [^p]*)? p=([\d.]+)$/.exec(e.trim());
    if (!m) throw new Error(`unparsable prediction "${e}" in "${l}"`);
    return [Number(m[1]), Number(m[2])] as [number, number];
  }));
}

// About 55 s on an idle machine (some thirty squall processes, each loading the engine and
// its backends) and up to twice that beside a CPU-bound load: more than the suite's 90 s.
t.setTimeout(180_000);

const dir = scratchDir(t, 'cli-convert-predict');
// Registered after scratchDir's teardown, so it runs first: the processes end before their directory goes.
t.teardown(stopSquallProcesses);
const fx = readFixture(FIXTURES, 'lenet5');
const [n, classes] = fx.meta.output as [number, number];
const npy = join(dir, 'batch.npy');
writeFileSync(npy, encodeNpy(fx.input.shape, fx.input.data));

/** PyTorch's top-k (class, probability) of sample i. */
function reference(i: number, k: number): [number, number][] {
  const row = Array.from(fx.ref.subarray(i * classes, (i + 1) * classes), (v, c) => [c, Math.exp(v)] as [number, number]);
  return row.sort((a, b) => b[1] - a[1]).slice(0, k);
}

function matchesReference(t: Tap, out: string, samples: number, k: number, what: string): void {
  const got = parsePredictions(out);
  t.equal(got.length, samples, `${what}: ${samples} samples printed`);
  for (const [i, row] of got.entries()) {
    const want = reference(i, k);
    t.same(row.map((e) => e[0]), want.map((e) => e[0]), `${what}: sample ${i}: PyTorch's top ${k} classes`);
    const worst = Math.max(...row.map((e, j) => Math.abs(e[1] - want[j]![1])));
    t.ok(worst <= 1e-4, `${what}: sample ${i}: probabilities within 1e-4 of PyTorch's (worst ${worst.toExponential(1)})`);
  }
}

t.test('help', async (t) => {
  t.match((await ok(t, ['help'], 'squall help')).out, /convert IN OUT[^]*predict/, 'the command list has convert and predict');
  t.match((await ok(t, ['convert', '--help'], 'convert --help')).out, /usage: squall convert IN OUT[^]*--input-shape/);
  t.match((await ok(t, ['predict', '--help'], 'predict --help')).out, /usage: squall predict --model FILE --input X[^]*--top[^]*--backend/);
});

t.test('convert ONNX -> Squall -> ONNX, then predict with each file', async (t) => {
  const squallFile = join(dir, 'lenet.squall');
  const onnxFile = join(dir, 'lenet-again.onnx');
  const r1 = await ok(t, ['convert', fx.onnx, squallFile], 'convert to .squall');
  t.match(r1.out, /\(onnx, 22278 parameters, input 1x28x28\) -> .*lenet\.squall \(squall, \d+ bytes\)/);
  const r2 = await ok(t, ['convert', squallFile, onnxFile, '--input-shape', '1,28,28'], 'convert to .onnx');
  t.match(r2.out, /\(squall, 22278 parameters, input 1x28x28\) -> .*lenet-again\.onnx \(onnx, \d+ bytes\)/);
  for (const model of [fx.onnx, squallFile, onnxFile]) {
    for (const be of testBackends().map((b) => b.name)) {
      const r = await ok(t, ['predict', '--model', model, '--input', npy, '--top', '3', '--show', String(n), '--backend', be], `predict ${model} on ${be}`);
      matchesReference(t, r.out, n, 3, `${model.split('/').pop()} on ${be}`);
      t.match(r.err, new RegExp(`22278 parameters\\) on ${be}`), 'reports the model and backend');
    }
  }
  // One sample as JSON (nested to 1x28x28), given inline.
  const sample = Array.from(fx.input.data.subarray(0, 784));
  const json = JSON.stringify([Array.from({ length: 28 }, (_, r) => sample.slice(28 * r, 28 * r + 28))]);
  const r = await ok(t, ['predict', '--model', squallFile, '--input', json, '--top', '2'], 'predict on a JSON sample');
  matchesReference(t, r.out, 1, 2, 'JSON sample');
  t.notMatch(r.out, /accuracy/, 'no accuracy without labels');
  const jsonFile = join(dir, 'batch.json');
  writeFileSync(jsonFile, JSON.stringify([Array.from(fx.input.data.subarray(0, 784)), Array.from(fx.input.data.subarray(784, 1568))]));
  matchesReference(t, (await ok(t, ['predict', '--model', fx.onnx, '--input', jsonFile, '--top', '1'], 'predict on a JSON file of flat samples')).out, 2, 1, 'JSON file');
});

const caffe = join(FIXTURES, 'lenet5-caffe.prototxt');
t.test('convert a Caffe prototxt with its weights', existsSync(caffe) ? {} : { skip: `no fixture ${caffe}` }, async (t) => {
  const out = join(dir, 'caffe.squall');
  const r = await ok(t, ['convert', caffe, out, '--weights', join(FIXTURES, 'lenet5-caffe.caffemodel')], 'convert caffe');
  t.match(r.out, /\(caffe, 22278 parameters, input 1x28x28\)/);
  const a = await loadModel(out);
  const b = await loadModel(caffe, { weights: join(FIXTURES, 'lenet5-caffe.caffemodel') });
  t.same(a.model.parameters().map((p) => Array.from(p.value.data)), b.model.parameters().map((p) => Array.from(p.value.data)), 'the converted file holds the caffemodel\'s weights');
});

t.test('predict on fashion-mnist:test:N', fashionMnistAvailable('test') ? {} : { skip: 'Fashion-MNIST is not installed (dataset-fashion-mnist)' }, async (t) => {
  const count = 300;
  const r = await ok(t, ['predict', '--model', fx.onnx, '--input', `fashion-mnist:test:${count}`, '--top', '2', '--show', '3'], 'predict on Fashion-MNIST');
  const m = /accuracy ([\d.]+)% \((\d+) of (\d+), fashion-mnist test \((\d+) images\)\)/.exec(r.out);
  t.ok(m, `prints the accuracy: ${r.out.split('\n').find((l) => l.startsWith('accuracy'))}`);
  t.match(r.out, /^sample 0 \(label \d \S[^)]*\): \d \S/m, 'samples show their label and class names');
  // The same through the library: the training set's statistics, the first N test images.
  const train = loadFashionMnist({ split: 'train' });
  const { mean, std } = meanStd(train);
  const test = normalise(sliceDataset(loadFashionMnist({ split: 'test' }), 0, count), mean, std);
  const model = (await loadModel(fx.onnx)).model.to(loadBackend(testBackends()[0]!.name)).evaluate();
  const y = await model.forward(new Tensor([count, 1, 28, 28], test.images));
  let correct = 0;
  for (let i = 0; i < count; i++) {
    const row = y.data.subarray(i * 10, i * 10 + 10);
    if (row.indexOf(Math.max(...row)) === test.labels[i]) correct++;
  }
  model.dispose();
  t.equal(Number(m?.[2]), correct, `${correct} of ${count} correct, as the library computes it`);
  t.equal(Number(m?.[3]), count);
});

t.test('bad arguments and inputs', async (t) => {
  const model = fx.onnx;
  await refused(t, ['predict', '--input', npy], 2, ['--model is required'], 'no --model');
  await refused(t, ['predict', '--model', model], 2, ['--input is required'], 'no --input');
  await refused(t, ['predict', '--model', model, '--input', npy, '--backend', 'gpu'], 2, ['--backend must be native or wasm', 'gpu'], 'unknown backend');
  await refused(t, ['predict', '--model', model, '--input', npy, '--top', '0'], 2, ['--top must be at least 1'], '--top 0');
  await refused(t, ['predict', '--model', model, '--input', npy, '--top', 'many'], 2, ['--top must be an integer'], '--top not a number');
  await refused(t, ['predict', '--model', model, '--input', npy, '--input-shape', '1,x,28'], 2, ['--input-shape must be positive sizes'], 'bad --input-shape');
  await refused(t, ['predict', '--model', model, '--input', npy, '--colour', 'red'], 2, ['unknown option --colour'], 'unknown option');
  await refused(t, ['predict', '--model', model, '--input', join(dir, 'nothing.npy')], 2, ['nothing.npy', 'is not a file, a JSON array or fashion-mnist'], 'missing input file');
  await refused(t, ['predict', '--model', model, '--input', '[1, 2, 3]'], 2, ['has shape [3]', 'samples of [1, 28, 28]'], 'a JSON input of the wrong shape');
  await refused(t, ['predict', '--model', model, '--input', '[[1, 2], [3]]'], 2, ['rectangular array'], 'a ragged JSON input');
  await refused(t, ['predict', '--model', model, '--input', 'fashion-mnist:validation'], 2, ['fashion-mnist:test or fashion-mnist:test:N'], 'an unknown split');
  await refused(t, ['predict', '--model', model, '--input', 'fashion-mnist:test:0'], 2, ['N must be 1 to'], 'zero images');

  const f8 = encodeNpy([1, 1, 28, 28], new Float32Array(784));
  const f8Header = Buffer.from(f8).toString('latin1').replace("'<f4'", "'<f8'");
  const f8Path = join(dir, 'doubles.npy');
  writeFileSync(f8Path, Buffer.from(f8Header, 'latin1'));
  await refused(t, ['predict', '--model', model, '--input', f8Path], 1, ['doubles.npy', "dtype '<f8' is not float32", 'astype(numpy.float32)'], 'a float64 .npy');
  const cut = join(dir, 'cut.npy');
  writeFileSync(cut, readFileSync(npy).subarray(0, 500));
  await refused(t, ['predict', '--model', model, '--input', cut], 1, ['cut.npy', 'truncated'], 'a truncated .npy');
  const notModel = join(dir, 'notes.onnx');
  writeFileSync(notModel, 'not a model\n');
  await refused(t, ['predict', '--model', notModel, '--input', npy], 1, ['notes.onnx', 'not a model file Squall reads'], 'a --model that is no model');

  await refused(t, ['convert', model], 2, ['give the input and the output file (got 1 file argument)'], 'convert with one file');
  await refused(t, ['convert', model, join(dir, 'out.txt')], 2, ["cannot tell the output format from", '.squall', '.onnx'], 'an unknown output extension');
  await refused(t, ['convert', notModel, join(dir, 'x.squall')], 1, ['notes.onnx', 'not a model file Squall reads'], 'converting garbage');
  await refused(t, ['convert', model, join(dir, 'x.squall'), '--weights', model], 1, ['goes with a Caffe prototxt'], '--weights for an ONNX file');
});
