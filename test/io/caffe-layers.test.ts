// Caffe layer translation rules, on small hand-written nets: shape inference from the
// declared input, Caffe's parameter spellings and defaults, BatchNorm's stored statistics
// and the Scale that follows it, InnerProduct's transposed weight, graph-level layers
// (Split, Silence, in-place tops), TEST-phase filtering, and the errors for layers Squall
// cannot run. Caffemodels here are encoded with protobufjs from plain objects; the
// independent encoding of the same field numbers is write_caffe.py's (caffe-import.test.ts).
import t from 'tap';
import { UnsupportedLayerError, ModelFormatError } from '../../engine/io/errors.js';
import { parseCaffe } from '../../engine/io/caffe/index.js';
import { caffeType } from '../../engine/io/caffe/schema.js';
import type { GraphNode, LayerGraph, LayerSpec } from '../../engine/io/graph/ir.js';
import type { Tap } from '../conformance/util.js';

const PROTOTXT = 'net.prototxt';
const CAFFEMODEL = 'net.caffemodel';

function caffemodel(layers: { name: string; blobs: { dims: number[]; data: number[] }[] }[]): Uint8Array {
  const type = caffeType('NetParameter');
  return type.encode(type.fromObject({
    layer: layers.map((l) => ({ name: l.name, blobs: l.blobs.map((b) => ({ shape: { dim: b.dims }, data: b.data })) })),
  })).finish();
}

function graphOf(prototxt: string, model?: Uint8Array): LayerGraph {
  return parseCaffe({
    prototxt: { file: PROTOTXT, bytes: Buffer.from(prototxt) },
    ...(model ? { caffemodel: { file: CAFFEMODEL, bytes: model } } : {}),
  });
}

function node(g: LayerGraph, name: string): GraphNode {
  const n = g.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node ${name} in ${g.nodes.map((x) => x.name).join(', ')}`);
  return n;
}

function layerOf<K extends LayerSpec['op']>(g: LayerGraph, name: string, op: K): Extract<LayerSpec, { op: K }> {
  const l = node(g, name).layer;
  if (l.op !== op) throw new Error(`${name} is ${l.op}, not ${op}`);
  return l as Extract<LayerSpec, { op: K }>;
}

function expectError(t: Tap, what: string, f: () => unknown, where: string, mentions: RegExp, unsupported = false): void {
  try {
    f();
    t.fail(`${what}: loaded, an error was expected`);
  } catch (err) {
    t.ok(unsupported ? err instanceof UnsupportedLayerError : err instanceof ModelFormatError, `${what}: ${(err as Error).message}`);
    if (!(err instanceof ModelFormatError)) return;
    t.equal(err.where, where, `${what}: at ${where}`);
    t.match(err.message, mentions, `${what}: says why`);
  }
}

const input = (c: number, h: number, w: number): string => `input: "data" input_shape { dim: 1 dim: ${c} dim: ${h} dim: ${w} }\n`;

t.test('shapes flow from the declared input', async (t) => {
  const g = graphOf(`${input(3, 17, 17)}
    layer { name: "c" type: "Convolution" bottom: "data" top: "c"
            convolution_param { num_output: 8 kernel_h: 3 kernel_w: 5 stride: 2 pad_h: 1 pad_w: 2 group: 1 dilation: 2 } }
    layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
    layer { name: "g" type: "Pooling" bottom: "p" top: "g" pooling_param { pool: MAX global_pooling: true } }
    layer { name: "fc" type: "InnerProduct" bottom: "g" top: "fc" inner_product_param { num_output: 4 } }
  `);
  t.same(layerOf(g, 'c', 'conv'), {
    op: 'conv', inC: 3, outC: 8, kW: 5, kH: 3, strideW: 2, strideH: 2, padW: 2, padH: 1, groups: 1, dilationW: 2, dilationH: 2,
    hasBias: true, weight: null, bias: null,
  }, 'kernel_h/kernel_w, one stride for both, pad_h/pad_w, dilation; input channels from the input shape');
  t.same(layerOf(g, 'p', 'avgpool'), { op: 'avgpool', kW: 3, kH: 3, strideW: 2, strideH: 2, padW: 1, padH: 1, ceil: true, global: false, countIncludePad: true },
    'Caffe pools round up by default and average over the padded window');
  // conv: (17 + 2 - 5) / 2 + 1 = 8 high, (17 + 4 - 9) / 2 + 1 = 7 wide; pool (ceil): ceil((8 + 2 - 3) / 2) + 1 = 5, ceil((7 + 2 - 3) / 2) + 1 = 4
  t.same(layerOf(g, 'g', 'maxpool'), { op: 'maxpool', kW: 4, kH: 5, strideW: 1, strideH: 1, padW: 0, padH: 0, ceil: true, global: true, countIncludePad: true },
    'global pooling gets the whole plane (5 x 4, from the inferred shapes) as its window');
  t.same(layerOf(g, 'fc', 'linear').inFeatures, 8, 'the inner product\'s input size is the channels after global pooling');
  t.same(g.nodes.map((n) => n.name), ['c', 'p', 'g', 'fc:flatten', 'fc'], 'an InnerProduct on a 3-d blob flattens it first');
});

t.test('pooling rounding: ceil drops a window that would start in the padding', async (t) => {
  // 5 wide, kernel 2, stride 2, pad 1: ceil((5 + 2 - 2) / 2) + 1 = 4 windows, but the 4th would
  // start at 3 * 2 = 6 >= 5 + 1, inside the right padding only: 3 windows (4 without the rule)
  const g = graphOf(`${input(1, 5, 5)}
    layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { kernel_size: 2 stride: 2 pad: 1 } }
    layer { name: "fc" type: "InnerProduct" bottom: "p" top: "fc" inner_product_param { num_output: 2 } }
    layer { name: "q" type: "Pooling" bottom: "data" top: "q" pooling_param { kernel_size: 4 stride: 3 round_mode: FLOOR } }
    layer { name: "fq" type: "InnerProduct" bottom: "q" top: "fq" inner_product_param { num_output: 2 } }
  `);
  t.equal(layerOf(g, 'fc', 'linear').inFeatures, 9, 'ceil with padding: 3 x 3 outputs');
  t.equal(layerOf(g, 'fq', 'linear').inFeatures, 1, 'FLOOR: floor((5 - 4) / 3) + 1 = 1 per side (ceil would give 2)');
  t.same(g.outputs, ['fc', 'fq'], 'two unread tops are two outputs, in order');
});

t.test('BatchNorm statistics and the Scale after it', async (t) => {
  const text = `${input(2, 4, 4)}
    layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" batch_norm_param { eps: 0.001 moving_average_fraction: 0.9 } }
    layer { name: "sc" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }
    layer { name: "relu" type: "ReLU" bottom: "data" top: "data" relu_param { negative_slope: 0.25 } }`;
  const g = graphOf(text, caffemodel([
    { name: 'bn', blobs: [{ dims: [2], data: [4, -2] }, { dims: [2], data: [8, 16] }, { dims: [1], data: [4] }] },
    { name: 'sc', blobs: [{ dims: [2], data: [1.5, 0.5] }, { dims: [2], data: [0.1, -0.1] }] },
  ]));
  t.same(g.nodes.map((n) => [n.name, n.layer.op, n.inputs, n.output]), [
    ['bn+sc', 'batchnorm', ['data'], 'data@bn'],
    ['relu', 'relu', ['data@bn'], 'data@relu'],
  ], 'the in-place Scale is folded into the BatchNorm; the ReLU reads the folded value');
  const bn = layerOf(g, 'bn+sc', 'batchnorm');
  t.same([...bn.mean!], [1, -0.5], 'mean = stored sum / moving-average factor');
  t.same([...bn.variance!], [2, 4], 'variance = stored sum / factor');
  t.same([bn.affine, [...bn.scale!], [...bn.shift!].map((v) => Math.fround(v))], [true, [1.5, 0.5], [Math.fround(0.1), Math.fround(-0.1)]],
    'the Scale\'s gamma and beta become the affine part');
  t.same([bn.eps, Math.fround(bn.momentum)], [Math.fround(0.001), Math.fround(1 - Math.fround(0.9))], 'eps; momentum = 1 - moving_average_fraction');
  t.equal(layerOf(g, 'relu', 'relu').negativeSlope, 0.25, 'leaky ReLU slope');

  const zero = graphOf(text.replace('scale_param { bias_term: true }', ''), caffemodel([
    { name: 'bn', blobs: [{ dims: [2], data: [4, -2] }, { dims: [2], data: [8, 16] }, { dims: [1], data: [0] }] },
    { name: 'sc', blobs: [{ dims: [2], data: [1.5, 0.5] }] },
  ]));
  const bn0 = layerOf(zero, 'bn+sc', 'batchnorm');
  t.same([[...bn0.mean!], [...bn0.variance!], [...bn0.shift!]], [[0, 0], [0, 0], [0, 0]],
    'a zero factor (no statistics yet) gives zero mean and variance, as in Caffe; a Scale without bias shifts by 0');

  expectError(t, 'Scale without BatchNorm', () => graphOf(`${input(2, 4, 4)}
    layer { name: "sc" type: "Scale" bottom: "data" top: "s" }`), 'layer "sc"', /type Scale .*only as the affine part of a BatchNorm/, true);
  expectError(t, 'Scale of a BatchNorm output read elsewhere too', () => graphOf(`${input(2, 4, 4)}
    layer { name: "bn" type: "BatchNorm" bottom: "data" top: "b" }
    layer { name: "sc" type: "Scale" bottom: "b" top: "s" }
    layer { name: "r" type: "ReLU" bottom: "b" top: "r" }`), 'layer "sc"', /only reader of its output/, true);
});

t.test('InnerProduct variants', async (t) => {
  const text = `input: "x" input_dim: 1 input_dim: 3 input_dim: 1 input_dim: 1
    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 transpose: true bias_term: false } }`;
  const g = graphOf(text, caffemodel([{ name: 'fc', blobs: [{ dims: [3, 2], data: [1, 2, 3, 4, 5, 6] }] }]));
  const fc = layerOf(g, 'fc', 'linear');
  t.same([fc.inFeatures, fc.outFeatures, fc.hasBias, fc.bias], [3, 2, false, null], 'sizes; no bias');
  t.same([...fc.weight!], [1, 3, 5, 2, 4, 6], 'a transposed [in, out] weight is stored as [out, in]');
  expectError(t, 'axis 2', () => graphOf(text.replace('num_output: 2', 'num_output: 2 axis: 2')), 'layer "fc"', /type InnerProduct with axis 2/, true);
});

t.test('graph-level layers and phases', async (t) => {
  const g = graphOf(`${input(4, 2, 2)}
    layer { name: "data_train" type: "Data" top: "data" top: "label" include { phase: TRAIN } }
    layer { name: "split" type: "Split" bottom: "data" top: "a" top: "b" }
    layer { name: "ra" type: "ReLU" bottom: "a" top: "ra" }
    layer { name: "rb" type: "TanH" bottom: "b" top: "rb" }
    layer { name: "cat" type: "Concat" bottom: "ra" bottom: "rb" top: "cat" concat_param { concat_dim: 1 } }
    layer { name: "drop" type: "Dropout" bottom: "cat" top: "cat" dropout_param { dropout_ratio: 0.3 } exclude { phase: TRAIN } }
    layer { name: "acc" type: "Accuracy" bottom: "cat" bottom: "label" top: "acc" include { phase: TRAIN } }
    layer { name: "silence" type: "Silence" bottom: "cat" }
    layer { name: "sm" type: "Softmax" bottom: "cat" top: "prob" }
    layer { name: "staged" type: "Sigmoid" bottom: "prob" top: "sig" include { phase: TEST stage: "deploy-extra" } }`);
  t.same(g.nodes.map((n) => [n.name, n.layer.op, n.inputs, n.output]), [
    ['ra', 'relu', ['data'], 'ra'],
    ['rb', 'tanh', ['data'], 'rb'],
    ['cat', 'concat', ['ra', 'rb'], 'cat'],
    ['drop', 'dropout', ['cat'], 'cat@drop'],
    ['sm', 'softmax', ['cat@drop'], 'prob'],
  ], 'TRAIN-only layers and layers needing an absent stage dropped; Split tops are its bottom; Silence adds nothing');
  t.equal(Math.fround(layerOf(g, 'drop', 'dropout').p), Math.fround(0.3), 'dropout ratio');
  t.equal(layerOf(g, 'cat', 'concat').dim, 1, 'concat along the channels');
  t.same(g.outputs, ['prob'], 'the output');

  const v = graphOf(`layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 2 dim: 6 } } }
    layer { name: "cat" type: "Concat" bottom: "x" bottom: "y" top: "z" concat_param { axis: -1 } }
    layer { name: "f" type: "Flatten" bottom: "z" top: "f" }
    layer { name: "r" type: "Reshape" bottom: "f" top: "r" reshape_param { shape { dim: 0 dim: 3 dim: -1 } } }`);
  t.same(v.inputs, [{ name: 'x', shape: [6] }, { name: 'y', shape: [6] }], 'one Input layer, two tops sharing its shape');
  t.equal(layerOf(v, 'cat', 'concat').dim, 1, 'axis -1 of a 2-d blob is 1');
  t.same(layerOf(v, 'r', 'reshape').shape, [3, -1], 'Reshape keeps the batch (dim 0) and passes -1 on');
});

t.test('layers Squall cannot run, and definition errors', async (t) => {
  const one = (layer: string): (() => LayerGraph) => () => graphOf(`${input(3, 8, 8)}layer { name: "l" bottom: "data" top: "o" ${layer} }`);
  expectError(t, 'Eltwise', one('type: "Eltwise"'), 'layer "l"', /type Eltwise is not supported/, true);
  expectError(t, 'no type', one(''), 'layer "l"', /type \(none\) is not supported/, true);
  expectError(t, 'LRN WITHIN_CHANNEL', one('type: "LRN" lrn_param { norm_region: WITHIN_CHANNEL }'), 'layer "l"', /type LRN with norm_region WITHIN_CHANNEL/, true);
  expectError(t, 'stochastic pooling', one('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 }'), 'layer "l"', /with pool STOCHASTIC/, true);
  expectError(t, '3-d convolution', one('type: "Convolution" convolution_param { num_output: 2 kernel_size: [1, 2, 3] }'), 'layer "l"',
    /3 spatial dimensions/, true);
  expectError(t, 'softmax over the batch', one('type: "Softmax" softmax_param { axis: 0 }'), 'layer "l"', /along the batch dimension/, true);
  expectError(t, 'no num_output', one('type: "Convolution" convolution_param { kernel_size: 3 }'), 'layer "l"', /num_output must be a positive integer/);
  expectError(t, 'no kernel', one('type: "Pooling"'), 'layer "l"', /kernel is not given/);
  expectError(t, 'kernel_h alone', one('type: "Pooling" pooling_param { kernel_h: 2 }'), 'layer "l"', /kernel_h and kernel_w must be given together/);
  expectError(t, 'kernel too large', one('type: "Convolution" convolution_param { num_output: 2 kernel_size: 9 }'), 'layer "l"', /does not fit the input \[3, 8, 8\]/);
  expectError(t, 'groups', one('type: "Convolution" convolution_param { num_output: 4 kernel_size: 1 group: 2 }'), 'layer "l"', /group 2 does not divide the 3 input/);
  expectError(t, 'even LRN size', one('type: "LRN" lrn_param { local_size: 4 }'), 'layer "l"', /local_size must be odd/);
  expectError(t, 'unknown bottom', () => graphOf(`${input(3, 8, 8)}layer { name: "l" type: "ReLU" bottom: "nope" top: "o" }`), 'layer "l"',
    /bottom "nope" is not the top of an earlier layer/);
  expectError(t, 'no input shape', () => graphOf('input: "data"\nlayer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: 1 } }'),
    'layer "c"', /number of input channels is unknown: declare the input shape/);
  expectError(t, 'input_dim count', () => graphOf('input: "data" input_dim: 1 input_dim: 3'), 'net', /2 input_dim values for 1 input/);
  expectError(t, 'concat of mismatched shapes', () => graphOf(`${input(3, 8, 8)}
    layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { kernel_size: 2 stride: 2 } }
    layer { name: "c" type: "Concat" bottom: "data" bottom: "p" top: "c" }`), 'layer "c"', /bottom 1 "p" has shape \[3, 4, 4\], which does not match \[3, 8, 8\]/);
  expectError(t, 'duplicate names with a caffemodel', () => graphOf(`${input(3, 8, 8)}
    layer { name: "r" type: "ReLU" bottom: "data" top: "a" }
    layer { name: "r" type: "ReLU" bottom: "a" top: "b" }`, caffemodel([])), 'layer "r"', /two layers have this name/);
});

t.test('without input shapes, weights size the layers', async (t) => {
  const text = `input: "data"
    layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: 1 group: 2 } }
    layer { name: "fc" type: "InnerProduct" bottom: "c" top: "fc" inner_product_param { num_output: 3 bias_term: false } }`;
  const g = graphOf(text, caffemodel([
    { name: 'c', blobs: [{ dims: [2, 2, 1, 1], data: [1, 2, 3, 4] }, { dims: [2], data: [0, 0] }] },
    { name: 'fc', blobs: [{ dims: [3, 5], data: new Array(15).fill(1) }] },
  ]));
  t.equal(layerOf(g, 'c', 'conv').inC, 4, 'input channels = weight dim 1 x groups');
  t.equal(layerOf(g, 'fc', 'linear').inFeatures, 5, 'input size from the weight (flattened first, in case)');
  t.same(g.inputs, [{ name: 'data', shape: null }], 'the input shape stays unknown');
});

t.test('blob encodings', async (t) => {
  // Hand-encoded BlobProtos of one 2x3 InnerProduct weight: every encoding protobuf allows
  // for its numbers, and the legacy 4-D shape, give the same values.
  const varint = (v: number): number[] => (v < 0x80 ? [v] : [(v & 0x7f) | 0x80, ...varint(v >>> 7)]);
  const delimited = (id: number, body: number[]): number[] => [...varint((id << 3) | 2), ...varint(body.length), ...body];
  const f32 = (v: number): number[] => [...new Uint8Array(Float32Array.of(v).buffer)];
  const f64 = (v: number): number[] => [...new Uint8Array(Float64Array.of(v).buffer)];
  const values = [0.5, -1.25, 3, 4.5, -0.125, 6];
  const packedShape = delimited(7, delimited(1, [2, 3]));
  const encodings: [string, number[]][] = [
    ['packed floats', [...packedShape, ...delimited(5, values.flatMap(f32))]],
    ['one float per field', [...packedShape, ...values.flatMap((v) => [0x2d, ...f32(v)])]],
    ['packed floats in two runs', [...packedShape, ...delimited(5, values.slice(0, 2).flatMap(f32)), ...delimited(5, values.slice(2).flatMap(f32))]],
    ['double_data (preferred over data, as Caffe does)', [...packedShape, ...delimited(5, [0, 0, 0, 0]), ...delimited(8, values.flatMap(f64))]],
    ['legacy num/channels/height/width', [0x08, 1, 0x10, 1, 0x18, 2, 0x20, 3, ...delimited(5, values.flatMap(f32))]],
    ['unpacked dims', [...delimited(7, [0x08, 2, 0x08, 3]), ...delimited(5, values.flatMap(f32))]],
    ['unknown fields skipped', [...packedShape, 0x30, 5, ...delimited(6, [1, 2, 3, 4]), ...delimited(5, values.flatMap(f32)), ...delimited(99, [7])]],
  ];
  const text = `input: "x" input_dim: 1 input_dim: 3 input_dim: 1 input_dim: 1
    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 bias_term: false } }`;
  for (const [what, blob] of encodings) {
    const layer = [...delimited(1, [...Buffer.from('fc')]), ...delimited(7, blob)];
    const model = new Uint8Array([...varint((100 << 3) | 2), ...varint(layer.length), ...layer]);
    try {
      const w = layerOf(graphOf(text, model), 'fc', 'linear').weight!;
      t.same([...w], values, `${what}: the weight values`);
    } catch (err) {
      t.fail(`${what}: ${(err as Error).message}`);
    }
  }
  // [what, blob, offset of the fault within the blob, message]
  const bad: [string, number[], number, RegExp][] = [
    // the payload after the shape (6 bytes), the tag and the length
    ['packed floats not a multiple of 4 bytes', [...packedShape, ...delimited(5, [1, 2, 3])], 8, /not a whole number of 4-byte values/],
    // the 33rd dim, after the shape's tag and length, the dims' tag and length, and 32 one-byte dims
    ['a shape with 33 axes', [...delimited(7, delimited(1, new Array(33).fill(1)))], 36, /more than 32 axes/],
  ];
  for (const [what, blob, faultAt, mentions] of bad) {
    const layer = [...delimited(1, [...Buffer.from('fc')]), ...delimited(7, blob)];
    const prefix = [...varint((100 << 3) | 2), ...varint(layer.length)];
    // the blob starts after the layer's tag and length, its name field (4 bytes), and its own tag and length
    const blobAt = prefix.length + 4 + 1 + varint(blob.length).length;
    expectError(t, what, () => graphOf(text, new Uint8Array([...prefix, ...layer])), `byte offset ${blobAt + faultAt}`, mentions);
  }
});
