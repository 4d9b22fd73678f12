// A Squall module tree -> an ONNX model (IR 7, opset 13, the versions PyTorch 1.13 writes).
//
// Sequential becomes a chain of nodes, Concat one branch per child reading the same value
// and a Concat node, each leaf module one node in the operators PyTorch emits (Conv, Gemm
// with transB, MaxPool/AveragePool with ceil_mode and count_include_pad, BatchNormalization,
// LogSoftmax ...), except SpatialCrossMapLRN, which is ONNX's own LRN operator rather than
// PyTorch's arithmetic. Weights are float32 initializers with raw_data, named by the
// parameter's path ("model.0.weight"); values by the path of the module that computes them.
// The batch dimension is symbolic ("batch"), so the file runs on any batch size.
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import {
  BatchNormalization, Concat, Dropout, LeakyReLU, Linear, LogSoftMax, ReLU, Sequential, Sigmoid, SoftMax, SpatialAveragePooling,
  SpatialConvolution, SpatialCrossMapLRN, SpatialMaxPooling, Tanh, View, type Module,
} from '../../nn/index.js';
import { AttributeType, DataType, ModelProto } from './schema.js';
import { floatTensor, int64Tensor } from './tensor.js';

export const EXPORT_OPSET = 13;
const EXPORT_IR_VERSION = 7;

export interface SaveOnnxOptions {
  /** Per-sample input shape, e.g. [1, 28, 28] (the batch dimension is left symbolic). */
  inputShape: readonly number[];
  /** Graph input and output names (default "input", "output"). */
  inputName?: string;
  outputName?: string;
}

type Attr = Record<string, unknown>;
type NodeObj = { name: string; op_type: string; input: string[]; output: string[]; attribute: Attr[] };

const ints = (name: string, v: readonly number[]): Attr => ({ name, type: AttributeType.INTS, ints: [...v] });
const int = (name: string, v: number): Attr => ({ name, type: AttributeType.INT, i: v });
const float = (name: string, v: number): Attr => ({ name, type: AttributeType.FLOAT, f: v });

/** Writes `model` as an ONNX file (atomically: a temporary file renamed over the target). */
export async function saveOnnx(path: string, model: Module, options: SaveOnnxOptions): Promise<{ path: string; bytes: number }> {
  const bytes = encodeOnnx(model, options);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(tmp, bytes, { flag: 'wx' });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  return { path, bytes: bytes.length };
}

/** The ONNX bytes of `model`. */
export function encodeOnnx(model: Module, options: SaveOnnxOptions): Uint8Array {
  const shape = [...options.inputShape];
  if (shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw new RangeError(`saveOnnx: inputShape must be positive integers (per sample), got ${JSON.stringify(options.inputShape)}`);
  }
  const outShape = model.outputShape([1, ...shape]).slice(1); // throws for an input the model cannot take
  const writer = new GraphWriter(model.path());
  const inputName = options.inputName ?? 'input';
  const outputName = options.outputName ?? 'output';
  let last = writer.emit(model, inputName);
  if (last === inputName) last = writer.node('Identity', 'identity', [inputName], []);
  writer.rename(last, outputName);
  const valueInfo = (name: string, dims: number[]): Attr => ({
    name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'batch' }, ...dims.map((d) => ({ dim_value: d }))] } } },
  });
  const message = ModelProto.fromObject({
    ir_version: EXPORT_IR_VERSION,
    opset_import: [{ domain: '', version: EXPORT_OPSET }],
    producer_name: 'squall',
    producer_version: '0.1.0',
    graph: {
      name: 'squall', node: writer.nodes, initializer: writer.initializers,
      input: [valueInfo(inputName, shape)], output: [valueInfo(outputName, outShape)],
    },
  });
  return ModelProto.encode(message).finish();
}

class GraphWriter {
  readonly nodes: NodeObj[] = [];
  readonly initializers: Record<string, unknown>[] = [];

  constructor(private readonly rootPath: string) {}

  /** The node and value name of a module: its path below the root ("model.3.1"). */
  private nameOf(m: Module): string {
    return `model${m.path().slice(this.rootPath.length)}`;
  }

  node(op: string, name: string, input: string[], attribute: Attr[]): string {
    const output = `${name}:${op}`;
    this.nodes.push({ name, op_type: op, input, output: [output], attribute });
    return output;
  }

  private init(name: string, dims: readonly number[], data: Float32Array): string {
    this.initializers.push(floatTensor(name, dims, data));
    return name;
  }

  rename(from: string, to: string): void {
    for (const n of this.nodes) {
      n.output = n.output.map((o) => (o === from ? to : o));
      n.input = n.input.map((i) => (i === from ? to : i));
    }
  }

  /** Emits the nodes of `m` reading value `x`; returns the value it computes. */
  emit(m: Module, x: string): string {
    const name = this.nameOf(m);
    const param = (p: { value: { shape: readonly number[]; data: Float32Array } }, what: string): string =>
      this.init(`${name}.${what}`, p.value.shape, p.value.data);
    if (m instanceof Sequential) return m.children().reduce((v, c) => this.emit(c, v), x);
    if (m instanceof Concat) return this.node('Concat', name, m.children().map((c) => this.emit(c, x)), [int('axis', m.dim)]);
    if (m instanceof SpatialConvolution) {
      return this.node('Conv', name, [x, param(m.weight, 'weight'), ...(m.bias ? [param(m.bias, 'bias')] : [])], [
        ints('kernel_shape', [m.kH, m.kW]), ints('strides', [m.strideH, m.strideW]), ints('pads', [m.padH, m.padW, m.padH, m.padW]),
        ints('dilations', [m.dilationH, m.dilationW]), int('group', m.groups),
      ]);
    }
    if (m instanceof Linear) {
      return this.node('Gemm', name, [x, param(m.weight, 'weight'), ...(m.bias ? [param(m.bias, 'bias')] : [])],
        [float('alpha', 1), float('beta', 1), int('transB', 1)]);
    }
    if (m instanceof LeakyReLU) return this.node('LeakyRelu', name, [x], [float('alpha', m.negativeSlope)]);
    if (m instanceof SpatialMaxPooling || m instanceof SpatialAveragePooling) {
      const attrs = [ints('kernel_shape', [m.kH, m.kW]), ints('strides', [m.strideH, m.strideW]), ints('pads', [m.padH, m.padW, m.padH, m.padW]),
        int('ceil_mode', m.ceilMode ? 1 : 0)];
      if (m instanceof SpatialMaxPooling) return this.node('MaxPool', name, [x], attrs);
      return this.node('AveragePool', name, [x], [...attrs, int('count_include_pad', m.countIncludePad ? 1 : 0)]);
    }
    if (m instanceof SpatialCrossMapLRN) {
      return this.node('LRN', name, [x], [int('size', m.size), float('alpha', m.alpha), float('beta', m.beta), float('bias', m.k)]);
    }
    if (m instanceof Dropout) {
      return this.node('Dropout', name, [x, this.init(`${name}.ratio`, [], new Float32Array([m.p]))], []);
    }
    if (m instanceof BatchNormalization) {
      const f = m.features;
      const scale = m.weight ? param(m.weight, 'weight') : this.init(`${name}.weight`, [f], new Float32Array(f).fill(1));
      const shift = m.bias ? param(m.bias, 'bias') : this.init(`${name}.bias`, [f], new Float32Array(f));
      return this.node('BatchNormalization', name, [x, scale, shift, param(m.runningMean, 'runningMean'), param(m.runningVar, 'runningVar')],
        [float('epsilon', m.eps), float('momentum', 1 - m.momentum)]);
    }
    if (m instanceof View) {
      // View(n) keeps the batch and flattens the rest (its outputShape checks the count).
      if (m.sizes.length === 1) return this.node('Flatten', name, [x], [int('axis', 1)]);
      this.initializers.push(int64Tensor(`${name}.shape`, [0, ...m.sizes]));
      return this.node('Reshape', name, [x, `${name}.shape`], []);
    }
    const simple = SIMPLE.find(([cls]) => m.constructor === cls);
    if (simple) return this.node(simple[1], name, [x], simple[2]);
    throw new TypeError(`saveOnnx: ${m.path()} (${m.describe()}) has no ONNX export (modules: Sequential, Concat and the nn layers)`);
  }
}

const SIMPLE: [new () => Module, string, Attr[]][] = [
  [ReLU, 'Relu', []], [Tanh, 'Tanh', []], [Sigmoid, 'Sigmoid', []],
  [SoftMax, 'Softmax', [int('axis', 1)]], [LogSoftMax, 'LogSoftmax', [int('axis', 1)]],
];
