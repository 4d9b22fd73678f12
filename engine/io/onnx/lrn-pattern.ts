// PyTorch's nn.LocalResponseNorm in ONNX. torch.onnx (1.13, opset 13) has no symbolic for
// it: F.local_response_norm is traced as the arithmetic it is made of,
//
//   sq  = Mul(x, x)                                  square
//   u   = Unsqueeze(sq, [1]) -> Reshape(N,1,C,H,-1)  a dummy axis so channels are a pooled axis
//   p   = Pad(u, [size/2 before, (size-1)/2 after] on that axis) -> Pad(all zeros)
//   a   = AveragePool(p, kernel [size,1,1], stride 1) the windowed mean of squares over channels
//   s   = If(shape[1] == 1, Squeeze(a, 1), Identity(a)) -> Reshape(N,C,H,W)
//   y   = Div(x, Pow(Add(Mul(s, alpha), k), beta))
//
// with the reshape targets and pads computed from Shape/Gather/Concat/ConstantOfShape/Slice
// nodes. Pad's amounts fold to constants (fold.ts); the reshapes only move the dummy axis.
// This matcher starts at the Div and walks back, checking each piece, and returns the one
// lrn layer it amounts to: y = x / (k + alpha/size * sum over size channels of x^2)^beta,
// Squall's SpatialCrossMapLRN. The Div's node is replaced by it; the rest of the pattern
// (and the shape arithmetic) is then read by nobody and dropped as dead code.
import type { LayerSpec } from '../graph/ir.js';
import type { GraphView, OnnxNode } from './graph-view.js';
import { float32Value } from './tensor.js';

export type LrnMatch = { spec: Extract<LayerSpec, { op: 'lrn' }>; input: string } | { miss: string } | null;

/** Ops that only move axes around between the square and the pool, and between the pool and the scale. */
const AXIS_ONLY = new Set(['Reshape', 'Unsqueeze', 'Squeeze', 'Identity', 'If']);

/** null: not an LRN at all; { miss }: it starts like one (Div by a Pow of an Add of a Mul) and fails at the reason given. */
export function matchLrn(div: OnnxNode, view: GraphView): LrnMatch {
  if (div.op !== 'Div' || div.inputs.length !== 2) return null;
  const [x, denominator] = div.inputs as [string, string];
  const producer = (v: string): OnnxNode | undefined => view.producers.get(v);
  const scalar = (v: string): number | null => {
    const c = view.constant(v);
    if (!c || c.data.length !== 1) return null;
    return c.data instanceof Float32Array ? float32Value(c.data[0]!) : c.data[0]!;
  };
  /** [the constant operand's value, the other operand] of a binary node, or null. */
  const split = (n: OnnxNode | undefined, op: string): [number, string] | null => {
    if (!n || n.op !== op || n.inputs.length !== 2) return null;
    const [a, b] = n.inputs as [string, string];
    const sa = scalar(a);
    const sb = scalar(b);
    if (sb !== null && sa === null) return [sb, a];
    if (sa !== null && sb === null && op !== 'Pow') return [sa, b];
    return null;
  };
  const pow = split(producer(denominator), 'Pow');
  if (!pow) return null;
  const add = split(producer(pow[1]), 'Add');
  if (!add) return null;
  const mul = split(producer(add[1]), 'Mul');
  if (!mul) return null;
  const [beta, k, alpha] = [pow[0], add[0], mul[0]];
  const miss = (why: string): LrnMatch => ({ miss: `looks like PyTorch's LocalResponseNorm (x / (k + alpha * mean(x^2))^beta) but ${why}` });

  // Back from the scale to the pool, through axis moves only.
  let v = mul[1];
  let n = producer(v);
  while (n && (AXIS_ONLY.has(n.op) || (n.op === 'Pad' && isZeroPad(n, view)))) {
    const next = n.op === 'If' ? ifPassThrough(n) : n.inputs[0];
    if (!next) return miss(`its ${n.op} node "${n.name}" is not a plain squeeze of one value`);
    v = next;
    n = producer(v);
  }
  if (!n || n.op !== 'AveragePool') return miss('no AveragePool over the channels was found before the scaling');
  const pool = n;
  const kernel = pool.attrs.ints('kernel_shape', null) ?? [];
  const strides = pool.attrs.ints('strides', null) ?? kernel.map(() => 1);
  const poolPads = pool.attrs.ints('pads', null) ?? [];
  const size = kernel[0] ?? 0;
  if (kernel.length < 2 || kernel.slice(1).some((d) => d !== 1) || !(size >= 1)) {
    return miss(`its AveragePool "${pool.name}" has kernel [${kernel.join(', ')}], not [size, 1, ...]`);
  }
  if (strides.some((s) => s !== 1) || poolPads.some((p) => p !== 0)) return miss(`its AveragePool "${pool.name}" has strides or pads`);

  // Back from the pool to the square: axis moves, zero pads and exactly one pad of the channel axis.
  let channelPad: number[] | null = null;
  v = pool.inputs[0]!;
  n = producer(v);
  while (n && (n.op === 'Pad' || n.op === 'Reshape' || n.op === 'Unsqueeze' || n.op === 'Identity')) {
    if (n.op === 'Pad' && !isZeroPad(n, view)) {
      const pads = padsOf(n, view);
      if (!pads || channelPad) return miss(`its Pad "${n.name}" is not a constant zero padding of the channel axis`);
      channelPad = pads;
    }
    if (n.op === 'Unsqueeze') {
      const axes = n.attrs.ints('axes', null) ?? (n.inputs[1] ? Array.from(view.constant(n.inputs[1])?.data ?? []) : []);
      if (axes.length !== 1 || axes[0] !== 1) return miss(`its Unsqueeze "${n.name}" adds axes [${axes.join(', ')}], not [1]`);
    }
    v = n.inputs[0]!;
    n = producer(v);
  }
  const squares = n && ((n.op === 'Mul' && n.inputs[0] === x && n.inputs[1] === x) ||
    (n.op === 'Pow' && n.inputs[0] === x && n.inputs[1] !== undefined && scalar(n.inputs[1]) === 2));
  if (!squares) return miss(`the pooled value is not x * x of the divided value "${x}"`);
  if (!channelPad) return miss('the channels are not padded before pooling');
  // The pooled axis is the first of the kernel (axis 2: the channels after the dummy axis 1).
  const rank = channelPad.length / 2;
  const want = new Array<number>(2 * rank).fill(0);
  want[2] = Math.floor(size / 2);
  want[rank + 2] = Math.floor((size - 1) / 2);
  if (rank < 3 || channelPad.some((p, i) => p !== want[i])) {
    return miss(`the channel padding [${channelPad.join(', ')}] is not [${want.join(', ')}] for a window of ${size}`);
  }
  return { spec: { op: 'lrn', size, alpha, beta, k }, input: x };
}

/** Pad amounts (opset 11+: the second input, folded to a constant; before: the attribute), when the pad is a constant-mode zero pad. */
function padsOf(n: OnnxNode, view: GraphView): number[] | null {
  if (n.attrs.string('mode', 'constant') !== 'constant') return null;
  const value = n.inputs[2] ? view.constant(n.inputs[2]) : null;
  if (n.inputs[2] && (!value || value.data.some((d) => d !== 0))) return null;
  if (view.opset < 11) return n.attrs.ints('pads', null);
  const pads = n.inputs[1] ? view.constant(n.inputs[1]) : null;
  return pads ? Array.from(pads.data) : null;
}

export function isZeroPad(n: OnnxNode, view: GraphView): boolean {
  const pads = padsOf(n, view);
  return pads !== null && pads.every((p) => p === 0);
}

/** The outer value an If passes through when both branches are a Squeeze or an Identity of the same value. */
function ifPassThrough(n: OnnxNode): string | null {
  const branches = [n.attrs.graph('then_branch'), n.attrs.graph('else_branch')];
  const sources = branches.map((g) => {
    if (!g || g.output.length !== 1) return null;
    const out = g.node.find((m) => m.output.includes(g.output[0]!.name));
    if (!out || (out.op_type !== 'Squeeze' && out.op_type !== 'Identity')) return null;
    const source = out.input[0];
    // it must come from outside the branch
    return source && !g.node.some((m) => m.output.includes(source)) ? source : null;
  });
  return sources[0] && sources[0] === sources[1] ? sources[0] : null;
}
