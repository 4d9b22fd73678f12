// ONNX files written by PyTorch (torch.onnx.export, opset 13, from ../shared/peers/models.py;
// test/io/fixtures/export_onnx.py) imported, built and run on every backend: the outputs must
// be PyTorch's own (computed in float64 from the same weights) within 1e-4,
// max |got - ref| / max(1, max |ref|).
//
//   LeNet-5       committed fixture (runs without Python): batch 4 of 1x28x28
//   ops           committed fixture: a small model (defined in export_onnx.py) of the layers
//                 the other two lack, in the node patterns PyTorch writes for them: batch
//                 norm 2-d and 1-d, LeakyRelu, dilated grouped Conv, Sigmoid, Pad +
//                 AveragePool (padding counted), AveragePool with pads (not counted),
//                 GlobalAveragePool, MatMul + Add, Tanh, Softmax
//   Inception-v1  generated into a cache on first use (skipped without torch / models.py):
//                 batch 2 of 3x224x224, He-initialised, inputs in [-200, 200), so that its
//                 two LocalResponseNorm layers (which PyTorch exports as a subgraph of
//                 Mul/Unsqueeze/Pad/AveragePool/If/Reshape/Pow/Div nodes, not an LRN node)
//                 change the output far beyond the tolerance (export_onnx.py measures it)
//
// The imported module trees are also compared with Squall's own definitions of the models
// (engine/models), written independently from models.py.
import t from 'tap';
import { buildModule, loadOnnx, type LayerGraph } from '../../engine/io/index.js';
import { inceptionV1, lenet5 } from '../../engine/models/index.js';
import { close, forEachBackend, maxRelErr, type Tap } from '../conformance/util.js';
import { layoutOf } from '../models/oracle.js';
import { FIXTURES, inceptionFixture, readFixture, type OnnxFixture } from './onnx-util.js';

const TOL = 1e-4;

/** Runs the imported model on every backend and compares with PyTorch. */
function againstPyTorch(t: Tap, graph: LayerGraph, fx: OnnxFixture): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of fx.ref) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  t.ok(hi - lo > 0.1, `PyTorch's output is not a constant (it spreads over ${(hi - lo).toFixed(3)})`);
  forEachBackend(t, async (t, be) => {
    const model = buildModule(graph).to(be).evaluate();
    const y = await model.forward(fx.input);
    t.same(y.shape, fx.meta.output, `output shape [${fx.meta.output.join(', ')}]`);
    const err = maxRelErr(y.data, fx.ref);
    t.comment(`${fx.meta.model} on ${be.name}: max relative error vs PyTorch ${err.toExponential(2)}`);
    close(t, y.data, fx.ref, `${fx.meta.model} output vs PyTorch ${fx.meta.torch} (float64)`, TOL);
    model.dispose();
  });
}

t.test('LeNet-5 exported by PyTorch', async (t) => {
  const fx = readFixture(FIXTURES, 'lenet5');
  const graph = await loadOnnx(fx.onnx);
  t.equal(graph.format, 'onnx');
  t.equal(graph.source, fx.onnx, 'the graph names its file');
  t.same(graph.inputs, [{ name: 'input', shape: [1, 28, 28] }], 'one input, its per-sample shape from the file (batch symbolic)');
  t.same(graph.outputs, ['output']);
  const model = buildModule(graph);
  const layout = layoutOf(model) as [string, unknown[]];
  t.match(model.children()[0]!.describe(), /^nn\.Reshape\(1, 28, 28\)$/, 'PyTorch\'s x.view(-1, 1, 28, 28) is a per-sample reshape');
  t.same(layout[1].slice(1), (layoutOf(lenet5()) as [string, unknown[]])[1], 'then the layers of Squall\'s own lenet5');
  againstPyTorch(t, graph, fx);
});

t.test('other layers, as PyTorch exports them', async (t) => {
  const fx = readFixture(FIXTURES, 'ops');
  const graph = await loadOnnx(fx.onnx);
  t.same(graph.nodes.map((n) => n.sourceType), ['Conv', 'LeakyRelu', 'BatchNormalization', 'Conv', 'Sigmoid', 'Pad+AveragePool', 'AveragePool',
    'GlobalAveragePool', 'Flatten', 'MatMul+Add', 'BatchNormalization', 'Tanh', 'Gemm', 'Softmax'], 'each PyTorch layer is one graph node');
  const model = buildModule(graph);
  t.same(model.children().map((m) => m.describe()), [
    'nn.SpatialConvolution(3 -> 8, 3x3, 1,1, 1,1)', 'nn.LeakyReLU(0.1)', 'nn.SpatialBatchNormalization(8, eps 0.001, momentum 0.2)',
    'nn.SpatialConvolution(8 -> 8, 3x3, 1,1, 2,2, groups 2, dilation 2,2)', 'nn.Sigmoid', 'nn.SpatialAveragePooling(3x3, 2,2, 1,1, ceil)',
    'nn.SpatialAveragePooling(3x3, 1,1, 1,1, exclude pad)', 'nn.SpatialAveragePooling(5x5, 1,1, 0,0)', 'nn.View(8)', 'nn.Linear(8 -> 6)',
    'nn.BatchNormalization(6, eps 0.00001, momentum 0.1)', 'nn.Tanh', 'nn.Linear(6 -> 5)', 'nn.SoftMax',
  ], 'the modules of the PyTorch model (its eps, momentum, padding rules; the global pool\'s 5x5 plane)');
  againstPyTorch(t, graph, fx);
});

const inception = inceptionFixture();
if ('skip' in inception) t.test('Inception-v1 exported by PyTorch', { skip: `no Inception-v1 fixture: ${inception.skip}` }, () => {});
else t.test('Inception-v1 exported by PyTorch (LRN as a subgraph)', async (t) => {
  const fx = inception;
  t.ok(fx.meta.lrn_effect > 100 * TOL, `without its LRN layers the model's output would differ by ${fx.meta.lrn_effect.toExponential(2)} ` +
    '(relative), so matching PyTorch checks the LRN import');
  const started = Date.now();
  const graph = await loadOnnx(fx.onnx);
  t.comment(`imported ${graph.nodes.length} layers in ${Date.now() - started} ms`);
  const lrn = graph.nodes.filter((n) => n.layer.op === 'lrn');
  t.equal(lrn.length, 2, 'both LocalResponseNorm subgraphs are recognised');
  for (const n of lrn) {
    t.same(n.layer, { op: 'lrn', size: 5, alpha: 1e-4, beta: 0.75, k: 1 }, `${n.name}: models.py's LocalResponseNorm(5, 1e-4, 0.75)`);
    t.match(n.sourceType, /LocalResponseNorm/);
  }
  const ops = new Set(graph.nodes.map((n) => n.layer.op));
  t.same([...ops].sort(), ['avgpool', 'concat', 'conv', 'flatten', 'linear', 'logsoftmax', 'lrn', 'maxpool', 'relu'],
    'no shape arithmetic is left: every node is a layer');
  t.same(layoutOf(buildModule(graph)), layoutOf(inceptionV1(1000, false)),
    'the module tree is Squall\'s own inceptionV1 (the export has no dropout: evaluation mode)');
  againstPyTorch(t, graph, fx);
});
