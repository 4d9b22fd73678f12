// Bad input and guard values, for every kernel of the contract, table-driven.
//
// Each kernel's arguments are subarray views of one big buffer per element type (an Arena:
// filled with a sentinel, views at odd offsets with sentinel gaps between them). For each
// kernel:
//  - a valid call writes nothing outside its output views (guards, inputs untouched), reads
//    nothing outside its input views (the float sentinel is a NaN), and gives the same result
//    as the same call on fresh standalone arrays (byte offsets honoured);
//  - every array argument of the wrong type (Float64Array, Int32Array, a plain array, null
//    where an array is required) is a TypeError whose message names the argument;
//  - every array one element too short, or one too long where the shape fixes its length,
//    is a RangeError naming the argument (for kernels whose length comes from the arrays
//    themselves, naming any of the arrays that must agree);
//  - negative, non-integer and zero sizes / strides, and groups that do not divide the
//    channels, are RangeErrors naming the argument or shape field;
//  - and after every rejected call NOTHING in any of the buffers changed.
// Async kernels may throw synchronously or return a rejected promise.
import t from 'tap';
import type { Backend, Conv2dShape, LrnShape, Pool2dShape, BatchNormShape } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Arena, Rng, caught, close, expectError, forEachBackend, type Tap } from './util.js';

type Kind = 'f32' | 'f32?' | 'i32' | 'u16' | 'slices' | 'value';

interface Mutation {
  label: string;
  args: unknown[];
  names: string[];
}

interface Call {
  args: unknown[];
  names: string[];
  kinds: Kind[];
  /** Indices of the arguments the kernel writes. */
  outputs: number[];
  /** Arrays that only have to agree with each other in length (no explicit size). */
  group?: string[];
  /** Strided matrices: only a minimum length (a longer view is allowed). */
  strided?: string[];
  mutations?: Mutation[];
  /** Further checks on invalid data (not shapes), e.g. out-of-range pooling indices. */
  badData?: Mutation[];
}

interface Arenas {
  f32: Arena<Float32Array>;
  i32: Arena<Int32Array>;
  u16: Arena<Uint16Array>;
}

interface Spec {
  kernel: keyof Backend;
  label?: string;
  build: (A: Arenas, rng: Rng) => Call;
}

// ---------------------------------------------------------------------------------------
// helpers to build argument lists

function rand(A: Arenas, rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  return A.f32.alloc(n, Float32Array.from({ length: n }, () => rng.uniform(lo, hi)));
}

/** Returns args with args[i] replaced by v. */
function withArg(args: unknown[], i: number, v: unknown): unknown[] {
  const out = args.slice();
  out[i] = v;
  return out;
}

/** Shape-field mutations of the shape object at argument index i. */
function fieldMutations<S extends object>(args: unknown[], i: number, changes: [keyof S & string, number, string?][]): Mutation[] {
  return changes.map(([field, value, why]) => ({
    label: `${field} = ${value}${why ? ` (${why})` : ''}`,
    args: withArg(args, i, { ...(args[i] as S), [field]: value }),
    names: [field],
  }));
}

/** Scalar-argument mutations. */
function argMutations(args: unknown[], names: string[], changes: [string, number, string?][]): Mutation[] {
  return changes.map(([name, value, why]) => ({
    label: `${name} = ${value}${why ? ` (${why})` : ''}`,
    args: withArg(args, names.indexOf(name), value),
    names: [name],
  }));
}

const convShape: Conv2dShape = {
  batch: 2, inC: 4, inH: 5, inW: 6, outC: 6, kH: 3, kW: 2, strideH: 2, strideW: 1, padH: 1, padW: 0,
  dilationH: 1, dilationW: 2, groups: 2,
};
const convBad: [keyof Conv2dShape & string, number, string?][] = [
  ['batch', -1], ['inC', -4], ['inH', 2.5], ['outC', 1.5], ['kH', 0], ['kW', -2], ['strideH', 0], ['strideW', 0],
  ['strideH', -1], ['padH', -1], ['padW', 0.5], ['dilationH', 0], ['dilationW', 1.5],
  ['groups', 0], ['groups', 3, 'does not divide inC = 4'], ['groups', 4, 'does not divide outC = 6'],
];
const poolShape: Pool2dShape = {
  batch: 2, channels: 3, inH: 7, inW: 6, kH: 3, kW: 2, strideH: 2, strideW: 2, padH: 1, padW: 1, ceilMode: true, countIncludePad: false,
};
const poolBad: [keyof Pool2dShape & string, number, string?][] = [
  ['batch', -1], ['channels', 2.5], ['inH', -7], ['inW', 1.5], ['kH', 0], ['kW', -1], ['strideH', 0], ['strideW', 0],
  ['padH', -1], ['padW', 0.5],
];
const lrnShape: LrnShape = { batch: 2, channels: 5, height: 3, width: 2, size: 3, alpha: 0.5, beta: 0.75, k: 1 };
const lrnBad: [keyof LrnShape & string, number, string?][] = [
  ['batch', -2], ['channels', 2.5], ['height', -1], ['width', 0.5], ['size', 0], ['size', -3],
];
const bnShape: BatchNormShape = { n: 3, c: 4, spatial: 5, eps: 1e-5 };
const bnBad: [keyof BatchNormShape & string, number, string?][] = [['n', -3], ['c', 2.5], ['spatial', -1]];

function convArgs(A: Arenas, rng: Rng, kernel: string): Call {
  const s = convShape;
  const z = ref.convSizes(s);
  if (kernel.startsWith('conv2dForward')) {
    const args = [s, rand(A, rng, z.input), rand(A, rng, z.weight), rand(A, rng, s.outC), rand(A, rng, z.output)];
    return {
      args, names: ['s', 'input', 'weight', 'bias', 'output'], kinds: ['value', 'f32', 'f32', 'f32?', 'f32'], outputs: [4],
      mutations: fieldMutations<Conv2dShape>(args, 0, convBad),
    };
  }
  if (kernel.startsWith('conv2dBackwardData')) {
    const args = [s, rand(A, rng, z.output), rand(A, rng, z.weight), rand(A, rng, z.input)];
    return {
      args, names: ['s', 'gradOutput', 'weight', 'gradInput'], kinds: ['value', 'f32', 'f32', 'f32'], outputs: [3],
      mutations: fieldMutations<Conv2dShape>(args, 0, convBad),
    };
  }
  const args = [s, rand(A, rng, z.input), rand(A, rng, z.output), rand(A, rng, z.weight), rand(A, rng, s.outC)];
  return {
    args, names: ['s', 'input', 'gradOutput', 'gradWeight', 'gradBias'], kinds: ['value', 'f32', 'f32', 'f32', 'f32?'], outputs: [3, 4],
    mutations: fieldMutations<Conv2dShape>(args, 0, convBad),
  };
}

function gemmArgs(A: Arenas, rng: Rng): Call {
  // op(A) = A (5 x 3, lda 5), op(B) = B^T (B stored 4 x 3, ldb 4), C 5 x 4 with ldc 7;
  // each matrix as its minimal length: (rows - 1) * ld + cols.
  const m = 5, n = 4, k = 3, lda = 5, ldb = 4, ldc = 7;
  const a = rand(A, rng, (m - 1) * lda + k);
  const b = rand(A, rng, (n - 1) * ldb + k);
  const c = rand(A, rng, (m - 1) * ldc + n);
  const names = ['transA', 'transB', 'm', 'n', 'k', 'alpha', 'a', 'lda', 'b', 'ldb', 'beta', 'c', 'ldc'];
  const args = [false, true, m, n, k, 1.5, a, lda, b, ldb, 0.5, c, ldc];
  return {
    args, names,
    kinds: ['value', 'value', 'value', 'value', 'value', 'value', 'f32', 'value', 'f32', 'value', 'value', 'f32', 'value'],
    outputs: [11], strided: ['a', 'b', 'c'],
    mutations: argMutations(args, names, [
      ['m', -1], ['n', -4], ['k', -3], ['m', 2.5], ['n', 1.5], ['k', 0.5],
      ['lda', 2, 'lda < k'], ['ldb', 2, 'ldb < k (B transposed)'], ['ldc', 3, 'ldc < n'], ['lda', -5], ['ldc', 7.5],
    ]),
  };
}

function poolArgs(A: Arenas, rng: Rng, kernel: string): Call {
  const s = poolShape;
  const z = ref.poolSizes(s);
  const x = rand(A, rng, z.input);
  switch (kernel) {
    case 'maxPool2dForward': {
      const args = [s, x, rand(A, rng, z.output), A.i32.alloc(z.output)];
      return { args, names: ['s', 'input', 'output', 'indices'], kinds: ['value', 'f32', 'f32', 'i32'], outputs: [2, 3], mutations: fieldMutations<Pool2dShape>(args, 0, poolBad) };
    }
    case 'maxPool2dBackward': {
      const indices = A.i32.alloc(z.output, ref.maxPool2dForward(s, x).indices);
      const args = [s, rand(A, rng, z.output), indices, rand(A, rng, z.input)];
      const badIdx = (v: number) => {
        const copy = Int32Array.from(indices);
        copy[copy.length - 1] = v;
        return withArg(args, 2, copy);
      };
      return {
        args, names: ['s', 'gradOutput', 'indices', 'gradInput'], kinds: ['value', 'f32', 'i32', 'f32'], outputs: [3],
        mutations: fieldMutations<Pool2dShape>(args, 0, poolBad),
        badData: [
          { label: 'an index past the input plane', args: badIdx(s.inH * s.inW), names: ['indices'] },
          { label: 'a negative index', args: badIdx(-1), names: ['indices'] },
          { label: 'a huge index', args: badIdx(0x7fffffff), names: ['indices'] },
        ],
      };
    }
    case 'avgPool2dForward': {
      const args = [s, x, rand(A, rng, z.output)];
      return { args, names: ['s', 'input', 'output'], kinds: ['value', 'f32', 'f32'], outputs: [2], mutations: fieldMutations<Pool2dShape>(args, 0, poolBad) };
    }
    default: {
      const args = [s, rand(A, rng, z.output), rand(A, rng, z.input)];
      return { args, names: ['s', 'gradOutput', 'gradInput'], kinds: ['value', 'f32', 'f32'], outputs: [2], mutations: fieldMutations<Pool2dShape>(args, 0, poolBad) };
    }
  }
}

const N = 37; // length of the element-wise cases

function elementwise(names: string[], outputs: number[], A: Arenas, rng: Rng): Call {
  const args = names.map(() => rand(A, rng, N));
  return { args, names, kinds: names.map(() => 'f32' as Kind), outputs, group: names };
}

const specs: Spec[] = [
  { kernel: 'sgemm', build: (A, rng) => gemmArgs(A, rng) },
  { kernel: 'sgemmAsync', build: (A, rng) => gemmArgs(A, rng) },
  ...(['conv2dForward', 'conv2dForwardAsync', 'conv2dBackwardData', 'conv2dBackwardDataAsync', 'conv2dBackwardFilter',
    'conv2dBackwardFilterAsync'] as const).map((kernel): Spec => ({ kernel, build: (A, rng) => convArgs(A, rng, kernel) })),
  {
    kernel: 'conv2dForward', label: 'conv2dForward (bias null)',
    build: (A, rng) => {
      const c = convArgs(A, rng, 'conv2dForward');
      c.args[3] = null;
      c.kinds[3] = 'value';
      c.mutations = fieldMutations<Conv2dShape>(c.args, 0, convBad);
      return c;
    },
  },
  ...(['maxPool2dForward', 'maxPool2dBackward', 'avgPool2dForward', 'avgPool2dBackward'] as const)
    .map((kernel): Spec => ({ kernel, build: (A, rng) => poolArgs(A, rng, kernel) })),
  { kernel: 'relu', build: (A, rng) => elementwise(['x', 'y'], [1], A, rng) },
  { kernel: 'reluBackward', build: (A, rng) => elementwise(['x', 'gradOutput', 'gradInput'], [2], A, rng) },
  { kernel: 'tanh', build: (A, rng) => elementwise(['x', 'y'], [1], A, rng) },
  { kernel: 'tanhBackward', build: (A, rng) => elementwise(['y', 'gradOutput', 'gradInput'], [2], A, rng) },
  { kernel: 'sigmoid', build: (A, rng) => elementwise(['x', 'y'], [1], A, rng) },
  { kernel: 'sigmoidBackward', build: (A, rng) => elementwise(['y', 'gradOutput', 'gradInput'], [2], A, rng) },
  {
    kernel: 'lrnForward',
    build: (A, rng) => {
      const n = 60;
      const args = [lrnShape, rand(A, rng, n), rand(A, rng, n), rand(A, rng, n)];
      return { args, names: ['s', 'input', 'output', 'scale'], kinds: ['value', 'f32', 'f32', 'f32'], outputs: [2, 3], mutations: fieldMutations<LrnShape>(args, 0, lrnBad) };
    },
  },
  {
    kernel: 'lrnBackward',
    build: (A, rng) => {
      const n = 60;
      const x = rand(A, rng, n);
      const f = ref.lrnForward(lrnShape, x);
      const args = [lrnShape, x, A.f32.alloc(n, f.output), A.f32.alloc(n, f.scale), rand(A, rng, n), rand(A, rng, n)];
      return {
        args, names: ['s', 'input', 'output', 'scale', 'gradOutput', 'gradInput'], kinds: ['value', 'f32', 'f32', 'f32', 'f32', 'f32'],
        outputs: [5], mutations: fieldMutations<LrnShape>(args, 0, lrnBad),
      };
    },
  },
  ...(['softmaxForward', 'logSoftmaxForward'] as const).map((kernel): Spec => ({
    kernel,
    build: (A, rng) => {
      const names = ['rows', 'cols', 'x', 'y'];
      const args = [3, 7, rand(A, rng, 21), rand(A, rng, 21)];
      return { args, names, kinds: ['value', 'value', 'f32', 'f32'], outputs: [3], mutations: argMutations(args, names, [['rows', -3], ['cols', 2.5], ['rows', 1.5], ['cols', -7]]) };
    },
  })),
  ...(['softmaxBackward', 'logSoftmaxBackward'] as const).map((kernel): Spec => ({
    kernel,
    build: (A, rng) => {
      const names = ['rows', 'cols', 'y', 'gradOutput', 'gradInput'];
      const y = A.f32.alloc(21, kernel === 'softmaxBackward' ? ref.softmax(3, 7, Array.from({ length: 21 }, () => rng.uniform()))
        : ref.logSoftmax(3, 7, Array.from({ length: 21 }, () => rng.uniform())));
      const args = [3, 7, y, rand(A, rng, 21), rand(A, rng, 21)];
      return { args, names, kinds: ['value', 'value', 'f32', 'f32', 'f32'], outputs: [4], mutations: argMutations(args, names, [['rows', -3], ['cols', 2.5]]) };
    },
  })),
  ...([true, false] as const).map((training): Spec => ({
    kernel: 'batchNormForward', label: `batchNormForward (${training ? 'training' : 'inference'})`,
    build: (A, rng) => {
      const s = bnShape;
      const n = s.n * s.c * s.spatial;
      const args = [s, rand(A, rng, n), rand(A, rng, n), rand(A, rng, s.c), rand(A, rng, s.c), rand(A, rng, s.c),
        rand(A, rng, s.c, 0.5, 2), rand(A, rng, s.c), rand(A, rng, s.c), training, 0.1];
      return {
        args, names: ['s', 'x', 'y', 'gamma', 'beta', 'runningMean', 'runningVar', 'saveMean', 'saveInvStd', 'training', 'momentum'],
        kinds: ['value', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'value', 'value'],
        outputs: training ? [2, 5, 6, 7, 8] : [2], mutations: fieldMutations<BatchNormShape>(args, 0, bnBad),
      };
    },
  })),
  {
    kernel: 'batchNormBackward',
    build: (A, rng) => {
      const s = bnShape;
      const n = s.n * s.c * s.spatial;
      const x = rand(A, rng, n);
      const st = ref.bnStats(s, x);
      const args = [s, x, rand(A, rng, s.c), A.f32.alloc(s.c, st.mean), A.f32.alloc(s.c, st.variance.map((v) => 1 / Math.sqrt(v + s.eps))),
        rand(A, rng, n), rand(A, rng, n), rand(A, rng, s.c), rand(A, rng, s.c)];
      return {
        args, names: ['s', 'x', 'gamma', 'saveMean', 'saveInvStd', 'gradOutput', 'gradInput', 'gradGamma', 'gradBeta'],
        kinds: ['value', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32'], outputs: [6, 7, 8],
        mutations: fieldMutations<BatchNormShape>(args, 0, bnBad),
      };
    },
  },
  {
    kernel: 'dropoutForward',
    build: (A, rng) => {
      const names = ['p', 'seed', 'x', 'y', 'mask'];
      const args = [0.3, 1234, rand(A, rng, N), rand(A, rng, N), rand(A, rng, N)];
      return {
        args, names, kinds: ['value', 'value', 'f32', 'f32', 'f32'], outputs: [3, 4], group: ['x', 'y', 'mask'],
        mutations: argMutations(args, names, [['p', -0.1, 'p < 0'], ['p', 1.5, 'p > 1']]),
      };
    },
  },
  { kernel: 'dropoutBackward', build: (A, rng) => elementwise(['mask', 'gradOutput', 'gradInput'], [2], A, rng) },
  { kernel: 'add', build: (A, rng) => elementwise(['a', 'b', 'out'], [2], A, rng) },
  {
    kernel: 'scale',
    build: (A, rng) => ({ args: [rand(A, rng, N), 1.5, rand(A, rng, N)], names: ['x', 'alpha', 'out'], kinds: ['f32', 'value', 'f32'], outputs: [2], group: ['x', 'out'] }),
  },
  {
    kernel: 'axpy',
    build: (A, rng) => ({ args: [-0.5, rand(A, rng, N), rand(A, rng, N)], names: ['alpha', 'x', 'y'], kinds: ['value', 'f32', 'f32'], outputs: [2], group: ['x', 'y'] }),
  },
  {
    kernel: 'sumSlices',
    build: (A, rng) => ({
      args: [[rand(A, rng, N), rand(A, rng, N), rand(A, rng, N)], rand(A, rng, N)], names: ['slices', 'out'], kinds: ['slices', 'f32'], outputs: [1],
      group: ['slices', 'out'],
    }),
  },
  {
    kernel: 'f32ToBf16',
    build: (A, rng) => ({ args: [rand(A, rng, N, -100, 100), A.u16.alloc(N)], names: ['src', 'dst'], kinds: ['f32', 'u16'], outputs: [1], group: ['src', 'dst'] }),
  },
  {
    kernel: 'f32ToF16',
    build: (A, rng) => ({ args: [rand(A, rng, N, -100, 100), A.u16.alloc(N)], names: ['src', 'dst'], kinds: ['f32', 'u16'], outputs: [1], group: ['src', 'dst'] }),
  },
  {
    kernel: 'bf16ToF32',
    build: (A, rng) => ({
      args: [A.u16.alloc(N, Array.from({ length: N }, () => rng.int(0, 0x7f7f))), rand(A, rng, N)], names: ['src', 'dst'], kinds: ['u16', 'f32'],
      outputs: [1], group: ['src', 'dst'],
    }),
  },
  {
    kernel: 'f16ToF32',
    build: (A, rng) => ({
      args: [A.u16.alloc(N, Array.from({ length: N }, () => rng.int(0, 0x7bff))), rand(A, rng, N)], names: ['src', 'dst'], kinds: ['u16', 'f32'],
      outputs: [1], group: ['src', 'dst'],
    }),
  },
  {
    kernel: 'sgdUpdate',
    build: (A, rng) => ({
      args: [{ lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 1e-4, nesterov: true, firstStep: false }, rand(A, rng, N), rand(A, rng, N), rand(A, rng, N)],
      names: ['o', 'params', 'grads', 'momentumBuf'], kinds: ['value', 'f32', 'f32', 'f32'], outputs: [1, 3], group: ['params', 'grads', 'momentumBuf'],
    }),
  },
  {
    kernel: 'adamUpdate',
    build: (A, rng) => {
      const o = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 3 };
      const args = [o, rand(A, rng, N), rand(A, rng, N), rand(A, rng, N), rand(A, rng, N, 0, 1)];
      return {
        args, names: ['o', 'params', 'grads', 'm', 'v'], kinds: ['value', 'f32', 'f32', 'f32', 'f32'], outputs: [1, 3, 4],
        group: ['params', 'grads', 'm', 'v'],
        mutations: [
          { label: 'step = 0 (steps are 1-based)', args: withArg(args, 0, { ...o, step: 0 }), names: ['step'] },
          { label: 'step = -1', args: withArg(args, 0, { ...o, step: -1 }), names: ['step'] },
        ],
      };
    },
  },
];

// ---------------------------------------------------------------------------------------

function copyArg(v: unknown): unknown {
  if (v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint16Array) return v.slice();
  if (Array.isArray(v)) return v.map(copyArg);
  return v;
}

function wrongTypes(kind: Kind, len: number): [string, unknown][] {
  switch (kind) {
    case 'f32':
      return [['a Float64Array', new Float64Array(len)], ['an Int32Array', new Int32Array(len)], ['a plain array', new Array<number>(len).fill(0)], ['null', null]];
    case 'f32?':
      return [['a Float64Array', new Float64Array(len)], ['a plain array', new Array<number>(len).fill(0)]];
    case 'i32':
      return [['a Float32Array', new Float32Array(len)], ['a plain array', new Array<number>(len).fill(0)]];
    case 'u16':
      return [['a Float32Array', new Float32Array(len)], ['a Uint8Array', new Uint8Array(len)], ['a plain array', new Array<number>(len).fill(0)]];
    default:
      return [];
  }
}

async function runSpec(t: Tap, be: Backend, spec: Spec, rng: Rng): Promise<void> {
  const A: Arenas = { f32: Arena.f32(1 << 14, 3), i32: Arena.i32(1 << 10, 3), u16: Arena.u16(1 << 10, 3) };
  const call = spec.build(A, rng);
  const fn = be[spec.kernel] as unknown as (...args: unknown[]) => unknown;
  const invoke = (args: unknown[]) => fn.apply(be, args);
  const snapAll = () => [A.f32.snapshot(), A.i32.snapshot(), A.u16.snapshot()] as const;
  const changed = (snap: ReturnType<typeof snapAll>, allowed: unknown[] = []) => {
    const of = <T extends Float32Array | Int32Array | Uint16Array>(ctor: new (n: number) => T) =>
      allowed.filter((v): v is T => v instanceof ctor);
    return [
      ...A.f32.changedOutside(snap[0] as Uint32Array, of(Float32Array).filter((v) => v.buffer === A.f32.buf.buffer)).map((i) => `f32[${i}]`),
      ...A.i32.changedOutside(snap[1] as Int32Array, of(Int32Array).filter((v) => v.buffer === A.i32.buf.buffer)).map((i) => `i32[${i}]`),
      ...A.u16.changedOutside(snap[2] as Uint16Array, of(Uint16Array).filter((v) => v.buffer === A.u16.buf.buffer)).map((i) => `u16[${i}]`),
    ];
  };
  const accept = (name: string) => (call.group?.includes(name) ? call.group : [name]);

  // 1. a valid call on views: nothing written outside the outputs, same result as fresh arrays
  const fresh = call.args.map(copyArg);
  let snap = snapAll();
  const err = await caught(() => invoke(call.args));
  t.equal(err, undefined, 'valid call on subarray views succeeds' + (err ? `: ${(err as Error).message}` : ''));
  const outViews = call.outputs.map((i) => call.args[i]);
  t.same(changed(snap, outViews), [], 'valid call writes nothing outside its outputs (guards and inputs intact)');
  await caught(() => invoke(fresh));
  for (const i of call.outputs) {
    const got = call.args[i] as Float32Array | Int32Array | Uint16Array;
    const want = fresh[i] as Float32Array | Int32Array | Uint16Array;
    if (got instanceof Float32Array) close(t, got, want, `output ${call.names[i]} on views equals output on fresh arrays`, 1e-5);
    else t.same([...got], [...want], `output ${call.names[i]} on views equals output on fresh arrays`);
  }

  // 2. wrong types
  for (let i = 0; i < call.args.length; i++) {
    const kind = call.kinds[i]!;
    const name = call.names[i]!;
    const len = (call.args[i] as { length?: number } | null)?.length ?? 0;
    for (const [what, v] of wrongTypes(kind, len)) {
      snap = snapAll();
      await expectError(t, () => invoke(withArg(call.args, i, v)), TypeError, [name], `${name} as ${what}`);
      t.same(changed(snap), [], `${name} as ${what}: nothing written`);
    }
    if (kind === 'slices') {
      const slices = call.args[i] as Float32Array[];
      for (const [what, v] of [
        ['a slice that is a Float64Array', [slices[0], new Float64Array(N), slices[2]]],
        ['a slice that is a plain array', [slices[0], new Array<number>(N).fill(1), slices[2]]],
        ['a Float32Array instead of an array of slices', slices[0]],
      ] as [string, unknown][]) {
        snap = snapAll();
        await expectError(t, () => invoke(withArg(call.args, i, v)), TypeError, [name], `${name}: ${what}`);
        t.same(changed(snap), [], `${name}: ${what}: nothing written`);
      }
    }
  }

  // 3. wrong lengths (the output one element too short is the guard-value case)
  for (let i = 0; i < call.args.length; i++) {
    const kind = call.kinds[i]!;
    const name = call.names[i]!;
    const v = call.args[i];
    if (kind === 'slices') {
      const slices = v as Float32Array[];
      snap = snapAll();
      await expectError(t, () => invoke(withArg(call.args, i, [slices[0], A.f32.resize(slices[1]!, -1), slices[2]])), RangeError,
        accept(name), `${name}: one slice one element too short`);
      t.same(changed(snap), [], `${name}: one slice too short: nothing written`);
      continue;
    }
    if (!(v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint16Array)) continue;
    const arena = (v instanceof Float32Array ? A.f32 : v instanceof Int32Array ? A.i32 : A.u16) as Arena<typeof v>;
    const role = call.outputs.includes(i) ? 'output' : 'input';
    const deltas = call.strided?.includes(name) ? [-1] : [-1, 1];
    for (const d of deltas) {
      const what = `${name} (${role}) one element too ${d < 0 ? 'short' : 'long'}`;
      snap = snapAll();
      await expectError(t, () => invoke(withArg(call.args, i, arena.resize(v, d))), RangeError, accept(name), what);
      t.same(changed(snap), [], `${what}: nothing in any buffer changed`);
    }
  }

  // 4. bad sizes and shape fields
  for (const mu of call.mutations ?? []) {
    snap = snapAll();
    await expectError(t, () => invoke(mu.args), RangeError, mu.names, mu.label);
    t.same(changed(snap), [], `${mu.label}: nothing written`);
  }

  // 5. bad data that would address memory
  for (const mu of call.badData ?? []) {
    snap = snapAll();
    await expectError(t, () => invoke(mu.args), RangeError, mu.names, mu.label);
    t.same(changed(snap, outViews), [], `${mu.label}: nothing written outside the outputs`);
  }
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(12);
  for (const spec of specs) {
    t.test(spec.label ?? spec.kernel, async (t) => {
      await runSpec(t, be, spec, rng);
      t.end();
    });
  }
});
