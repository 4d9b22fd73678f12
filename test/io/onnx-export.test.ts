// saveOnnx: Squall models written as ONNX (opset 13), then
//   - read back by Squall's importer: the same module tree and, on every backend, bitwise
//     the same outputs as the model that was written;
//   - run by PyTorch (test/io/fixtures/run_onnx_torch.py: the file decoded with
//     google.protobuf from onnx.proto's field numbers, each operator evaluated with
//     torch.nn.functional in float64): the same outputs within 1e-4, so the file means to an
//     independent reader what Squall meant (weight layouts, pads, ceil mode, LRN, batch-norm
//     statistics). Skipped with the reason when python3 / torch is missing.
// Models: engine/models' LeNet-5 and Inception-v1 (with its LRN as ONNX's LRN operator and
// its dropout), and a small model with the remaining exported modules (grouped and dilated
// convolution, both batch-norm forms with running statistics, LeakyReLU, average pooling
// that excludes padding, a Concat, Reshape, Sigmoid, SoftMax, a linear layer without bias).
import { join } from 'node:path';
import t from 'tap';
import { buildModule, loadOnnx, saveOnnx } from '../../engine/io/index.js';
import { inceptionV1, lenet5 } from '../../engine/models/index.js';
import {
  BatchNormalization, Concat, LeakyReLU, Linear, ReLU, Reshape, Sequential, Sigmoid, SoftMax, SpatialAveragePooling,
  SpatialBatchNormalization, SpatialConvolution, SpatialMaxPooling, Tanh, View, type Module,
} from '../../engine/nn/index.js';
import { Tensor } from '../../engine/tensor/tensor.js';
import { Rng, close, forEachBackend, randArray, sameBits } from '../conformance/util.js';
import { layoutOf } from '../models/oracle.js';
import { scratchDir } from './checkpoint-util.js';
import { runWithTorch } from './onnx-util.js';

const TOL = 1e-4;

/** Exercises what LeNet and Inception do not: batch norm, grouped/dilated conv, exclude-pad pooling, LeakyReLU, Sigmoid, SoftMax, Reshape. */
function mixed(): Sequential {
  return new Sequential(
    new SpatialConvolution(3, 8, 3, 3, 1, 1, 2, 2, { dilationW: 2, dilationH: 2 }),
    new SpatialBatchNormalization(8, { eps: 1e-3, momentum: 0.2 }),
    new LeakyReLU(0.1),
    new SpatialAveragePooling(3, 3, 2, 2, 1, 1).ceil().setCountExcludePad(),
    new Concat(1,
      new Sequential(new SpatialConvolution(8, 4, 3, 3, 1, 1, 1, 1, { groups: 2 }), new Sigmoid()),
      new Sequential(new SpatialMaxPooling(3, 3, 1, 1, 1, 1), new Tanh(), new SpatialConvolution(8, 2, 1, 1, 1, 1, 0, 0, { bias: false }))),
    new Reshape(6, 4, 4),
    new View(96),
    new Linear(96, 12),
    new BatchNormalization(12),
    new ReLU(),
    new Linear(12, 5, false),
    new SoftMax(),
  );
}

/** Running statistics other than the initial 0 / 1, so the export has to carry them. */
function randomStatistics(m: Module, seed: number): void {
  const rng = new Rng(seed);
  for (const s of m.states()) {
    if (s.name === 'runningMean') for (let i = 0; i < s.value.size; i++) s.value.data[i] = rng.uniform(-0.5, 0.5);
    if (s.name === 'runningVar') for (let i = 0; i < s.value.size; i++) s.value.data[i] = rng.uniform(0.5, 2);
  }
}

interface Case {
  name: string;
  build: () => Module;
  input: number[];
  range: [number, number];
  ops: Record<string, number>;
}

const cases: Case[] = [
  { name: 'lenet5', build: () => lenet5(), input: [3, 1, 28, 28], range: [-1, 1], ops: { Conv: 2, Tanh: 3, MaxPool: 2, Flatten: 1, Gemm: 2, LogSoftmax: 1 } },
  {
    name: 'inception_v1', build: () => inceptionV1(), input: [1, 3, 224, 224], range: [-200, 200],
    ops: { Conv: 57, Relu: 57, MaxPool: 13, LRN: 2, Concat: 9, AveragePool: 1, Dropout: 1, Flatten: 1, Gemm: 1, LogSoftmax: 1 },
  },
  {
    name: 'mixed', build: mixed, input: [2, 3, 7, 7], range: [-2, 2],
    ops: { Conv: 3, BatchNormalization: 2, LeakyRelu: 1, AveragePool: 1, Sigmoid: 1, MaxPool: 1, Tanh: 1, Concat: 1, Reshape: 1, Flatten: 1, Gemm: 2, Relu: 1, Softmax: 1 },
  },
];

const dir = scratchDir(t, 'onnx-export');

for (const [k, c] of cases.entries()) {
  t.test(c.name, async (t) => {
    const rng = new Rng(300 + k);
    const input = new Tensor(c.input, randArray(rng, c.input.reduce((a, b) => a * b, 1), ...c.range));
    const original = c.build().reset(40 + k);
    randomStatistics(original, 50 + k);
    original.evaluate();
    const path = join(dir, `${c.name}.onnx`);
    const written = await saveOnnx(path, original, { inputShape: c.input.slice(1) });
    t.ok(written.bytes > 4 * original.parameterCount(), `wrote ${written.bytes} bytes for ${original.parameterCount()} parameters`);

    const graph = await loadOnnx(path);
    t.same(graph.inputs, [{ name: 'input', shape: c.input.slice(1) }], 'the declared input shape reads back');
    const imported = buildModule(graph);
    t.same(layoutOf(imported), layoutOf(original), 'the same module tree');
    const statistics = (m: Module): number[][] => m.states().filter((s) => s.module instanceof BatchNormalization).map((s) => Array.from(s.value.data));
    t.same(statistics(imported), statistics(original), 'the batch-norm running statistics');

    // PyTorch runs the file; its output is compared with Squall's on the first backend.
    const torch = runWithTorch(path, input);
    let reference: Float32Array | null = null;
    forEachBackend(t, async (t, be) => {
      const a = c.build().reset(40 + k);
      randomStatistics(a, 50 + k);
      a.to(be).evaluate();
      const b = buildModule(graph).to(be).evaluate();
      const ya = (await a.forward(input)).data.slice();
      const yb = (await b.forward(input)).data.slice();
      sameBits(t, yb, ya, `${c.name}: the re-imported model gives bitwise the written model's output`);
      reference ??= ya;
      a.dispose();
      b.dispose();
    });
    if ('skip' in torch) {
      t.test('run by PyTorch', { skip: torch.skip }, () => {});
      return;
    }
    t.test('run by PyTorch', async (t) => {
      const s = torch.summary;
      t.same(s.opset, [['', 13]], 'opset 13 of the default domain');
      t.equal(s.ir_version, 7);
      t.same(s.ops, c.ops, 'the operators written');
      t.same(s.input, ['batch', ...c.input.slice(1)], 'input declared with a symbolic batch');
      t.same(s.output_shape, original.outputShape(c.input), 'PyTorch computes the output shape Squall does');
      if (!reference) {
        t.fail('no backend ran the model');
        return;
      }
      close(t, reference, torch.output, `${c.name}: Squall's output vs PyTorch running the exported file`, TOL);
    });
  });
}
