// The WebAssembly backend's core: loads the AssemblyScript kernels (assembly/ ->
// build/wasm/*.wasm) and drives them. It uses no Node-only API (no fs, no
// worker_threads): it receives a compiled WebAssembly.Module and, for threads, a
// ThreadSpawner, so a browser worker can reuse it as it is. engine/backends/wasm/node.ts
// is the Node glue (reads the files, spawns worker_threads).
//
// Memory. One WebAssembly.Memory (shared when threads are available) holds every tensor a
// kernel touches. Backend methods take JavaScript Float32Arrays, so each call validates
// its arguments, allocates regions in linear memory (a first-fit arena with free-list
// coalescing, grown with memory.grow as needed), copies the inputs in, runs the kernel
// and copies the outputs back out. The copies cost two memory passes per call, which is
// noticeable for the element-wise kernels and negligible for GEMM and convolution; a
// later layer can keep tensors resident in wasm memory. Typed-array views of the memory
// are re-created whenever memory.buffer changes (after a grow). A call that fails
// validation throws before anything is allocated or written; a kernel never writes
// outside the regions of its own call (guard mode, WasmBackendOptions.guard, puts canaries
// after every region and checks them after every kernel).
//
// Threads. sgemm and the convolutions are split over threads that share the memory:
// each thread runs its own instance of the module on the same memory and calls the same
// export with its own tid; the kernel splits the output into disjoint parts (see
// assembly/gemm.ts and assembly/conv.ts), and the host lays out one workspace per thread.
// Dispatch goes through a control block (a SharedArrayBuffer): per worker a sequence
// number it waits on with Atomics.wait, the op and its arguments; a shared pending count
// that the last worker to finish notifies. A synchronous call runs part 0 on the calling
// thread and waits with Atomics.wait (allowed on Node's main thread and in browser
// workers, not on a browser's main thread). An async call (sgemmAsync, conv2d*Async) runs
// every part on the workers and settles through Atomics.waitAsync, so the JavaScript
// thread stays free; async jobs run one at a time, in call order. A synchronous call made
// while an async job holds the workers runs on the calling thread alone.
import type {
  AdamOptions, Backend, BackendInfo, BatchNormShape, Conv2dShape, LrnShape, Pool2dShape, SgdOptions,
} from '../backend.js';
import { convOutputSize, poolOutputSize } from '../backend.js';

/** The kernel exports of assembly/index.ts (pointers are byte offsets, bools 0/1). */
interface Kernels {
  heapBase(): number;
  relaxedSimd(): number;
  sgemm(tid: number, nthreads: number, transA: number, transB: number, m: number, n: number, k: number,
    alpha: number, a: number, lda: number, b: number, ldb: number, beta: number, c: number, ldc: number,
    ws: number, wsStride: number): void;
  sgemmWorkspace(m: number, n: number, k: number, nthreads: number): number;
  conv2dWorkspace(kind: number, shape: number): number;
  conv2dForward(tid: number, nthreads: number, shape: number, input: number, weight: number, bias: number,
    output: number, ws: number, wsStride: number): void;
  conv2dBackwardData(tid: number, nthreads: number, shape: number, gradOutput: number, weight: number,
    gradInput: number, ws: number, wsStride: number): void;
  conv2dBackwardFilter(tid: number, nthreads: number, shape: number, input: number, gradOutput: number,
    gradWeight: number, gradBias: number, ws: number, wsStride: number): void;
  maxPool2dForward(shape: number, input: number, output: number, indices: number): void;
  maxPool2dBackward(shape: number, gradOutput: number, indices: number, gradInput: number): number;
  avgPool2dForward(shape: number, input: number, output: number): void;
  avgPool2dBackward(shape: number, gradOutput: number, gradInput: number): void;
  relu(n: number, x: number, y: number): void;
  reluBackward(n: number, x: number, go: number, gi: number): void;
  tanhForward(n: number, x: number, y: number): void;
  tanhBackward(n: number, y: number, go: number, gi: number): void;
  sigmoidForward(n: number, x: number, y: number): void;
  sigmoidBackward(n: number, y: number, go: number, gi: number): void;
  lrnForward(batch: number, channels: number, hw: number, size: number, alpha: number, beta: number, k: number,
    input: number, output: number, scale: number): void;
  lrnBackward(batch: number, channels: number, hw: number, size: number, alpha: number, beta: number, k: number,
    input: number, output: number, scale: number, gradOutput: number, gradInput: number, work: number): void;
  softmaxForward(rows: number, cols: number, x: number, y: number): void;
  softmaxBackward(rows: number, cols: number, y: number, go: number, gi: number): void;
  logSoftmaxForward(rows: number, cols: number, x: number, y: number): void;
  logSoftmaxBackward(rows: number, cols: number, y: number, go: number, gi: number): void;
  batchNormForward(n: number, c: number, spatial: number, eps: number, x: number, y: number, gamma: number,
    beta: number, runningMean: number, runningVar: number, saveMean: number, saveInvStd: number,
    training: number, momentum: number): void;
  batchNormBackward(n: number, c: number, spatial: number, x: number, gamma: number, saveMean: number,
    saveInvStd: number, gradOutput: number, gradInput: number, gradGamma: number, gradBeta: number): void;
  dropoutForward(n: number, p: number, seed: number, keepScale: number, x: number, y: number, mask: number): void;
  mul(n: number, a: number, b: number, out: number): void;
  add(n: number, a: number, b: number, out: number): void;
  scale(n: number, x: number, alpha: number, out: number): void;
  axpy(n: number, alpha: number, x: number, y: number): void;
  sumSlices(n: number, count: number, ptrs: number, out: number): void;
  f32ToBf16(n: number, src: number, dst: number): void;
  bf16ToF32(n: number, src: number, dst: number): void;
  f32ToF16(n: number, src: number, dst: number): void;
  f16ToF32(n: number, src: number, dst: number): void;
  sgdUpdate(n: number, lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: number,
    firstStep: number, params: number, grads: number, buf: number): void;
  adamUpdate(n: number, stepSize: number, beta1: number, beta2: number, eps: number, weightDecay: number,
    sqrtBc2: number, params: number, grads: number, m: number, v: number): void;
}

/** The multi-threaded kernels, by index in the control block. */
const PARALLEL_OPS = ['sgemm', 'conv2dForward', 'conv2dBackwardData', 'conv2dBackwardFilter'] as const;
type ParallelOp = (typeof PARALLEL_OPS)[number];

// ---- control block layout (Int32 indices) -----------------------------------------------
const PENDING = 0; //             parts still running
const SLOT_BASE = 16; //          first worker slot
const SLOT_INTS = 64; //          256 bytes per worker slot
const SEQ = 0; //                 job sequence number (the worker waits on it)
const STATE = 1; //               STARTING / READY / FAILED
const OP = 2; //                  index into PARALLEL_OPS, or OP_EXIT
const NARGS = 3;
const ERROR = 4; //               1 when the last job threw
const JOB = 5; //                 POSTED -> RUNNING -> DONE, or POSTED -> CANCELLED (taken back by the host)
const GEN = 6; //                 generation: a replaced worker sees a new value and exits
const ARGS = 8; //                Float64 arguments start here (byte offset (slot + 8) * 4)
const MAX_ARGS = 24;
const STARTING = 0;
const READY = 1;
const FAILED = 2;
const OP_EXIT = -1;
const POSTED = 1;
const RUNNING = 2;
const DONE = 3;
const CANCELLED = 4;
/**
 * A part a worker has not picked up after this long is taken back and run by the host
 * (then the worker is replaced): a stalled or lost worker costs time, never a hang.
 */
const PICKUP_TIMEOUT_MS = 2000;
/** How often a waiting host re-checks (and re-notifies) its workers. */
const POLL_MS = 50;
/** Most threads a backend can use. */
export const MAX_THREADS = 64;

function slotBase(slot: number): number {
  return SLOT_BASE + slot * SLOT_INTS;
}

/** What a worker thread receives to start (structured-cloneable). */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  slot: number;
  /** The slot's generation when this worker was started. */
  gen: number;
}

/** A started worker thread. ref/unref: keep the host process alive while a job runs (no-ops in a browser). */
export interface WorkerHandle {
  ref(): void;
  unref(): void;
  terminate(): void;
}

/** Starts a worker thread that calls runWorker(init) (Node: worker_threads; browser: Worker + postMessage). */
export interface ThreadSpawner {
  spawn(init: WorkerInit): WorkerHandle;
}

/**
 * The body of a worker thread: instantiate the module on the shared memory, report
 * ready, then run jobs from the control block until told to exit. Blocks its thread.
 */
export function runWorker(init: WorkerInit): void {
  const ctl = new Int32Array(init.control);
  const args = new Float64Array(init.control);
  const base = slotBase(init.slot);
  let fns: ((...a: number[]) => unknown)[];
  try {
    const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory, abort: wasmAbort } });
    const ex = instance.exports as unknown as Record<string, (...a: number[]) => unknown>;
    fns = PARALLEL_OPS.map((name) => ex[name]!);
  } catch {
    Atomics.store(ctl, base + STATE, FAILED);
    Atomics.notify(ctl, base + STATE);
    return;
  }
  // Read the sequence number before announcing READY: the host may post a job as soon as it
  // sees READY, and that job must not be mistaken for one already seen.
  let seen = Atomics.load(ctl, base + SEQ);
  Atomics.store(ctl, base + STATE, READY);
  Atomics.notify(ctl, base + STATE);
  for (;;) {
    Atomics.wait(ctl, base + SEQ, seen);
    if (Atomics.load(ctl, base + GEN) !== init.gen) return; // replaced
    const seq = Atomics.load(ctl, base + SEQ);
    if (seq === seen) continue;
    seen = seq;
    const op = Atomics.load(ctl, base + OP);
    if (op === OP_EXIT) return;
    // The host may have taken the part back (it waited too long for us): then skip it.
    if (Atomics.compareExchange(ctl, base + JOB, POSTED, RUNNING) !== POSTED) continue;
    const n = ctl[base + NARGS]!;
    const a0 = (base + ARGS) / 2;
    const a: number[] = new Array(n);
    for (let i = 0; i < n; i++) a[i] = args[a0 + i]!;
    try {
      fns[op]!(...a);
      ctl[base + ERROR] = 0;
    } catch {
      ctl[base + ERROR] = 1;
    }
    Atomics.store(ctl, base + JOB, DONE);
    if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
  }
}

type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };
const atomicsWaitAsync = (Atomics as unknown as {
  waitAsync?: (a: Int32Array, index: number, value: number, timeout?: number) => WaitAsyncResult;
}).waitAsync;

/** Resolves once ctl[index] may no longer equal value (Atomics.waitAsync, or polling where it is missing). */
function waitAsync(ctl: Int32Array, index: number, value: number, timeout = Infinity): WaitAsyncResult {
  if (atomicsWaitAsync) return atomicsWaitAsync(ctl, index, value, timeout);
  if (Atomics.load(ctl, index) !== value) return { async: false, value: 'not-equal' };
  return { async: true, value: new Promise((resolve) => setTimeout(() => resolve('ok'), 1)) };
}

function wasmAbort(): never {
  throw new Error('wasm kernel aborted');
}

// ---- argument validation (errors name the argument, as the native backend does) -------------

type Typed = Float32Array | Int32Array | Uint16Array;
type TypedCtor = Float32ArrayConstructor | Int32ArrayConstructor | Uint16ArrayConstructor;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

function arrayArg<T extends Typed>(fn: string, name: string, v: unknown, ctor: TypedCtor): T {
  if (!(v instanceof ctor)) throw new TypeError(`${fn}: argument '${name}' must be a ${ctor.name}, got ${describe(v)}`);
  return v as T;
}

function f32(fn: string, name: string, v: unknown, length?: number): Float32Array {
  const a = arrayArg<Float32Array>(fn, name, v, Float32Array);
  if (length !== undefined && a.length !== length) {
    throw new RangeError(`${fn}: argument '${name}' must have length ${length}, got ${a.length}`);
  }
  return a;
}

function u16(fn: string, name: string, v: unknown, length: number): Uint16Array {
  const a = arrayArg<Uint16Array>(fn, name, v, Uint16Array);
  if (a.length !== length) throw new RangeError(`${fn}: argument '${name}' must have length ${length}, got ${a.length}`);
  return a;
}

function i32arr(fn: string, name: string, v: unknown, length: number): Int32Array {
  const a = arrayArg<Int32Array>(fn, name, v, Int32Array);
  if (a.length !== length) throw new RangeError(`${fn}: argument '${name}' must have length ${length}, got ${a.length}`);
  return a;
}

function int(fn: string, name: string, v: unknown, min: number): number {
  if (typeof v !== 'number') throw new TypeError(`${fn}: ${name} must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${fn}: ${name} must be an integer >= ${min}, got ${v}`);
  if (v > 0x7fffffff) throw new RangeError(`${fn}: ${name} is too large (${v})`);
  return v;
}

function num(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`${fn}: ${name} must be a number, got ${describe(v)}`);
  return v;
}

function finite(fn: string, name: string, v: unknown): number {
  num(fn, name, v);
  if (!Number.isFinite(v)) throw new RangeError(`${fn}: ${name} must be finite, got ${v}`);
  return v as number;
}

function bool(fn: string, name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`${fn}: ${name} must be a boolean, got ${describe(v)}`);
  return v;
}

function obj(fn: string, name: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) throw new TypeError(`${fn}: argument '${name}' must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

/** Largest element count of one tensor (the memory is 4 GiB at most). */
const MAX_ELEMENTS = 2 ** 30;

function product(fn: string, what: string, ...xs: number[]): number {
  let p = 1;
  for (const x of xs) p *= x;
  if (p > MAX_ELEMENTS) throw new RangeError(`${fn}: ${what} has ${p} elements, more than the wasm backend can hold (${MAX_ELEMENTS})`);
  return p;
}

interface ConvGeom extends Conv2dShape {
  outH: number;
  outW: number;
  inputLen: number;
  weightLen: number;
  outputLen: number;
  flops: number;
}

function convShape(fn: string, v: unknown): ConvGeom {
  const s = obj(fn, 's', v);
  const g = (name: keyof Conv2dShape, min: number): number => int(fn, `s.${name}`, s[name], min);
  const r = {
    batch: g('batch', 1), inC: g('inC', 1), inH: g('inH', 1), inW: g('inW', 1), outC: g('outC', 1),
    kH: g('kH', 1), kW: g('kW', 1), strideH: g('strideH', 1), strideW: g('strideW', 1), padH: g('padH', 0),
    padW: g('padW', 0), dilationH: g('dilationH', 1), dilationW: g('dilationW', 1), groups: g('groups', 1),
  };
  if (r.inC % r.groups !== 0 || r.outC % r.groups !== 0) {
    throw new RangeError(`${fn}: groups (${r.groups}) must divide inC (${r.inC}) and outC (${r.outC})`);
  }
  if (r.inH + 2 * r.padH < r.dilationH * (r.kH - 1) + 1) {
    throw new RangeError(`${fn}: kernel height ${r.kH} (dilation ${r.dilationH}) does not fit input height ${r.inH} + 2 * padH ${r.padH}`);
  }
  if (r.inW + 2 * r.padW < r.dilationW * (r.kW - 1) + 1) {
    throw new RangeError(`${fn}: kernel width ${r.kW} (dilation ${r.dilationW}) does not fit input width ${r.inW} + 2 * padW ${r.padW}`);
  }
  const outH = convOutputSize(r.inH, r.kH, r.strideH, r.padH, r.dilationH);
  const outW = convOutputSize(r.inW, r.kW, r.strideW, r.padW, r.dilationW);
  const K = (r.inC / r.groups) * r.kH * r.kW;
  // The kernels size their column-matrix chunks with 32-bit arithmetic; these bounds keep
  // every workspace size below 2^31 bytes (far beyond any real layer).
  if (K > 2 ** 24) throw new RangeError(`${fn}: inC / groups * kH * kW = ${K} is too large for the wasm backend (at most ${2 ** 24})`);
  if (r.kH * r.kW * outH * outW > 2 ** 28) {
    throw new RangeError(`${fn}: kH * kW * outH * outW = ${r.kH * r.kW * outH * outW} is too large for the wasm backend (at most ${2 ** 28})`);
  }
  return {
    ...r, outH, outW,
    inputLen: product(fn, 'input', r.batch, r.inC, r.inH, r.inW),
    weightLen: product(fn, 'weight', r.outC, K),
    outputLen: product(fn, 'output', r.batch, r.outC, outH, outW),
    flops: 2 * r.batch * r.outC * outH * outW * K,
  };
}

interface PoolGeom extends Pool2dShape {
  outH: number;
  outW: number;
  inputLen: number;
  outputLen: number;
}

function poolShape(fn: string, v: unknown): PoolGeom {
  const s = obj(fn, 's', v);
  const g = (name: keyof Pool2dShape, min: number): number => int(fn, `s.${name}`, s[name], min);
  const r = {
    batch: g('batch', 1), channels: g('channels', 1), inH: g('inH', 1), inW: g('inW', 1), kH: g('kH', 1),
    kW: g('kW', 1), strideH: g('strideH', 1), strideW: g('strideW', 1), padH: g('padH', 0), padW: g('padW', 0),
    ceilMode: bool(fn, 's.ceilMode', s.ceilMode),
    countIncludePad: s.countIncludePad === undefined ? false : bool(fn, 's.countIncludePad', s.countIncludePad),
  };
  if (2 * r.padH > r.kH || 2 * r.padW > r.kW) {
    throw new RangeError(`${fn}: padding (${r.padH}, ${r.padW}) must be at most half the kernel (${r.kH}, ${r.kW})`);
  }
  if (r.inH + 2 * r.padH < r.kH || r.inW + 2 * r.padW < r.kW) {
    throw new RangeError(`${fn}: kernel ${r.kH}x${r.kW} does not fit padded input ${r.inH + 2 * r.padH}x${r.inW + 2 * r.padW}`);
  }
  const outH = poolOutputSize(r.inH, r.kH, r.strideH, r.padH, r.ceilMode);
  const outW = poolOutputSize(r.inW, r.kW, r.strideW, r.padW, r.ceilMode);
  return {
    ...r, outH, outW,
    inputLen: product(fn, 'input', r.batch, r.channels, r.inH, r.inW),
    outputLen: product(fn, 'output', r.batch, r.channels, outH, outW),
  };
}

function lrnShape(fn: string, v: unknown): LrnShape & { len: number } {
  const s = obj(fn, 's', v);
  const r = {
    batch: int(fn, 's.batch', s.batch, 1), channels: int(fn, 's.channels', s.channels, 1),
    height: int(fn, 's.height', s.height, 1), width: int(fn, 's.width', s.width, 1), size: int(fn, 's.size', s.size, 1),
    alpha: finite(fn, 's.alpha', s.alpha), beta: finite(fn, 's.beta', s.beta), k: finite(fn, 's.k', s.k),
  };
  if (r.size % 2 === 0) throw new RangeError(`${fn}: s.size must be odd, got ${r.size}`);
  if (!(r.k > 0)) throw new RangeError(`${fn}: s.k must be > 0, got ${r.k}`);
  return { ...r, len: product(fn, 'input', r.batch, r.channels, r.height, r.width) };
}

function bnShape(fn: string, v: unknown): BatchNormShape & { len: number } {
  const s = obj(fn, 's', v);
  const r = { n: int(fn, 's.n', s.n, 1), c: int(fn, 's.c', s.c, 1), spatial: int(fn, 's.spatial', s.spatial, 1), eps: finite(fn, 's.eps', s.eps) };
  if (r.eps < 0) throw new RangeError(`${fn}: s.eps must be >= 0, got ${r.eps}`);
  return { ...r, len: product(fn, 'x', r.n, r.c, r.spatial) };
}

/** Elements of a row-major matrix with `rows` rows of `cols` used columns and row stride ld. */
function matrixSpan(rows: number, cols: number, ld: number): number {
  return rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0;
}

// ---- linear memory ------------------------------------------------------------------------

const ALIGN = 64;
const CANARY = 0x5a17c0de | 0;
const CANARY_BYTES = 64;
const PAGE = 65536;

/** First-fit allocator over [base, memory size), growing the memory when full. */
class Arena {
  private free: { off: number; size: number }[] = [];
  private top: number;
  constructor(private readonly memory: WebAssembly.Memory, base: number, private readonly maxBytes: number) {
    this.top = Math.ceil(base / ALIGN) * ALIGN;
  }

  get bytesInUse(): number {
    return this.top - this.free.reduce((s, b) => s + b.size, 0);
  }

  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.size >= size) {
        const off = b.off;
        if (b.size === size) this.free.splice(i, 1);
        else { b.off += size; b.size -= size; }
        return off;
      }
    }
    const off = this.top;
    const end = off + size;
    if (end > this.maxBytes) {
      throw new RangeError(`wasm backend: out of memory (${end} bytes needed, at most ${this.maxBytes})`);
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      // Grow by at least a quarter of the current size, so a run of growing calls does not grow each time.
      const want = Math.min(this.maxBytes, Math.max(end, have + (have >> 2)));
      this.memory.grow(Math.ceil((want - have) / PAGE));
    }
    this.top = end;
    return off;
  }

  release(off: number, bytes: number): void {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    if (off + size === this.top) {
      this.top = off;
      // Merge a free block that now touches the top.
      const last = this.free[this.free.length - 1];
      if (last && last.off + last.size === this.top) {
        this.top = last.off;
        this.free.pop();
      }
      return;
    }
    // Insert sorted by offset, merging with neighbours.
    let i = 0;
    while (i < this.free.length && this.free[i]!.off < off) i++;
    const prev = this.free[i - 1];
    const next = this.free[i];
    if (prev && prev.off + prev.size === off) {
      prev.size += size;
      if (next && prev.off + prev.size === next.off) {
        prev.size += next.size;
        this.free.splice(i, 1);
      }
    } else if (next && off + size === next.off) {
      next.off = off;
      next.size += size;
    } else {
      this.free.splice(i, 0, { off, size });
    }
  }
}

interface OutCopy {
  off: number;
  dst: Typed;
}

/** The regions of one kernel call: inputs copied in, outputs copied out at the end. */
class Frame {
  private readonly regions: { off: number; bytes: number }[] = [];
  private readonly outs: OutCopy[] = [];
  private readonly canaries: number[] = [];
  constructor(private readonly core: WasmCore) {}

  private alloc(bytes: number): number {
    const guard = this.core.guard;
    const off = this.core.arena.alloc(bytes + (guard ? CANARY_BYTES : 0));
    this.regions.push({ off, bytes });
    if (guard) new Int32Array(this.core.buffer(), off + Math.ceil(bytes / 4) * 4, CANARY_BYTES / 4).fill(CANARY);
    return off;
  }

  // Arrays that are views of the wasm memory itself (WasmBackend.allocFloat32) are used in
  // place, with no copy, unless that would let a kernel overwrite data it still has to
  // read: a resident output overlapping a resident input of the same call is computed in a
  // separate region and copied out, and a resident input overlapping a resident output
  // registered before it is read from a private copy (nothing has run yet, so the copy
  // holds the original values).
  private readonly residentIn: [number, number][] = [];
  private readonly residentOut: [number, number][] = [];

  private static range(a: Typed, elements: number): [number, number] {
    return [a.byteOffset, a.byteOffset + elements * a.BYTES_PER_ELEMENT];
  }

  private static overlaps(r: [number, number], list: [number, number][]): boolean {
    return r[1] > r[0] && list.some(([lo, hi]) => hi > lo && r[0] < hi && lo < r[1]);
  }

  /**
   * The wasm offset of a resident array used in place, or -1 when it must be copied: not
   * resident, or overlapping a range this call already writes (or, for outputs, reads).
   */
  private claimResident(a: Typed, elements: number, writes: boolean): number {
    if (!this.core.isResident(a)) return -1;
    const r = Frame.range(a, elements);
    if (Frame.overlaps(r, this.residentOut) || (writes && Frame.overlaps(r, this.residentIn))) return -1;
    (writes ? this.residentOut : this.residentIn).push(r);
    return r[0];
  }

  private copyIn(src: Typed, elements: number): number {
    const bytes = elements * src.BYTES_PER_ELEMENT;
    const off = this.alloc(bytes);
    if (bytes > 0) new Uint8Array(this.core.buffer(), off, bytes).set(new Uint8Array(src.buffer, src.byteOffset, bytes));
    return off;
  }

  private copyOutLater(off: number, dst: Typed, elements: number): number {
    this.outs.push({ off, dst: elements === dst.length ? dst : (dst.subarray(0, elements) as Typed) });
    return off;
  }

  /** Allocates room for src and copies it in (or uses it in place when it is resident). */
  in(src: Typed, elements = src.length): number {
    const resident = this.claimResident(src, elements, false);
    return resident >= 0 ? resident : this.copyIn(src, elements);
  }

  /** Allocates room for dst, copied out by finish() (or writes it in place when it is resident). */
  out(dst: Typed, elements = dst.length): number {
    const resident = this.claimResident(dst, elements, true);
    return resident >= 0 ? resident : this.copyOutLater(this.alloc(elements * dst.BYTES_PER_ELEMENT), dst, elements);
  }

  /** Copied in and out (or read and written in place when it is resident). */
  inout(x: Typed, elements = x.length): number {
    const resident = this.claimResident(x, elements, true);
    return resident >= 0 ? resident : this.copyOutLater(this.copyIn(x, elements), x, elements);
  }

  scratch(bytes: number): number {
    return this.alloc(bytes);
  }

  /**
   * One workspace per thread, `bytes` each: returns the base and the stride. In guard mode
   * each thread's workspace ends in its own canary, so a kernel that overran its workspace
   * into the next thread's is caught too.
   */
  workspaces(bytes: number, parts: number): { ws: number; stride: number } {
    const guard = this.core.guard;
    const stride = Math.ceil(bytes / ALIGN) * ALIGN + (guard ? CANARY_BYTES : 0);
    const ws = this.alloc(stride * parts);
    if (guard) {
      const buf = this.core.buffer();
      for (let t = 0; t < parts; t++) {
        const at = ws + t * stride + stride - CANARY_BYTES;
        new Int32Array(buf, at, CANARY_BYTES / 4).fill(CANARY);
        this.canaries.push(at);
      }
    }
    return { ws, stride };
  }

  /** Writes consecutive i32 values (a shape record) and returns its offset. */
  ints(values: number[]): number {
    const off = this.alloc(values.length * 4);
    new Int32Array(this.core.buffer(), off, values.length).set(values);
    return off;
  }

  private checkGuards(): void {
    if (!this.core.guard) return;
    const buf = this.core.buffer();
    for (const r of this.regions) {
      const canary = new Int32Array(buf, r.off + Math.ceil(r.bytes / 4) * 4, CANARY_BYTES / 4);
      if (canary.some((v) => v !== CANARY)) {
        throw new Error(`wasm backend: a kernel wrote past the end of a ${r.bytes}-byte region (guard canary damaged)`);
      }
    }
    for (const at of this.canaries) {
      if (new Int32Array(buf, at, CANARY_BYTES / 4).some((v) => v !== CANARY)) {
        throw new Error('wasm backend: a kernel wrote past the end of its thread\'s workspace (guard canary damaged)');
      }
    }
  }

  /** Copies the outputs out and frees everything. */
  finish(): void {
    try {
      this.checkGuards();
      const buf = this.core.buffer();
      for (const o of this.outs) {
        const bytes = o.dst.byteLength;
        if (bytes > 0) new Uint8Array(o.dst.buffer, o.dst.byteOffset, bytes).set(new Uint8Array(buf, o.off, bytes));
      }
    } finally {
      this.release();
    }
  }

  /** Frees everything without copying out (failed calls). */
  release(): void {
    for (const r of this.regions) this.core.arena.release(r.off, r.bytes + (this.core.guard ? CANARY_BYTES : 0));
    this.regions.length = 0;
    this.outs.length = 0;
    this.canaries.length = 0;
    this.residentIn.length = 0;
    this.residentOut.length = 0;
  }
}

// ---- the backend --------------------------------------------------------------------------

export interface WasmBackendOptions {
  /** The compiled kernels (build/wasm/squall.wasm, squall-relaxed.wasm or squall-st.wasm). */
  module: WebAssembly.Module;
  /** true when the module imports a shared memory (the threaded builds). */
  sharedMemory: boolean;
  /** Human-readable name of the build, for info(). */
  variant: string;
  /** Starts worker threads; null or absent: single-threaded, async calls run on the calling thread. */
  spawner?: ThreadSpawner | null;
  /** Initial thread count (default 1). */
  threads?: number;
  /** Canaries after every region, checked after every kernel (tests). */
  guard?: boolean;
  /** Largest memory in bytes (default and maximum 4 GiB). */
  maxMemoryBytes?: number;
  /** Extra lines for info().details. */
  details?: Record<string, string>;
  /** CPU features to report in info(). */
  cpuFeatures?: string[];
  /** Forward convolution algorithm (default 'auto'); see WasmBackend.setConvAlgorithm. */
  convAlgorithm?: ConvAlgorithm;
}

/**
 * How the wasm backend computes a forward convolution: 'auto' lets the kernels choose
 * (Winograd F(2x2, 3x3) for 3x3 stride-1 dilation-1 ungrouped layers with at least 8 input
 * channels and 32 output tiles, where it measured faster; im2col + GEMM otherwise),
 * 'im2col' always uses im2col + GEMM, 'winograd' uses Winograd wherever the shape allows it
 * (3x3, stride 1, dilation 1, one group) and im2col elsewhere. The backward passes always
 * use im2col + GEMM.
 */
export type ConvAlgorithm = 'auto' | 'im2col' | 'winograd';
const CONV_ALGORITHMS: readonly ConvAlgorithm[] = ['auto', 'im2col', 'winograd'];

/** GEMM / convolution work (multiply-adds) below which threads are not worth waking. */
const PARALLEL_MIN_MACS = 1 << 20;
/** How long a synchronous call waits for starting workers before running without them. */
const WORKER_START_TIMEOUT_MS = 10_000;

interface Worker {
  handle: WorkerHandle;
  slot: number;
  /** true once a call has waited for this worker to start (later calls do not wait again). */
  waited: boolean;
}

interface ParallelJob {
  op: ParallelOp;
  /** Arguments after (tid, nthreads). */
  args: number[];
  /** Workspace bytes per thread for `parts` threads. */
  wsPerThread: (parts: number) => number;
}

class WasmCore {
  readonly memory: WebAssembly.Memory;
  readonly arena: Arena;
  readonly k: Kernels;
  readonly guard: boolean;
  private buf: ArrayBufferLike;
  /** Every buffer object memory.buffer has returned (a new one after each grow). */
  private readonly buffers = new WeakSet<object>();
  constructor(readonly options: WasmBackendOptions) {
    this.guard = options.guard ?? false;
    const maxBytes = Math.min(options.maxMemoryBytes ?? 2 ** 32, 2 ** 32);
    const maximum = Math.floor(maxBytes / PAGE);
    this.memory = new WebAssembly.Memory(options.sharedMemory
      ? { initial: 17, maximum, shared: true }
      : { initial: 17, maximum });
    const instance = new WebAssembly.Instance(options.module, { env: { memory: this.memory, abort: wasmAbort } });
    this.k = instance.exports as unknown as Kernels;
    this.arena = new Arena(this.memory, this.k.heapBase(), maximum * PAGE);
    this.buf = this.memory.buffer;
    this.buffers.add(this.buf);
  }

  /** The memory's current buffer (a new object after every grow). */
  buffer(): ArrayBufferLike {
    const b = this.memory.buffer;
    if (b !== this.buf) {
      this.buf = b;
      this.buffers.add(b);
    }
    return this.buf;
  }

  /**
   * true when `a` is a view of this (shared) memory: kernels can use it in place. A shared
   * memory never moves or shrinks, so such a view stays valid across grows.
   */
  isResident(a: Typed): boolean {
    return this.options.sharedMemory && this.buffers.has(a.buffer);
  }
}

export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  private readonly core: WasmCore;
  private readonly k: Kernels;
  private threads: number;
  private readonly spawner: ThreadSpawner | null;
  private control: SharedArrayBuffer | null = null;
  private ctl: Int32Array | null = null;
  private ctlArgs: Float64Array | null = null;
  private readonly workers: Worker[] = [];
  private poolBusy = false;
  private queue: Promise<unknown> = Promise.resolve();
  private convAlgorithm: ConvAlgorithm = 'auto';

  constructor(private readonly options: WasmBackendOptions) {
    this.core = new WasmCore(options);
    this.k = this.core.k;
    this.spawner = options.sharedMemory ? options.spawner ?? null : null;
    this.threads = 1;
    this.setThreads(options.threads ?? 1);
    if (options.convAlgorithm !== undefined) this.setConvAlgorithm(options.convAlgorithm);
  }

  /** Chooses the forward convolution algorithm for later calls (see ConvAlgorithm). */
  setConvAlgorithm(algorithm: ConvAlgorithm): void {
    if (!CONV_ALGORITHMS.includes(algorithm)) {
      throw new RangeError(`setConvAlgorithm: algorithm must be one of ${CONV_ALGORITHMS.join(', ')}, got ${String(algorithm)}`);
    }
    this.convAlgorithm = algorithm;
  }

  getConvAlgorithm(): ConvAlgorithm {
    return this.convAlgorithm;
  }

  /** The linear memory the kernels run on (tests watch it grow). */
  get memory(): WebAssembly.Memory {
    return this.core.memory;
  }

  /** Bytes of linear memory currently allocated to calls in flight (0 when idle). */
  get bytesInUse(): number {
    return this.core.arena.bytesInUse - this.k.heapBase();
  }

  info(): BackendInfo {
    const features = [...(this.options.cpuFeatures ?? []), 'wasm-simd128'];
    if (this.k.relaxedSimd()) features.push('wasm-relaxed-simd');
    if (this.options.sharedMemory) features.push('wasm-threads');
    return {
      name: 'wasm',
      blas: `assemblyscript ${this.k.relaxedSimd() ? 'relaxed-simd' : 'simd128'} 4x8`,
      threads: this.threads,
      cpuFeatures: features,
      details: {
        module: this.options.variant,
        memory: `${(this.core.memory.buffer.byteLength / 2 ** 20).toFixed(1)} MiB linear memory`,
        workers: this.spawner ? `${this.workers.length} started` : 'none (single-threaded build or no worker support)',
        copies: 'inputs and outputs are copied into and out of wasm memory on every call',
        'conv forward': {
          auto: 'Winograd F(2x2,3x3) for 3x3 stride-1 layers with >= 8 input channels, else im2col + GEMM',
          im2col: 'im2col + GEMM (forced)',
          winograd: 'Winograd F(2x2,3x3) wherever the shape allows it (forced), else im2col + GEMM',
        }[this.convAlgorithm],
        ...this.options.details,
      },
    };
  }

  setThreads(threads: number): void {
    int('setThreads', 'threads', threads, 1);
    if (threads > MAX_THREADS) throw new RangeError(`setThreads: threads must be <= ${MAX_THREADS}, got ${threads}`);
    this.threads = threads;
  }

  getThreads(): number {
    return this.threads;
  }

  private readonly resident = new Map<number, number>();
  private readonly plainAllocated = new WeakSet<Float32Array>();

  /**
   * A Float32Array that lives in the wasm memory: every kernel reads and writes it in place,
   * with none of the copies a plain Float32Array costs (an nn layer can keep its tensors
   * here). Valid until free(); the memory is shared, so growing it never invalidates the
   * view. Only for the threaded (shared-memory) builds.
   */
  allocFloat32(length: number): Float32Array {
    int('allocFloat32', 'length', length, 0);
    if (!this.options.sharedMemory) {
      // The single-threaded build's memory is not shared: a grow would detach a view, so
      // arrays stay outside it and the kernels copy them in and out.
      const plain = new Float32Array(length);
      this.plainAllocated.add(plain);
      return plain;
    }
    const bytes = length * 4;
    const off = this.core.arena.alloc(bytes);
    this.resident.set(off, bytes);
    return new Float32Array(this.core.buffer(), off, length);
  }

  /** Releases an array from allocFloat32. */
  free(array: Float32Array): void {
    if (this.plainAllocated.delete(array)) return;
    const bytes = this.resident.get(array.byteOffset);
    if (!this.core.isResident(array) || bytes === undefined) throw new Error('free: not an array from allocFloat32 (or freed already)');
    this.resident.delete(array.byteOffset);
    this.core.arena.release(array.byteOffset, bytes);
  }

  /** Stops the worker threads (they are restarted on demand). */
  dispose(): void {
    const ctl = this.ctl;
    for (const w of this.workers) {
      if (ctl) {
        const base = slotBase(w.slot);
        Atomics.store(ctl, base + OP, OP_EXIT);
        Atomics.add(ctl, base + SEQ, 1);
        Atomics.notify(ctl, base + SEQ);
      }
      w.handle.terminate();
    }
    this.workers.length = 0;
    this.control = null;
    this.ctl = null;
    this.ctlArgs = null;
  }

  /** Starts workers up to `count` (without waiting for them). */
  private ensureWorkers(count: number): void {
    if (!this.spawner) return;
    if (!this.control) {
      this.control = new SharedArrayBuffer((SLOT_BASE + MAX_THREADS * SLOT_INTS) * 4);
      this.ctl = new Int32Array(this.control);
      this.ctlArgs = new Float64Array(this.control);
    }
    while (this.workers.length < count) this.workers.push(this.startWorker(this.workers.length));
  }

  private startWorker(slot: number): Worker {
    const ctl = this.ctl!;
    const base = slotBase(slot);
    const gen = Atomics.add(ctl, base + GEN, 1) + 1;
    Atomics.store(ctl, base + STATE, STARTING);
    Atomics.store(ctl, base + JOB, 0);
    const handle = this.spawner!.spawn({ module: this.options.module, memory: this.core.memory, control: this.control!, slot, gen });
    handle.unref();
    return { handle, slot, waited: false };
  }

  /** Replaces a worker that did not pick up its part in time (the old one exits if it ever wakes). */
  private replaceWorker(slot: number): void {
    const old = this.workers[slot]!;
    old.handle.terminate();
    this.workers[slot] = this.startWorker(slot);
  }

  private workerState(slot: number): number {
    return Atomics.load(this.ctl!, slotBase(slot) + STATE);
  }

  /**
   * Number of consecutive ready workers among the first `count`. The first time a worker is
   * needed, waits (blocking) for it to start; later calls only use the ones that are ready.
   */
  private readyWorkersSync(count: number): number {
    const deadline = Date.now() + WORKER_START_TIMEOUT_MS;
    let ready = 0;
    for (let i = 0; i < count; i++) {
      const w = this.workers[i]!;
      let st = this.workerState(i);
      if (st === STARTING && !w.waited) {
        w.waited = true;
        while (st === STARTING) {
          const left = deadline - Date.now();
          if (left <= 0) break;
          Atomics.wait(this.ctl!, slotBase(i) + STATE, STARTING, left);
          st = this.workerState(i);
        }
      }
      if (st !== READY) break;
      ready++;
    }
    return ready;
  }

  private async readyWorkersAsync(count: number): Promise<number> {
    const deadline = Date.now() + WORKER_START_TIMEOUT_MS;
    let ready = 0;
    for (let i = 0; i < count; i++) {
      const w = this.workers[i]!;
      let st = this.workerState(i);
      if (st === STARTING && !w.waited) {
        w.waited = true;
        while (st === STARTING) {
          const left = deadline - Date.now();
          if (left <= 0) break;
          const r = waitAsync(this.ctl!, slotBase(i) + STATE, STARTING, left);
          if (r.async) {
            w.handle.ref();
            try {
              await r.value;
            } finally {
              w.handle.unref();
            }
          }
          st = this.workerState(i);
        }
      }
      if (st !== READY) break;
      ready++;
    }
    return ready;
  }

  /** Posts part `tid` of a job to worker `slot`. */
  private post(slot: number, op: ParallelOp, tid: number, parts: number, args: number[]): void {
    const ctl = this.ctl!;
    const base = slotBase(slot);
    const all = [tid, parts, ...args];
    if (all.length > MAX_ARGS) throw new Error(`wasm backend: too many arguments for ${op}`);
    this.ctlArgs!.set(all, (base + ARGS) / 2);
    ctl[base + NARGS] = all.length;
    ctl[base + OP] = PARALLEL_OPS.indexOf(op);
    ctl[base + ERROR] = 0;
    Atomics.store(ctl, base + JOB, POSTED);
    Atomics.add(ctl, base + SEQ, 1);
    Atomics.notify(ctl, base + SEQ);
  }

  /**
   * Called while waiting for the parts posted to `slots`: re-notifies workers that have not
   * picked up their part, and after PICKUP_TIMEOUT_MS takes such parts back, runs them
   * here (`runPart(slot)`) and replaces those workers. Returns true when it took a part back.
   */
  private rescue(slots: number[], posted: number, runPart: (slot: number) => void): boolean {
    const ctl = this.ctl!;
    const late = Date.now() - posted > PICKUP_TIMEOUT_MS;
    let took = false;
    for (const slot of slots) {
      const base = slotBase(slot);
      if (Atomics.load(ctl, base + JOB) !== POSTED) continue;
      if (!late) {
        Atomics.notify(ctl, base + SEQ); // a lost wake-up costs one poll interval
        continue;
      }
      if (Atomics.compareExchange(ctl, base + JOB, POSTED, CANCELLED) !== POSTED) continue;
      took = true;
      try {
        runPart(slot);
      } finally {
        if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
        this.replaceWorker(slot);
      }
    }
    return took;
  }

  private checkWorkerErrors(op: string, slots: number[]): void {
    for (const s of slots) {
      const base = slotBase(s);
      if (this.ctl![base + JOB] === DONE && this.ctl![base + ERROR]) throw new Error(`wasm backend: ${op} failed on worker thread ${s + 1}`);
    }
  }

  /** Runs a parallel kernel synchronously: part 0 here, the others on ready workers. */
  private runParallelSync(frame: Frame, job: ParallelJob, macs: number): void {
    let parts = 1;
    if (this.threads > 1 && this.spawner && !this.poolBusy && macs >= PARALLEL_MIN_MACS) {
      this.ensureWorkers(this.threads);
      parts = 1 + this.readyWorkersSync(this.threads - 1);
    }
    const { ws, stride } = frame.workspaces(job.wsPerThread(parts), parts);
    const fn = this.k[job.op] as (...a: number[]) => void;
    if (parts === 1) {
      fn(0, 1, ...job.args, ws, stride);
      return;
    }
    const args = [...job.args, ws, stride];
    const ctl = this.ctl!;
    const slots = Array.from({ length: parts - 1 }, (_, i) => i);
    this.poolBusy = true;
    try {
      Atomics.store(ctl, PENDING, parts - 1);
      for (const slot of slots) this.post(slot, job.op, slot + 1, parts, args);
      const posted = Date.now();
      let mainError: unknown = null;
      try {
        fn(0, parts, ...args);
      } catch (err) {
        mainError = err;
      }
      for (let v = Atomics.load(ctl, PENDING); v !== 0; v = Atomics.load(ctl, PENDING)) {
        if (Atomics.wait(ctl, PENDING, v, POLL_MS) === 'timed-out') {
          this.rescue(slots, posted, (slot) => fn(slot + 1, parts, ...args));
        }
      }
      if (mainError) throw mainError;
      this.checkWorkerErrors(job.op, slots);
    } finally {
      this.poolBusy = false;
    }
  }

  /**
   * Runs a parallel kernel off the calling thread: every part on a worker. Jobs are queued
   * and run one at a time. `prepare` lays out the call (the caller validated everything).
   */
  private runParallelAsync(prepare: (frame: Frame) => ParallelJob, macs: number): Promise<void> {
    const run = async (): Promise<void> => {
      const frame = new Frame(this.core);
      let parts = 0;
      if (this.spawner) {
        this.ensureWorkers(this.threads);
        parts = await this.readyWorkersAsync(macs >= PARALLEL_MIN_MACS ? this.threads : 1);
      }
      try {
        const job = prepare(frame);
        const fn = this.k[job.op] as (...a: number[]) => void;
        if (parts === 0) {
          // No worker: run here (single-threaded builds, or workers failed to start).
          const { ws, stride } = frame.workspaces(job.wsPerThread(1), 1);
          fn(0, 1, ...job.args, ws, stride);
          frame.finish();
          return;
        }
        const { ws, stride } = frame.workspaces(job.wsPerThread(parts), parts);
        const args = [...job.args, ws, stride];
        const ctl = this.ctl!;
        const slots = Array.from({ length: parts }, (_, i) => i);
        const used = slots.map((s) => this.workers[s]!.handle);
        this.poolBusy = true;
        for (const h of used) h.ref(); // keep the process alive until the job settles
        try {
          Atomics.store(ctl, PENDING, parts);
          for (const slot of slots) this.post(slot, job.op, slot, parts, args);
          const posted = Date.now();
          for (let v = Atomics.load(ctl, PENDING); v !== 0; v = Atomics.load(ctl, PENDING)) {
            const r = waitAsync(ctl, PENDING, v, POLL_MS);
            if (r.async && (await r.value) === 'timed-out') {
              this.rescue(slots, posted, (slot) => fn(slot, parts, ...args));
            }
          }
        } finally {
          for (const h of used) h.unref();
          this.poolBusy = false;
        }
        this.checkWorkerErrors(job.op, slots);
        frame.finish();
      } catch (err) {
        frame.release();
        throw err;
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Runs a single-threaded kernel call with its frame. */
  private call(body: (f: Frame) => void): void {
    const frame = new Frame(this.core);
    try {
      body(frame);
    } catch (err) {
      frame.release();
      throw err;
    }
    frame.finish();
  }

  // ---- GEMM ---------------------------------------------------------------------------------

  private gemmArgs(fn: string, transA: unknown, transB: unknown, m: unknown, n: unknown, k: unknown, alpha: unknown,
                   a: unknown, lda: unknown, b: unknown, ldb: unknown, beta: unknown, c: unknown, ldc: unknown) {
    const tA = bool(fn, 'transA', transA);
    const tB = bool(fn, 'transB', transB);
    const M = int(fn, 'm', m, 0);
    const N = int(fn, 'n', n, 0);
    const K = int(fn, 'k', k, 0);
    const al = num(fn, 'alpha', alpha);
    const be = num(fn, 'beta', beta);
    const A = f32(fn, 'a', a);
    const B = f32(fn, 'b', b);
    const C = f32(fn, 'c', c);
    const [aRows, aCols] = tA ? [K, M] : [M, K];
    const [bRows, bCols] = tB ? [N, K] : [K, N];
    const LDA = int(fn, 'lda', lda, 1);
    const LDB = int(fn, 'ldb', ldb, 1);
    const LDC = int(fn, 'ldc', ldc, 1);
    if (LDA < aCols) throw new RangeError(`${fn}: lda must be >= ${aCols} (the columns of the stored A), got ${LDA}`);
    if (LDB < bCols) throw new RangeError(`${fn}: ldb must be >= ${bCols} (the columns of the stored B), got ${LDB}`);
    if (LDC < N) throw new RangeError(`${fn}: ldc must be >= n (${N}), got ${LDC}`);
    const aLen = matrixSpan(aRows, aCols, LDA);
    const bLen = matrixSpan(bRows, bCols, LDB);
    const cLen = matrixSpan(M, N, LDC);
    if (A.length < aLen) throw new RangeError(`${fn}: argument 'a' must have length >= ${aLen} (${aRows} rows of ${aCols}, lda ${LDA}), got ${A.length}`);
    if (B.length < bLen) throw new RangeError(`${fn}: argument 'b' must have length >= ${bLen} (${bRows} rows of ${bCols}, ldb ${LDB}), got ${B.length}`);
    if (C.length < cLen) throw new RangeError(`${fn}: argument 'c' must have length >= ${cLen} (${M} rows of ${N}, ldc ${LDC}), got ${C.length}`);
    for (const [v, name] of [[aLen, 'a'], [bLen, 'b'], [cLen, 'c']] as const) {
      if (v > MAX_ELEMENTS) throw new RangeError(`${fn}: argument '${name}' spans ${v} elements, more than the wasm backend can hold (${MAX_ELEMENTS})`);
    }
    return { tA, tB, M, N, K, al, be, A, B, C, LDA, LDB, LDC, aLen, bLen, cLen };
  }

  private gemmJob(g: ReturnType<WasmBackend['gemmArgs']>, frame: Frame): ParallelJob {
    const pa = frame.in(g.A, g.aLen);
    const pb = frame.in(g.B, g.bLen);
    // C is read unless beta == 0 fills it completely (no gaps between rows).
    const pc = g.be === 0 && g.LDC === g.N ? frame.out(g.C, g.cLen) : frame.inout(g.C, g.cLen);
    return {
      op: 'sgemm',
      args: [g.tA ? 1 : 0, g.tB ? 1 : 0, g.M, g.N, g.K, g.al, pa, g.LDA, pb, g.LDB, g.be, pc, g.LDC],
      wsPerThread: (parts) => this.k.sgemmWorkspace(g.M, g.N, g.K, parts),
    };
  }

  sgemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array, lda: number,
        b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number): void {
    const g = this.gemmArgs('sgemm', transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (g.M === 0 || g.N === 0) return;
    this.call((f) => this.runParallelSync(f, this.gemmJob(g, f), g.M * g.N * g.K));
  }

  async sgemmAsync(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
                   lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number): Promise<void> {
    const g = this.gemmArgs('sgemmAsync', transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (g.M === 0 || g.N === 0) return;
    await this.runParallelAsync((f) => this.gemmJob(g, f), g.M * g.N * g.K);
  }

  // ---- convolution --------------------------------------------------------------------------

  /** The ConvShape record of assembly/shapes.ts; its last field selects the forward algorithm (0 auto, 1 im2col, 2 Winograd). */
  private shapeRecord(frame: Frame, s: ConvGeom): number {
    return frame.ints([s.batch, s.inC, s.inH, s.inW, s.outC, s.kH, s.kW, s.strideH, s.strideW, s.padH, s.padW,
      s.dilationH, s.dilationW, s.groups, s.outH, s.outW, CONV_ALGORITHMS.indexOf(this.convAlgorithm)]);
  }

  /** Workspace bytes per thread of a convolution (the same for any thread count). */
  private convWs(kind: number, ps: number): () => number {
    const bytes = this.k.conv2dWorkspace(kind, ps);
    if (bytes < 0 || bytes > 2 ** 31) throw new RangeError(`conv2d: the shape needs too much workspace (${bytes} bytes)`);
    return () => bytes;
  }

  private convFwdArgs(fn: string, s: unknown, input: unknown, weight: unknown, bias: unknown, output: unknown) {
    const g = convShape(fn, s);
    const x = f32(fn, 'input', input, g.inputLen);
    const w = f32(fn, 'weight', weight, g.weightLen);
    const b = bias === null || bias === undefined ? null : f32(fn, 'bias', bias, g.outC);
    const y = f32(fn, 'output', output, g.outputLen);
    return { g, x, w, b, y };
  }

  private convFwdJob(a: ReturnType<WasmBackend['convFwdArgs']>, f: Frame): ParallelJob {
    const ps = this.shapeRecord(f, a.g);
    const px = f.in(a.x);
    const pw = f.in(a.w);
    const pb = a.b ? f.in(a.b) : 0;
    const py = f.out(a.y);
    return { op: 'conv2dForward', args: [ps, px, pw, pb, py], wsPerThread: this.convWs(0, ps) };
  }

  conv2dForward(s: Conv2dShape, input: Float32Array, weight: Float32Array, bias: Float32Array | null, output: Float32Array): void {
    const a = this.convFwdArgs('conv2dForward', s, input, weight, bias, output);
    this.call((f) => this.runParallelSync(f, this.convFwdJob(a, f), a.g.flops / 2));
  }

  async conv2dForwardAsync(s: Conv2dShape, input: Float32Array, weight: Float32Array, bias: Float32Array | null,
                           output: Float32Array): Promise<void> {
    const a = this.convFwdArgs('conv2dForwardAsync', s, input, weight, bias, output);
    await this.runParallelAsync((f) => this.convFwdJob(a, f), a.g.flops / 2);
  }

  private convBwdDataArgs(fn: string, s: unknown, gradOutput: unknown, weight: unknown, gradInput: unknown) {
    const g = convShape(fn, s);
    const go = f32(fn, 'gradOutput', gradOutput, g.outputLen);
    const w = f32(fn, 'weight', weight, g.weightLen);
    const gi = f32(fn, 'gradInput', gradInput, g.inputLen);
    return { g, go, w, gi };
  }

  private convBwdDataJob(a: ReturnType<WasmBackend['convBwdDataArgs']>, f: Frame): ParallelJob {
    const ps = this.shapeRecord(f, a.g);
    const pgo = f.in(a.go);
    const pw = f.in(a.w);
    const pgi = f.out(a.gi);
    return { op: 'conv2dBackwardData', args: [ps, pgo, pw, pgi], wsPerThread: this.convWs(1, ps) };
  }

  conv2dBackwardData(s: Conv2dShape, gradOutput: Float32Array, weight: Float32Array, gradInput: Float32Array): void {
    const a = this.convBwdDataArgs('conv2dBackwardData', s, gradOutput, weight, gradInput);
    this.call((f) => this.runParallelSync(f, this.convBwdDataJob(a, f), a.g.flops / 2));
  }

  async conv2dBackwardDataAsync(s: Conv2dShape, gradOutput: Float32Array, weight: Float32Array,
                                gradInput: Float32Array): Promise<void> {
    const a = this.convBwdDataArgs('conv2dBackwardDataAsync', s, gradOutput, weight, gradInput);
    await this.runParallelAsync((f) => this.convBwdDataJob(a, f), a.g.flops / 2);
  }

  private convBwdFilterArgs(fn: string, s: unknown, input: unknown, gradOutput: unknown, gradWeight: unknown,
                            gradBias: unknown) {
    const g = convShape(fn, s);
    const x = f32(fn, 'input', input, g.inputLen);
    const go = f32(fn, 'gradOutput', gradOutput, g.outputLen);
    const gw = f32(fn, 'gradWeight', gradWeight, g.weightLen);
    const gb = gradBias === null || gradBias === undefined ? null : f32(fn, 'gradBias', gradBias, g.outC);
    return { g, x, go, gw, gb };
  }

  private convBwdFilterJob(a: ReturnType<WasmBackend['convBwdFilterArgs']>, f: Frame): ParallelJob {
    const ps = this.shapeRecord(f, a.g);
    const px = f.in(a.x);
    const pgo = f.in(a.go);
    const pgw = f.inout(a.gw);
    const pgb = a.gb ? f.inout(a.gb) : 0;
    return { op: 'conv2dBackwardFilter', args: [ps, px, pgo, pgw, pgb], wsPerThread: this.convWs(2, ps) };
  }

  conv2dBackwardFilter(s: Conv2dShape, input: Float32Array, gradOutput: Float32Array, gradWeight: Float32Array,
                       gradBias: Float32Array | null): void {
    const a = this.convBwdFilterArgs('conv2dBackwardFilter', s, input, gradOutput, gradWeight, gradBias);
    this.call((f) => this.runParallelSync(f, this.convBwdFilterJob(a, f), a.g.flops / 2));
  }

  async conv2dBackwardFilterAsync(s: Conv2dShape, input: Float32Array, gradOutput: Float32Array,
                                  gradWeight: Float32Array, gradBias: Float32Array | null): Promise<void> {
    const a = this.convBwdFilterArgs('conv2dBackwardFilterAsync', s, input, gradOutput, gradWeight, gradBias);
    await this.runParallelAsync((f) => this.convBwdFilterJob(a, f), a.g.flops / 2);
  }

  // ---- pooling ------------------------------------------------------------------------------

  private poolRecord(f: Frame, s: PoolGeom): number {
    return f.ints([s.batch, s.channels, s.inH, s.inW, s.kH, s.kW, s.strideH, s.strideW, s.padH, s.padW,
      s.ceilMode ? 1 : 0, s.countIncludePad ? 1 : 0, s.outH, s.outW]);
  }

  maxPool2dForward(s: Pool2dShape, input: Float32Array, output: Float32Array, indices: Int32Array): void {
    const fn = 'maxPool2dForward';
    const g = poolShape(fn, s);
    const x = f32(fn, 'input', input, g.inputLen);
    const y = f32(fn, 'output', output, g.outputLen);
    const idx = i32arr(fn, 'indices', indices, g.outputLen);
    this.call((f) => this.k.maxPool2dForward(this.poolRecord(f, g), f.in(x), f.out(y), f.out(idx)));
  }

  maxPool2dBackward(s: Pool2dShape, gradOutput: Float32Array, indices: Int32Array, gradInput: Float32Array): void {
    const fn = 'maxPool2dBackward';
    const g = poolShape(fn, s);
    const go = f32(fn, 'gradOutput', gradOutput, g.outputLen);
    const idx = i32arr(fn, 'indices', indices, g.outputLen);
    const gi = f32(fn, 'gradInput', gradInput, g.inputLen);
    this.call((f) => {
      const bad = this.k.maxPool2dBackward(this.poolRecord(f, g), f.in(go), f.in(idx), f.out(gi));
      if (bad >= 0) {
        throw new RangeError(`${fn}: argument 'indices' holds ${idx[bad]} at position ${bad}, outside the input plane [0, ${g.inH * g.inW})`);
      }
    });
  }

  avgPool2dForward(s: Pool2dShape, input: Float32Array, output: Float32Array): void {
    const fn = 'avgPool2dForward';
    const g = poolShape(fn, s);
    const x = f32(fn, 'input', input, g.inputLen);
    const y = f32(fn, 'output', output, g.outputLen);
    this.call((f) => this.k.avgPool2dForward(this.poolRecord(f, g), f.in(x), f.out(y)));
  }

  avgPool2dBackward(s: Pool2dShape, gradOutput: Float32Array, gradInput: Float32Array): void {
    const fn = 'avgPool2dBackward';
    const g = poolShape(fn, s);
    const go = f32(fn, 'gradOutput', gradOutput, g.outputLen);
    const gi = f32(fn, 'gradInput', gradInput, g.inputLen);
    this.call((f) => this.k.avgPool2dBackward(this.poolRecord(f, g), f.in(go), f.out(gi)));
  }

  // ---- activations ----------------------------------------------------------------------------

  private unary(fn: string, kernel: (n: number, x: number, y: number) => void, xName: string, x: unknown,
                yName: string, y: unknown): void {
    const X = f32(fn, xName, x);
    const Y = f32(fn, yName, y, X.length);
    this.call((f) => kernel(X.length, f.in(X), f.out(Y)));
  }

  private binary(fn: string, kernel: (n: number, a: number, b: number, out: number) => void, aName: string, a: unknown,
                 bName: string, b: unknown, outName: string, out: unknown): void {
    const A = f32(fn, aName, a);
    const B = f32(fn, bName, b, A.length);
    const O = f32(fn, outName, out, A.length);
    this.call((f) => kernel(A.length, f.in(A), f.in(B), f.out(O)));
  }

  relu(x: Float32Array, y: Float32Array): void {
    this.unary('relu', this.k.relu, 'x', x, 'y', y);
  }

  reluBackward(x: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void {
    this.binary('reluBackward', this.k.reluBackward, 'x', x, 'gradOutput', gradOutput, 'gradInput', gradInput);
  }

  tanh(x: Float32Array, y: Float32Array): void {
    this.unary('tanh', this.k.tanhForward, 'x', x, 'y', y);
  }

  tanhBackward(y: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void {
    this.binary('tanhBackward', this.k.tanhBackward, 'y', y, 'gradOutput', gradOutput, 'gradInput', gradInput);
  }

  sigmoid(x: Float32Array, y: Float32Array): void {
    this.unary('sigmoid', this.k.sigmoidForward, 'x', x, 'y', y);
  }

  sigmoidBackward(y: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void {
    this.binary('sigmoidBackward', this.k.sigmoidBackward, 'y', y, 'gradOutput', gradOutput, 'gradInput', gradInput);
  }

  // ---- LRN ------------------------------------------------------------------------------------

  lrnForward(s: LrnShape, input: Float32Array, output: Float32Array, scale: Float32Array): void {
    const fn = 'lrnForward';
    const g = lrnShape(fn, s);
    const x = f32(fn, 'input', input, g.len);
    const y = f32(fn, 'output', output, g.len);
    const sc = f32(fn, 'scale', scale, g.len);
    this.call((f) => this.k.lrnForward(g.batch, g.channels, g.height * g.width, g.size, g.alpha, g.beta, g.k,
      f.in(x), f.out(y), f.out(sc)));
  }

  lrnBackward(s: LrnShape, input: Float32Array, output: Float32Array, scale: Float32Array, gradOutput: Float32Array,
              gradInput: Float32Array): void {
    const fn = 'lrnBackward';
    const g = lrnShape(fn, s);
    const x = f32(fn, 'input', input, g.len);
    const y = f32(fn, 'output', output, g.len);
    const sc = f32(fn, 'scale', scale, g.len);
    const go = f32(fn, 'gradOutput', gradOutput, g.len);
    const gi = f32(fn, 'gradInput', gradInput, g.len);
    this.call((f) => this.k.lrnBackward(g.batch, g.channels, g.height * g.width, g.size, g.alpha, g.beta, g.k,
      f.in(x), f.in(y), f.in(sc), f.in(go), f.out(gi), f.scratch(g.channels * g.height * g.width * 4)));
  }

  // ---- softmax ----------------------------------------------------------------------------------

  private softmaxLike(fn: string, kernel: (r: number, c: number, x: number, y: number) => void, rows: unknown,
                      cols: unknown, x: unknown, y: unknown): void {
    const R = int(fn, 'rows', rows, 0);
    const C = int(fn, 'cols', cols, 0);
    const len = product(fn, 'x', R, C);
    const X = f32(fn, 'x', x, len);
    const Y = f32(fn, 'y', y, len);
    this.call((f) => kernel(R, C, f.in(X), f.out(Y)));
  }

  private softmaxLikeBackward(fn: string, kernel: (r: number, c: number, y: number, go: number, gi: number) => void,
                              rows: unknown, cols: unknown, y: unknown, gradOutput: unknown, gradInput: unknown): void {
    const R = int(fn, 'rows', rows, 0);
    const C = int(fn, 'cols', cols, 0);
    const len = product(fn, 'y', R, C);
    const Y = f32(fn, 'y', y, len);
    const GO = f32(fn, 'gradOutput', gradOutput, len);
    const GI = f32(fn, 'gradInput', gradInput, len);
    this.call((f) => kernel(R, C, f.in(Y), f.in(GO), f.out(GI)));
  }

  softmaxForward(rows: number, cols: number, x: Float32Array, y: Float32Array): void {
    this.softmaxLike('softmaxForward', this.k.softmaxForward, rows, cols, x, y);
  }

  softmaxBackward(rows: number, cols: number, y: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void {
    this.softmaxLikeBackward('softmaxBackward', this.k.softmaxBackward, rows, cols, y, gradOutput, gradInput);
  }

  logSoftmaxForward(rows: number, cols: number, x: Float32Array, y: Float32Array): void {
    this.softmaxLike('logSoftmaxForward', this.k.logSoftmaxForward, rows, cols, x, y);
  }

  logSoftmaxBackward(rows: number, cols: number, y: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void {
    this.softmaxLikeBackward('logSoftmaxBackward', this.k.logSoftmaxBackward, rows, cols, y, gradOutput, gradInput);
  }

  // ---- batch normalisation ------------------------------------------------------------------------

  batchNormForward(s: BatchNormShape, x: Float32Array, y: Float32Array, gamma: Float32Array, beta: Float32Array,
                   runningMean: Float32Array, runningVar: Float32Array, saveMean: Float32Array, saveInvStd: Float32Array,
                   training: boolean, momentum: number): void {
    const fn = 'batchNormForward';
    const g = bnShape(fn, s);
    const X = f32(fn, 'x', x, g.len);
    const Y = f32(fn, 'y', y, g.len);
    const ga = f32(fn, 'gamma', gamma, g.c);
    const be = f32(fn, 'beta', beta, g.c);
    const rm = f32(fn, 'runningMean', runningMean, g.c);
    const rv = f32(fn, 'runningVar', runningVar, g.c);
    const sm = f32(fn, 'saveMean', saveMean, g.c);
    const si = f32(fn, 'saveInvStd', saveInvStd, g.c);
    const tr = bool(fn, 'training', training);
    const mom = finite(fn, 'momentum', momentum);
    this.call((f) => {
      const px = f.in(X);
      const py = f.out(Y);
      const pg = f.in(ga);
      const pb = f.in(be);
      // Training updates the running statistics and writes save*; inference touches neither.
      const prm = tr ? f.inout(rm) : f.in(rm);
      const prv = tr ? f.inout(rv) : f.in(rv);
      const psm = tr ? f.out(sm) : f.scratch(g.c * 4);
      const psi = tr ? f.out(si) : f.scratch(g.c * 4);
      this.k.batchNormForward(g.n, g.c, g.spatial, g.eps, px, py, pg, pb, prm, prv, psm, psi, tr ? 1 : 0, mom);
    });
  }

  batchNormBackward(s: BatchNormShape, x: Float32Array, gamma: Float32Array, saveMean: Float32Array,
                    saveInvStd: Float32Array, gradOutput: Float32Array, gradInput: Float32Array, gradGamma: Float32Array,
                    gradBeta: Float32Array): void {
    const fn = 'batchNormBackward';
    const g = bnShape(fn, s);
    const X = f32(fn, 'x', x, g.len);
    const ga = f32(fn, 'gamma', gamma, g.c);
    const sm = f32(fn, 'saveMean', saveMean, g.c);
    const si = f32(fn, 'saveInvStd', saveInvStd, g.c);
    const go = f32(fn, 'gradOutput', gradOutput, g.len);
    const gi = f32(fn, 'gradInput', gradInput, g.len);
    const gg = f32(fn, 'gradGamma', gradGamma, g.c);
    const gb = f32(fn, 'gradBeta', gradBeta, g.c);
    this.call((f) => this.k.batchNormBackward(g.n, g.c, g.spatial, f.in(X), f.in(ga), f.in(sm), f.in(si), f.in(go),
      f.out(gi), f.inout(gg), f.inout(gb)));
  }

  // ---- dropout --------------------------------------------------------------------------------------

  dropoutForward(p: number, seed: number, x: Float32Array, y: Float32Array, mask: Float32Array): void {
    const fn = 'dropoutForward';
    num(fn, 'p', p);
    // p = 1 would scale the kept elements by 1 / 0 (as the native backend, refused).
    if (!(p >= 0 && p < 1)) throw new RangeError(`${fn}: argument 'p' must be in [0, 1), got ${p}`);
    num(fn, 'seed', seed);
    if (!Number.isInteger(seed)) throw new RangeError(`${fn}: seed must be an integer, got ${seed}`);
    const X = f32(fn, 'x', x);
    const Y = f32(fn, 'y', y, X.length);
    const M = f32(fn, 'mask', mask, X.length);
    const keepScale = 1 / (1 - p);
    this.call((f) => this.k.dropoutForward(X.length, p, seed >>> 0, keepScale, f.in(X), f.out(Y), f.out(M)));
  }

  dropoutBackward(mask: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void {
    this.binary('dropoutBackward', this.k.mul, 'mask', mask, 'gradOutput', gradOutput, 'gradInput', gradInput);
  }

  // ---- element-wise -----------------------------------------------------------------------------------

  add(a: Float32Array, b: Float32Array, out: Float32Array): void {
    this.binary('add', this.k.add, 'a', a, 'b', b, 'out', out);
  }

  scale(x: Float32Array, alpha: number, out: Float32Array): void {
    const fn = 'scale';
    const X = f32(fn, 'x', x);
    const al = num(fn, 'alpha', alpha);
    const O = f32(fn, 'out', out, X.length);
    this.call((f) => this.k.scale(X.length, f.in(X), al, f.out(O)));
  }

  axpy(alpha: number, x: Float32Array, y: Float32Array): void {
    const fn = 'axpy';
    const al = num(fn, 'alpha', alpha);
    const X = f32(fn, 'x', x);
    const Y = f32(fn, 'y', y, X.length);
    this.call((f) => this.k.axpy(X.length, al, f.in(X), f.inout(Y)));
  }

  sumSlices(slices: Float32Array[], out: Float32Array): void {
    const fn = 'sumSlices';
    if (!Array.isArray(slices)) throw new TypeError(`${fn}: argument 'slices' must be an array of Float32Array, got ${describe(slices)}`);
    const O = f32(fn, 'out', out);
    slices.forEach((s, i) => f32(fn, `slices[${i}]`, s, O.length));
    this.call((f) => {
      const ptrs = slices.map((s) => f.in(s));
      const pp = f.ints(ptrs.map((p) => p | 0));
      this.k.sumSlices(O.length, slices.length, pp, f.out(O));
    });
  }

  // ---- wire encodings -----------------------------------------------------------------------------------

  f32ToBf16(src: Float32Array, dst: Uint16Array): void {
    const S = f32('f32ToBf16', 'src', src);
    const D = u16('f32ToBf16', 'dst', dst, S.length);
    this.call((f) => this.k.f32ToBf16(S.length, f.in(S), f.out(D)));
  }

  bf16ToF32(src: Uint16Array, dst: Float32Array): void {
    const S = arrayArg<Uint16Array>('bf16ToF32', 'src', src, Uint16Array);
    const D = f32('bf16ToF32', 'dst', dst, S.length);
    this.call((f) => this.k.bf16ToF32(S.length, f.in(S), f.out(D)));
  }

  f32ToF16(src: Float32Array, dst: Uint16Array): void {
    const S = f32('f32ToF16', 'src', src);
    const D = u16('f32ToF16', 'dst', dst, S.length);
    this.call((f) => this.k.f32ToF16(S.length, f.in(S), f.out(D)));
  }

  f16ToF32(src: Uint16Array, dst: Float32Array): void {
    const S = arrayArg<Uint16Array>('f16ToF32', 'src', src, Uint16Array);
    const D = f32('f16ToF32', 'dst', dst, S.length);
    this.call((f) => this.k.f16ToF32(S.length, f.in(S), f.out(D)));
  }

  // ---- optimisers ------------------------------------------------------------------------------------------

  sgdUpdate(o: SgdOptions, params: Float32Array, grads: Float32Array, momentumBuf: Float32Array): void {
    const fn = 'sgdUpdate';
    const opts = obj(fn, 'o', o);
    const lr = finite(fn, 'o.lr', opts.lr);
    const momentum = finite(fn, 'o.momentum', opts.momentum);
    const dampening = finite(fn, 'o.dampening', opts.dampening);
    const wd = finite(fn, 'o.weightDecay', opts.weightDecay);
    const nesterov = bool(fn, 'o.nesterov', opts.nesterov);
    const first = bool(fn, 'o.firstStep', opts.firstStep);
    const P = f32(fn, 'params', params);
    const G = f32(fn, 'grads', grads, P.length);
    const B = f32(fn, 'momentumBuf', momentumBuf, P.length);
    this.call((f) => {
      const pp = f.inout(P);
      const pg = f.in(G);
      // The buffer is read unless this is the first step, and untouched when momentum == 0.
      const pb = momentum === 0 ? f.scratch(0) : first ? f.out(B) : f.inout(B);
      this.k.sgdUpdate(P.length, lr, momentum, dampening, wd, nesterov ? 1 : 0, first ? 1 : 0, pp, pg, pb);
    });
  }

  adamUpdate(o: AdamOptions, params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array): void {
    const fn = 'adamUpdate';
    const opts = obj(fn, 'o', o);
    const lr = finite(fn, 'o.lr', opts.lr);
    const beta1 = finite(fn, 'o.beta1', opts.beta1);
    const beta2 = finite(fn, 'o.beta2', opts.beta2);
    const eps = finite(fn, 'o.eps', opts.eps);
    const wd = finite(fn, 'o.weightDecay', opts.weightDecay);
    const step = int(fn, 'o.step', opts.step, 1);
    const P = f32(fn, 'params', params);
    const G = f32(fn, 'grads', grads, P.length);
    const M = f32(fn, 'm', m, P.length);
    const V = f32(fn, 'v', v, P.length);
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    this.call((f) => this.k.adamUpdate(P.length, lr / bc1, beta1, beta2, eps, wd, Math.sqrt(bc2), f.inout(P), f.in(G),
      f.inout(M), f.inout(V)));
  }
}

/** Creates the backend on a compiled module (see node.ts for Node; a browser worker passes its own spawner). */
export function createWasmBackend(options: WasmBackendOptions): WasmBackend {
  return new WasmBackend(options);
}
