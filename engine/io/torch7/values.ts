// The values a Torch7 file holds once read: Lua's nil, numbers, booleans, strings and
// tables, and Torch objects (nn modules: a class name and a table of fields), tensors and
// storages. Every table, object, tensor and storage remembers the byte offset where it
// starts, for errors about it found later.

export type T7Value = null | number | boolean | string | T7Table | T7Object | T7Tensor | T7Storage | T7Function;

export class T7Table {
  readonly entries: [T7Value, T7Value][] = [];
  /** Lookup by number, string or boolean key (Lua compares those by value); later entries win, as in Lua. */
  private readonly byKey = new Map<number | string | boolean, T7Value>();

  constructor(readonly offset: number) {}

  set(key: T7Value, value: T7Value): void {
    this.entries.push([key, value]);
    if (typeof key === 'number' || typeof key === 'string' || typeof key === 'boolean') this.byKey.set(key, value);
  }

  get(key: string | number): T7Value | undefined {
    return this.byKey.get(key);
  }

  /** The values at keys 1, 2, ... up to the first missing one (Lua's array part). */
  array(): T7Value[] {
    const out: T7Value[] = [];
    for (let i = 1; this.byKey.has(i); i++) out.push(this.byKey.get(i)!);
    return out;
  }
}

/** A Torch class instance serialised as its fields (every nn module). */
export class T7Object {
  /** Filled after the object is registered in the reference table (its fields may refer back to it). */
  fields: T7Table = new T7Table(-1);

  constructor(readonly className: string, readonly version: number, readonly offset: number) {}
}

export interface ElementType {
  bytes: number;
  read(view: DataView, byteOffset: number): number;
}

export const ELEMENT_TYPES: Record<string, ElementType> = {
  Float: { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  Double: { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
  Long: { bytes: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
  Int: { bytes: 4, read: (v, o) => v.getInt32(o, true) },
  Short: { bytes: 2, read: (v, o) => v.getInt16(o, true) },
  Char: { bytes: 1, read: (v, o) => v.getInt8(o) },
  Byte: { bytes: 1, read: (v, o) => v.getUint8(o) },
};

/**
 * A storage's elements, kept as a view of the file's bytes. `element` names the element
 * type ("Float" for torch.FloatStorage and, as cutorch writes them, torch.CudaStorage).
 */
export class T7Storage {
  data: Uint8Array = new Uint8Array(0);
  length = 0;

  constructor(readonly className: string, readonly element: string, readonly offset: number) {}

  at(i: number): number {
    const t = ELEMENT_TYPES[this.element]!;
    return t.read(new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength), i * t.bytes);
  }
}

export class T7Tensor {
  sizes: number[] = [];
  strides: number[] = [];
  /** 0-based (the file stores it 1-based). */
  storageOffset = 0;
  storage: T7Storage | null = null;

  constructor(readonly className: string, readonly element: string, readonly offset: number) {}
}

/** A serialised Lua function (bytecode and upvalues): kept opaque, never run. */
export class T7Function {
  constructor(readonly offset: number) {}
}

/** The element type a tensor or storage class holds ("torch.FloatTensor" -> "Float"); null for other classes. */
export function elementOf(className: string, kind: 'Tensor' | 'Storage'): string | null {
  const m = new RegExp(`^torch\\.(Cuda)?(Float|Double|Long|Int|Short|Char|Byte)?${kind}$`).exec(className);
  if (!m || (!m[1] && !m[2])) return null;
  // torch.CudaTensor holds floats; torch.CudaDoubleTensor doubles, and so on
  return m[2] ?? 'Float';
}
