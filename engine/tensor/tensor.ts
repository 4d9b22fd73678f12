// Torch-style tensor: a shape over contiguous Float32Array storage (row-major). Views share
// storage; kernels get the storage itself, so a tensor can live inside a model's flat
// parameter buffer as a subarray.
import { Random } from './random.js';

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const [i, d] of shape.entries()) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`shape[${i}] must be a non-negative integer, got ${d} in [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export class Tensor {
  readonly shape: Shape;
  readonly data: Float32Array;

  constructor(shape: Shape, data?: Float32Array) {
    const size = shapeSize(shape);
    if (data && data.length !== size) {
      throw new RangeError(`tensor data has ${data.length} elements, shape ${formatShape(shape)} needs ${size}`);
    }
    this.shape = Object.freeze([...shape]);
    this.data = data ?? new Float32Array(size);
  }

  static zeros(shape: Shape): Tensor {
    return new Tensor(shape);
  }

  static full(shape: Shape, value: number): Tensor {
    const t = new Tensor(shape);
    t.data.fill(value);
    return t;
  }

  static fromArray(shape: Shape, values: ArrayLike<number>): Tensor {
    return new Tensor(shape, Float32Array.from(values));
  }

  /** Normal(mean, std) entries from a seeded generator. */
  static randn(shape: Shape, rng: Random, std = 1, mean = 0): Tensor {
    const t = new Tensor(shape);
    for (let i = 0; i < t.data.length; i++) t.data[i] = mean + std * rng.normal();
    return t;
  }

  /** Uniform [lo, hi) entries from a seeded generator. */
  static uniform(shape: Shape, rng: Random, lo: number, hi: number): Tensor {
    const t = new Tensor(shape);
    for (let i = 0; i < t.data.length; i++) t.data[i] = lo + (hi - lo) * rng.uniform();
    return t;
  }

  get size(): number {
    return this.data.length;
  }

  get dim(): number {
    return this.shape.length;
  }

  /** Size of dimension d (negative counts from the end). */
  sizeAt(d: number): number {
    const i = d < 0 ? this.shape.length + d : d;
    const s = this.shape[i];
    if (s === undefined) throw new RangeError(`dimension ${d} out of range for a ${this.shape.length}-d tensor`);
    return s;
  }

  /** A view with another shape over the same storage; one dimension may be -1. */
  view(shape: Shape): Tensor {
    const known = shape.filter((d) => d !== -1);
    const inferred = shape.length - known.length;
    if (inferred > 1) throw new RangeError(`view ${formatShape(shape)}: only one dimension may be -1`);
    let target = [...shape];
    if (inferred === 1) {
      const rest = shapeSize(known);
      if (rest === 0 || this.size % rest !== 0) {
        throw new RangeError(`view ${formatShape(shape)} does not fit a tensor of ${this.size} elements`);
      }
      target = shape.map((d) => (d === -1 ? this.size / rest : d));
    }
    if (shapeSize(target) !== this.size) {
      throw new RangeError(`view ${formatShape(shape)} has ${shapeSize(target)} elements, the tensor ${formatShape(this.shape)} has ${this.size}`);
    }
    return new Tensor(target, this.data);
  }

  /** Rows [start, end) of the first dimension, sharing storage. */
  narrow(start: number, end: number): Tensor {
    const rows = this.sizeAt(0);
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= rows)) {
      throw new RangeError(`narrow(${start}, ${end}) out of range for first dimension ${rows}`);
    }
    const row = rows === 0 ? 0 : this.size / rows;
    return new Tensor([end - start, ...this.shape.slice(1)], this.data.subarray(start * row, end * row));
  }

  clone(): Tensor {
    return new Tensor(this.shape, this.data.slice());
  }

  fill(value: number): this {
    this.data.fill(value);
    return this;
  }

  copyFrom(other: Tensor): this {
    if (other.size !== this.size) {
      throw new RangeError(`copyFrom: source ${formatShape(other.shape)} and target ${formatShape(this.shape)} differ in size`);
    }
    this.data.set(other.data);
    return this;
  }

  sameShape(other: Tensor): boolean {
    return this.shape.length === other.shape.length && this.shape.every((d, i) => d === other.shape[i]);
  }

  /** Index of the largest entry of each row of a 2-d tensor (ties: the first). */
  argmaxRows(): Int32Array {
    if (this.dim !== 2) throw new RangeError(`argmaxRows needs a 2-d tensor, got ${formatShape(this.shape)}`);
    const [rows, cols] = this.shape as [number, number];
    const out = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      let best = 0;
      for (let c = 1; c < cols; c++) if (this.data[r * cols + c]! > this.data[r * cols + best]!) best = c;
      out[r] = best;
    }
    return out;
  }

  toString(): string {
    return `Tensor${formatShape(this.shape)}`;
  }
}
