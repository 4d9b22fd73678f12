// One ONNX node -> one layer of the LayerGraph (or an alias: Identity, zero Pad). Two
// pairs become one layer: MatMul + Add of a constant (a linear layer with bias, as older
// exporters write it) and Pad + AveragePool (PyTorch's AvgPool2d with padding and
// count_include_pad: the padded cells count, as Squall's default average pooling does).
//
// Weights are read from constants (initializers, Constant nodes, folded nodes) and put into
// Squall's layouts (ir.ts): Gemm with transB = 0 and MatMul store [in, out] and are
// transposed; Gemm's alpha and beta are folded into the weight and bias.
import { ModelFormatError, UnsupportedLayerError } from '../errors.js';
import type { LayerSpec } from '../graph/ir.js';
import { describeNode, type GraphView, type OnnxNode } from './graph-view.js';
import { isZeroPad } from './lrn-pattern.js';
import { float32Value, type ConstTensor } from './tensor.js';

export type Translation =
  | { kind: 'layer'; spec: LayerSpec; inputs: string[]; output: string; sourceType?: string; fused?: OnnxNode }
  | { kind: 'alias'; output: string; input: string };

export interface TranslateContext {
  view: GraphView;
  /** Live nodes reading a value. */
  readers: (value: string) => OnnxNode[];
  /** Why a Div that started like PyTorch's LRN pattern was not one. */
  lrnMiss: (n: OnnxNode) => string | undefined;
}

export function translateNode(n: OnnxNode, ctx: TranslateContext): Translation {
  return new NodeTranslator(n, ctx).run();
}

class NodeTranslator {
  private readonly file: string;
  private readonly view: GraphView;

  constructor(private readonly n: OnnxNode, private readonly ctx: TranslateContext) {
    this.view = ctx.view;
    this.file = ctx.view.file;
  }

  private fail(detail: string): never {
    throw new ModelFormatError(this.file, describeNode(this.n), detail);
  }

  private unsupported(detail: string): never {
    throw new UnsupportedLayerError(this.file, this.n.name, this.n.op, detail);
  }

  /** The computed input at `slot` (an error when it is a constant or missing). */
  private data(slot = 0): string {
    const v = this.n.inputs[slot];
    if (!v) this.fail(`has no input ${slot}`);
    if (this.view.isConstant(v)) this.unsupported(`computes on the constant "${v}" only, which Squall does not run as a layer`);
    return v;
  }

  /** The constant at `slot`, or null when the optional input is omitted. */
  private constant(slot: number, what: string, required: boolean): ConstTensor | null {
    const v = this.n.inputs[slot];
    if (!v) {
      if (required) this.fail(`has no ${what} (input ${slot})`);
      return null;
    }
    const c = this.view.constant(v);
    if (!c) this.unsupported(`takes its ${what} "${v}" from a computed value; Squall needs it stored in the file`);
    return c;
  }

  private float32(c: ConstTensor): Float32Array {
    return c.data instanceof Float32Array ? c.data : Float32Array.from(c.data);
  }

  /** Outputs after the first (pooling indices, dropout masks, batch-norm statistics) must not be used. */
  private onlyFirstOutput(): string {
    for (const o of this.n.outputs.slice(1)) {
      if (o && this.ctx.readers(o).length > 0) this.unsupported(`its output "${o}" is used; Squall computes only the first output`);
    }
    const out = this.n.outputs[0];
    if (!out) this.fail('has no output');
    return out;
  }

  private layer(spec: LayerSpec, inputs: string[] = [this.data()], extra: Partial<Translation> = {}): Translation {
    return { kind: 'layer', spec, inputs, output: this.onlyFirstOutput(), ...extra } as Translation;
  }

  /** [along H, along W] from an ONNX 2-d attribute (strides, dilations), checking the rank. */
  private pair(name: string, fallback: number): [number, number] {
    const v = this.n.attrs.ints(name, [fallback, fallback])!;
    if (v.length !== 2) this.unsupported(`has ${name} [${v.join(', ')}]: Squall has 2-d layers only`);
    if (!v.every((x) => Number.isInteger(x) && x >= 1)) this.fail(`${name} [${v.join(', ')}] must be positive integers`);
    return [v[0]!, v[1]!];
  }

  /** [padH, padW] from ONNX pads [top, left, bottom, right], which Squall needs symmetric. */
  private pads(): [number, number] {
    const autoPad = this.n.attrs.string('auto_pad', 'NOTSET');
    if (autoPad !== 'NOTSET' && autoPad !== 'VALID') this.unsupported(`has auto_pad ${autoPad}; Squall needs explicit pads`);
    const p = this.n.attrs.ints('pads', [0, 0, 0, 0])!;
    if (p.length !== 4) this.unsupported(`has pads [${p.join(', ')}]: Squall has 2-d layers only`);
    if (p[0] !== p[2] || p[1] !== p[3]) this.unsupported(`has asymmetric pads [${p.join(', ')}] (top, left, bottom, right); Squall pads both sides equally`);
    if (!p.every((x) => Number.isInteger(x) && x >= 0)) this.fail(`pads [${p.join(', ')}] must be non-negative integers`);
    return [p[0]!, p[1]!];
  }

  run(): Translation {
    if (this.n.spec) return this.layer(this.n.spec, [this.data()], this.n.sourceType ? { sourceType: this.n.sourceType } : {});
    const a = this.n.attrs;
    switch (this.n.op) {
      case 'Conv':
        return this.conv();
      case 'Gemm':
        return this.gemm();
      case 'MatMul':
        return this.matmul();
      case 'Add':
      case 'Sum': {
        const inputs = this.n.inputs.filter(Boolean);
        if (inputs.some((v) => this.view.isConstant(v))) this.unsupported('adds a constant (a bias not after a MatMul), which Squall has no layer for');
        return this.layer({ op: 'add' }, inputs);
      }
      case 'Relu':
        return this.layer({ op: 'relu', negativeSlope: 0 });
      case 'LeakyRelu':
        return this.layer({ op: 'relu', negativeSlope: a.float('alpha', 0.01) });
      case 'Tanh':
        return this.layer({ op: 'tanh' });
      case 'Sigmoid':
        return this.layer({ op: 'sigmoid' });
      case 'MaxPool':
      case 'AveragePool':
        return this.pool();
      case 'GlobalAveragePool':
      case 'GlobalMaxPool':
        return this.layer({
          op: this.n.op === 'GlobalMaxPool' ? 'maxpool' : 'avgpool', kW: 0, kH: 0, strideW: 1, strideH: 1, padW: 0, padH: 0,
          ceil: false, global: true, countIncludePad: true,
        });
      case 'LRN': {
        const size = a.int('size', 0);
        if (!(size >= 1)) this.fail('has no positive size attribute');
        return this.layer({ op: 'lrn', size, alpha: a.float('alpha', 1e-4), beta: a.float('beta', 0.75), k: a.float('bias', 1) });
      }
      case 'Concat': {
        if (!a.has('axis')) this.fail('has no axis attribute');
        return this.layer({ op: 'concat', dim: a.int('axis', 1) }, this.n.inputs.map((_, i) => this.data(i)));
      }
      case 'Flatten': {
        const axis = a.int('axis', 1);
        if (axis !== 1) this.unsupported(`flattens from axis ${axis}; Squall keeps the batch dimension (axis 1)`);
        return this.layer({ op: 'flatten' });
      }
      case 'Reshape':
        return this.reshape();
      case 'Softmax':
      case 'LogSoftmax': {
        // Opset 13 made -1 the default (before: 1, with the input coerced to 2-d from there).
        const axis = a.int('axis', this.view.opset >= 13 ? -1 : 1);
        if (axis !== 1 && axis !== -1) this.unsupported(`normalises over axis ${axis}; Squall's (log-)softmax runs over the classes of [batch, classes]`);
        return this.layer({ op: this.n.op === 'Softmax' ? 'softmax' : 'logsoftmax' });
      }
      case 'BatchNormalization':
        return this.batchNorm();
      case 'Dropout': {
        const given = this.constant(1, 'ratio', false);
        const ratio = this.view.opset < 12 ? a.float('ratio', 0.5) : given ? float32Value(given.data[0] ?? 0.5) : 0.5;
        if (!(ratio >= 0 && ratio < 1)) this.fail(`dropout ratio ${ratio} is not in [0, 1)`);
        return this.layer({ op: 'dropout', p: ratio });
      }
      case 'Identity':
        return { kind: 'alias', output: this.onlyFirstOutput(), input: this.data() };
      case 'Pad':
        return this.pad();
      case 'Div': {
        const miss = this.ctx.lrnMiss(this.n);
        return this.unsupported(miss ? `is not supported by Squall: the node ${miss}` : 'is not supported by Squall (only as part of PyTorch\'s LocalResponseNorm pattern)');
      }
      default:
        return this.unsupported('is not supported by Squall');
    }
  }

  private conv(): Translation {
    const input = this.data();
    const w = this.constant(1, 'weight', true)!;
    if (w.dims.length !== 4) this.unsupported(`has a ${w.dims.length}-d weight [${w.dims.join(', ')}]: Squall has 2-d convolution ([out, in/groups, kH, kW])`);
    const [outC, inPerGroup, kH, kW] = w.dims as [number, number, number, number];
    const kernel = this.n.attrs.ints('kernel_shape', [kH, kW])!;
    if (kernel[0] !== kH || kernel[1] !== kW || kernel.length !== 2) this.fail(`kernel_shape [${kernel.join(', ')}] does not match the weight [${w.dims.join(', ')}]`);
    const groups = this.n.attrs.int('group', 1);
    if (!(groups >= 1)) this.fail(`group ${groups} must be a positive integer`);
    const [strideH, strideW] = this.pair('strides', 1);
    const [dilationH, dilationW] = this.pair('dilations', 1);
    const [padH, padW] = this.pads();
    const b = this.constant(2, 'bias', false);
    return this.layer({
      op: 'conv', inC: inPerGroup * groups, outC, kW, kH, strideW, strideH, padW, padH, groups, dilationW, dilationH,
      hasBias: b !== null, weight: this.float32(w), bias: b ? this.float32(b) : null,
    }, [input]);
  }

  /** A bias: `out` values, or one value broadcast (Gemm's C may be [out], [1, out] or a scalar). */
  private bias(c: ConstTensor, out: number, scale: number, what: string): Float32Array {
    const size = c.data.length;
    if (size !== out && size !== 1) this.unsupported(`has a ${what} of shape [${c.dims.join(', ')}]; Squall adds one bias per output feature (${out})`);
    const b = new Float32Array(out);
    for (let i = 0; i < out; i++) b[i] = scale * c.data[size === 1 ? 0 : i]!;
    return b;
  }

  private gemm(): Translation {
    const a = this.n.attrs;
    const input = this.data();
    if (a.int('transA', 0) !== 0) this.unsupported('transposes its input (transA = 1); Squall\'s linear layer reads [batch, features]');
    const w = this.constant(1, 'weight', true)!;
    if (w.dims.length !== 2) this.fail(`has a ${w.dims.length}-d weight [${w.dims.join(', ')}], Gemm needs a matrix`);
    const transB = a.int('transB', 0) !== 0;
    const alpha = a.float('alpha', 1);
    const beta = a.float('beta', 1);
    const [outF, inF] = (transB ? w.dims : [w.dims[1], w.dims[0]]) as [number, number];
    const weight = transB ? Float32Array.from(w.data) : transpose(w.data, inF, outF);
    if (alpha !== 1) for (let i = 0; i < weight.length; i++) weight[i] = alpha * weight[i]!;
    const c = this.constant(2, 'bias', false);
    const bias = c && beta !== 0 ? this.bias(c, outF, beta, 'bias C') : null;
    return this.layer({ op: 'linear', inFeatures: inF, outFeatures: outF, hasBias: bias !== null, weight, bias }, [input]);
  }

  /** MatMul(x, W) with W [in, out], and the Add of a constant bias after it when nothing else reads the product. */
  private matmul(): Translation {
    const input = this.data();
    const w = this.constant(1, 'weight', true)!;
    if (w.dims.length !== 2) this.unsupported(`multiplies by a ${w.dims.length}-d constant [${w.dims.join(', ')}]; Squall's linear layer needs a matrix`);
    const [inF, outF] = w.dims as [number, number];
    const weight = transpose(w.data, inF, outF);
    const product = this.onlyFirstOutput();
    const readers = this.ctx.readers(product);
    const add = readers.length === 1 && readers[0]!.op === 'Add' ? readers[0]! : null;
    const other = add?.inputs.find((v) => v !== product);
    const bias = add && other && add.inputs.length === 2 ? this.view.constant(other) : null;
    if (add && bias && (bias.data.length === outF || bias.data.length === 1)) {
      return {
        kind: 'layer', spec: { op: 'linear', inFeatures: inF, outFeatures: outF, hasBias: true, weight, bias: this.bias(bias, outF, 1, 'bias') },
        inputs: [input], output: add.outputs[0]!, fused: add, sourceType: 'MatMul+Add',
      };
    }
    return this.layer({ op: 'linear', inFeatures: inF, outFeatures: outF, hasBias: false, weight, bias: null }, [input]);
  }

  private pool(): Translation {
    const a = this.n.attrs;
    const kernel = a.ints('kernel_shape', null) ?? this.fail('has no kernel_shape');
    if (kernel.length !== 2) this.unsupported(`pools a ${kernel.length}-d window [${kernel.join(', ')}]; Squall has 2-d pooling`);
    if (!kernel.every((k) => Number.isInteger(k) && k >= 1)) this.fail(`kernel_shape [${kernel.join(', ')}] must be positive integers`);
    const [strideH, strideW] = this.pair('strides', 1);
    const [dilationH, dilationW] = this.pair('dilations', 1);
    if (dilationH !== 1 || dilationW !== 1) this.unsupported(`has dilations [${dilationH}, ${dilationW}]; Squall pools without dilation`);
    if (a.int('storage_order', 0) !== 0) this.unsupported('stores indices column-major (storage_order = 1)');
    const [padH, padW] = this.pads();
    const ceil = a.int('ceil_mode', 0) !== 0;
    const max = this.n.op === 'MaxPool';
    // Without padding both averaging rules divide by the same count; keep Torch's default then.
    const countIncludePad = max || (padH === 0 && padW === 0) || a.int('count_include_pad', 0) !== 0;
    return this.layer({
      op: max ? 'maxpool' : 'avgpool', kW: kernel[1]!, kH: kernel[0]!, strideW, strideH, padW, padH, ceil, global: false, countIncludePad,
    });
  }

  /** Zero pads are dropped; a spatial zero pad read only by an AveragePool without pads becomes that pool's padding. */
  private pad(): Translation {
    if (isZeroPad(this.n, this.view)) return { kind: 'alias', output: this.onlyFirstOutput(), input: this.data() };
    const input = this.data();
    const padded = this.onlyFirstOutput();
    const readers = this.ctx.readers(padded);
    const pool = readers.length === 1 && readers[0]!.op === 'AveragePool' ? readers[0]! : null;
    const pads = this.n.inputs[1] ? this.view.constant(this.n.inputs[1]) : null;
    const p = pads ? Array.from(pads.data) : this.view.opset < 11 ? this.n.attrs.ints('pads', null) : null;
    const spatialSymmetric = p && p.length === 8 && p[0] === 0 && p[1] === 0 && p[4] === 0 && p[5] === 0 && p[2] === p[6] && p[3] === p[7];
    const value = this.n.inputs[2] ? this.view.constant(this.n.inputs[2]) : null;
    const zeroValue = !this.n.inputs[2] || (value !== null && value.data.every((v) => v === 0));
    if (!pool || !spatialSymmetric || !zeroValue || this.n.attrs.string('mode', 'constant') !== 'constant') {
      this.unsupported('pads other than as zero padding of height and width before an AveragePool; Squall\'s layers pad themselves');
    }
    const t = new NodeTranslator(pool, this.ctx).run();
    if (t.kind !== 'layer' || t.spec.op !== 'avgpool' || t.spec.padH !== 0 || t.spec.padW !== 0) {
      this.unsupported(`pads before an AveragePool ("${pool.name}") that pads itself`);
    }
    return { ...t, spec: { ...t.spec, padH: p[2]!, padW: p[3]!, countIncludePad: true }, inputs: [input], fused: pool, sourceType: 'Pad+AveragePool' };
  }

  /** Reshape to a constant shape whose first entry is the batch (-1, 0 or a number): Squall keeps the batch and reshapes each sample. */
  private reshape(): Translation {
    const input = this.data();
    if (this.n.attrs.int('allowzero', 0) !== 0) this.unsupported('has allowzero = 1');
    const shape = Array.from(this.constant(1, 'shape', true)!.data);
    const [batch, ...rest] = shape;
    if (batch === undefined || rest.length === 0) this.unsupported(`reshapes to [${shape.join(', ')}], merging the batch dimension; Squall keeps it`);
    if (rest.includes(0)) this.unsupported(`reshapes to [${shape.join(', ')}], copying a per-sample dimension (0); Squall needs explicit sizes`);
    if (batch === -1 && rest.includes(-1)) this.unsupported(`reshapes to [${shape.join(', ')}] with two inferred sizes`);
    if (!(batch === -1 || batch >= 0) || !rest.every((d) => d === -1 || (Number.isInteger(d) && d >= 1))) {
      this.fail(`shape [${shape.join(', ')}] is not a valid Reshape target`);
    }
    if (rest.length === 1 && rest[0] === -1) return this.layer({ op: 'flatten' }, [input]);
    return this.layer({ op: 'reshape', shape: rest }, [input]);
  }

  private batchNorm(): Translation {
    const a = this.n.attrs;
    const input = this.data();
    if (a.int('training_mode', 0) !== 0) this.unsupported('is in training mode; export the model in evaluation mode');
    const [scale, shift, mean, variance] = ['scale', 'bias', 'mean', 'variance'].map((w, i) => this.constant(i + 1, w, true)!) as ConstTensor[];
    const features = scale!.data.length;
    for (const [what, c] of [['bias', shift], ['mean', mean], ['variance', variance]] as const) {
      if (c!.data.length !== features) this.fail(`its ${what} has ${c!.data.length} values, its scale ${features}`);
    }
    // ONNX's momentum weighs the old running value; Squall's (PyTorch's) the new batch statistic.
    const momentum = float32Value(1 - a.float('momentum', 0.9));
    return this.layer({
      op: 'batchnorm', features, eps: a.float('epsilon', 1e-5), momentum: Math.min(1, Math.max(0, momentum)), affine: true,
      mean: this.float32(mean!), variance: this.float32(variance!), scale: this.float32(scale!), shift: this.float32(shift!),
    }, [input]);
  }
}

/** [rows, cols] row-major -> [cols, rows]. */
function transpose(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}
