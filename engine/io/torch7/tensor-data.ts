// A tensor's elements as a dense float32 array in row-major order, gathered from its storage
// through its sizes, strides and offset. Every element the tensor can address is checked to
// lie inside the storage first, and the result is never larger than the storage (no
// expanded, stride-0 tensors), so the allocation is bounded by the file's size.
import { formatShape, shapeSize } from '../../tensor/tensor.js';
import { ModelFormatError } from '../errors.js';
import { ELEMENT_TYPES, type T7Tensor } from './values.js';

export function tensorToFloat32(t: T7Tensor, file: string, what: string): Float32Array {
  const fail = (detail: string): ModelFormatError => new ModelFormatError(file, `byte offset ${t.offset}`, `${what} (${t.className} ${formatShape(t.sizes)}): ${detail}`);
  const count = shapeSize(t.sizes);
  if (t.sizes.length === 0 || count === 0) return new Float32Array(0);
  const s = t.storage;
  if (!s) throw fail('has no storage');
  let last = t.storageOffset;
  for (const [i, size] of t.sizes.entries()) {
    const stride = t.strides[i]!;
    if (stride < 0) throw fail(`stride ${stride} is negative`);
    last += (size - 1) * stride;
  }
  if (last >= s.length) {
    throw fail(`strides ${formatShape(t.strides)} from storage offset ${t.storageOffset + 1} reach element ${last + 1} of a storage of ${s.length} (at byte ${s.offset})`);
  }
  if (count > s.length) throw fail(`has ${count} elements but its storage only ${s.length}: expanded tensors are not supported`);

  const out = new Float32Array(count);
  const elem = ELEMENT_TYPES[s.element]!;
  const view = new DataView(s.data.buffer, s.data.byteOffset, s.data.byteLength);
  const dims = t.sizes.length;
  const contiguous = t.strides.every((st, i) => t.sizes[i] === 1 || st === shapeSize(t.sizes.slice(i + 1)));
  if (contiguous) {
    for (let i = 0; i < count; i++) out[i] = elem.read(view, (t.storageOffset + i) * elem.bytes);
    return out;
  }
  // odometer over the index tuple, in row-major order
  const index = new Array<number>(dims).fill(0);
  let src = t.storageOffset;
  for (let i = 0; i < count; i++) {
    out[i] = elem.read(view, src * elem.bytes);
    for (let d = dims - 1; d >= 0; d--) {
      if (++index[d]! < t.sizes[d]!) {
        src += t.strides[d]!;
        break;
      }
      src -= (t.sizes[d]! - 1) * t.strides[d]!;
      index[d] = 0;
    }
  }
  return out;
}
