// Constant folding of the shape arithmetic exporters emit around the real layers: PyTorch
// computes a Reshape's target or a Pad's amounts with Constant, ConstantOfShape, Concat,
// Slice, Transpose, Cast, Unsqueeze... nodes. A node of these types whose inputs are all
// constants is evaluated at import time and disappears; its outputs become constants the
// layer translation reads (a Reshape's shape, the pads of the LRN pattern).
//
// The only operator that allocates more than its inputs hold is ConstantOfShape; its
// output is limited to `maxElements` (the importer passes the file's size), so a hostile
// shape cannot make the importer allocate more than the file is big.
import { Attributes } from './attributes.js';
import { DataType, type NodeMsg } from './schema.js';
import { elementCount, isFloatType, readTensor, type ConstTensor } from './tensor.js';

const FOLDABLE = new Set(['Identity', 'Cast', 'Unsqueeze', 'Squeeze', 'Concat', 'Reshape', 'ConstantOfShape', 'Slice', 'Transpose',
  'Gather', 'Shape']);

export function isFoldable(op: string): boolean {
  return FOLDABLE.has(op);
}

export interface FoldContext {
  file: string;
  opset: number;
  maxElements: number;
}

/** Evaluates a foldable node whose inputs ('' = absent) are constants; returns its outputs. */
export function foldNode(node: NodeMsg, inputs: (ConstTensor | null)[], a: Attributes, ctx: FoldContext): ConstTensor[] {
  const x = inputs[0] ?? a.fail('has no first input');
  switch (node.op_type) {
    case 'Identity':
      return [x];
    case 'Shape':
      return [{ dims: [x.dims.length], dtype: DataType.INT64, data: Float64Array.from(x.dims) }];
    case 'Cast':
      return [cast(x, a.int('to', DataType.FLOAT), a)];
    case 'Unsqueeze': {
      const axes = axesOf(a, inputs[1], ctx.opset) ?? a.fail('has no axes');
      const rank = x.dims.length + axes.length;
      const norm = axes.map((ax) => normaliseAxis(a, ax, rank)).sort((p, q) => p - q);
      if (new Set(norm).size !== norm.length) a.fail(`repeats an axis in [${axes.join(', ')}]`);
      const dims = [...x.dims];
      for (const ax of norm) dims.splice(ax, 0, 1);
      return [{ ...x, dims }];
    }
    case 'Squeeze': {
      const axes = axesOf(a, inputs[1], ctx.opset);
      const drop = axes ? axes.map((ax) => normaliseAxis(a, ax, x.dims.length)) : x.dims.flatMap((d, i) => (d === 1 ? [i] : []));
      for (const ax of drop) if (x.dims[ax] !== 1) a.fail(`squeezes axis ${ax} of size ${x.dims[ax]}`);
      return [{ ...x, dims: x.dims.filter((_, i) => !drop.includes(i)) }];
    }
    case 'Reshape':
      return [{ ...x, dims: reshapeDims(a, x, inputs[1] ?? a.fail('has no shape input')) }];
    case 'ConstantOfShape': {
      const dims = Array.from(x.data);
      const count = elementCount(dims, (d) => a.fail(`shape ${d}`));
      if (count > ctx.maxElements) a.fail(`would create ${count} elements, more than the file's ${ctx.maxElements} bytes could describe`);
      const value = a.tensor('value');
      const v = value ? readTensor(value, ctx.file, `${a.where} attribute value`) : { dims: [1], dtype: DataType.FLOAT, data: new Float32Array([0]) };
      if (v.data.length !== 1) a.fail(`attribute value has ${v.data.length} elements, expected 1`);
      const data = isFloatType(v.dtype) ? new Float32Array(count) : new Float64Array(count);
      data.fill(v.data[0]!);
      return [{ dims, dtype: v.dtype, data }];
    }
    case 'Concat':
      return [concat(a, inputs.filter((t): t is ConstTensor => t !== null), a.int('axis', 0))];
    case 'Transpose': {
      const rank = x.dims.length;
      const perm = a.ints('perm', null) ?? x.dims.map((_, i) => rank - 1 - i);
      if (perm.length !== rank || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) a.fail(`perm [${perm.join(', ')}] is not a permutation of ${rank} axes`);
      return [gatherBy(x, perm.map((p) => x.dims[p]!), (out) => perm.map((p, i) => [p, out[i]!] as const))];
    }
    case 'Slice':
      return [slice(a, x, inputs, ctx.opset)];
    case 'Gather':
      return [gather(a, x, inputs[1] ?? a.fail('has no indices'), a.int('axis', 0))];
    default:
      return a.fail(`cannot be folded (${node.op_type})`);
  }
}

function normaliseAxis(a: Attributes, axis: number, rank: number): number {
  const ax = axis < 0 ? axis + rank : axis;
  if (!(Number.isInteger(ax) && ax >= 0 && ax < rank)) a.fail(`axis ${axis} is out of range for rank ${rank}`);
  return ax;
}

/** Unsqueeze/Squeeze axes: an attribute before opset 13, the second input from 13 on. */
function axesOf(a: Attributes, input: ConstTensor | null | undefined, opset: number): number[] | null {
  if (opset < 13 || a.has('axes')) return a.ints('axes', null);
  return input ? Array.from(input.data) : null;
}

function cast(x: ConstTensor, to: number, a: Attributes): ConstTensor {
  if (isFloatType(to)) return { dims: x.dims, dtype: to, data: Float32Array.from(x.data) };
  if (to === DataType.BOOL) return { dims: x.dims, dtype: to, data: Float64Array.from(x.data, (v) => (v !== 0 ? 1 : 0)) };
  if (![DataType.INT64, DataType.INT32, DataType.INT16, DataType.INT8, DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64].includes(to)) {
    a.fail(`casts to data type ${DataType[to] ?? to}, which Squall does not fold`);
  }
  return { dims: x.dims, dtype: to, data: Float64Array.from(x.data, (v) => Math.trunc(v)) };
}

/** Reshape's target dims: 0 copies the input's dim (allowzero = 0), -1 is inferred. */
export function reshapeDims(a: Attributes, x: { dims: number[] }, shape: ConstTensor): number[] {
  const want = Array.from(shape.data);
  const total = x.dims.reduce((p, d) => p * d, 1);
  const dims = want.map((d, i) => (d === 0 ? x.dims[i] ?? a.fail(`shape [${want.join(', ')}] copies dimension ${i} of a ${x.dims.length}-d input`) : d));
  const unknown = dims.filter((d) => d === -1).length;
  if (unknown > 1 || dims.some((d) => !Number.isInteger(d) || d < -1)) a.fail(`shape [${want.join(', ')}] is not a valid Reshape target`);
  const known = dims.reduce((p, d) => (d === -1 ? p : p * d), 1);
  if (unknown) {
    if (known === 0 || total % known !== 0) a.fail(`cannot reshape [${x.dims.join(', ')}] to [${want.join(', ')}]`);
    return dims.map((d) => (d === -1 ? total / known : d));
  }
  if (known !== total) a.fail(`cannot reshape [${x.dims.join(', ')}] (${total} elements) to [${want.join(', ')}]`);
  return dims;
}

function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

/**
 * A tensor of shape `dims` whose element at multi-index `out` is x at the index built from
 * `source(out)`: pairs [input axis, index along it].
 */
function gatherBy(x: ConstTensor, dims: number[], source: (out: number[]) => (readonly [number, number])[]): ConstTensor {
  const count = dims.reduce((p, d) => p * d, 1);
  const data = x.data instanceof Float32Array ? new Float32Array(count) : new Float64Array(count);
  const inStrides = strides(x.dims);
  const idx = new Array<number>(dims.length).fill(0);
  for (let k = 0; k < count; k++) {
    let at = 0;
    for (const [axis, i] of source(idx)) at += inStrides[axis]! * i;
    data[k] = x.data[at]!;
    for (let d = dims.length - 1; d >= 0; d--) {
      if (++idx[d]! < dims[d]!) break;
      idx[d] = 0;
    }
  }
  return { dims, dtype: x.dtype, data };
}

function concat(a: Attributes, parts: ConstTensor[], axis: number): ConstTensor {
  if (parts.length === 0) a.fail('has no inputs');
  const rank = parts[0]!.dims.length;
  const ax = normaliseAxis(a, axis, rank);
  for (const p of parts) {
    if (p.dims.length !== rank || p.dims.some((d, i) => i !== ax && d !== parts[0]!.dims[i])) {
      a.fail(`concatenates [${p.dims.join(', ')}] with [${parts[0]!.dims.join(', ')}] along axis ${ax}`);
    }
  }
  const dims = parts[0]!.dims.map((d, i) => (i === ax ? parts.reduce((n, p) => n + p.dims[ax]!, 0) : d));
  const outer = dims.slice(0, ax).reduce((p, d) => p * d, 1);
  const float = parts.every((p) => p.data instanceof Float32Array);
  const data = float ? new Float32Array(dims.reduce((p, d) => p * d, 1)) : new Float64Array(dims.reduce((p, d) => p * d, 1));
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const block = p.dims.slice(ax).reduce((q, d) => q * d, 1);
      data.set(p.data.subarray(o * block, (o + 1) * block), at);
      at += block;
    }
  }
  return { dims, dtype: parts[0]!.dtype, data };
}

/** Slice (opset 10+: starts, ends, axes, steps as inputs; before: attributes), ONNX's clamping rules. */
function slice(a: Attributes, x: ConstTensor, inputs: (ConstTensor | null)[], opset: number): ConstTensor {
  const list = (i: number, attr: string): number[] | null =>
    opset < 10 ? a.ints(attr, null) : inputs[i] ? Array.from(inputs[i]!.data) : null;
  const starts = list(1, 'starts') ?? a.fail('has no starts');
  const ends = list(2, 'ends') ?? a.fail('has no ends');
  const axes = list(3, 'axes') ?? starts.map((_, i) => i);
  const steps = list(4, 'steps') ?? starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) a.fail('has starts, ends, axes and steps of different lengths');
  const rank = x.dims.length;
  const first = x.dims.map(() => 0);
  const step = x.dims.map(() => 1);
  const dims = [...x.dims];
  for (const [k, axis] of axes.entries()) {
    const ax = normaliseAxis(a, axis, rank);
    const n = x.dims[ax]!;
    const s = steps[k]!;
    if (!Number.isInteger(s) || s === 0) a.fail(`step ${s} on axis ${ax}`);
    const clampIndex = (v: number, lo: number, hi: number): number => Math.min(Math.max(v < 0 ? v + n : v, lo), hi);
    const b = s > 0 ? clampIndex(starts[k]!, 0, n) : clampIndex(starts[k]!, 0, n - 1);
    const e = s > 0 ? clampIndex(ends[k]!, 0, n) : clampIndex(ends[k]!, -1, n - 1);
    dims[ax] = Math.max(0, Math.ceil((e - b) / s));
    first[ax] = b;
    step[ax] = s;
  }
  return gatherBy(x, dims, (out) => out.map((i, ax) => [ax, first[ax]! + i * step[ax]!] as const));
}

function gather(a: Attributes, x: ConstTensor, indices: ConstTensor, axis: number): ConstTensor {
  const ax = normaliseAxis(a, axis, x.dims.length);
  const n = x.dims[ax]!;
  const idx = Array.from(indices.data, (i) => {
    const j = i < 0 ? i + n : i;
    if (!(Number.isInteger(j) && j >= 0 && j < n)) a.fail(`index ${i} is out of range for axis ${ax} of size ${n}`);
    return j;
  });
  const k = indices.dims.length;
  const dims = [...x.dims.slice(0, ax), ...indices.dims, ...x.dims.slice(ax + 1)];
  const idxStrides = strides(indices.dims);
  return gatherBy(x, dims, (out) => {
    let flat = 0;
    for (let d = 0; d < k; d++) flat += idxStrides[d]! * out[ax + d]!;
    return x.dims.map((_, d) => [d, d < ax ? out[d]! : d === ax ? idx[flat]! : out[d + k - 1]!] as const);
  });
}
