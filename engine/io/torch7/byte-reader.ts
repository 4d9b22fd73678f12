// A little-endian reader over a file's bytes that checks every read against the real end of
// the file before making it, so a declared length or count can never make it read past
// the end or allocate more than the file holds. Its errors are ModelFormatErrors naming
// the file and the byte offset of the value that was being read.
//
// readModelFile, at the end, is the one way both importers (Torch7 and Caffe) read a file.
import { ModelFormatError } from '../errors.js';

export class ByteReader {
  pos = 0;
  private readonly view: DataView;

  constructor(readonly bytes: Uint8Array, readonly file: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  remaining(): number {
    return this.bytes.length - this.pos;
  }

  error(offset: number, detail: string): ModelFormatError {
    return new ModelFormatError(this.file, `byte offset ${offset}`, detail);
  }

  /** Fails unless `n` more bytes exist; `what` says what they would be. */
  need(n: number, what: string): void {
    if (n > this.remaining()) {
      throw this.error(this.pos, `${what} needs ${n} bytes but the file ends ${this.remaining()} bytes later (it is ${this.bytes.length} bytes long)`);
    }
  }

  int32(what: string): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A 64-bit integer, which must fit a JavaScript number exactly (every real size and offset does). */
  int64(what: string): number {
    this.need(8, what);
    const v = this.view.getBigInt64(this.pos, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw this.error(this.pos, `${what} ${v} is beyond 2^53`);
    }
    this.pos += 8;
    return Number(v);
  }

  float64(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** `n` bytes as a view of the file (not a copy). */
  take(n: number, what: string): Uint8Array {
    if (!(Number.isInteger(n) && n >= 0)) throw this.error(this.pos, `${what} has an invalid length ${n}`);
    this.need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A count, checked to be non-negative and to leave room for `count * minBytesEach` bytes. */
  count(raw: number, minBytesEach: number, what: string, at: number): number {
    if (raw < 0) throw this.error(at, `${what} is negative (${raw})`);
    if (raw * minBytesEach > this.remaining()) {
      throw this.error(at, `${what} is ${raw}, which needs at least ${raw * minBytesEach} bytes, but only ${this.remaining()} remain`);
    }
    return raw;
  }
}
