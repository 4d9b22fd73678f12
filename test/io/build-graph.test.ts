// buildModule: LayerGraph -> module tree, on hand-written graphs.
//   - chains become one Sequential whose modules carry the given weights; the built model
//     computes what the same model built by hand computes (every backend, bitwise)
//   - fan-outs that meet in a concat become Concat(dim) of branch Sequentials in the
//     concat's input order, including identity branches, nested fan-outs and joins that
//     merge some branches before the others
//   - shapes: global pooling takes the input's plane, batch norm its 1-d or spatial form,
//     a linear layer after an image gets a View; the input shape comes from the graph or
//     the caller (they must agree) and is asked for when needed and missing
//   - every refusal names the node: wrong weight sizes (with both shapes), a residual add,
//     a second output, branches that never meet, joins across levels, nodes out of order
import t from 'tap';
import { buildModule, type GraphNode, type LayerGraph, type LayerSpec } from '../../engine/io/index.js';
import {
  BatchNormalization, Concat, LeakyReLU, Linear, LogSoftMax, Sequential, SpatialAveragePooling, SpatialBatchNormalization,
  SpatialConvolution, SpatialMaxPooling, View, type Module,
} from '../../engine/nn/index.js';
import { Tensor } from '../../engine/tensor/tensor.js';
import { Rng, forEachBackend, randArray, sameBits, type Tap } from '../conformance/util.js';
import { throwsModelError, type Part } from './model-errors.js';

let counter = 0;
/** A graph over input "x" (per-sample shape `shape`) with nodes given as [name, layer, inputs] (output = name). */
function graph(nodes: [string, LayerSpec, string[]][], shape: number[] | null = [3, 8, 8], outputs?: string[]): LayerGraph {
  const list: GraphNode[] = nodes.map(([name, layer, inputs]) => ({ name, sourceType: layer.op, layer, inputs, output: name }));
  return { source: `test-${++counter}.graph`, format: 'test', inputs: [{ name: 'x', shape }], nodes: list, outputs: outputs ?? [list[list.length - 1]!.output] };
}

const rng = new Rng(515);
const values = (n: number): Float32Array => randArray(rng, n, -0.5, 0.5);
type ConvSpec = Extract<LayerSpec, { op: 'conv' }>;
const conv = (inC: number, outC: number, k: number, pad = 0, weights = true): ConvSpec => ({
  op: 'conv', inC, outC, kW: k, kH: k, strideW: 1, strideH: 1, padW: pad, padH: pad, groups: 1, dilationW: 1, dilationH: 1, hasBias: true,
  weight: weights ? values(outC * inC * k * k) : null, bias: weights ? values(outC) : null,
});
const relu: LayerSpec = { op: 'relu', negativeSlope: 0 };
const pool = (op: 'maxpool' | 'avgpool', k: number, stride: number, pad = 0, extra: Partial<LayerSpec> = {}): LayerSpec =>
  ({ op, kW: k, kH: k, strideW: stride, strideH: stride, padW: pad, padH: pad, ceil: false, global: false, countIncludePad: true, ...extra } as LayerSpec);
const concat: LayerSpec = { op: 'concat', dim: 1 };

/** Describes a module tree compactly: "Seq(Conv,ReLU,Concat(Seq(..),Seq(..)))". */
function shape(m: Module): string {
  const name = m.describe().replace(/^nn\./, '').replace(/\(.*$/, '');
  const short = name === 'Sequential' ? 'Seq' : name === 'SpatialConvolution' ? 'Conv' : name;
  return m.children().length || m instanceof Sequential ? `${short}(${m.children().map(shape).join(',')})` : short;
}

function expectBuildError(t: Tap, g: LayerGraph, parts: Part[], what: string, options = {}): void {
  throwsModelError(t, () => buildModule(g, options), [g.source, ...parts], what);
}

t.test('a chain: one Sequential, the given weights, the hand-built model\'s outputs', async (t) => {
  const c1 = conv(3, 4, 3, 1);
  const fc = { op: 'linear', inFeatures: 4 * 4 * 4, outFeatures: 5, hasBias: true, weight: values(5 * 64), bias: values(5) } as const;
  const g = graph([
    ['c1', c1, ['x']], ['r1', { op: 'relu', negativeSlope: 0.2 }, ['c1']], ['p1', pool('maxpool', 2, 2), ['r1']],
    ['flat', { op: 'flatten' }, ['p1']], ['fc', fc, ['flat']], ['out', { op: 'logsoftmax' }, ['fc']],
  ]);
  const m = buildModule(g);
  t.equal(shape(m), 'Seq(Conv,LeakyReLU,SpatialMaxPooling,View,Linear,LogSoftMax)');
  t.equal((m.get(1) as LeakyReLU).negativeSlope, 0.2, 'relu with a negative slope is a LeakyReLU');
  t.same((m.get(3) as View).sizes, [64], 'flatten knows the per-sample size from the input shape');
  const byHand = (): Sequential => {
    const h = new Sequential(new SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1), new LeakyReLU(0.2), new SpatialMaxPooling(2, 2, 2, 2), new View(64),
      new Linear(64, 5), new LogSoftMax());
    const [w1, b1, w2, b2] = h.parameters();
    w1!.value.data.set(c1.weight!);
    b1!.value.data.set(c1.bias!);
    w2!.value.data.set(fc.weight);
    b2!.value.data.set(fc.bias);
    return h;
  };
  sameBits(t, (m.get(0) as SpatialConvolution).weight.value.data, c1.weight!, 'conv weight copied');
  const x = new Tensor([2, 3, 8, 8], values(2 * 3 * 64));
  forEachBackend(t, async (t, be) => {
    const a = buildModule(g).to(be);
    const b = byHand().to(be);
    sameBits(t, (await a.forward(x)).data.slice(), (await b.forward(x)).data.slice(), 'same output as the hand-built model');
    a.dispose();
    b.dispose();
  });
});

t.test('fan-outs that meet in a concat', async (t) => {
  // Inception-style: four branches from p0, the concat lists them in another order than the nodes.
  const inception = graph([
    ['p0', pool('maxpool', 2, 2), ['x']],
    ['a', conv(3, 2, 1), ['p0']],
    ['b1', conv(3, 2, 1), ['p0']], ['b2', relu, ['b1']], ['b3', conv(2, 3, 3, 1), ['b2']],
    ['c', pool('avgpool', 3, 1, 1), ['p0']],
    ['join', concat, ['b3', 'a', 'c', 'p0']],
    ['after', relu, ['join']],
  ]);
  const m = buildModule(inception);
  t.equal(shape(m), 'Seq(SpatialMaxPooling,Concat(Seq(Conv,ReLU,Conv),Seq(Conv),Seq(SpatialAveragePooling),Seq()),ReLU)',
    'branches in the concat\'s input order; the input itself is an empty (identity) branch');
  t.same(m.outputShape([1, 3, 8, 8]), [1, 3 + 2 + 3 + 3, 4, 4]);

  // A branch with its own fan-out inside, and a join of two branches before the third joins.
  const nested = graph([
    ['s', conv(3, 4, 1), ['x']],
    ['l1', conv(4, 2, 1), ['s']], ['l2a', relu, ['l1']], ['l2b', pool('maxpool', 3, 1, 1), ['l1']], ['l3', concat, ['l2a', 'l2b']],
    ['r1', conv(4, 3, 3, 1), ['s']],
    ['m1', conv(4, 1, 1), ['s']],
    ['j1', concat, ['l3', 'r1']],
    ['j1r', relu, ['j1']],
    ['j2', concat, ['m1', 'j1r']],
  ]);
  t.equal(shape(buildModule(nested)), 'Seq(Conv,Concat(Seq(Conv),Seq(Concat(Seq(Conv,Concat(Seq(ReLU),Seq(SpatialMaxPooling))),Seq(Conv)),ReLU)))',
    'nested fan-outs resolve inside out; an early join continues as one branch');
  t.same(buildModule(nested).outputShape([2, 3, 8, 8]), [2, 1 + 4 + 3, 8, 8]);
});

t.test('shapes: global pooling, batch norm forms, flattening for a linear layer', async (t) => {
  const gp: LayerSpec = { ...pool('avgpool', 0, 1), global: true } as LayerSpec;
  const bn = (features: number): LayerSpec => ({
    op: 'batchnorm', features, eps: 1e-3, momentum: 0.2, affine: true, mean: values(features), variance: Float32Array.from(values(features), (v) => 1 + v),
    scale: values(features), shift: values(features),
  });
  const g = graph([
    ['c', conv(3, 4, 3), ['x']], ['bn2d', bn(4), ['c']], ['gap', gp, ['bn2d']],
    ['fc', { op: 'linear', inFeatures: 4, outFeatures: 6, hasBias: false, weight: null, bias: null }, ['gap']], ['bn1d', bn(6), ['fc']],
  ], [3, 9, 7]);
  const m = buildModule(g);
  t.equal(shape(m), 'Seq(Conv,SpatialBatchNormalization,SpatialAveragePooling,View,Linear,BatchNormalization)',
    'spatial batch norm on images, a View before the linear layer, 1-d batch norm after it');
  const p = m.get(2) as SpatialAveragePooling;
  t.same([p.kH, p.kW, p.strideH, p.padH], [7, 5, 1, 0], 'global pooling takes the whole 7x5 plane of the conv output');
  const b = m.get(1) as SpatialBatchNormalization;
  t.same([b.eps, b.momentum], [1e-3, 0.2]);
  sameBits(t, b.runningMean.value.data, (g.nodes[1]!.layer as { mean: Float32Array }).mean, 'running mean copied');
  t.ok(m.get(5) instanceof BatchNormalization && !(m.get(5) instanceof SpatialBatchNormalization), '1-d form');

  const unknown = graph(g.nodes.map((n) => [n.name, n.layer, n.inputs]), null);
  expectBuildError(t, unknown, ['node "bn2d" (batchnorm)', 'input shape', 'inputShape'], 'no input shape: batch norm asks for it');
  t.equal(shape(buildModule(unknown, { inputShape: [3, 9, 7] })), shape(m), 'the caller gives it');
  expectBuildError(t, g, ['declares the input shape [3, 9, 7]', '[3, 8, 8]'], 'the caller\'s shape must agree with the file\'s', { inputShape: [3, 8, 8] });
  expectBuildError(t, graph([['gap', gp, ['x']]], null), ['node "gap" (avgpool)', 'global pooling', 'inputShape'], 'global pooling needs the shape');
  expectBuildError(t, graph([['c', conv(5, 4, 3), ['x']]]), ['node "c" (conv)', 'does not fit its input "x"', 'input channels = 5'], 'a conv for 5 channels on 3');
  expectBuildError(t, graph([['lrn', { op: 'lrn', size: 4, alpha: 1e-4, beta: 0.75, k: 1 }, ['x']]]), ['node "lrn" (lrn)', 'odd sizes'], 'an even LRN size');
});

t.test('weights: sizes checked against the modules, null keeps the seeded initialisation', async (t) => {
  const bad = conv(3, 4, 3);
  bad.weight = values(3 * 4 * 3 * 3 - 1);
  expectBuildError(t, graph([['c1', bad, ['x']]]), ['node "c1" (conv)', 'weight has 107 values', 'shape [4, 3, 3, 3] (108 values)'], 'a short conv weight');
  const noBias: ConvSpec = { ...conv(3, 4, 3), hasBias: false };
  expectBuildError(t, graph([['c1', noBias, ['x']]]), ['node "c1" (conv)', 'gives a bias (4 values) but the layer has none'], 'a bias for a layer without one');
  const fc: LayerSpec = { op: 'linear', inFeatures: 192, outFeatures: 10, hasBias: true, weight: values(10 * 192), bias: values(9) };
  expectBuildError(t, graph([['fc', fc, ['x']]], [192]), ['node "fc" (linear)', 'bias has 9 values', 'shape [10] (10 values)'], 'a short linear bias');

  const empty = graph([['c1', conv(3, 4, 3, 0, false), ['x']], ['c2', conv(4, 2, 3, 0, true), ['c1']]]);
  const a = buildModule(empty, { seed: 3 });
  const b = buildModule(empty, { seed: 3 });
  const c = buildModule(empty, { seed: 4 });
  const first = (m: Module): Float32Array => m.parameters()[0]!.value.data;
  sameBits(t, first(a), first(b), 'weights the file does not give are initialised from the seed, reproducibly');
  t.ok(first(a).some((v, i) => v !== first(c)[i]), 'another seed, other initial weights');
  t.ok(first(a).some((v) => v !== 0), 'initialised, not zeros');
  sameBits(t, (a.get(1) as SpatialConvolution).weight.value.data, (empty.nodes[1]!.layer as { weight: Float32Array }).weight, 'given weights are copied over the initialisation');
});

t.test('graphs Squall cannot build, each refusal naming the node', async (t) => {
  expectBuildError(t, graph([['c', conv(3, 3, 3, 1), ['x']], ['sum', { op: 'add' }, ['x', 'c']]]), ['node "sum" (add)', 'residual'], 'a residual add');
  expectBuildError(t, graph([['a', relu, ['x']], ['b', relu, ['x']]], [3, 8, 8], ['a', 'b']), ['2 outputs'], 'two outputs');
  expectBuildError(t, graph([['a', relu, ['x']], ['b', relu, ['x']], ['c', relu, ['b']]], [3, 8, 8], ['c']),
    ['node "a" (relu)', 'read by no node', 'second output'], 'a branch that never joins');
  expectBuildError(t, graph([['a', relu, ['x']], ['a2', relu, ['a']], ['b', relu, ['a']], ['j', concat, ['a2', 'x']]]),
    ['node "j" (concat)', 'do not all branch from one value'], 'a join of values from different levels');
  expectBuildError(t, graph([['a', relu, ['b']], ['b', relu, ['x']]]), ['node "a" (relu)', 'before it is computed'], 'nodes out of order (or a cycle)');
  expectBuildError(t, graph([['a', relu, ['nowhere']]]), ['node "a" (relu)', 'neither the graph\'s input nor any node'], 'an undefined input');
  expectBuildError(t, graph([['a', relu, ['x']], ['a', relu, ['a']]]), ['node "a" (relu)', 'already defined'], 'a value defined twice');
  expectBuildError(t, graph([['a', relu, ['x']], ['b', relu, ['a']]], [3, 8, 8], ['a']), ['node "b" (relu)', 'reads the graph\'s output'], 'the output read further');
  const two: LayerGraph = { ...graph([['a', relu, ['x']]]), inputs: [{ name: 'x', shape: [3] }, { name: 'y', shape: [3] }] };
  expectBuildError(t, two, ['2 inputs'], 'two inputs');
});

t.test('a concat along a negative dimension counts from the end', async (t) => {
  const g = graph([['a', conv(3, 2, 1), ['x']], ['b', conv(3, 5, 1), ['x']], ['j', { op: 'concat', dim: -3 }, ['a', 'b']]]);
  const m = buildModule(g);
  t.equal((m.get(0) as Concat).dim, 1, 'dim -3 of NCHW is the channels');
  t.same(m.outputShape([1, 3, 8, 8]), [1, 7, 8, 8]);
  t.ok(m.get(0) instanceof Concat && (m.get(0).children()[0]!.children()[0] instanceof SpatialConvolution), 'branches hold the convolutions');
});
