// The models' numbers against PyTorch (float64) as the independent oracle, on every backend.
//
// Each case: the Squall model is reset(seed) (plus, for VGG, random BatchNorm gamma / beta)
// and put on a backend; its flat parameters (flatParameters().values, parameters() order),
// its BatchNorm running statistics and a random input go to torch_oracle.py, which loads
// them into the models.py twin in model.parameters() / buffer order, runs it in float64
// and sends the output back (and, for nn.Sequential twins, the output of every top-level
// layer). Every backend then rebuilds the same model, checks its flat parameters are
// bitwise the ones sent, runs forward in evaluation mode and must agree within 1e-4:
// max |got - ref| / max(1, max |ref|).
//
//   lenet5           batch 4, evaluation output; and training-mode gradients of the mean NLL
//                    loss (parameter gradients in flat order and the input gradient, each within
//                    1e-4 of its largest magnitude; the loss within 1e-4)
//   vgg_cifar        batch 2, evaluation mode, running statistics calibrated to the activations
//                    and perturbed (so no layer's signal dies out and BN is not the identity),
//                    output and every one of its 60 top-level layers
//   inception block  inceptionBlock(192, 64, 96, 128, 16, 32, 32) on [2, 192, 8, 8] against
//                    models.py's InceptionV1Layer
//   inception stem   conv 7x7 s2 + ReLU + 3x3 s2 ceil max pool + LRN(5, 1e-4, 0.75) on
//                    [1, 3, 64, 64] in the pixel range (so LRN changes the values), against the
//                    first four layers of models.py's inception_v1
//
// All PyTorch work runs in one Python process before the backends' subtests.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import { backendNames, loadBackend } from '../../engine/backends/registry.js';
import { MODELS, inceptionBlock, inceptionV1 } from '../../engine/models/index.js';
import {
  BatchNormalization, ClassNLLCriterion, ReLU, Sequential, SpatialConvolution, SpatialCrossMapLRN, SpatialMaxPooling, type Module,
  type StateBuffer,
} from '../../engine/nn/index.js';
import { Tensor } from '../../engine/tensor/tensor.js';
import { Rng, close, forEachBackend, maxRelErr, randArray, sameBits } from '../conformance/util.js';
import { Job, layoutOf, type Task, type TaskResult } from './oracle.js';

const TOL = 1e-4;

interface Case {
  name: string;
  model: Task['model'];
  args?: number[];
  build: () => Module;
  input: number[];
  /** Input values are uniform in [lo, hi). */
  range: [number, number];
  seed: number;
  /** Tweaks parameters after reset(seed), before to(backend); must be deterministic. */
  prepare?: (m: Module) => void;
  /** Set the BatchNorm running statistics from the activations (on the exporting backend). */
  calibrate?: boolean;
  /** Compare the output of every top-level layer too (the PyTorch twin is an nn.Sequential). */
  layers?: boolean;
}

/** Random BatchNorm gamma in [0.5, 1.5) and beta in [-0.2, 0.2). */
function randomAffine(m: Module): void {
  const rng = new Rng(4242);
  for (const mod of m.modules()) {
    if (!(mod instanceof BatchNormalization)) continue;
    for (let i = 0; i < mod.features; i++) {
      mod.weight!.value.data[i] = rng.uniform(0.5, 1.5);
      mod.bias!.value.data[i] = rng.uniform(-0.2, 0.2);
    }
  }
}

const stem = (): Sequential => new Sequential(new SpatialConvolution(3, 64, 7, 7, 2, 2, 3, 3), new ReLU(),
  new SpatialMaxPooling(3, 3, 2, 2).ceil(), new SpatialCrossMapLRN(5, 1e-4, 0.75));

const cases: Case[] = [
  { name: 'lenet5', model: 'lenet5', build: () => MODELS.lenet5!.build(), input: [4, 1, 28, 28], range: [-1, 1], seed: 11 },
  {
    name: 'vgg_cifar', model: 'vgg_cifar', build: () => MODELS.vgg_cifar!.build(), input: [2, 3, 32, 32], range: [-2, 2], seed: 12,
    prepare: randomAffine, calibrate: true, layers: true,
  },
  {
    name: 'inception block', model: 'inception_block', args: [192, 64, 96, 128, 16, 32, 32],
    build: () => inceptionBlock(192, 64, 96, 128, 16, 32, 32), input: [2, 192, 8, 8], range: [-1, 2], seed: 13,
  },
  { name: 'inception stem with LRN', model: 'inception_stem', build: stem, input: [1, 3, 64, 64], range: [-200, 200], seed: 14, layers: true },
];

/** The model of a case, reset and on the backend. */
function materialise(c: Case, be: Backend): Module {
  const m = c.build().reset(c.seed);
  c.prepare?.(m);
  return m.to(be);
}

/**
 * Running statistics from the activations of `x`, layer by layer in evaluation mode: the
 * per-channel mean shifted by up to 0.2 standard deviations, the per-channel variance
 * scaled by [0.5, 2). The variance is first raised to at least half the layer's mean
 * square (and 0.01): with two samples a BatchNorm1d feature shows a spread far below its
 * magnitude, and normalising by that spread would amplify float32 rounding tenfold where
 * statistics gathered over a data set would not.
 */
async function calibrate(m: Module, x: Tensor, rng: Rng): Promise<void> {
  m.evaluate();
  let h = x;
  for (const layer of m.children()) {
    if (layer instanceof BatchNormalization) {
      const c = layer.features;
      const n = h.shape[0]!;
      const spatial = h.size / (n * c);
      const means = new Float64Array(c);
      const vars = new Float64Array(c);
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        let s2 = 0;
        for (let b = 0; b < n; b++) {
          for (let i = 0; i < spatial; i++) {
            const v = h.data[(b * c + ch) * spatial + i]!;
            s += v;
            s2 += v * v;
          }
        }
        means[ch] = s / (n * spatial);
        vars[ch] = Math.max(s2 / (n * spatial) - means[ch]! * means[ch]!, 0);
      }
      let meanSquare = 0;
      for (let ch = 0; ch < c; ch++) meanSquare += (vars[ch]! + means[ch]! * means[ch]!) / c;
      const floor = Math.max(0.5 * meanSquare, 0.01);
      for (let ch = 0; ch < c; ch++) {
        const variance = Math.max(vars[ch]!, floor);
        layer.runningMean.value.data[ch] = means[ch]! + 0.2 * Math.sqrt(variance) * rng.uniform(-1, 1);
        layer.runningVar.value.data[ch] = variance * rng.uniform(0.5, 2);
      }
    }
    h = await layer.forward(h);
  }
}

/** BatchNorm's running statistics (PyTorch's buffers), in module order; other modules' state is not PyTorch's. */
function bnStates(m: Module): StateBuffer[] {
  return m.states().filter((s) => s.module instanceof BatchNormalization);
}

interface Exported {
  params: Float32Array;
  paths: string[];
  states: Float32Array[];
  input: Tensor;
}

/** The first backend that loads (as forEachBackend would pick them). */
function exportBackend(): Backend | null {
  const only = process.env.SQUALL_TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of backendNames) {
    if (only && !only.includes(name)) continue;
    try {
      return loadBackend(name);
    } catch {
      // forEachBackend reports it
    }
  }
  return null;
}

const be0 = exportBackend();
const exported = new Map<string, Exported>();
const lenetTarget = [3, 0, 9, 5];
let oracle: ReturnType<Job['run']> | null = null;

if (be0) {
  const job = new Job();
  for (const c of cases) {
    const rng = new Rng(c.seed);
    const input = new Tensor(c.input, randArray(rng, c.input.reduce((a, b) => a * b, 1), ...c.range));
    const m = materialise(c, be0);
    if (c.calibrate) await calibrate(m, input, rng);
    const flat = m.flatParameters();
    const e: Exported = {
      params: flat.values.slice(),
      paths: flat.layout.map((s) => s.path),
      states: bnStates(m).map((s) => s.value.data.slice()),
      input,
    };
    exported.set(c.name, e);
    const task: Task = {
      name: c.name, model: c.model, mode: 'eval', layers: c.layers ?? false,
      params: flat.layout.map((s) => job.add(e.params.subarray(s.offset, s.offset + s.size), s.shape)),
      buffers: bnStates(m).map((s, i) => job.add(e.states[i]!, s.value.shape)),
      input: job.add(input.data, input.shape),
      ...(c.args ? { args: c.args } : {}),
    };
    job.tasks.push(task);
    if (c.name === 'lenet5') job.tasks.push({ ...task, name: 'lenet5 train', mode: 'train_nll', target: lenetTarget });
    m.dispose();
  }
  oracle = job.run();
}

if (oracle && 'skip' in oracle) {
  t.test('models against PyTorch', { skip: oracle.skip }, () => {});
} else {
  const results = oracle?.results ?? new Map<string, TaskResult>();
  if (oracle) t.comment(`oracle: PyTorch ${oracle.torch}, float64`);

  t.same(layoutOf(stem()), ['Sequential', inceptionV1().children().slice(0, 4).map(layoutOf)],
    'the hand-built stem is the first four layers of inceptionV1()');

  forEachBackend(t, async (t, be) => {
    for (const c of cases) {
      await t.test(c.name, async (t) => {
        const e = exported.get(c.name)!;
        const ref = results.get(c.name)!;
        if (ref.error) {
          t.fail(`torch_oracle.py: ${ref.error}`);
          return;
        }
        const m = materialise(c, be);
        const flat = m.flatParameters();
        t.same(flat.layout.map((s) => s.path), m.parameters().map((p) => `${p.module.path()}.${p.name}`), 'flat layout is in parameters() order');
        t.same(flat.layout.map((s) => s.path), e.paths, 'same flat layout as the exported model');
        sameBits(t, flat.values, e.params, 'flat parameters after reset(seed).to(backend) are the ones sent to PyTorch');
        for (const [i, s] of bnStates(m).entries()) s.value.data.set(e.states[i]!);
        m.evaluate();

        const y = await m.forward(e.input);
        t.same(y.shape, ref.outputShape, `output shape [${ref.outputShape.join(', ')}]`);
        close(t, y.data, ref.output, `${c.name} evaluation output vs PyTorch float64`, TOL);
        // A comparison against a constant would prove little: the output must vary.
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of ref.output) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        t.ok(hi - lo > 0.1, `reference output spreads over ${(hi - lo).toFixed(3)}`);

        if (c.layers) {
          const children = m.children();
          t.equal(ref.layers.length, children.length, `PyTorch gave the output of all ${children.length} top-level layers`);
          const bad: string[] = [];
          let worst = 0;
          for (const [i, layer] of children.entries()) {
            const r = ref.layers[i];
            if (!r) break;
            const err = layer.output.shape.join() === r.shape.join() ? maxRelErr(layer.output.data, r.data) : Infinity;
            worst = Math.max(worst, err);
            if (!(err <= TOL)) bad.push(`${layer.path()} ${layer.describe()}: ${err.toExponential(2)} (shape [${layer.output.shape}] vs [${r.shape}])`);
          }
          t.same(bad, [], `every top-level layer's output within ${TOL} (worst ${worst.toExponential(2)})`);
          if (c.calibrate) {
            // The calibration keeps the signal alive: the last hidden layer is not near zero.
            const hidden = ref.layers[ref.layers.length - 3]!.data;
            t.ok(hidden.some((v) => Math.abs(v) > 0.5), 'the input of the last linear layer has magnitude ~1');
          }
        }
        m.dispose();
      });
    }

    await t.test('lenet5 training gradients (mean NLL loss)', async (t) => {
      const c = cases[0]!;
      const e = exported.get(c.name)!;
      const ref = results.get('lenet5 train')!;
      if (ref.error) {
        t.fail(`torch_oracle.py: ${ref.error}`);
        return;
      }
      const m = materialise(c, be);
      m.train();
      m.zeroGradParameters();
      const y = await m.forward(e.input);
      close(t, y.data, ref.output, 'training-mode output', TOL);
      const crit = new ClassNLLCriterion();
      const target = Int32Array.from(lenetTarget);
      const loss = crit.forward(y, target);
      t.ok(Math.abs(loss - ref.loss!) <= TOL * Math.max(1, Math.abs(ref.loss!)), `loss ${loss} vs PyTorch ${ref.loss}`);
      const gx = await m.backward(e.input, crit.backward(y, target));
      const flat = m.flatParameters();
      // relative to the largest gradient, not to 1: gradients are small
      close(t, flat.grads, ref.grads!, 'parameter gradients (flat order) vs PyTorch', TOL, 1e-30);
      for (const s of flat.layout) {
        const got = flat.grads.subarray(s.offset, s.offset + s.size);
        const want = ref.grads!.subarray(s.offset, s.offset + s.size);
        const err = maxRelErr(got, want, 1e-30);
        t.ok(err <= 1e-3, `${s.path} gradient within 1e-3 of its own largest value (${err.toExponential(2)})`);
      }
      close(t, gx.data, ref.gradInput!, 'input gradient vs PyTorch', TOL, 1e-30);
      m.dispose();
    });
  });
}
