// ONNX TensorProto <-> values. Floating-point tensors (weights) become Float32Array,
// integer and boolean ones (shapes, axes, pads) Float64Array: exact up to 2^53, which any
// size that fits in memory is; INT64_MAX as a Slice end becomes 9.2e18, still "past the end".
//
// A tensor's element count is the product of its dims, computed in safe-integer arithmetic
// and compared with the data actually present (raw_data bytes or the typed repeated field)
// before anything is allocated, so a tensor that declares 2^40 elements and carries 12
// bytes is an error, not an allocation.
import { ModelFormatError } from '../errors.js';
import { DataType, int, type Int64, type TensorMsg } from './schema.js';

export interface ConstTensor {
  dims: number[];
  /** DataType of the file (FLOAT, INT64, ...); Cast changes it. */
  dtype: DataType;
  data: Float32Array | Float64Array;
}

const FLOATS = new Set([DataType.FLOAT, DataType.DOUBLE]);
const INTEGERS = new Set([DataType.INT64, DataType.INT32, DataType.INT16, DataType.INT8, DataType.UINT8, DataType.UINT16,
  DataType.UINT32, DataType.UINT64, DataType.BOOL]);

export function isFloatType(t: DataType): boolean {
  return FLOATS.has(t);
}

/**
 * The shortest decimal that rounds to the same float32: what the exporter's source said
 * (PyTorch's 1e-4 is stored as the float32 9.99999974737875e-5; Squall's modules take 1e-4).
 */
export function float32Value(x: number): number {
  const f = Math.fround(x);
  for (let digits = 1; digits <= 9; digits++) {
    const y = Number(f.toPrecision(digits));
    if (Math.fround(y) === f) return y;
  }
  return f;
}

/** Element count of dims, or an error when a dim is negative or the product is not a safe integer. */
export function elementCount(dims: readonly number[], fail: (detail: string) => never): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) fail(`has dimension ${d}`);
    n *= d;
    if (!Number.isSafeInteger(n)) fail(`declares more than 2^53 elements (dims [${dims.join(', ')}])`);
  }
  return n;
}

/** Reads a TensorProto; `what` names it in errors ('initializer "fc.weight"', 'node "x" attribute value'). */
export function readTensor(t: TensorMsg, file: string, what: string): ConstTensor {
  const fail = (detail: string): never => {
    throw new ModelFormatError(file, what, `tensor ${detail}`);
  };
  if (t.data_location === 1) fail('keeps its data in an external file, which Squall does not read (save the model with its weights inside)');
  if (t.segment) fail('is segmented, which Squall does not read');
  const dims = t.dims.map((d: Int64) => int(d));
  const count = elementCount(dims, fail);
  const dtype = t.data_type as DataType;
  const raw = t.raw_data;
  const hasRaw = raw && raw.length > 0;
  const size = byteSize(dtype);
  if (size === 0) fail(`has data type ${DataType[dtype] ?? dtype}, which Squall does not read (float, double and integer types only)`);
  if (hasRaw) {
    if (raw.length !== count * size) {
      fail(`declares ${count} ${DataType[dtype]} elements (dims [${dims.join(', ')}]) = ${count * size} bytes, but its raw_data holds ${raw.length} bytes`);
    }
    return { dims, dtype, data: fromRaw(raw, dtype, count) };
  }
  const field = typedField(t, dtype);
  if (field.length !== count) {
    // A tensor with no data at all and a zero-size shape is legal (an empty tensor).
    fail(`declares ${count} ${DataType[dtype]} elements (dims [${dims.join(', ')}]) but holds ${field.length} values`);
  }
  if (isFloatType(dtype)) {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = field[i] as number;
    return { dims, dtype, data: out };
  }
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = int(field[i] as Int64);
  return { dims, dtype, data: out };
}

function byteSize(t: DataType): number {
  switch (t) {
    case DataType.FLOAT: case DataType.INT32: case DataType.UINT32: return 4;
    case DataType.DOUBLE: case DataType.INT64: case DataType.UINT64: return 8;
    case DataType.INT16: case DataType.UINT16: return 2;
    case DataType.INT8: case DataType.UINT8: case DataType.BOOL: return 1;
    default: return 0;
  }
}

/** The repeated field that holds a type's values when raw_data is empty (onnx.proto's table). */
function typedField(t: TensorMsg, dtype: DataType): readonly (number | Int64)[] {
  switch (dtype) {
    case DataType.FLOAT: return t.float_data;
    case DataType.DOUBLE: return t.double_data;
    case DataType.INT64: return t.int64_data;
    case DataType.UINT32: case DataType.UINT64: return t.uint64_data;
    default: return t.int32_data; // int32, int16, int8, uint16, uint8, bool
  }
}

/** Little-endian values from raw_data (which may sit at any alignment in the file). */
function fromRaw(raw: Uint8Array, dtype: DataType, count: number): Float32Array | Float64Array {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (dtype === DataType.FLOAT) {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = v.getFloat32(4 * i, true);
    return out;
  }
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    switch (dtype) {
      case DataType.DOUBLE: out[i] = v.getFloat64(8 * i, true); break;
      case DataType.INT64: out[i] = Number(v.getBigInt64(8 * i, true)); break;
      case DataType.UINT64: out[i] = Number(v.getBigUint64(8 * i, true)); break;
      case DataType.INT32: out[i] = v.getInt32(4 * i, true); break;
      case DataType.UINT32: out[i] = v.getUint32(4 * i, true); break;
      case DataType.INT16: out[i] = v.getInt16(2 * i, true); break;
      case DataType.UINT16: out[i] = v.getUint16(2 * i, true); break;
      case DataType.INT8: out[i] = v.getInt8(i); break;
      default: out[i] = v.getUint8(i); // uint8, bool
    }
  }
  return out;
}

/** A float32 TensorProto with raw_data (how PyTorch stores weights), for export. */
export function floatTensor(name: string, dims: readonly number[], data: Float32Array): Record<string, unknown> {
  const raw = new Uint8Array(data.length * 4);
  const v = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) v.setFloat32(4 * i, data[i]!, true);
  return { name, dims: [...dims], data_type: DataType.FLOAT, raw_data: raw };
}

/** An int64 TensorProto (shapes, axes), for export. */
export function int64Tensor(name: string, values: readonly number[]): Record<string, unknown> {
  return { name, dims: [values.length], data_type: DataType.INT64, int64_data: [...values] };
}
