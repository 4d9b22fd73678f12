// Caffe models imported and run against PyTorch, on every backend.
//
// The fixtures come from test/io/fixtures/write_caffe.py, which writes a seeded models.py
// model as a deploy prototxt (ending in Softmax, as Caffe deploy nets do) and a caffemodel
// with its own hand-built rendering of caffe.proto, plus PyTorch's float64 output (the
// log-probabilities) and the logits of the last linear layer. Each imported net must give,
// through buildModule, the probabilities exp(output) and, without its final Softmax, the
// logits within 1e-4: max |got - ref| / max(1, max |ref|).
//
//   LeNet-5        V2 `layer` files (Input layer, round_mode FLOOR pools, implicit flatten,
//                  in-place TanH) and the legacy V1 `layers` files (enum types, input_dim,
//                  4-D blob shapes), kept in test/io/fixtures
//   prototxt alone the model is initialised, not loaded: it runs and differs from the trained one
//   Inception-v1   net-level input_shape, fan-out + Concat, LRN, ceil pools, dropout, average
//                  pool; generated at test time (skipped without torch / models.py)
import t from 'tap';
import { join } from 'node:path';
import { loadCaffe } from '../../engine/io/caffe/index.js';
import { buildModule } from '../../engine/io/graph/build.js';
import type { LayerGraph } from '../../engine/io/graph/ir.js';
import { inceptionV1, lenet5 } from '../../engine/models/index.js';
import { type Tap, forEachBackend, maxRelErr, sameBits } from '../conformance/util.js';
import { layoutOf, type Layout } from '../models/oracle.js';
import { FIXTURES, generatedFixtures, readIo, runGraph, spread, withoutFinalSoftmax, type ModelIo } from './fixtures/model-fixtures.js';

const TOL = 1e-4;
const lenetFiles = (v1: boolean): [string, string] => {
  const base = join(FIXTURES, `lenet5-caffe${v1 ? '-v1' : ''}`);
  return [`${base}.prototxt`, `${base}.caffemodel`];
};

/**
 * A Sequential's layout without its last layer (the reference models end in LogSoftMax,
 * Caffe deploy nets in Softmax), with numbers as float32: Caffe stores LRN's alpha as a
 * float, so 1e-4 arrives as 9.99999975e-5.
 */
function comparableLayout([kind, children]: Layout, dropLast: boolean): Layout {
  const f32 = (v: unknown): unknown => (typeof v === 'number' ? Math.fround(v) : Array.isArray(v) ? v.map(f32) : v);
  return f32([kind, dropLast ? (children as Layout[]).slice(0, -1) : children]) as Layout;
}

/** Probabilities and logits of the imported net against PyTorch's on one backend (the errors go to a comment). */
async function checkAgainstTorch(t: Tap, graph: LayerGraph, io: ModelIo, be: Parameters<typeof runGraph>[1], what: string): Promise<void> {
  const probs = await runGraph(graph, be, io.input);
  t.same(probs.shape, io.outputShape, `${what}: output shape [${io.outputShape.join(', ')}]`);
  const refProbs = io.output.map(Math.exp);
  const probErr = maxRelErr(probs.data, refProbs);
  t.ok(probErr <= TOL, `${what}: probabilities within ${TOL} of exp(PyTorch's log-probabilities) (${probErr.toExponential(2)})`);

  const logits = await runGraph(withoutFinalSoftmax(graph), be, io.input);
  t.same(logits.shape, io.logitsShape, `${what}: logits shape`);
  const logitErr = maxRelErr(logits.data, io.logits);
  t.ok(logitErr <= TOL, `${what}: logits within ${TOL} of PyTorch's (${logitErr.toExponential(2)})`);
  t.comment(`max relative error ${what} ${be.name}: probabilities ${probErr.toExponential(2)}, logits ${logitErr.toExponential(2)}`);
}

t.test('LeNet-5 from a V2 prototxt + caffemodel', async (t) => {
  const graph = await loadCaffe(...lenetFiles(false));
  const io = readIo(join(FIXTURES, 'lenet5-caffe-io.json'));
  t.comment(`reference: PyTorch ${io.torch}, float64`);
  t.ok(spread(io.logits) > 0.1, `the reference logits vary (spread ${spread(io.logits).toFixed(3)})`);

  t.same(graph.nodes.map((n) => n.layer.op),
    ['conv', 'tanh', 'maxpool', 'tanh', 'conv', 'maxpool', 'flatten', 'linear', 'tanh', 'linear', 'softmax'], 'layer sequence');
  t.same(graph.inputs, [{ name: 'data', shape: [1, 28, 28] }], 'the Input layer gives the input and its per-sample shape');
  t.same(graph.outputs, ['prob'], 'the output is the only top nobody reads (the caffemodel\'s loss layer is not in the deploy net)');
  const tanh = graph.nodes[1]!;
  t.same([tanh.inputs, tanh.output], [['conv'], 'conv@tanh'], 'the in-place TanH reads the conv blob and writes a new value');
  t.same(graph.nodes[2]!.inputs, ['conv@tanh'], 'the next layer reads the TanH\'s version of the blob');
  t.ok(graph.nodes.filter((n) => n.layer.op === 'maxpool').every((n) => n.layer.op === 'maxpool' && !n.layer.ceil), 'round_mode FLOOR pools are not ceil');
  t.same(comparableLayout(layoutOf(buildModule(withoutFinalSoftmax(graph))), false), comparableLayout(layoutOf(lenet5()), true),
    'the built model is lenet5() without its LogSoftMax');

  forEachBackend(t, async (t, be) => {
    await checkAgainstTorch(t, graph, io, be, 'caffe lenet5');
  });
});

t.test('LeNet-5 from legacy V1 files', async (t) => {
  const v2 = await loadCaffe(...lenetFiles(false));
  const v1 = await loadCaffe(...lenetFiles(true));
  t.same(v1.inputs, v2.inputs, 'input_dim gives the same input as the Input layer');
  t.same(v1.nodes.map((n) => [n.name, n.sourceType, n.layer.op]), v2.nodes.map((n) => [n.name, n.sourceType, n.layer.op]),
    'enum layer types map to the V2 types (CONVOLUTION -> Convolution, TANH -> TanH, ...)');
  for (const [i, n] of v1.nodes.entries()) {
    const m = v2.nodes[i]!.layer;
    if (n.layer.op === 'conv' || n.layer.op === 'linear') {
      sameBits(t, n.layer.weight!, (m as typeof n.layer).weight!, `${n.name}: weight from the 4-D legacy blob is the V2 one`);
      sameBits(t, n.layer.bias!, (m as typeof n.layer).bias!, `${n.name}: bias`);
    }
  }
  const mixed = await loadCaffe(lenetFiles(false)[0], lenetFiles(true)[1]);
  t.ok(mixed.nodes.every((n, i) => JSON.stringify(n) === JSON.stringify(v2.nodes[i])),
    'a V2 prototxt takes its weights from a V1 caffemodel (matched by layer name)');
  const io = readIo(join(FIXTURES, 'lenet5-caffe-io.json'));
  forEachBackend(t, async (t, be) => {
    await checkAgainstTorch(t, v1, io, be, 'caffe-v1 lenet5');
  });
});

t.test('a prototxt alone gives an initialised model', async (t) => {
  const [prototxt, caffemodel] = lenetFiles(false);
  const graph = await loadCaffe(prototxt);
  const trained = await loadCaffe(prototxt, caffemodel);
  const weighted = graph.nodes.filter((n) => n.layer.op === 'conv' || n.layer.op === 'linear');
  t.equal(weighted.length, 4, 'four weighted layers');
  t.ok(weighted.every((n) => (n.layer.op === 'conv' || n.layer.op === 'linear') && n.layer.weight === null && n.layer.bias === null),
    'every weight is null (to be initialised)');
  t.same(graph.nodes.map((n) => ({ ...n, layer: { ...n.layer, weight: null, bias: null } })),
    trained.nodes.map((n) => ({ ...n, layer: { ...n.layer, weight: null, bias: null } })), 'otherwise the same graph as with the caffemodel');
  const io = readIo(join(FIXTURES, 'lenet5-caffe-io.json'));
  forEachBackend(t, async (t, be) => {
    const y = await runGraph(graph, be, io.input);
    t.same(y.shape, [2, 10], 'runs: output [2, 10]');
    for (let b = 0; b < 2; b++) {
      const sum = y.data.subarray(b * 10, b * 10 + 10).reduce((a, v) => a + v, 0);
      t.ok(Math.abs(sum - 1) < 1e-5, `sample ${b}: probabilities sum to 1 (${sum})`);
    }
    const err = maxRelErr(y.data, io.output.map(Math.exp));
    t.ok(err > 1e-3, `and differs from the trained model's output (${err.toExponential(2)})`);
  });
});

const inception = generatedFixtures('write_caffe.py', 'inception_v1');
t.test('Inception-v1 from a prototxt + caffemodel', inception.skip !== undefined ? { skip: inception.skip } : {}, async (t) => {
  const dir = inception.dir!;
  const graph = await loadCaffe(join(dir, 'inception_v1-caffe.prototxt'), join(dir, 'inception_v1-caffe.caffemodel'));
  const io = readIo(join(dir, 'inception_v1-caffe-io.json'));
  t.ok(spread(io.logits) > 1, `the reference logits vary (spread ${spread(io.logits).toFixed(2)})`);
  const count = (op: string): number => graph.nodes.filter((n) => n.layer.op === op).length;
  t.same([count('conv'), count('concat'), count('lrn'), count('maxpool'), count('avgpool'), count('dropout')], [57, 9, 2, 13, 1, 1],
    '57 convolutions, 9 inception concats, 2 LRNs, 13 max pools, 1 average pool, 1 dropout');
  t.same(graph.inputs, [{ name: 'data', shape: [3, 224, 224] }], 'input_shape gives the input');
  t.same(comparableLayout(layoutOf(buildModule(withoutFinalSoftmax(graph))), false), comparableLayout(layoutOf(inceptionV1()), true),
    'the built model is inceptionV1() without its LogSoftMax (fan-outs became nn.Concat)');
  forEachBackend(t, async (t, be) => {
    await checkAgainstTorch(t, graph, io, be, 'caffe inception_v1');
  });
});
