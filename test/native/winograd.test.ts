// The native backend's Winograd F(2x2, 3x3) convolution (crates/squall-native/src/kernels/
// winograd.rs), forward and backward data, on VGG-like 3x3 layers (and odd sizes, padding
// 0-2, few channels) against the float64 reference at the conformance tolerance, forced on
// with setConvAlgorithm('winograd') and compared with forced im2col: on 1 and 2 threads
// (bit-identical), sync and async (bit-identical). 'auto' must pick Winograd exactly where
// the module's rule says so (3x3 stride 1 summing >= 8 channels over >= 32 output tiles of
// planes at least 4x4),
// ineligible shapes run im2col even when Winograd is forced, and SQUALL_NATIVE_CONV must
// select the algorithm at start-up (checked in child processes, which run this file again).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Backend, Conv2dShape } from '../../engine/backends/backend.js';
import { loadNativeBackend, nativeModule, type NativeModule } from '../../engine/backends/native.js';
import * as ref from '../conformance/reference.js';
import { Rng, TOL, maxRelErr, randArray } from '../conformance/util.js';

type Algo = 'auto' | 'im2col' | 'winograd';

function shape(p: Partial<Conv2dShape>): Conv2dShape {
  return {
    batch: 1, inC: 1, inH: 3, inW: 3, outC: 1, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1,
    dilationH: 1, dilationW: 1, groups: 1, ...p,
  };
}

const label = (s: Conv2dShape): string =>
  `${s.batch}x${s.inC}x${s.inH}x${s.inW} -> ${s.outC} pad ${s.padH},${s.padW}` +
  (s.strideH !== 1 || s.dilationH !== 1 || s.groups !== 1 || s.kH !== 3 ? ` k${s.kH} stride ${s.strideH} dil ${s.dilationH} groups ${s.groups}` : '');

// VGG-like layers (same padding, channel counts of VGG's stages, small images so the f64
// reference stays quick) and odd cases: odd sizes (partial tiles), padding 0 and 2, unequal
// padding, few channels, outC not a multiple of anything, rows of one image over several chunks.
const shapes: Conv2dShape[] = [
  shape({ batch: 2, inC: 64, inH: 16, inW: 16, outC: 64 }),
  shape({ batch: 4, inC: 128, inH: 8, inW: 8, outC: 128 }),
  shape({ batch: 8, inC: 256, inH: 4, inW: 4, outC: 256 }),
  shape({ batch: 3, inC: 64, inH: 9, inW: 7, outC: 128 }),
  shape({ batch: 1, inC: 32, inH: 13, inW: 11, outC: 70, padH: 0, padW: 0 }),
  shape({ batch: 2, inC: 8, inH: 6, inW: 7, outC: 5, padH: 2, padW: 0 }),
  shape({ batch: 1, inC: 3, inH: 12, inW: 10, outC: 17 }),
  shape({ batch: 1, inC: 64, inH: 70, inW: 61, outC: 64 }),
];

interface Data { x: Float32Array; w: Float32Array; b: Float32Array; go: Float32Array; y: Float64Array; yNoBias: Float64Array; gi: Float64Array }
const cache = new Map<Conv2dShape, Data>();
function data(s: Conv2dShape, seed = 4242): Data {
  let d = cache.get(s);
  if (!d) {
    const rng = new Rng(seed);
    const z = ref.convSizes(s);
    const x = randArray(rng, z.input);
    const w = randArray(rng, z.weight);
    const b = randArray(rng, s.outC);
    const go = randArray(rng, z.output);
    d = { x, w, b, go, y: ref.conv2dForward(s, x, w, b), yNoBias: ref.conv2dForward(s, x, w, null), gi: ref.conv2dBackwardData(s, go, w) };
    cache.set(s, d);
  }
  return d;
}

const sameBits = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
const tiles = (h: number, w: number, batch: number): number => batch * Math.ceil(h / 2) * Math.ceil(w / 2);

function forward(be: Backend, s: Conv2dShape, bias: boolean): Float32Array {
  const d = data(s);
  const y = new Float32Array(ref.convSizes(s).output).fill(NaN);
  be.conv2dForward(s, d.x, d.w, bias ? d.b : null, y);
  return y;
}
function backwardData(be: Backend, s: Conv2dShape): Float32Array {
  const d = data(s);
  const gi = new Float32Array(d.x.length).fill(NaN);
  be.conv2dBackwardData(s, d.go, d.w, gi);
  return gi;
}

// ---- child mode: report the algorithm SQUALL_NATIVE_CONV selected and one result --------------
if (process.env.SQUALL_NATIVE_WINOGRAD_CHILD === '1') {
  const m = nativeModule();
  const be = loadNativeBackend();
  const forced = process.env.SQUALL_NATIVE_WINOGRAD_FORCE;
  if (forced) m.setConvAlgorithm(forced);
  const s = shapes[3]!;
  const y = forward(be, s, true);
  const gi = backwardData(be, s);
  const hex = (a: Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
  const info = m.info();
  console.log(`CHILD ${JSON.stringify({ algo: info.convAlgorithm, get: m.getConvAlgorithm(), notes: info.notes, y: hex(y), gi: hex(gi) })}`);
} else {
  let m: NativeModule | undefined;
  let be: Backend | undefined;
  let why = '';
  try {
    be = loadNativeBackend();
    m = nativeModule();
  } catch (err) {
    why = (err as Error).message;
  }
  if (!m || !be) {
    t.pass(`skipped: the native backend is not available (${why})`);
  } else {
    run(m, be);
  }
}

function run(m: NativeModule, be: Backend): void {
  const initialAlgo = m.getConvAlgorithm();
  const initialThreads = be.getThreads();
  t.teardown(() => {
    m.setConvAlgorithm(initialAlgo);
    be.setThreads(initialThreads);
  });

  t.test('forced Winograd and forced im2col against the float64 reference, 1 and 2 threads, sync and async', async (t) => {
    let worst = 0;
    for (const s of shapes) {
      const d = data(s);
      const results: Record<string, Float32Array> = {};
      for (const algo of ['winograd', 'im2col'] as const) {
        m.setConvAlgorithm(algo);
        t.equal(m.getConvAlgorithm(), algo);
        for (const threads of [1, 2]) {
          be.setThreads(threads);
          for (const bias of [true, false]) {
            const y = forward(be, s, bias);
            const err = maxRelErr(y, bias ? d.y : d.yNoBias);
            if (algo === 'winograd') worst = Math.max(worst, err);
            t.ok(err <= TOL, `${label(s)} ${algo} forward ${bias ? 'bias' : 'no bias'} ${threads}t: error ${err.toExponential(2)} <= ${TOL}`);
            if (bias) results[`${algo} y ${threads}`] = y;
          }
          const gi = backwardData(be, s);
          const err = maxRelErr(gi, d.gi);
          if (algo === 'winograd') worst = Math.max(worst, err);
          t.ok(err <= TOL, `${label(s)} ${algo} backward data ${threads}t: error ${err.toExponential(2)} <= ${TOL}`);
          results[`${algo} gi ${threads}`] = gi;
        }
        t.ok(sameBits(results[`${algo} y 1`]!, results[`${algo} y 2`]!), `${label(s)} ${algo} forward: 1 and 2 threads bit-identical`);
        t.ok(sameBits(results[`${algo} gi 1`]!, results[`${algo} gi 2`]!), `${label(s)} ${algo} backward data: 1 and 2 threads bit-identical`);
        const ya = new Float32Array(d.y.length);
        await be.conv2dForwardAsync(s, d.x, d.w, d.b, ya);
        const ga = new Float32Array(d.x.length);
        await be.conv2dBackwardDataAsync(s, d.go, d.w, ga);
        t.ok(sameBits(ya, results[`${algo} y 2`]!) && sameBits(ga, results[`${algo} gi 2`]!), `${label(s)} ${algo}: async bit-identical to sync`);
      }
      // The two algorithms round differently: the switch takes effect.
      t.notOk(sameBits(results['winograd y 2']!, results['im2col y 2']!), `${label(s)}: Winograd and im2col forward differ in rounding`);
      t.notOk(sameBits(results['winograd gi 2']!, results['im2col gi 2']!), `${label(s)}: Winograd and im2col backward data differ in rounding`);
    }
    t.comment(`worst Winograd relative error ${worst.toExponential(2)}`);
  });

  t.test("'auto' picks Winograd exactly where the rule says; ineligible shapes run im2col when Winograd is forced", (t) => {
    const run = (s: Conv2dShape, algo: Algo): [Float32Array, Float32Array] => {
      m.setConvAlgorithm(algo);
      return [forward(be, s, true), backwardData(be, s)];
    };
    const autoShapes = [
      ...shapes,
      shape({ batch: 1, inC: 16, inH: 6, inW: 6, outC: 16 }), // 9 tiles
      shape({ batch: 4, inC: 16, inH: 6, inW: 6, outC: 4 }), // 36 tiles, backward sums over 4 channels
      shape({ batch: 4, inC: 4, inH: 6, inW: 6, outC: 16 }), // forward sums over 4 channels
      shape({ batch: 32, inC: 512, inH: 2, inW: 2, outC: 8 }), // 32 tiles of 2x2 outputs (small planes)
    ];
    for (const s of autoShapes) {
      const z = ref.convSizes(s);
      const fwdPays = s.inC >= 8 && tiles(z.outH, z.outW, s.batch) >= 32 && z.outH >= 4 && z.outW >= 4;
      const bwdPays = s.outC >= 8 && tiles(s.inH, s.inW, s.batch) >= 32 && s.inH >= 4 && s.inW >= 4;
      const [ya, ga] = run(s, 'auto');
      const [yf] = run(s, fwdPays ? 'winograd' : 'im2col');
      const [, gf] = run(s, bwdPays ? 'winograd' : 'im2col');
      t.ok(sameBits(ya, yf), `${label(s)}: auto forward runs ${fwdPays ? 'Winograd' : 'im2col'}`);
      t.ok(sameBits(ga, gf), `${label(s)}: auto backward data runs ${bwdPays ? 'Winograd' : 'im2col'}`);
    }
    for (const s of [
      shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, strideH: 2, strideW: 2 }),
      shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, dilationH: 2, dilationW: 2, padH: 2, padW: 2 }),
      shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, groups: 2 }),
      shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, kH: 5, kW: 5, padH: 2, padW: 2 }),
      shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, kH: 3, kW: 1, padW: 0 }),
    ]) {
      const [yw, gw] = run(s, 'winograd');
      const [yi, gi] = run(s, 'im2col');
      t.ok(sameBits(yw, yi) && sameBits(gw, gi), `${label(s)}: not eligible, im2col either way`);
      t.ok(maxRelErr(yw, data(s).y) <= TOL && maxRelErr(gw, data(s).gi) <= TOL, `${label(s)}: right`);
    }
    t.throws(() => m.setConvAlgorithm('fft'), RangeError, 'an unknown algorithm is refused');
    t.equal(m.getConvAlgorithm(), 'im2col', 'and the setting is unchanged');
    m.setConvAlgorithm('auto');
    t.match(be.info().details['conv forward, backward data'], /Winograd/, 'info() describes the algorithm');
    t.end();
  });

  t.test('SQUALL_NATIVE_CONV selects the algorithm at start-up (child processes)', (t) => {
    // Bits are compared across processes, where buffers sit at other alignments and the BLAS
    // provider may be another one (calibration) or take another code path (MKL): only the
    // deterministic mode promises equal bits there, so every child runs in it, and the
    // references come from children that force the algorithm through setConvAlgorithm.
    const child = (env: Record<string, string>): { algo: string; get: string; notes: string[]; y: string; gi: string } | string => {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
        encoding: 'utf8', timeout: 120_000,
        env: { ...process.env, SQUALL_DETERMINISTIC: '1', SQUALL_NATIVE_WINOGRAD_CHILD: '1', ...env },
      });
      const line = r.stdout.split('\n').find((l) => l.startsWith('CHILD '));
      return line ? JSON.parse(line.slice(6)) : `the child printed no result (status ${r.status}): ${r.stderr.slice(-500)}`;
    };
    const inProcess: Record<string, { y: string; gi: string }> = {};
    for (const algo of ['winograd', 'im2col'] as const) {
      const c = child({ SQUALL_NATIVE_WINOGRAD_FORCE: algo });
      if (typeof c === 'string') {
        t.fail(`setConvAlgorithm('${algo}') in a child: ${c}`);
        return t.end();
      }
      inProcess[algo] = c;
    }
    t.not(inProcess.winograd!.y, inProcess.im2col!.y, 'the two forced algorithms give different bits (so the comparison below can tell them apart)');
    for (const env of ['winograd', 'im2col', 'auto', 'bogus']) {
      const c = child({ SQUALL_NATIVE_CONV: env });
      if (typeof c === 'string') {
        t.fail(`SQUALL_NATIVE_CONV=${env}: ${c}`);
        continue;
      }
      const want = env === 'bogus' ? 'auto' : env;
      t.equal(c.algo, want, `SQUALL_NATIVE_CONV=${env}: info().convAlgorithm is ${want}`);
      t.equal(c.get, want, `SQUALL_NATIVE_CONV=${env}: getConvAlgorithm() is ${want}`);
      // shapes[3] is eligible and pays: auto runs Winograd.
      const runs = want === 'im2col' ? 'im2col' : 'winograd';
      t.ok(c.y === inProcess[runs]!.y && c.gi === inProcess[runs]!.gi, `SQUALL_NATIVE_CONV=${env}: results bit-identical to ${runs} forced by setConvAlgorithm`);
      t.equal(c.notes.some((n) => /SQUALL_NATIVE_CONV='bogus'/.test(n)), env === 'bogus', `SQUALL_NATIVE_CONV=${env}: ${env === 'bogus' ? 'a note names the bad value' : 'no note'}`);
    }
    t.end();
  });
}
