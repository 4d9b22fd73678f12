// Caffe layer types as LayerGraph layers. Each translator reads its layer's parameter
// message (with Caffe's defaults when the message is absent), the per-sample shapes of its
// bottoms (null when the prototxt declares no input shape), and its blobs from the
// caffemodel, and gives one or more layers to chain (an InnerProduct on a 3-D blob is a
// flatten followed by the linear layer, as Caffe's InnerProduct flattens from its axis).
//
// Scale, Split, Input and Silence concern the graph rather than one layer; net-to-graph.ts
// handles them.
//
// Output sizes are the ones Squall's modules compute (backend.ts), so the inferred shapes
// are what the built model will see. Caffe's pooling rounds the same way (up by default, and
// a last window that would start in the padding is dropped), except that Caffe drops it
// only when there is padding: they differ only for a kernel smaller than its stride, where
// Caffe's extra window would cover no input at all.
import { convOutputSize, poolOutputSize } from '../../backends/backend.js';
import { formatShape, shapeSize } from '../../tensor/tensor.js';
import { ModelFormatError, UnsupportedLayerError } from '../errors.js';
import type { LayerSpec } from '../graph/ir.js';
import type { ExpectedBlob, LayerBlobs } from './layer-blobs.js';
import { applyDefaults } from './message-defaults.js';
import type { ConvolutionMsg, InnerProductMsg, LayerMsg, LayerParams, LrnMsg, PoolingMsg } from './messages.js';
import { caffeType } from './schema.js';

export interface Step {
  spec: LayerSpec;
  /** Per-sample output shape, null when unknown. */
  shape: number[] | null;
  /** Names the extra node of a layer that becomes two ("flatten"). */
  suffix?: string;
}

/** Which schema message each parameter field holds, for Caffe's defaults when it is absent. */
const PARAM_TYPES: { [K in keyof LayerParams]: string } = {
  batch_norm_param: 'BatchNormParameter', concat_param: 'ConcatParameter', convolution_param: 'ConvolutionParameter',
  dropout_param: 'DropoutParameter', flatten_param: 'FlattenParameter', inner_product_param: 'InnerProductParameter',
  input_param: 'InputParameter', lrn_param: 'LRNParameter', pooling_param: 'PoolingParameter', relu_param: 'ReLUParameter',
  reshape_param: 'ReshapeParameter', scale_param: 'ScaleParameter', softmax_param: 'SoftmaxParameter',
};

export class LayerContext {
  constructor(
    readonly layer: LayerMsg,
    /** Per-sample shapes of the bottoms (without the batch dimension); null entries are unknown. */
    readonly shapes: (number[] | null)[],
    readonly blobs: LayerBlobs,
    /** The prototxt, which errors about the layer's definition name. */
    readonly file: string,
  ) {}

  fail(detail: string): ModelFormatError {
    return new ModelFormatError(this.file, `layer "${this.layer.name}"`, `${this.layer.type}: ${detail}`);
  }

  unsupported(detail: string): UnsupportedLayerError {
    return new UnsupportedLayerError(this.file, this.layer.name, this.layer.type, detail);
  }

  /** The layer's parameter message, or Caffe's defaults for it when the prototxt leaves it out. */
  param<K extends keyof LayerParams>(key: K): NonNullable<LayerParams[K]> {
    const given = this.layer[key];
    if (given) return given as NonNullable<LayerParams[K]>;
    return applyDefaults(caffeType(PARAM_TYPES[key]), {}) as NonNullable<LayerParams[K]>;
  }

  /** The single bottom's shape (null when unknown), after checking the layer has one bottom and one top. */
  single(): number[] | null {
    if (this.layer.bottom.length !== 1) throw this.fail(`expects 1 bottom, has ${this.layer.bottom.length}`);
    if (this.layer.top.length !== 1) throw this.fail(`expects 1 top, has ${this.layer.top.length}`);
    return this.shapes[0] ?? null;
  }

  /** The input must be [C, H, W] per sample when its shape is known. */
  image(): number[] | null {
    const s = this.single();
    if (s && s.length !== 3) throw this.fail(`expects a 4-D input (N, C, H, W), gets a sample of shape ${formatShape(s)}`);
    return s;
  }

  /**
   * A height/width pair from Caffe's two spellings: kernel_h + kernel_w, or the repeated
   * kernel_size (one value for both, two for h and w). `fallback` when neither is given.
   */
  pair(what: string, h: number | undefined, w: number | undefined, list: number[] | number | undefined, fallback?: number): [number, number] {
    if (h !== undefined || w !== undefined) {
      if (h === undefined || w === undefined) throw this.fail(`${what}_h and ${what}_w must be given together`);
      return [h, w];
    }
    const values = list === undefined ? [] : Array.isArray(list) ? list : [list];
    if (values.length === 1) return [values[0]!, values[0]!];
    if (values.length === 2) return [values[0]!, values[1]!];
    if (values.length > 2) throw this.unsupported(`with ${values.length} spatial dimensions (only 2-D is supported)`);
    if (fallback === undefined) throw this.fail(`${what} is not given`);
    return [fallback, fallback];
  }

  positive(what: string, ...values: number[]): void {
    for (const v of values) if (!(Number.isInteger(v) && v >= 1)) throw this.fail(`${what} must be a positive integer, is ${v}`);
  }

  weights(expected: ExpectedBlob[]): Float32Array[] | null {
    return this.blobs.take(this.layer.name, expected);
  }

  /** Dimension `i` of the caffemodel's first blob of this layer, when there is one (to size a layer without input shapes). */
  blobDim(i: number): number | undefined {
    return this.blobs.find(this.layer.name)?.[0]?.dims[i];
  }
}

function convolution(c: LayerContext): Step[] {
  const s = c.image();
  const p: ConvolutionMsg = c.param('convolution_param');
  const outC = p.num_output ?? 0;
  c.positive('convolution_param.num_output', outC);
  if (p.axis !== 1) throw c.unsupported(`with axis ${p.axis}`);
  const [kH, kW] = c.pair('kernel', p.kernel_h, p.kernel_w, p.kernel_size);
  const [strideH, strideW] = c.pair('stride', p.stride_h, p.stride_w, p.stride, 1);
  // pad_h / pad_w default to 0, so a non-zero one is how a file says it uses them
  const [padH, padW] = p.pad_h || p.pad_w ? [p.pad_h, p.pad_w] : c.pair('pad', undefined, undefined, p.pad, 0);
  const [dilationH, dilationW] = c.pair('dilation', undefined, undefined, p.dilation, 1);
  const groups = p.group;
  c.positive('kernel size', kH, kW);
  c.positive('stride', strideH, strideW);
  c.positive('dilation', dilationH, dilationW);
  c.positive('group', groups);
  const fromBlob = c.blobDim(1);
  const inC = s ? s[0]! : fromBlob !== undefined ? fromBlob * groups : undefined;
  if (inC === undefined) throw c.fail('the number of input channels is unknown: declare the input shape (input_shape, input_dim or an Input layer)');
  if (inC % groups !== 0 || outC % groups !== 0) throw c.fail(`group ${groups} does not divide the ${inC} input and ${outC} output channels`);
  const w = c.weights([
    { role: 'weight', shape: [outC, inC / groups, kH, kW] },
    ...(p.bias_term ? [{ role: 'bias', shape: [outC] }] : []),
  ]);
  let shape: number[] | null = null;
  if (s) {
    shape = [outC, convOutputSize(s[1]!, kH, strideH, padH, dilationH), convOutputSize(s[2]!, kW, strideW, padW, dilationW)];
    if (shape[1]! < 1 || shape[2]! < 1) throw c.fail(`the ${kH}x${kW} kernel (dilation ${dilationH}x${dilationW}, pad ${padH}x${padW}) does not fit the input ${formatShape(s)}`);
  }
  return [{
    spec: {
      op: 'conv', inC, outC, kW, kH, strideW, strideH, padW, padH, groups, dilationW, dilationH, hasBias: p.bias_term,
      weight: w ? w[0]! : null, bias: w && p.bias_term ? w[1]! : null,
    },
    shape,
  }];
}

function pooling(c: LayerContext): Step[] {
  const s = c.image();
  const p: PoolingMsg = c.param('pooling_param');
  if (p.pool !== 'MAX' && p.pool !== 'AVE') throw c.unsupported(`with pool ${p.pool}`);
  const op = p.pool === 'MAX' ? 'maxpool' : 'avgpool';
  const ceil = p.round_mode !== 'FLOOR';
  if (p.global_pooling) {
    // the window is the whole plane; its size is known once the input's is
    const [kH, kW] = s ? [s[1]!, s[2]!] : [0, 0];
    return [{
      spec: { op, kW, kH, strideW: 1, strideH: 1, padW: 0, padH: 0, ceil, global: true, countIncludePad: true },
      shape: s ? [s[0]!, 1, 1] : null,
    }];
  }
  const [kH, kW] = c.pair('kernel', p.kernel_h, p.kernel_w, p.kernel_size);
  const [strideH, strideW] = c.pair('stride', p.stride_h, p.stride_w, p.stride, 1);
  const [padH, padW] = p.pad_h || p.pad_w ? [p.pad_h, p.pad_w] : [p.pad, p.pad];
  c.positive('kernel size', kH, kW);
  c.positive('stride', strideH, strideW);
  if (padH >= kH || padW >= kW) throw c.fail(`pad ${padH}x${padW} must be smaller than the ${kH}x${kW} kernel`);
  let shape: number[] | null = null;
  if (s) {
    shape = [s[0]!, poolOutputSize(s[1]!, kH, strideH, padH, ceil), poolOutputSize(s[2]!, kW, strideW, padW, ceil)];
    if (shape[1]! < 1 || shape[2]! < 1) throw c.fail(`the ${kH}x${kW} window does not fit the input ${formatShape(s)}`);
  }
  // Caffe divides an average by the window clipped to the padded input: Squall's count-include-pad
  return [{ spec: { op, kW, kH, strideW, strideH, padW, padH, ceil, global: false, countIncludePad: true }, shape }];
}

function innerProduct(c: LayerContext): Step[] {
  const s = c.single();
  const p: InnerProductMsg = c.param('inner_product_param');
  const outFeatures = p.num_output ?? 0;
  c.positive('inner_product_param.num_output', outFeatures);
  // a negative axis counts from the end: -1 of a [N, K] blob is 1
  const axis = p.axis < 0 && s ? p.axis + s.length + 1 : p.axis;
  if (axis !== 1) throw c.unsupported(`with axis ${p.axis} (only axis 1, all but the batch dimension, is supported)`);
  const steps: Step[] = [];
  let inFeatures: number | undefined;
  if (s) {
    inFeatures = shapeSize(s);
    if (s.length !== 1) steps.push({ spec: { op: 'flatten' }, shape: [inFeatures], suffix: 'flatten' });
  } else {
    // Without shapes the blob tells the input size; flatten in case the input is not flat yet
    const dims = c.blobs.find(c.layer.name)?.[0]?.dims.slice(-2);
    inFeatures = dims && dims.length === 2 ? (p.transpose ? dims[0] : dims[1]) : undefined;
    steps.push({ spec: { op: 'flatten' }, shape: null, suffix: 'flatten' });
  }
  if (inFeatures === undefined) throw c.fail('the input size is unknown: declare the input shape (input_shape, input_dim or an Input layer)');
  const w = c.weights([
    { role: 'weight', shape: p.transpose ? [inFeatures, outFeatures] : [outFeatures, inFeatures] },
    ...(p.bias_term ? [{ role: 'bias', shape: [outFeatures] }] : []),
  ]);
  let weight = w ? w[0]! : null;
  if (weight && p.transpose) weight = transpose(weight, inFeatures, outFeatures);
  steps.push({
    spec: { op: 'linear', inFeatures, outFeatures, hasBias: p.bias_term, weight, bias: w && p.bias_term ? w[1]! : null },
    shape: [outFeatures],
  });
  return steps;
}

/** [rows, cols] row-major to [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[k * rows + r] = a[r * cols + k]!;
  return out;
}

function lrn(c: LayerContext): Step[] {
  const s = c.single();
  const p: LrnMsg = c.param('lrn_param');
  if (p.norm_region !== 'ACROSS_CHANNELS') throw c.unsupported(`with norm_region ${p.norm_region} (only ACROSS_CHANNELS is supported)`);
  if (!(p.local_size % 2 === 1)) throw c.fail(`local_size must be odd, is ${p.local_size}`);
  return [{ spec: { op: 'lrn', size: p.local_size, alpha: p.alpha, beta: p.beta, k: p.k }, shape: s }];
}

/** A negative axis counts from the end of the full shape (batch included); the result must be a dimension after the batch. */
function axisAfterBatch(c: LayerContext, axis: number, sampleRank: number | null, what: string): number {
  let a = axis;
  if (a < 0) {
    if (sampleRank === null) throw c.fail(`${what} ${axis} counts from the end, but the input's shape is unknown`);
    a += sampleRank + 1;
  }
  if (a === 0) throw c.unsupported(`along the batch dimension (${what} ${axis})`);
  if (sampleRank !== null && a > sampleRank) throw c.fail(`${what} ${axis} is outside the ${sampleRank + 1}-D input`);
  return a;
}

function concat(c: LayerContext): Step[] {
  if (c.layer.bottom.length < 1) throw c.fail('has no bottoms');
  if (c.layer.top.length !== 1) throw c.fail(`expects 1 top, has ${c.layer.top.length}`);
  const p = c.param('concat_param');
  const known = c.shapes.every((s) => s !== null) ? (c.shapes as number[][]) : null;
  // concat_dim is the old name of axis: a file that sets it (to something other than its default) means it
  const dim = axisAfterBatch(c, p.concat_dim !== 1 ? p.concat_dim : p.axis, known ? known[0]!.length : null, 'axis');
  let shape: number[] | null = null;
  if (known) {
    const first = known[0]!;
    shape = [...first];
    shape[dim - 1] = 0;
    for (const [i, s] of known.entries()) {
      const sameOtherwise = s.length === first.length && s.every((d, j) => j === dim - 1 || d === first[j]);
      if (!sameOtherwise) throw c.fail(`bottom ${i} "${c.layer.bottom[i]}" has shape ${formatShape(s)}, which does not match ${formatShape(first)} outside axis ${dim}`);
      shape[dim - 1] += s[dim - 1]!;
    }
  }
  return [{ spec: { op: 'concat', dim }, shape }];
}

function batchNorm(c: LayerContext): Step[] {
  const s = c.single();
  const p = c.param('batch_norm_param');
  const features = s ? s[0] : c.blobDim(0);
  if (features === undefined) throw c.fail('the number of channels is unknown: declare the input shape (input_shape, input_dim or an Input layer)');
  const w = c.weights([{ role: 'mean', shape: [features] }, { role: 'variance', shape: [features] }, { role: 'moving average factor', shape: [1] }]);
  let mean: Float32Array | null = null;
  let variance: Float32Array | null = null;
  if (w) {
    // Caffe keeps the running sums unnormalised and divides by the accumulated factor at use (0: no statistics yet)
    const factor = w[2]![0]!;
    const scale = factor === 0 ? 0 : 1 / factor;
    mean = w[0]!.map((v) => v * scale);
    variance = w[1]!.map((v) => v * scale);
  }
  return [{
    spec: {
      op: 'batchnorm', features, eps: p.eps, momentum: 1 - p.moving_average_fraction, affine: false,
      mean, variance, scale: null, shift: null,
    },
    shape: s,
  }];
}

function softmax(c: LayerContext): Step[] {
  const s = c.single();
  const axis = axisAfterBatch(c, c.param('softmax_param').axis, s ? s.length : null, 'axis');
  if (axis !== 1) throw c.unsupported(`over axis ${axis} (only the channel axis 1 is supported)`);
  return [{ spec: { op: 'softmax' }, shape: s }];
}

function flatten(c: LayerContext): Step[] {
  const s = c.single();
  const p = c.param('flatten_param');
  const endsLast = p.end_axis === -1 || (s !== null && p.end_axis === s.length);
  if (p.axis !== 1 || !endsLast) throw c.unsupported(`from axis ${p.axis} to ${p.end_axis} (only axis 1 to the last is supported)`);
  return [{ spec: { op: 'flatten' }, shape: s ? [shapeSize(s)] : null }];
}

function reshape(c: LayerContext): Step[] {
  const s = c.single();
  const p = c.param('reshape_param');
  if (p.axis !== 0 || p.num_axes !== -1) throw c.unsupported(`of part of the shape (axis ${p.axis}, num_axes ${p.num_axes})`);
  const dims = p.shape?.dim ?? [];
  if (dims[0] !== 0) throw c.unsupported('that changes the batch dimension (reshape_param.shape must start with dim: 0)');
  // 0 copies the input's dimension at that place, -1 is inferred
  const per = dims.slice(1).map((d, i) => {
    if (d !== 0) return d;
    if (!s || s[i] === undefined) throw c.fail(`dim 0 at position ${i + 1} copies an input dimension that is unknown`);
    return s[i]!;
  });
  if (per.filter((d) => d === -1).length > 1 || per.some((d) => d < -1 || d === 0)) throw c.fail(`invalid shape ${formatShape(dims)}`);
  let shape: number[] | null = null;
  if (s) {
    const known = shapeSize(per.filter((d) => d !== -1));
    const inferred = shapeSize(s) / known;
    shape = per.map((d) => (d === -1 ? inferred : d));
    if (!Number.isInteger(inferred) || shapeSize(shape) !== shapeSize(s)) throw c.fail(`cannot reshape a sample of shape ${formatShape(s)} to ${formatShape(per)}`);
  }
  return [{ spec: { op: 'reshape', shape: per }, shape }];
}

const same = (spec: LayerSpec) => (c: LayerContext): Step[] => [{ spec: { ...spec }, shape: c.single() }];

export const LAYER_TRANSLATORS: Record<string, (c: LayerContext) => Step[]> = {
  Convolution: convolution,
  Pooling: pooling,
  InnerProduct: innerProduct,
  LRN: lrn,
  Concat: concat,
  BatchNorm: batchNorm,
  Softmax: softmax,
  Flatten: flatten,
  Reshape: reshape,
  ReLU: (c) => [{ spec: { op: 'relu', negativeSlope: c.param('relu_param').negative_slope }, shape: c.single() }],
  TanH: same({ op: 'tanh' }),
  Sigmoid: same({ op: 'sigmoid' }),
  Dropout: (c) => {
    const ratio = c.param('dropout_param').dropout_ratio;
    if (!(ratio >= 0 && ratio < 1)) throw c.fail(`dropout_ratio must be in [0, 1), is ${ratio}`);
    return [{ spec: { op: 'dropout', p: ratio }, shape: c.single() }];
  },
};
