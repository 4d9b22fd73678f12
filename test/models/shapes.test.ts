// The benchmark models of engine/models against their PyTorch twins in
// ../shared/peers/models.py (through torch_oracle.py, one Python process): the MODELS table
// (input shape, classes, batch), parameter count, output shape for a batch of 2, the ordered
// list of parameter shapes (Squall's parameters() order against PyTorch's
// model.parameters()), BatchNorm running statistics against PyTorch's buffers, parameter
// names where both models are plain Sequentials, and the whole layer layout (types and
// hyper-parameters of every module, in order) for the Sequential models.
//
// No reset() or to(): building VGG-16 allocates about 1.1 GB of zeros and that is all this
// test does with it.
import t from 'tap';
import { MODELS } from '../../engine/models/index.js';
import { BatchNormalization, type Module } from '../../engine/nn/index.js';
import { layoutOf, runOracle, type Layout } from './oracle.js';

interface TorchModel {
  input: number[];
  classes: number;
  batch: number;
  paramCount: number;
  paramNames: string[];
  paramShapes: number[][];
  bufferNames: string[];
  bufferShapes: number[][];
  outputShape: number[];
  layout: Layout | null;
}

const oracle = runOracle(['shapes']);

if (oracle.skip !== undefined) {
  t.test('models against PyTorch', { skip: oracle.skip }, () => {});
} else {
  const torch = JSON.parse(oracle.stdout) as Record<string, TorchModel>;

  t.same(Object.keys(MODELS).sort(), ['inception_v1', 'lenet5', 'vgg16', 'vgg_cifar'], 'MODELS holds the four benchmark models');

  for (const [name, spec] of Object.entries(MODELS)) {
    t.test(name, async (t) => {
      const ref = torch[name];
      if (!ref) {
        t.fail(`models.py has no model ${name}`);
        return;
      }
      t.equal(spec.name, name, 'spec.name is its key');
      t.same(spec.input, ref.input, `input shape ${JSON.stringify(spec.input)} as models.py`);
      t.equal(spec.classes, ref.classes, `classes ${spec.classes} as models.py`);
      t.equal(spec.batch, ref.batch, `benchmark batch ${spec.batch} as models.py`);

      let model: Module | undefined = spec.build();
      const params = model.parameters();
      t.equal(model.parameterCount(), ref.paramCount, `parameterCount() = ${ref.paramCount}, PyTorch's sum of numel()`);
      t.same(model.outputShape([2, ...spec.input]), ref.outputShape, `outputShape([2, ${spec.input.join(', ')}]) = [${ref.outputShape.join(', ')}]`);
      if (name !== 'vgg16') { // another 1.1 GB otherwise
        t.same(spec.build(7).outputShape([3, ...spec.input]), [3, 7], 'build(classes) sets the width of the last layer');
      }

      t.equal(params.length, ref.paramShapes.length, `${ref.paramShapes.length} parameter tensors`);
      const shapes = params.map((p) => [...p.value.shape]);
      const firstBad = shapes.findIndex((s, i) => JSON.stringify(s) !== JSON.stringify(ref.paramShapes[i]));
      t.equal(firstBad, -1, firstBad < 0 ? 'parameter shapes in parameters() order equal PyTorch\'s model.parameters()'
        : `parameter ${firstBad} (${params[firstBad]!.module.path()}.${params[firstBad]!.name}) is [${shapes[firstBad]}], PyTorch's ${ref.paramNames[firstBad]} is [${ref.paramShapes[firstBad]}]`);
      t.same(shapes, ref.paramShapes, 'ordered parameter shapes');
      t.ok(params.every((p) => p.grad.shape.join() === p.value.shape.join()), 'every gradient has its parameter\'s shape');

      // BatchNorm: PyTorch keeps the running statistics as buffers, Squall as state buffers
      // (other modules may keep state too, e.g. Dropout's mask stream: not PyTorch buffers)
      const states = model.states().filter((s) => s.module instanceof BatchNormalization);
      t.same(states.map((s) => [...s.value.shape]), ref.bufferShapes, `${ref.bufferShapes.length} running-statistics buffers with PyTorch's shapes`);
      t.same(states.map((s) => s.name), ref.bufferNames.map((n) => (n.endsWith('running_mean') ? 'runningMean' : 'runningVar')),
        'running mean then running variance of each BatchNorm, in module order');

      if (ref.layout) {
        // Top level of a plain nn.Sequential: layer i is layer i in both, so are the names
        const squallNames = params.map((p) => `${p.module.path()}.${p.name}`);
        if (name === 'inception_v1') {
          // inception blocks are InceptionV1Layer (b1, b3, b5, bp) in PyTorch and nn.Concat of 4 Sequentials here
          t.same(squallNames.map((n) => n.split('.')[1]), ref.paramNames.map((n) => n.split('.')[0]), 'each parameter sits in the same top-level layer');
        } else {
          t.same(squallNames, ref.paramNames.map((n) => `model.${n}`), 'parameter paths equal PyTorch\'s names (model.<index>.weight|bias)');
        }
        t.same(states.map((s) => `${s.module.path()}`), ref.bufferNames.map((n) => `model.${n.replace(/\.running_(mean|var)$/, '')}`),
          'running statistics belong to the same layers');
        const mine = layoutOf(model);
        t.same(mine, ref.layout, 'layer layout (types and hyper-parameters, in order) equals models.py');
        if (JSON.stringify(mine) !== JSON.stringify(ref.layout)) {
          const a = (mine[1] as Layout[]) ?? [];
          const b = (ref.layout[1] as Layout[]) ?? [];
          const i = a.findIndex((l, k) => JSON.stringify(l) !== JSON.stringify(b[k]));
          t.comment(`first difference at layer ${i}: Squall ${JSON.stringify(a[i])}, PyTorch ${JSON.stringify(b[i])}`);
        }
      } else {
        t.equal(name, 'lenet5', 'only LeNet-5 (a custom nn.Module with functional ops) has no comparable layout');
      }
      model = undefined; // let the ~1.1 GB of VGG-16 go before the next model
    });
  }
}
