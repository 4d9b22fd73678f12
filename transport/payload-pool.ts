// Received payload buffers, reused. A fresh buffer per frame costs the kernel a page fault
// and a zeroed page per 4 KiB on first touch, five to ten times the cost of the copy into
// it; the parameter manager receives the same chunk sizes every iteration, so a consumer
// that is done with a payload hands it back (Frame.release) and the next frame of that
// size reuses it. Payloads nobody releases are ordinary garbage: releasing is optional.
//
// Only buffers of POOL_MIN_BYTES and more are pooled (small frames are cheap), at most
// POOL_MAX_BYTES in all per process, so the pool never holds more than a few iterations'
// worth of chunks.

export const POOL_MIN_BYTES = 64 * 1024;
export const POOL_MAX_BYTES = 256 * 1024 * 1024;

const free = new Map<number, Uint8Array[]>();
let pooled = 0;

/** A payload buffer of `n` bytes that owns its ArrayBuffer from byte 0 (contents undefined: the caller fills it). */
export function takePayload(n: number): Uint8Array {
  if (n === 0) return new Uint8Array(0);
  const list = free.get(n);
  const b = list?.pop();
  if (b) {
    pooled -= n;
    return b;
  }
  const raw = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(raw.buffer, raw.byteOffset, n);
}

/** Gives a payload from takePayload back; the caller must not use it (or any view of it) afterwards. */
export function givePayload(b: Uint8Array): void {
  const n = b.byteLength;
  if (n < POOL_MIN_BYTES || b.byteOffset !== 0 || b.buffer.byteLength !== n || pooled + n > POOL_MAX_BYTES) return;
  let list = free.get(n);
  if (!list) free.set(n, (list = []));
  list.push(b);
  pooled += n;
}

/** Bytes held for reuse (tests). */
export function pooledBytes(): number {
  return pooled;
}

/** A release function for a delivered payload: the first call returns it to the pool, later calls do nothing. */
export function releaser(b: Uint8Array): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    givePayload(b);
  };
}
