// Torch7's binary serialisation (torch.File's writeObject in binary mode, as torch.save
// writes it), read from the public description of the format:
//
//   object  := int32 type, then by type:
//     0 nil       nothing
//     1 number    float64
//     2 string    int32 length, bytes
//     5 boolean   int32 (1 is true)
//     3 table     int32 index, then if the index is new: int32 n, n x (key object, value object)
//     4 torch     int32 index, then if new: string "V <version>" and string class name (or, in
//                 files from before versioning, the class name alone), then the class's data:
//                   tensors   int32 nDimension, int64 sizes[n], int64 strides[n],
//                             int64 storageOffset (1-based), storage object (or nil)
//                   storages  int64 size, size raw elements
//                   others    (nn modules) a table object of their fields
//     6 function  int32 length, bytecode, upvalues object
//     8, 7        (legacy) recursive function: int32 index, then as 6 if the index is new
//
// The index makes shared objects shared: a later occurrence of an index is the object read
// the first time. Objects are registered before their contents are read, so an object
// that contains itself is the same object again rather than an endless recursion (what
// reads the tree later must notice such cycles). Nesting depth is bounded so a hostile
// file cannot exhaust the stack, and every count is checked against the bytes left before
// anything is allocated for it.
import { ByteReader } from './byte-reader.js';
import { ELEMENT_TYPES, T7Function, T7Object, T7Storage, T7Table, T7Tensor, elementOf, type T7Value } from './values.js';

export const TYPE = {
  NIL: 0, NUMBER: 1, STRING: 2, TABLE: 3, TORCH: 4, BOOLEAN: 5, FUNCTION: 6, LEGACY_RECUR_FUNCTION: 7, RECUR_FUNCTION: 8,
} as const;

/** Far deeper than any model (a module, its field table, a tensor, a storage: 4 levels per container). */
const MAX_DEPTH = 400;
/** Tensors have at most a handful of dimensions; Torch itself caps far lower in practice. */
const MAX_TENSOR_DIMS = 64;
/** Class names are short identifiers ("nn.SpatialConvolutionMM"). */
const MAX_CLASS_NAME = 256;
/**
 * Bounds on what a file can make the reader build: a table is 12 bytes in the file and a
 * few hundred in memory, an entry 16 and about 60. Real models hold a few thousand objects
 * (the Inception-v1 fixture: 871 tables, modules, tensors and storages).
 */
const MAX_OBJECTS = 200_000;
const MAX_ENTRIES = 2_000_000;

export function readTorch7(bytes: Uint8Array, file: string): T7Value {
  return new Torch7Deserializer(new ByteReader(bytes, file)).readObject(0);
}

class Torch7Deserializer {
  private readonly objects = new Map<number, T7Value>();
  private entries = 0;

  constructor(private readonly r: ByteReader) {}

  /** Records a new shared object under its index, within the bound on how many a file may hold. */
  private register(index: number, value: T7Value, at: number): void {
    if (this.objects.size >= MAX_OBJECTS) throw this.r.error(at, `more than ${MAX_OBJECTS} tables and objects, far beyond any real model`);
    this.objects.set(index, value);
  }

  readObject(depth: number): T7Value {
    const r = this.r;
    const at = r.pos;
    if (depth > MAX_DEPTH) throw r.error(at, `objects nested more than ${MAX_DEPTH} deep`);
    const type = r.int32('a type tag');
    switch (type) {
      case TYPE.NIL:
        return null;
      case TYPE.NUMBER:
        return r.float64('a number');
      case TYPE.BOOLEAN:
        return r.int32('a boolean') === 1;
      case TYPE.STRING:
        return this.readString('a string');
      case TYPE.FUNCTION:
        return this.readFunctionBody(at, depth);
      case TYPE.TABLE:
      case TYPE.TORCH:
      case TYPE.RECUR_FUNCTION:
      case TYPE.LEGACY_RECUR_FUNCTION: {
        const index = r.int32('an object index');
        const known = this.objects.get(index);
        if (known !== undefined) return known;
        if (type === TYPE.TABLE) return this.readTable(at, index, depth);
        if (type === TYPE.TORCH) return this.readTorchObject(at, index, depth);
        return this.readFunctionBody(at, depth, index);
      }
      default:
        throw r.error(at, `unknown type tag ${type} (expected 0-8: nil, number, string, table, torch object, boolean, function)`);
    }
  }

  private readString(what: string): string {
    const at = this.r.pos;
    const n = this.r.int32(`the length of ${what}`);
    if (n < 0) throw this.r.error(at, `${what} has a negative length ${n}`);
    return Buffer.from(this.r.take(n, what)).toString('latin1');
  }

  private readTable(at: number, index: number, depth: number): T7Table {
    const table = new T7Table(at);
    this.register(index, table, at);
    const sizeAt = this.r.pos;
    // every entry is at least a key tag and a value tag
    const n = this.r.count(this.r.int32('a table size'), 8, 'the table size', sizeAt);
    this.entries += n;
    if (this.entries > MAX_ENTRIES) throw this.r.error(sizeAt, `more than ${MAX_ENTRIES} table entries, far beyond any real model`);
    for (let i = 0; i < n; i++) {
      const key = this.readObject(depth + 1);
      const value = this.readObject(depth + 1);
      table.set(key, value);
    }
    return table;
  }

  private readFunctionBody(at: number, depth: number, index?: number): T7Function {
    const fn = new T7Function(at);
    if (index !== undefined) this.register(index, fn, at);
    const sizeAt = this.r.pos;
    const n = this.r.count(this.r.int32('the length of a function'), 1, 'the function length', sizeAt);
    this.r.take(n, 'the function bytecode');
    this.readObject(depth + 1); // its upvalues
    return fn;
  }

  private readTorchObject(at: number, index: number, depth: number): T7Value {
    const r = this.r;
    const first = this.readString('the class version');
    const version = /^V (\d+)$/.exec(first);
    const className = version ? this.readString('the class name') : first;
    if (className.length === 0 || className.length > MAX_CLASS_NAME || !/^[A-Za-z_][A-Za-z0-9_.]*$/.test(className)) {
      throw r.error(at, `implausible Torch class name ${JSON.stringify(className.slice(0, 64))}`);
    }
    const tensorElement = elementOf(className, 'Tensor');
    if (tensorElement) {
      const t = new T7Tensor(className, tensorElement, at);
      this.register(index, t, at);
      this.readTensorBody(t, depth);
      return t;
    }
    const storageElement = elementOf(className, 'Storage');
    if (storageElement) {
      const s = new T7Storage(className, storageElement, at);
      this.register(index, s, at);
      this.readStorageBody(s);
      return s;
    }
    const obj = new T7Object(className, version ? Number(version[1]) : 0, at);
    this.register(index, obj, at);
    const fieldsAt = r.pos;
    const fields = this.readObject(depth + 1);
    if (!(fields instanceof T7Table)) {
      throw r.error(fieldsAt, `the fields of ${className} (object at byte ${at}) are not a table but ${describe(fields)}`);
    }
    obj.fields = fields;
    return obj;
  }

  private readTensorBody(t: T7Tensor, depth: number): void {
    const r = this.r;
    const dimsAt = r.pos;
    const n = r.int32('the number of tensor dimensions');
    if (n < 0 || n > MAX_TENSOR_DIMS) throw r.error(dimsAt, `${t.className} with ${n} dimensions`);
    r.need(16 * n + 8, `${t.className} sizes, strides and offset`);
    for (let i = 0; i < n; i++) {
      const sizeAt = r.pos;
      const size = r.int64('a tensor size');
      if (size < 0) throw r.error(sizeAt, `${t.className} size ${i + 1} is negative (${size})`);
      t.sizes.push(size);
    }
    for (let i = 0; i < n; i++) t.strides.push(r.int64('a tensor stride'));
    const offsetAt = r.pos;
    const offset1 = r.int64('the tensor storage offset');
    if (offset1 < 1) throw r.error(offsetAt, `${t.className} storage offset ${offset1} (it is 1-based)`);
    t.storageOffset = offset1 - 1;
    const storageAt = r.pos;
    const storage = this.readObject(depth + 1);
    if (storage !== null && !(storage instanceof T7Storage && storage.element === t.element)) {
      throw r.error(storageAt, `the storage of a ${t.className} is ${describe(storage)}`);
    }
    t.storage = storage;
  }

  private readStorageBody(s: T7Storage): void {
    const r = this.r;
    const sizeAt = r.pos;
    const elementBytes = ELEMENT_TYPES[s.element]!.bytes;
    const n = r.count(r.int64('a storage size'), elementBytes, `the size of a ${s.className}`, sizeAt);
    s.data = r.take(n * elementBytes, `the elements of a ${s.className}`);
    s.length = n;
  }
}

export function describe(v: T7Value | undefined): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'nil';
  if (typeof v !== 'object') return `the ${typeof v} ${JSON.stringify(v)}`;
  if (v instanceof T7Table) return `a table (byte ${v.offset})`;
  if (v instanceof T7Function) return `a function (byte ${v.offset})`;
  return `a ${v.className} (byte ${v.offset})`;
}
