// Helpers of the transport tests.
import type tap from 'tap';

export type Tap = Parameters<Parameters<typeof tap.test>[0]>[0];

/** A seeded xorshift32 stream, so a failing case can be replayed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(lo: number, hi: number): number {
    return lo + (this.u32() % (hi - lo + 1));
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

/** Bytes 0..n-1 of a pattern that depends on `seed` (cheap for large n). */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  const w = new Uint32Array(b.buffer, 0, n >>> 2);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
  for (let i = w.length * 4; i < n; i++) b[i] = (seed + i) & 0xff;
  return b;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** What `p` rejects with, or a failure if it resolves (or takes longer than `ms`). */
export async function rejection(p: Promise<unknown>, ms = 10_000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((res) => {
    timer = setTimeout(() => res('timeout'), ms);
  });
  try {
    const r = await Promise.race([p.then(() => 'resolved' as const, (e: unknown) => ({ e })), timeout]);
    if (r === 'resolved') return new Error('expected a rejection, but it resolved');
    if (r === 'timeout') return new Error(`expected a rejection within ${ms} ms, but it is still pending`);
    return r.e;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves `p`, failing after `ms`. */
export async function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${what}: not done within ${ms} ms`)), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `p` is still pending after `ms`. */
export async function stillPending(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  await sleep(ms);
  return !done;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** A log sink for transports that keeps the lines (tests assert on them and keep stderr quiet). */
export function logSink(): { lines: string[]; log: (line: string) => void } {
  const lines: string[] = [];
  return { lines, log: (line) => { lines.push(line); } };
}
