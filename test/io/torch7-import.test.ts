// Torch7 models imported and run against PyTorch, on every backend.
//
// The fixtures come from test/io/fixtures/write_t7.py, an independent writer of Torch7's
// binary serialisation, which stores a seeded models.py model as an nn module tree with
// its parameters as views of one flat storage (as Torch's getParameters() leaves them),
// plus PyTorch's float64 output (log-probabilities). Each imported model must give that
// output through buildModule within 1e-4: max |got - ref| / max(1, max |ref|).
//
//   LeNet-5       nn.Sequential of SpatialConvolution, Tanh, SpatialMaxPooling, Reshape, Linear
//                 (its first weight a transposed view: strides [1, out]), LogSoftMax; gradients
//                 in a second shared storage. Kept in test/io/fixtures.
//   Inception-v1  nn.Concat and nn.DepthConcat of branch Sequentials, SpatialConvolutionMM
//                 with 2-D weights for the 1x1 convolutions, one nn.ReLU object shared by many
//                 places (written once, then referenced), nn.Threshold(0, 0), ceil-mode pools,
//                 SpatialCrossMapLRN, SpatialAveragePooling, Dropout (v2), View(1024) with
//                 numInputDims. Generated at test time (skipped without torch / models.py).
import t from 'tap';
import { join } from 'node:path';
import { buildModule } from '../../engine/io/graph/build.js';
import { loadTorch7 } from '../../engine/io/torch7/index.js';
import { inceptionV1, lenet5 } from '../../engine/models/index.js';
import { forEachBackend, maxRelErr } from '../conformance/util.js';
import { layoutOf } from '../models/oracle.js';
import { FIXTURES, generatedFixtures, readIo, runGraph, spread } from './fixtures/model-fixtures.js';

const TOL = 1e-4;

async function importAndCompare(t: Tap, file: string, ioFile: string, model: string, reference: typeof lenet5): Promise<void> {
  const graph = await loadTorch7(file);
  const io = readIo(ioFile);
  t.comment(`reference: PyTorch ${io.torch}, float64`);
  t.ok(spread(io.output) > 0.1, `the reference output varies (spread ${spread(io.output).toFixed(3)})`);
  t.same(graph.inputs, [{ name: 'input', shape: null }], 'one input, shape not declared (Torch7 files do not say it)');
  t.same(layoutOf(buildModule(graph, { inputShape: io.input.shape.slice(1) })), layoutOf(reference()),
    `the built model has the layout of Squall's ${model}`);
  forEachBackend(t, async (t, be) => {
    const y = await runGraph(graph, be, io.input);
    t.same(y.shape, io.outputShape, `output shape [${io.outputShape.join(', ')}]`);
    const err = maxRelErr(y.data, io.output);
    t.ok(err <= TOL, `output within ${TOL} of PyTorch's (${err.toExponential(2)})`);
    t.comment(`max relative error torch7 ${model} ${be.name}: ${err.toExponential(2)}`);
  });
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('LeNet-5 from a .t7 file', async (t) => {
  await importAndCompare(t, join(FIXTURES, 'lenet5-torch7.t7'), join(FIXTURES, 'lenet5-torch7-io.json'), 'lenet5', lenet5);
  const graph = await loadTorch7(join(FIXTURES, 'lenet5-torch7.t7'));
  t.same(graph.nodes.map((n) => `${n.name} ${n.sourceType}`), [
    '1 nn.SpatialConvolution', '2 nn.Tanh', '3 nn.SpatialMaxPooling', '4 nn.Tanh', '5 nn.SpatialConvolution',
    '6 nn.SpatialMaxPooling', '7 nn.Reshape', '8 nn.Linear', '9 nn.Tanh', '10 nn.Linear', '11 nn.LogSoftMax',
  ], 'nodes named by their path in the container, typed by their class');
});

const inception = generatedFixtures('write_t7.py', 'inception_v1');
t.test('Inception-v1 from a .t7 file', inception.skip !== undefined ? { skip: inception.skip } : {}, async (t) => {
  const dir = inception.dir!;
  await importAndCompare(t, join(dir, 'inception_v1-torch7.t7'), join(dir, 'inception_v1-torch7-io.json'), 'inception_v1',
    () => inceptionV1());
  const graph = await loadTorch7(join(dir, 'inception_v1-torch7.t7'));
  const types = new Set(graph.nodes.map((n) => n.sourceType));
  for (const cls of ['nn.Concat', 'nn.DepthConcat', 'nn.SpatialConvolutionMM', 'nn.SpatialConvolution', 'nn.ReLU', 'nn.Threshold', 'nn.View']) {
    t.ok(types.has(cls), `the file exercises ${cls}`);
  }
  const concat = graph.nodes.find((n) => n.layer.op === 'concat')!;
  t.equal(concat.inputs.length, 4, 'a Concat of four branches is one concat node reading the four branch ends');
});
