// Writing a checkpoint file (format.ts) atomically: the bytes go to a temporary file beside
// the target (`<path>.tmp-<pid>-<random>`), which is fsync'ed, renamed over the target, and
// then the directory is fsync'ed so the rename itself survives a crash. On any error before
// the rename the temporary file is removed and an existing target is left untouched; a
// reader therefore sees either the old file or the complete new one, never a mixture.
//
// Tensor values are copied in chunks into a staging buffer, checksummed there and written
// from there, so the checksum always matches the bytes written even if a caller changed a
// tensor during the save (the training loop should not: it awaits the save). Only the
// staging buffer (4 MiB by default) is allocated, whatever the size of the model.
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { formatShape, shapeSize, type Shape } from '../../tensor/tensor.js';
import { crc32 } from './crc32.js';
import {
  ALIGN, LITTLE_ENDIAN_HOST, PREFIX_BYTES, TRAILER_BYTES, align64, encodePrefix, encodeTrailer,
  type CheckpointHeader, type TensorRole,
} from './format.js';

/** A tensor to write: its data are read when the writer gets to it (`data()` is called then). */
export interface TensorSource {
  name: string;
  role: TensorRole;
  shape: Shape;
  data: () => Float32Array;
}

export interface WriteOptions {
  /**
   * Called after each tensor is staged, with the bytes staged so far and the file's total
   * size. Throwing from it aborts the save (the target is left as it was).
   */
  onProgress?: (bytesWritten: number, totalBytes: number) => void;
  /** Size of the staging buffer in bytes (default 4 MiB; 64 B .. 1 GiB). */
  bufferBytes?: number;
}

/** Header fields other than the tensor list and payload size, which the writer computes. */
export type HeaderBase = Omit<CheckpointHeader, 'tensors' | 'payloadBytes' | 'created'> & { created?: string };

/** Writes header + tensors to `path` atomically; returns the file's size in bytes. */
export async function writeCheckpointFile(path: string, base: HeaderBase, sources: readonly TensorSource[],
  options: WriteOptions = {}): Promise<number> {
  // Plan everything (and fail on bad input) before touching the file system.
  const names = new Set<string>();
  let payloadBytes = 0;
  const entries = sources.map((s) => {
    if (typeof s.name !== 'string' || s.name === '') throw new TypeError(`${path}: a tensor to save has no name`);
    if (names.has(s.name)) throw new RangeError(`${path}: two tensors to save are both named "${s.name}"`);
    names.add(s.name);
    const length = shapeSize(s.shape);
    const data = s.data();
    if (!(data instanceof Float32Array)) throw new TypeError(`${path}: tensor "${s.name}" has no Float32Array data`);
    if (data.length !== length) {
      throw new RangeError(`${path}: tensor "${s.name}" has ${data.length} values, its shape ${formatShape(s.shape)} needs ${length}`);
    }
    const offset = payloadBytes;
    payloadBytes = align64(offset + 4 * length);
    return { name: s.name, role: s.role, dtype: 'f32' as const, shape: [...s.shape], offset, length };
  });
  // 'created' may be absent (see format.ts); JSON.stringify leaves it out then.
  const header: Omit<CheckpointHeader, 'created'> & { created?: string } = { ...base, payloadBytes, tensors: entries };
  let json: string;
  try {
    json = JSON.stringify(header);
  } catch (err) {
    throw new TypeError(`${path}: the checkpoint's header (meta and optimiser settings) must be JSON: ${(err as Error).message}`);
  }
  const headerBytes = Buffer.from(json, 'utf8');
  if (headerBytes.length > 0xffffffff) throw new RangeError(`${path}: the header is ${headerBytes.length} bytes (at most 4 GiB)`);
  const payloadStart = align64(PREFIX_BYTES + headerBytes.length);
  const total = payloadStart + payloadBytes + TRAILER_BYTES;
  const bufferBytes = Math.max(ALIGN, Math.min(1 << 30, Math.floor(options.bufferBytes ?? 4 << 20)) & ~3);

  const target = resolve(path);
  const dir = dirname(target);
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: FileHandle | null = null;
  let renamed = false;
  try {
    fh = await open(tmp, 'wx', 0o644);
    const w = new StagedWriter(fh, bufferBytes);
    await w.put(encodePrefix(headerBytes.length));
    await w.put(headerBytes);
    await w.zeros(payloadStart - w.position);
    for (const [i, e] of entries.entries()) {
      await w.zeros(payloadStart + e.offset - w.position);
      const data = sources[i]!.data(); // read again: storage may have been rebound since planning
      if (data.length !== e.length) {
        throw new RangeError(`${path}: tensor "${e.name}" changed size during the save (${e.length} -> ${data.length} values)`);
      }
      await w.floats(data);
      options.onProgress?.(w.position, total);
    }
    await w.zeros(payloadStart + payloadBytes - w.position);
    await w.flush();
    if (w.position !== total - TRAILER_BYTES) throw new Error(`${path}: internal error: wrote ${w.position} bytes, planned ${total - TRAILER_BYTES}`);
    await writeAll(fh, encodeTrailer(w.crc));
    await fh.sync();
    await fh.close();
    fh = null;
    await rename(tmp, target);
    renamed = true;
    await syncDirectory(dir);
    return total;
  } catch (err) {
    if (fh) await fh.close().catch(() => {});
    if (!renamed) await unlink(tmp).catch(() => {});
    if (err instanceof Error && !err.message.startsWith(`${path}:`)) {
      err.message = `${path}: saving failed${renamed ? ' after the rename (the new file is in place; syncing its directory failed)' : ''}: ${err.message}`;
    }
    throw err;
  }
}

/** fsync of a directory, so a rename in it is durable. Platforms that cannot (EINVAL, EISDIR, EPERM on some) are tolerated. */
async function syncDirectory(dir: string): Promise<void> {
  let dh: FileHandle | null = null;
  try {
    dh = await open(dir, 'r');
    await dh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!['EINVAL', 'EISDIR', 'EPERM', 'ENOTSUP', 'EBADF'].includes(code ?? '')) throw err;
  } finally {
    await dh?.close().catch(() => {});
  }
}

async function writeAll(fh: FileHandle, b: Uint8Array): Promise<void> {
  let done = 0;
  while (done < b.length) {
    const { bytesWritten } = await fh.write(b, done, b.length - done);
    if (bytesWritten <= 0) throw new Error('the file system accepted no bytes');
    done += bytesWritten;
  }
}

/** Sequential writes through one staging buffer, with the running CRC-32 of everything written. */
class StagedWriter {
  private readonly buf: Uint8Array;
  private used = 0;
  /** Bytes handed to put/zeros/floats so far. */
  position = 0;
  crc = 0;

  constructor(private readonly fh: FileHandle, size: number) {
    this.buf = new Uint8Array(size);
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = this.buf.subarray(0, this.used);
    this.crc = crc32(chunk, this.crc);
    await writeAll(this.fh, chunk);
    this.used = 0;
  }

  async put(b: Uint8Array): Promise<void> {
    let i = 0;
    const length = b.length;
    while (i < length) {
      if (this.used === this.buf.length) {
        await this.flush();
        if (b.length !== length) throw new Error('a tensor\'s storage was released or moved while it was being saved');
      }
      const n = Math.min(length - i, this.buf.length - this.used);
      this.buf.set(b.subarray(i, i + n), this.used);
      this.used += n;
      i += n;
      this.position += n;
    }
  }

  async zeros(count: number): Promise<void> {
    if (count < 0) throw new Error(`internal error: negative padding ${count}`);
    let left = count;
    while (left > 0) {
      if (this.used === this.buf.length) await this.flush();
      const n = Math.min(left, this.buf.length - this.used);
      this.buf.fill(0, this.used, this.used + n);
      this.used += n;
      left -= n;
      this.position += n;
    }
  }

  /** float32 values, little-endian; the staging buffer's used part stays a multiple of 4 here. */
  async floats(a: Float32Array): Promise<void> {
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    if (LITTLE_ENDIAN_HOST) return this.put(bytes);
    for (let i = 0; i < a.length;) {
      if (this.buf.length - this.used < 4) await this.flush();
      const n = Math.min(a.length - i, Math.floor((this.buf.length - this.used) / 4));
      const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.used, 4 * n);
      for (let k = 0; k < n; k++) v.setFloat32(4 * k, a[i + k]!, true);
      this.used += 4 * n;
      this.position += 4 * n;
      i += n;
    }
  }
}
