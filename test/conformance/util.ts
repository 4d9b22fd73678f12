// Shared machinery of the conformance suite: the backends under test, a seeded RNG, the
// error metric, finite differences, error-message checks and the guard-value arena.
//
// Every *.test.ts file in this folder calls forEachBackend(), which creates one tap subtest
// per backend that loads here (a backend that does not load is reported as a skipped
// subtest with the registry's reason), and fails when no backend at all loads, so the suite
// can never pass vacuously. A backend added to engine/backends/registry.ts joins every test
// without any change here.
//
// Error metric (maxRelErr): max_i |got_i - ref_i| / max(floor, max_i |ref_i|), floor = 1 by
// default. It is the error relative to the magnitude of the result (absolute error for
// results of magnitude <= 1), which is what float32 accumulation can guarantee for sums of
// many terms of both signs; a NaN or infinity in `got` where the reference is finite gives
// Infinity. The conformance bound is TOL = 1e-4.
import tap from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import { backendNames, loadBackend } from '../../engine/backends/registry.js';

/** The subtest object tap passes to a test callback. */
export type Tap = Parameters<Parameters<typeof tap.test>[0]>[0];

/** Max relative error against the float64 reference that every kernel must meet. */
export const TOL = 1e-4;

// ---------------------------------------------------------------------------------------
// Backends

/**
 * Runs `body` once per available backend, as a subtest named after the backend. Backends
 * that do not load become skipped subtests carrying the reason. Asserts that at least one
 * backend loaded. SQUALL_TEST_BACKENDS=native,wasm restricts the run to (and loads only) the named ones.
 */
export function forEachBackend(t: Tap, body: (t: Tap, b: Backend) => void | Promise<void>): void {
  const only = process.env.SQUALL_TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  const chosen: Backend[] = [];
  const unavailable: { name: string; reason: string }[] = [];
  for (const name of backendNames) {
    if (only && !only.includes(name)) {
      unavailable.push({ name, reason: `${name} not selected by SQUALL_TEST_BACKENDS=${only.join(',')}` });
      continue;
    }
    try {
      chosen.push(loadBackend(name)); // only the selected backends are loaded at all
    } catch (err) {
      unavailable.push({ name, reason: (err as Error).message });
    }
  }
  t.ok(chosen.length >= 1, 'at least one backend loads (' +
    (unavailable.map((u) => u.reason).join('; ') || 'none unavailable') + ')');
  for (const u of unavailable) {
    t.test(u.name, { skip: u.reason }, () => {});
  }
  for (const b of chosen) {
    t.test(b.name, async (t) => {
      await body(t, b);
    });
  }
}

// ---------------------------------------------------------------------------------------
// Seeded randomness (mulberry32). SQUALL_TEST_SEED overrides the fixed default seed, so a
// CI run is reproducible and a local fuzzing run can vary it.

export const BASE_SEED = process.env.SQUALL_TEST_SEED !== undefined ? Number(process.env.SQUALL_TEST_SEED) >>> 0 : 20240601;

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = (seed ^ BASE_SEED) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let z = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform in [lo, hi). */
  uniform(lo = -1, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }
  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  bool(): boolean {
    return this.next() < 0.5;
  }
}

/** A Float32Array of uniform values in [lo, hi). */
export function randArray(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(lo, hi);
  return a;
}

export function filled(n: number, v: number): Float32Array {
  return new Float32Array(n).fill(v);
}

export function toF64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a);
}

// ---------------------------------------------------------------------------------------
// Comparison

/** See the header: max |got - ref| / max(floor, max |ref|); NaN/inf in got gives Infinity. */
export function maxRelErr(got: ArrayLike<number>, ref: ArrayLike<number>, floor = 1): number {
  if (got.length !== ref.length) return Infinity;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i]! - ref[i]!);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d;
    const r = Math.abs(ref[i]!);
    if (r > maxRef) maxRef = r;
  }
  return maxDiff / Math.max(floor, maxRef);
}

/** Index of the element with the largest |got - ref| (for failure messages). */
export function worstIndex(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let worst = -1;
  let maxDiff = -1;
  for (let i = 0; i < Math.min(got.length, ref.length); i++) {
    let d = Math.abs(got[i]! - ref[i]!);
    if (Number.isNaN(d)) d = Infinity;
    if (d > maxDiff) {
      maxDiff = d;
      worst = i;
    }
  }
  return worst;
}

/**
 * Asserts maxRelErr(got, ref) <= tol, with the worst element in the failure message.
 * Returns whether it passed.
 */
export function close(t: Tap, got: ArrayLike<number>, ref: ArrayLike<number>, what: string,
  tol = TOL, floor = 1): boolean {
  const err = maxRelErr(got, ref, floor);
  const ok = err <= tol;
  if (ok) {
    t.pass(`${what}: max rel err ${err.toExponential(2)} <= ${tol}`);
  } else {
    const i = worstIndex(got, ref);
    t.fail(`${what}: max rel err ${err.toExponential(2)} > ${tol}` +
      (got.length !== ref.length ? ` (length ${got.length}, expected ${ref.length})`
        : ` (worst at [${i}]: got ${got[i]}, expected ${ref[i]})`));
  }
  return ok;
}

/** Bitwise equality of two float arrays (NaN-aware, -0 != +0); reports the first difference. */
export function sameBits(t: Tap, got: Float32Array, want: Float32Array, what: string): boolean {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  if (got.length !== want.length) {
    t.fail(`${what}: length ${got.length}, expected ${want.length}`);
    return false;
  }
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) {
      t.fail(`${what}: differs at [${i}]: got ${got[i]}, expected ${want[i]}`);
      return false;
    }
  }
  t.pass(`${what}: identical`);
  return true;
}

/** True when every element is finite. */
export function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

/** Describes a plain object of sizes compactly for test names. */
export function fmt(o: object): string {
  return Object.entries(o).map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? +v.toPrecision(3) : v}`).join(' ');
}

// ---------------------------------------------------------------------------------------
// Finite differences

/**
 * Central finite differences of a scalar function of one input array, at the indices
 * given (all when omitted), in float64: (f(x + h e_i) - f(x - h e_i)) / 2h.
 */
export function finiteDiff(f: (x: Float64Array) => number, x: Float64Array, h: number, indices?: number[]): Map<number, number> {
  const out = new Map<number, number>();
  const idx = indices ?? Array.from({ length: x.length }, (_, i) => i);
  for (const i of idx) {
    const old = x[i]!;
    x[i] = old + h;
    const fp = f(x);
    x[i] = old - h;
    const fm = f(x);
    x[i] = old;
    out.set(i, (fp - fm) / (2 * h));
  }
  return out;
}

/** Up to `count` distinct random indices in [0, n) (all of them when n <= count). */
export function sampleIndices(rng: Rng, n: number, count: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const set = new Set<number>();
  while (set.size < count) set.add(rng.int(0, n - 1));
  return [...set].sort((a, b) => a - b);
}

/** sum(w * y) in float64: the scalar loss whose gradient w.r.t. y is w. */
export function dot(w: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += w[i]! * y[i]!;
  return s;
}

/**
 * Asserts that the analytic gradient `grad` (from a backend, float32) matches the finite
 * differences `fd` at the sampled indices: max |grad_i - fd_i| / max(1, max |fd_i|) <= tol.
 */
export function closeToFD(t: Tap, grad: ArrayLike<number>, fd: Map<number, number>, what: string, tol = 1e-3): boolean {
  const got: number[] = [];
  const ref: number[] = [];
  for (const [i, v] of fd) {
    got.push(grad[i]!);
    ref.push(v);
  }
  return close(t, got, ref, `${what} vs finite differences (${fd.size} points)`, tol);
}

// ---------------------------------------------------------------------------------------
// Errors

/**
 * A pattern that finds `name` used as an identifier in an error message. Names of one or
 * two letters (a, b, c, x, y, m, v...) must appear quoted, as "argument a", or followed by
 * something that is not prose ("a must", "a:", "a (", "a.length", "a has length"), so the
 * article "a" does not count as naming argument a.
 */
export function namePattern(name: string): RegExp {
  const n = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  if (name.length > 2) return new RegExp(`(^|[^A-Za-z0-9_])${n}([^A-Za-z0-9_]|$)`);
  return new RegExp(
    `['"\`]${n}['"\`]|(?:argument|parameter|param|arg|array)\\s+${n}(?![A-Za-z0-9_])` +
    `|(?:^|[^A-Za-z0-9_])${n}(?=\\s*(?:[:=(\\[,;]|\\.length|\\.|must\\b|is\\b|has\\b|should\\b|length\\b|needs?\\b|requires?\\b|expected\\b|was\\b|of\\b|\\(|$))`);
}

export function namesIt(message: string, names: readonly string[]): boolean {
  return names.some((n) => namePattern(n).test(message));
}

/** How long an async kernel in this suite may take to settle before it counts as hung. */
export const SETTLE_MS = 60_000;

/**
 * Resolves or rejects as `p` does, or rejects with "<what> did not settle within <ms> ms",
 * so a kernel whose promise never settles fails fast with a clear message.
 */
export function within<T>(p: Promise<T>, what: string, ms = SETTLE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** Calls fn (sync or async); returns the error it threw or rejected with, or undefined. */
export async function caught(fn: () => unknown): Promise<unknown> {
  try {
    const r = fn();
    if (r && typeof (r as Promise<unknown>).then === 'function') await within(r as Promise<unknown>, 'the returned promise');
  } catch (err) {
    return err;
  }
  return undefined;
}

/**
 * Asserts that fn throws (or rejects with) an error of class `ctor` whose message names one
 * of `names`.
 */
export async function expectError(t: Tap, fn: () => unknown, ctor: ErrorConstructor | ErrorConstructor[],
  names: readonly string[], what: string): Promise<boolean> {
  const ctors = Array.isArray(ctor) ? ctor : [ctor];
  const want = ctors.map((c) => c.name).join(' or ');
  const err = await caught(fn);
  if (err === undefined) {
    t.fail(`${what}: expected ${want} naming ${names.join('/')}, but it did not throw`);
    return false;
  }
  const e = err as Error;
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  if (!ctors.some((c) => err instanceof c)) {
    t.fail(`${what}: expected ${want}, got ${(e?.constructor?.name) ?? typeof err}: ${msg}`);
    return false;
  }
  if (!namesIt(msg, names)) {
    t.fail(`${what}: ${e.name} does not name ${names.join(' or ')}: "${msg}"`);
    return false;
  }
  t.pass(`${what}: ${e.name}: ${msg}`);
  return true;
}

// ---------------------------------------------------------------------------------------
// Guard-value arena: one big buffer filled with a sentinel, handing out subarray views at
// odd offsets with sentinel gaps between them, so a test can prove that a kernel wrote
// nothing outside its output views (and, since the Float32 sentinel is a NaN, that reading
// outside its inputs shows up as NaN in the results).

type AnyTyped = Float32Array | Int32Array | Uint16Array;

export class Arena<T extends AnyTyped> {
  readonly buf: T;
  private readonly bits: Uint32Array | Int32Array | Uint16Array;
  private top = 0;
  private constructor(buf: T, bits: Uint32Array | Int32Array | Uint16Array, readonly sentinelBits: number, private readonly gap: number) {
    this.buf = buf;
    this.bits = bits;
    this.bits.fill(sentinelBits);
  }
  /** Float32 arena; the sentinel is a NaN with a recognisable payload. */
  static f32(capacity: number, gap = 5): Arena<Float32Array> {
    const buf = new Float32Array(capacity);
    return new Arena(buf, new Uint32Array(buf.buffer), 0x7fc0dead, gap);
  }
  static i32(capacity: number, gap = 5): Arena<Int32Array> {
    const buf = new Int32Array(capacity);
    return new Arena(buf, buf, -123456789, gap);
  }
  static u16(capacity: number, gap = 5): Arena<Uint16Array> {
    const buf = new Uint16Array(capacity);
    return new Arena(buf, buf, 0xbeef, gap);
  }
  /** A view of `len` elements after a sentinel gap, initialised from `init` when given. */
  alloc(len: number, init?: ArrayLike<number>): T {
    const off = this.top + this.gap;
    if (off + len + this.gap > this.buf.length) throw new Error('test arena too small');
    this.top = off + len;
    const v = this.buf.subarray(off, off + len) as T;
    if (init) v.set(init);
    return v;
  }
  /** A copy of the raw bits of the whole buffer. */
  snapshot(): Uint32Array | Int32Array | Uint16Array {
    return this.bits.slice();
  }
  /**
   * Indices of the buffer whose bits differ from the snapshot and that lie outside every
   * view in `allowed` (views of this arena's buffer).
   */
  changedOutside(snap: Uint32Array | Int32Array | Uint16Array, allowed: readonly T[] = []): number[] {
    const ranges = allowed.map((v) => [v.byteOffset / v.BYTES_PER_ELEMENT, v.byteOffset / v.BYTES_PER_ELEMENT + v.length] as const);
    const out: number[] = [];
    for (let i = 0; i < this.bits.length; i++) {
      if (this.bits[i] !== snap[i] && !ranges.some(([a, b]) => i >= a && i < b)) {
        out.push(i);
        if (out.length > 8) break;
      }
    }
    return out;
  }
  /** A view that starts where `v` starts and is `delta` elements longer (or shorter). */
  resize(v: T, delta: number): T {
    const off = v.byteOffset / v.BYTES_PER_ELEMENT;
    return this.buf.subarray(off, off + v.length + delta) as T;
  }
}

// ---------------------------------------------------------------------------------------
// Async helpers

/** Resolves after one turn of the event loop (setImmediate). */
export function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/**
 * Runs an async kernel and measures whether the JavaScript thread stayed free: how long the
 * call itself took to return, and how many setImmediate turns ran before it settled.
 */
/**
 * Starts an async kernel and watches the event loop while it runs. pendingAfterCall says
 * whether the promise was still unsettled once the microtasks queued by the call had run:
 * work done inside the call would have settled it by then, while work on another thread
 * can only settle it on a later event-loop turn. (No wall-clock threshold: timings belong
 * in bench/, and this machine is shared.)
 */
export async function measureAsync(start: () => Promise<void>): Promise<{ callMs: number; totalMs: number; turns: number; pendingAfterCall: boolean }> {
  let turns = 0;
  let done = false;
  const spin = () => {
    if (done) return;
    turns++;
    setImmediate(spin);
  };
  const t0 = performance.now();
  const p = start();
  const callMs = performance.now() - t0;
  let settled = false;
  p.then(() => { settled = true; }, () => { settled = true; });
  for (let i = 0; i < 4; i++) await Promise.resolve();
  const pendingAfterCall = !settled;
  setImmediate(spin);
  try {
    await within(p, 'the async kernel');
  } finally {
    done = true;
  }
  return { callMs, totalMs: performance.now() - t0, turns, pendingAfterCall };
}
