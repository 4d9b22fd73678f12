// Torch7 module classes as LayerGraph layers, on hand-written files: each class's fields
// (including the older spellings files from earlier Torch versions carry), cudnn's
// modules, containers and the wiring they become.
import t from 'tap';
import type { GraphNode, LayerGraph } from '../../engine/io/graph/ir.js';
import { parseTorch7 } from '../../engine/io/torch7/index.js';
import { T7Bytes } from './fixtures/t7-bytes.js';

type Field = [string, (b: T7Bytes) => void];
const num = (name: string, v: number): Field => [name, (b) => b.number(v)];
const bool = (name: string, v: boolean): Field => [name, (b) => b.bool(v)];
const tensor = (name: string, sizes: number[], values: number[]): Field => [name, (b) => b.tensor(sizes, values)];
const longs = (name: string, values: number[]): Field => [name, (b) => {
  b.torch('torch.LongStorage');
  b.i64(values.length);
  for (const v of values) b.i64(v);
}];

/** A Sequential of the given modules, parsed. */
function graphOf(...modules: [string, Field[]][]): LayerGraph {
  const b = new T7Bytes();
  b.module('nn.Sequential', [['modules', (b) => {
    b.table(modules.length);
    for (const [i, [cls, fields]] of modules.entries()) {
      b.number(i + 1);
      b.module(cls, fields);
    }
  }]]);
  return parseTorch7(b.bytes(), 'modules.t7');
}

const only = (g: LayerGraph): GraphNode => {
  if (g.nodes.length !== 1) throw new Error(`${g.nodes.length} nodes`);
  return g.nodes[0]!;
};

t.test('convolutions', async (t) => {
  const w = Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i);
  const legacy = only(graphOf(['nn.SpatialConvolutionMM', [num('nInputPlane', 3), num('nOutputPlane', 2), num('kW', 2), num('kH', 2),
    num('dW', 2), num('dH', 1), num('padding', 1), tensor('weight', [2, 12], w), tensor('bias', [2], [7, 8])]]));
  t.same({ ...legacy.layer, weight: [...(legacy.layer as { weight: Float32Array }).weight] }, {
    op: 'conv', inC: 3, outC: 2, kW: 2, kH: 2, strideW: 2, strideH: 1, padW: 1, padH: 1, groups: 1, dilationW: 1, dilationH: 1, hasBias: true,
    weight: w, bias: Float32Array.of(7, 8),
  }, 'SpatialConvolutionMM: a 2-D [out, in*kH*kW] weight; the old single `padding` field');
  const cudnn = only(graphOf(['cudnn.SpatialConvolution', [num('nInputPlane', 4), num('nOutputPlane', 2), num('kW', 1), num('kH', 1),
    num('padW', 0), num('padH', 0), num('groups', 2), tensor('weight', [2, 2, 1, 1], [1, 2, 3, 4])]]));
  t.same([cudnn.sourceType, cudnn.layer.op === 'conv' && [cudnn.layer.groups, cudnn.layer.hasBias, cudnn.layer.bias]],
    ['cudnn.SpatialConvolution', [2, false, null]], 'cudnn\'s class reads as nn\'s; groups; no bias field means no bias');
  const dilated = only(graphOf(['nn.SpatialDilatedConvolution', [num('nInputPlane', 1), num('nOutputPlane', 1), num('kW', 3), num('kH', 3),
    num('dilationW', 2), num('dilationH', 3), tensor('weight', [1, 1, 3, 3], new Array(9).fill(1)), tensor('bias', [1], [0])]]));
  t.same(dilated.layer.op === 'conv' && [dilated.layer.dilationW, dilated.layer.dilationH], [2, 3], 'dilation');
});

t.test('pooling, normalisation and activations', async (t) => {
  const g = graphOf(
    ['nn.SpatialMaxPooling', [num('kW', 3), num('kH', 2), num('dW', 2), num('dH', 1), num('padW', 1), num('padH', 0), bool('ceil_mode', true)]],
    ['nn.SpatialAveragePooling', [num('kW', 2), num('kH', 2), num('dW', 2), num('dH', 2), bool('count_include_pad', false)]],
    ['nn.SpatialAveragePooling', [num('kW', 2), num('kH', 2)]],
    ['nn.SpatialCrossMapLRN', [num('size', 5), num('alpha', 2e-4), num('beta', 0.5), num('k', 2)]],
    ['nn.LeakyReLU', [num('negval', 0.1)]],
    ['cudnn.ReLU', [num('threshold', 0), num('val', 0)]],
    ['nn.Sigmoid', []], ['nn.Tanh', []], ['nn.Identity', []], ['nn.SoftMax', []], ['cudnn.LogSoftMax', []],
    ['nn.Dropout', [num('p', 0.25), bool('v2', true)]],
  );
  t.same(g.nodes.map((n) => n.layer), [
    { op: 'maxpool', kW: 3, kH: 2, strideW: 2, strideH: 1, padW: 1, padH: 0, ceil: true, global: false, countIncludePad: true },
    { op: 'avgpool', kW: 2, kH: 2, strideW: 2, strideH: 2, padW: 0, padH: 0, ceil: false, global: false, countIncludePad: false },
    { op: 'avgpool', kW: 2, kH: 2, strideW: 2, strideH: 2, padW: 0, padH: 0, ceil: false, global: false, countIncludePad: true },
    { op: 'lrn', size: 5, alpha: 2e-4, beta: 0.5, k: 2 },
    { op: 'relu', negativeSlope: 0.1 },
    { op: 'relu', negativeSlope: 0 },
    { op: 'sigmoid' }, { op: 'tanh' }, { op: 'softmax' }, { op: 'logsoftmax' },
    { op: 'dropout', p: 0.25 },
  ], 'fields, and their defaults when an older file lacks them (stride = kernel, count_include_pad true); Identity adds no node');
  t.same(g.nodes.map((n) => n.name), ['1', '2', '3', '4', '5', '6', '7', '8', '10', '11', '12'], 'named by their place in the Sequential');
  t.same(g.nodes.map((n) => n.inputs[0]), ['input', '1', '2', '3', '4', '5', '6', '7', '8', '10', '11'], 'chained; past the Identity');
});

t.test('views, linear layers and batch normalisation', async (t) => {
  const g = graphOf(
    ['nn.View', [longs('size', [-1])]],
    ['nn.View', [longs('size', [-1, 6])]],
    ['nn.Reshape', [longs('size', [2, 3])]],
    ['nn.Linear', [tensor('weight', [2, 6], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), tensor('bias', [2], [0.5, -0.5])]],
    ['nn.BatchNormalization', [tensor('running_mean', [2], [1, 2]), tensor('running_var', [2], [4, 9]), num('eps', 1e-3), num('momentum', 0.2),
      tensor('weight', [2], [2, 3]), tensor('bias', [2], [0, 1])]],
    ['nn.BatchNormalization', [tensor('running_mean', [2], [0, 0]), tensor('running_std', [2], [0.5, 0.25]), num('eps', 0)]],
  );
  const [flat, batchView, reshape, linear, bn, old] = g.nodes.map((n) => n.layer);
  t.same([flat, batchView, reshape], [{ op: 'flatten' }, { op: 'reshape', shape: [6] }, { op: 'reshape', shape: [2, 3] }],
    'View(-1) flattens; View(-1, 6) has the batch first; Reshape(2, 3) reshapes each sample');
  t.same(linear!.op === 'linear' && [linear.inFeatures, linear.outFeatures, [...linear.weight!], [...linear.bias!]],
    [6, 2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [0.5, -0.5]], 'Linear: sizes from its [out, in] weight');
  t.same(bn!.op === 'batchnorm' && [bn.features, [...bn.mean!], [...bn.variance!], Math.fround(bn.eps), bn.momentum, bn.affine, [...bn.scale!], [...bn.shift!]],
    [2, [1, 2], [4, 9], Math.fround(1e-3), 0.2, true, [2, 3], [0, 1]], 'BatchNormalization with its running statistics and affine part');
  t.same(old!.op === 'batchnorm' && [[...old.variance!], old.affine], [[4, 16], false],
    'the running_std of older files (1 / sqrt(var + eps)) gives the variance; no weight: not affine');
});

t.test('concatenation', async (t) => {
  const b = new T7Bytes();
  b.module('nn.DepthConcat', [num('dimension', 2), ['modules', (b) => {
    b.table(2);
    b.number(1);
    b.module('nn.Tanh', []);
    b.number(2);
    b.module('nn.Sequential', [['modules', (b) => {
      b.table(2);
      b.number(1);
      b.module('nn.Sigmoid', []);
      b.number(2);
      b.module('nn.Tanh', []);
    }]]);
  }]]);
  const g = parseTorch7(b.bytes(), 'concat.t7');
  t.same(g.nodes.map((n) => [n.name, n.layer.op, n.inputs]), [
    ['1', 'tanh', ['input']],
    ['2.1', 'sigmoid', ['input']],
    ['2.2', 'tanh', ['2.1']],
    ['model', 'concat', ['1', '2.2']],
  ], 'every branch reads the input; the concat node (the root, "model") joins the branch ends');
  t.same([g.nodes[3]!.layer, g.outputs], [{ op: 'concat', dim: 1 }, ['model']], 'Torch\'s dimension 2 (1-based, batch first) is the channels');
});
