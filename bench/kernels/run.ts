// bench/kernels: GEMM and convolution GFLOP/s of the native backend, per BLAS provider and
// thread count, beside OpenBLAS's cblas_sgemm called directly from C in the same run; the
// deterministic mode's cost per provider, and the built-in GEMM's micro-kernels and blocking
// beside OpenBLAS (native_modes.ts, paired across processes); then Squall's wasm backend
// (plain and relaxed SIMD) beside TensorFlow.js's wasm backend.
//   node dist/bench/kernels/run.js [--quick] [--native-only | --wasm-only | --sections LIST] [--out NAME]
// Sections: native, determinism, gemm-tuning, wasm (default: all; --native-only: the first
// three). Results: bench/results/kernels.{json,md} for all sections, kernels-native or
// kernels-wasm for those flags, kernels-<sections> otherwise (or --out NAME).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, Conv2dShape } from '../../engine/backends/backend.js';
import { convOutputSize } from '../../engine/backends/backend.js';
import { loadNativeBackend, nativeModule } from '../../engine/backends/native.js';
import { machineRecord, markdownTable, median, repoRoot, timeAsync, timeSync, writeResults, type Cell } from '../common.js';
import { determinismSection, gemmTuningSection } from './native_modes.js';
import type { ConvRequest, GemmShape, PeerRequest, PeerResult } from './peer_request.js';

const quick = process.argv.includes('--quick');
const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const ALL_SECTIONS = ['native', 'determinism', 'gemm-tuning', 'wasm'];
const NATIVE_SECTIONS = ['native', 'determinism', 'gemm-tuning'];
const sections = argValue('sections')?.split(',') ??
  (process.argv.includes('--wasm-only') ? ['wasm'] : process.argv.includes('--native-only') ? NATIVE_SECTIONS : ALL_SECTIONS);
for (const x of sections) if (!ALL_SECTIONS.includes(x)) throw new Error(`unknown section '${x}'; choose from ${ALL_SECTIONS.join(', ')}`);
const same = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
const outName = argValue('out') ?? (same(sections, ALL_SECTIONS) ? 'kernels' : same(sections, NATIVE_SECTIONS) ? 'kernels-native'
  : `kernels-${sections.join('-')}`);
const runNative = sections.includes('native');
const runWasm = sections.includes('wasm');
const threadCounts = [1, 2];

const squareShapes: GemmShape[] = (quick ? [256, 1024] : [256, 512, 1024, 2048]).map((s) => ({ label: `${s}^3`, m: s, n: s, k: s }));
// im2col GEMMs of one image: M = outC, N = outH * outW, K = inC * kH * kW.
const im2colShapes: GemmShape[] = [
  { label: 'vgg16 conv3 (64x3136x576)', m: 64, n: 3136, k: 576 },
  { label: 'vgg16 conv3_x (256x3136x2304)', m: 256, n: 3136, k: 2304 },
  { label: 'vgg16 conv4_x (512x784x4608)', m: 512, n: 784, k: 4608 },
  { label: 'vgg16 conv5_x (512x196x4608)', m: 512, n: 196, k: 4608 },
  { label: 'inception conv2 3x3 (192x3136x576)', m: 192, n: 3136, k: 576 },
  { label: 'inception 3a 3x3 (128x784x864)', m: 128, n: 784, k: 864 },
  { label: 'inception 3a 5x5 (32x784x400)', m: 32, n: 784, k: 400 },
  { label: 'inception 3a 1x1 (64x784x192)', m: 64, n: 784, k: 192 },
];
const gemmShapes = quick ? [...squareShapes, im2colShapes[0]!] : [...squareShapes, ...im2colShapes];

interface ConvLayer { label: string; shape: Conv2dShape }
const conv = (label: string, batch: number, inC: number, hw: number, outC: number, k: number, pad: number): ConvLayer => ({
  label,
  shape: { batch, inC, inH: hw, inW: hw, outC, kH: k, kW: k, strideH: 1, strideW: 1, padH: pad, padW: pad, dilationH: 1, dilationW: 1, groups: 1 },
});
const convLayers: ConvLayer[] = [
  conv('vgg16-cifar conv 64->64 3x3 @32 b32', 32, 64, 32, 64, 3, 1),
  conv('vgg16 conv3 64->64 3x3 @56 b4', 4, 64, 56, 64, 3, 1),
  conv('vgg16 conv4 512->512 3x3 @28 b4', 4, 512, 28, 512, 3, 1),
  conv('inception 3a 3x3 96->128 @28 b8', 8, 96, 28, 128, 3, 1),
  conv('inception 3a 1x1 192->64 @28 b8', 8, 192, 28, 64, 1, 0),
];

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  return a;
}

function gemmGflops(backend: Backend, s: GemmShape): number {
  const a = rand(s.m * s.k);
  const b = rand(s.k * s.n);
  const c = new Float32Array(s.m * s.n);
  const t = timeSync(() => backend.sgemm(false, false, s.m, s.n, s.k, 1, a, s.k, b, s.n, 0, c, s.n));
  return (2 * s.m * s.n * s.k) / t.medianSeconds / 1e9;
}

/** OpenBLAS called directly from C, in a child whose environment has no OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE. */
function openblasReference(shapes: GemmShape[], threads: number): { core: string; gflops: Map<string, number> } | { error: string } {
  const src = join(repoRoot, 'bench/kernels/openblas_sgemm.c');
  const bin = join(repoRoot, 'build/bench/openblas_sgemm');
  const libDir = '/usr/lib/x86_64-linux-gnu/openblas-pthread';
  if (!existsSync(join(libDir, 'libopenblas.so.0'))) return { error: 'libopenblas0-pthread is not installed' };
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(repoRoot, 'build/bench'), { recursive: true });
    const r = spawnSync('cc', ['-O2', '-o', bin, src, `-L${libDir}`, '-l:libopenblas.so.0', `-Wl,-rpath,${libDir}`], { encoding: 'utf8' });
    if (r.status !== 0) return { error: `cc failed: ${r.stderr || r.error?.message}` };
  }
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const out = execFileSync(bin, [String(threads), ...shapes.flatMap((s) => [s.m, s.n, s.k].map(String))], { env, encoding: 'utf8' });
  const gflops = new Map<string, number>();
  let core = 'unknown';
  for (const [i, line] of out.trim().split('\n').entries()) {
    const r = JSON.parse(line) as { gflops: number; core: string };
    gflops.set(shapes[i]!.label, r.gflops);
    core = r.core;
  }
  return { core, gflops };
}

interface Section { json: Record<string, unknown>; md: string[] }

async function nativeSection(): Promise<Section> {
  const backend = loadNativeBackend();
  const mod = nativeModule();
  const startInfo = mod.info();
  const defaultProvider = startInfo.provider;
  const providers = startInfo.providers;
  console.log(`native backend: default BLAS ${startInfo.blas} (chosen by ${startInfo.selectedBy}); providers: ${providers.join(', ')}`);

  // GEMM: every provider x threads x shape, then the OpenBLAS reference at the same threads.
  const gemm: Record<string, unknown>[] = [];
  const reference: Record<string, unknown>[] = [];
  for (const threads of threadCounts) {
    backend.setThreads(threads);
    for (const provider of providers) {
      mod.selectBlas(provider);
      const blas = mod.info().blas;
      for (const s of gemmShapes) {
        const gflops = gemmGflops(backend, s);
        gemm.push({ provider, blas, threads, shape: s.label, m: s.m, n: s.n, k: s.k, gflops });
        console.log(`sgemm ${provider.padEnd(8)} ${threads}t ${s.label.padEnd(34)} ${gflops.toFixed(1)} GFLOP/s`);
      }
    }
    const ref = openblasReference(gemmShapes, threads);
    if ('error' in ref) {
      console.log(`OpenBLAS reference skipped: ${ref.error}`);
    } else {
      for (const s of gemmShapes) {
        reference.push({ threads, shape: s.label, core: ref.core, gflops: ref.gflops.get(s.label) });
        console.log(`sgemm OpenBLAS-direct (${ref.core}) ${threads}t ${s.label.padEnd(34)} ${ref.gflops.get(s.label)!.toFixed(1)} GFLOP/s`);
      }
    }
  }
  mod.selectBlas(defaultProvider);

  // Convolution with the default provider: forward, backward data, backward filter, and the
  // GEMM rate of the layer's own im2col shape for the ratio.
  const convResults: Record<string, unknown>[] = [];
  for (const threads of threadCounts) {
    backend.setThreads(threads);
    for (const layer of convLayers) {
      const s = layer.shape;
      const oh = convOutputSize(s.inH, s.kH, s.strideH, s.padH, s.dilationH);
      const ow = convOutputSize(s.inW, s.kW, s.strideW, s.padW, s.dilationW);
      const x = rand(s.batch * s.inC * s.inH * s.inW);
      const w = rand(s.outC * s.inC * s.kH * s.kW);
      const bias = rand(s.outC);
      const y = new Float32Array(s.batch * s.outC * oh * ow);
      const gx = new Float32Array(x.length);
      const gw = new Float32Array(w.length);
      const gb = new Float32Array(s.outC);
      const flop = 2 * s.batch * s.outC * oh * ow * s.inC * s.kH * s.kW;
      const fwd = timeSync(() => backend.conv2dForward(s, x, w, bias, y));
      const bwdData = timeSync(() => backend.conv2dBackwardData(s, y, w, gx));
      const bwdFilter = timeSync(() => backend.conv2dBackwardFilter(s, x, y, gw, gb));
      const fwdAsync = await timeAsync(() => backend.conv2dForwardAsync(s, x, w, bias, y));
      const gemmShape = { label: layer.label, m: s.outC, n: oh * ow, k: s.inC * s.kH * s.kW };
      const gemmRate = gemmGflops(backend, gemmShape);
      const r = {
        layer: layer.label, threads, provider: defaultProvider,
        forwardGflops: flop / fwd.medianSeconds / 1e9,
        forwardAsyncGflops: flop / fwdAsync.medianSeconds / 1e9,
        backwardDataGflops: flop / bwdData.medianSeconds / 1e9,
        backwardFilterGflops: flop / bwdFilter.medianSeconds / 1e9,
        im2colGemmGflops: gemmRate,
      };
      convResults.push({ ...r, forwardToGemm: r.forwardGflops / gemmRate });
      console.log(`conv ${threads}t ${layer.label.padEnd(40)} fwd ${r.forwardGflops.toFixed(1)} (gemm ${gemmRate.toFixed(1)}, ${(100 * r.forwardGflops / gemmRate).toFixed(0)}%) bwd-data ${r.backwardDataGflops.toFixed(1)} bwd-filter ${r.backwardFilterGflops.toFixed(1)} GFLOP/s`);
    }
  }

  // Per-call overhead: an empty native call with one typed array, and a 16-element scale.
  const tiny = new Float32Array(16);
  const calls = 200_000;
  const overhead = (fn: () => void): number => timeSync(() => { for (let i = 0; i < calls; i++) fn(); }, 0.3, 5).medianSeconds / calls * 1e9;
  const noopNs = overhead(() => mod.noop(tiny));
  const scaleNs = overhead(() => backend.scale(tiny, 1.0001, tiny));
  console.log(`per-call overhead: noop ${noopNs.toFixed(0)} ns, scale(16) ${scaleNs.toFixed(0)} ns`);

  // Ratios the issue asks for, at 1024^3.
  const at = (provider: string, threads: number): number | undefined =>
    (gemm.find((g) => g.provider === provider && g.threads === threads && g.shape === '1024^3')?.gflops as number | undefined);
  const ref = (threads: number): number | undefined => reference.find((r) => r.threads === threads && r.shape === '1024^3')?.gflops as number | undefined;
  const ratio = (a?: number, b?: number): number | null => (a !== undefined && b !== undefined ? a / b : null);
  const summary = {
    defaultProvider,
    defaultVsOpenblas2t: ratio(at(defaultProvider, 2), ref(2)),
    builtin1tVsOpenblas1t: ratio(at('builtin', 1), ref(1)),
    vggConvForwardToGemm: convResults.filter((c) => String(c.layer).startsWith('vgg')).map((c) => ({ layer: c.layer, threads: c.threads, ratio: c.forwardToGemm })),
  };

  const refCore = (reference[0]?.core as string | undefined) ?? 'n/a';
  const gemmRows: Cell[][] = [];
  for (const s of gemmShapes) {
    for (const threads of threadCounts) {
      const row: Cell[] = [s.label, threads];
      for (const p of providers) row.push((gemm.find((g) => g.provider === p && g.threads === threads && g.shape === s.label)?.gflops as number) ?? null);
      const r = reference.find((x) => x.threads === threads && x.shape === s.label)?.gflops as number | undefined;
      row.push(r ?? null);
      const d = gemm.find((g) => g.provider === defaultProvider && g.threads === threads && g.shape === s.label)?.gflops as number | undefined;
      row.push(d !== undefined && r !== undefined ? `${(d / r).toFixed(2)}x` : null);
      gemmRows.push(row);
    }
  }
  const md = [
    `Squall's default provider: **${defaultProvider}** (${startInfo.blas}, chosen by ${startInfo.selectedBy}). ` +
      `Reference: OpenBLAS cblas_sgemm called from C with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (kernel: ${refCore}). Medians, GFLOP/s.`,
    '',
    '## Native: sgemm (row-major NN)',
    '',
    markdownTable(['shape', 'threads', ...providers.map((p) => `squall ${p}`), `OpenBLAS direct (${refCore})`, 'default / OpenBLAS'], gemmRows),
    '',
    '## Native: convolution (default provider)',
    '',
    markdownTable(['layer', 'threads', 'forward', 'forward async', 'backward data', 'backward filter', 'im2col GEMM', 'forward / GEMM'],
      convResults.map((c) => [c.layer as string, c.threads as number, c.forwardGflops as number, c.forwardAsyncGflops as number,
        c.backwardDataGflops as number, c.backwardFilterGflops as number, c.im2colGemmGflops as number, `${((c.forwardToGemm as number) * 100).toFixed(0)}%`])),
    '',
    '## Native: summary',
    '',
    `- default provider at 2 threads, 1024^3: ${summary.defaultVsOpenblas2t?.toFixed(2) ?? 'n/a'}x OpenBLAS (${refCore}) at 2 threads`,
    `- built-in GEMM at 1 thread, 1024^3: ${summary.builtin1tVsOpenblas1t?.toFixed(2) ?? 'n/a'}x OpenBLAS at 1 thread`,
    ...summary.vggConvForwardToGemm.map((v) => `- ${v.layer}, ${v.threads}t: conv forward at ${((v.ratio as number) * 100).toFixed(0)}% of its im2col GEMM rate`),
    `- per-call overhead: empty native call ${noopNs.toFixed(0)} ns; scale of 16 floats ${scaleNs.toFixed(0)} ns`,
  ];
  return { json: { info: startInfo, gemm, openblasReference: reference, conv: convResults, overheadNs: { noop: noopNs, scale16: scaleNs }, summary }, md };
}

// ---- WebAssembly: Squall's wasm backend beside TensorFlow.js's wasm backend ----

const wasmGemm: GemmShape[] = [squareShapes.find((x) => x.m === 512) ?? { label: '512^3', m: 512, n: 512, k: 512 },
  squareShapes.find((x) => x.m === 1024)!, im2colShapes[0]!, im2colShapes[5]!];
const toConvRequest = (l: ConvLayer): ConvRequest =>
  ({ label: l.label, batch: l.shape.batch, inC: l.shape.inC, hw: l.shape.inH, outC: l.shape.outC, k: l.shape.kH, pad: l.shape.padH });
const wasmConv: ConvRequest[] = [convLayers[1]!, convLayers[0]!, convLayers[3]!].map(toConvRequest);

const SQUALL_PLAIN = 'squall wasm (plain)';
const SQUALL_RELAXED = 'squall wasm (relaxed)';
const TFJS = 'tfjs-backend-wasm';
const wasmImpls = [SQUALL_PLAIN, SQUALL_RELAXED, TFJS];

/** One side-by-side child (wasm_side_by_side.js) at one thread count: its JSON result lines, or its error. */
function runSideBySide(request: PeerRequest): { results: PeerResult[]; error?: string } {
  const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', join(repoRoot, 'dist/bench/kernels/wasm_side_by_side.js'), JSON.stringify(request)],
    { encoding: 'utf8', env: { ...process.env, ...(quick ? { BENCH_WASM_SECONDS: '1' } : {}) }, maxBuffer: 16 << 20, timeout: 30 * 60_000 });
  const results = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as PeerResult).filter((x) => x.kind !== 'info');
  for (const x of results) {
    if (x.kind === 'scaling') {
      console.log(`${String(x.impl).padEnd(22)} gemm ${x.label} ${x.threads}t / 1t: ${(x.pairedSpeedup as number).toFixed(2)}x (paired)`);
      continue;
    }
    console.log(`${String(x.impl).padEnd(22)} ${x.kind} ${x.threads}t ${String(x.label).padEnd(36)} ${x.gflops!.toFixed(1)} GFLOP/s` +
      (x.impl === TFJS ? '' : `  (${(x.pairedRatioToPeer as number).toFixed(2)}x tfjs, paired)`));
  }
  if (r.status !== 0) return { results, error: `exit ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  return { results };
}

function wasmSection(): Section {
  // Each child process measures all three implementations call by call, interleaved (see
  // wasm_side_by_side.ts); the processes are repeated and the medians over them reported.
  const rounds = quick ? 1 : 2;
  const all: PeerResult[] = [];
  const errors: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const threads of threadCounts) {
      const scaling = threads === 1 ? { scaling: { threads: 2, gemm: wasmGemm.filter((g) => g.label === '1024^3') } } : {};
      const r = runSideBySide({ threads: [threads], gemm: wasmGemm, conv: wasmConv, ...scaling });
      all.push(...r.results);
      if (r.error) errors.push(`${threads} thread(s), round ${round + 1}: ${r.error}`);
    }
  }
  for (const e of errors) console.log(`wasm side by side: ${e}`);
  const pick = (impl: string, kind: string, label: string, threads: number): PeerResult[] =>
    all.filter((x) => x.impl === impl && x.kind === kind && x.label === label && x.threads === threads);
  const rate = (impl: string, kind: string, label: string, threads: number): number | undefined => {
    const xs = pick(impl, kind, label, threads);
    return xs.length ? median(xs.map((x) => x.gflops!)) : undefined;
  };
  const paired = (impl: string, kind: string, label: string, threads: number): number | undefined => {
    const xs = pick(impl, kind, label, threads);
    return xs.length ? median(xs.map((x) => x.pairedRatioToPeer as number)) : undefined;
  };
  const fmt = (x?: number): string | null => (x === undefined ? null : `${x.toFixed(2)}x`);
  const rows = (kind: string, labels: string[]): Cell[][] => labels.flatMap((label) => threadCounts.map((threads) => {
    const [plain, relaxed, tf] = wasmImpls.map((i) => rate(i, kind, label, threads));
    return [label, threads, plain ?? null, relaxed ?? null, tf ?? null,
      fmt(paired(SQUALL_PLAIN, kind, label, threads)), fmt(paired(SQUALL_RELAXED, kind, label, threads))] as Cell[];
  }));
  const headers = ['shape', 'threads', ...wasmImpls, 'plain / tfjs', 'relaxed / tfjs'];
  const summary: Record<string, number | undefined> = {};
  for (const [simd, impl] of [['plain', SQUALL_PLAIN], ['relaxed', SQUALL_RELAXED]] as const) {
    for (const s of wasmGemm.slice(0, 3)) summary[`${simd} gemm ${s.label} 1t / tfjs 1t`] = paired(impl, 'gemm', s.label, 1);
    const speedups = pick(impl, 'scaling', '1024^3', 2).map((x) => x.pairedSpeedup as number);
    summary[`${simd} gemm 1024^3 2t / own 1t`] = speedups.length ? median(speedups) : undefined;
    for (const threads of threadCounts) {
      summary[`${simd} conv ${wasmConv[0]!.label} ${threads}t / tfjs ${threads}t`] = paired(impl, 'conv', wasmConv[0]!.label, threads);
    }
  }
  const md = [
    '## WebAssembly: sgemm, resident arrays',
    '',
    markdownTable(headers, rows('gemm', wasmGemm.map((s) => s.label))),
    '',
    `GFLOP/s: median over ${rounds} process(es) per thread count of each process's median. Ratios to tfjs are paired: ` +
      'within one process the three implementations are called in turn, round after round (rotating order), the ratio is ' +
      'taken per round, and the median over rounds and processes is shown, so a slow moment of this shared machine falls ' +
      'on both sides of a ratio. Thread scaling (summary, "2t / own 1t") is paired the same way: one backend called at one ' +
      'and at two threads in turn, in the one-thread process (where TensorFlow.js runs no thread pool of its own).',
    '',
    '## WebAssembly: convolution forward (NCHW in Squall, NHWC in TensorFlow.js)',
    '',
    markdownTable(headers, rows('conv', wasmConv.map((c) => c.label))),
    '',
    '## WebAssembly: summary',
    '',
    ...Object.entries(summary).map(([k, v]) => `- ${k}: ${v === undefined ? 'n/a' : `${v.toFixed(2)}x`}`),
    ...errors.map((e) => `- error, ${e}`),
    '',
    'Plain SIMD is what Node 20 runs by default; relaxed SIMD (f32x4.relaxed_madd: FMA) is used when the runtime ' +
      'accepts it (Node 20: --experimental-wasm-relaxed-simd, which the squall command turns on; later Node versions ' +
      'accept it by default). TensorFlow.js 4.22 runs XNNPACK with SIMD (its wasm build uses no relaxed SIMD); its ' +
      'thread pool is fixed when the backend starts, so each thread count is a separate process.',
  ];
  return { json: { results: all, summary, errors }, md };
}

function ratioNum(a?: number, b?: number): number | undefined {
  return a !== undefined && b !== undefined ? a / b : undefined;
}

async function main(): Promise<void> {
  const json: Record<string, unknown> = { machine: machineRecord() };
  const md = ['# bench/kernels', '',
    `Command: \`npm run bench:kernels\` (node dist/bench/kernels/run.js${process.argv.slice(2).map((a) => ` ${a}`).join('')}). ` +
      `${JSON.stringify(machineRecord())}`, ''];
  if (runNative) {
    const n = await nativeSection();
    json.native = n.json;
    md.push(...n.md, '');
  }
  if (sections.includes('determinism')) {
    const d = await determinismSection(quick, threadCounts);
    json.determinism = d.json;
    md.push(...d.md, '');
  }
  if (sections.includes('gemm-tuning')) {
    const g = await gemmTuningSection(quick);
    json.gemmTuning = g.json;
    md.push(...g.md, '');
  }
  if (runWasm) {
    const w = wasmSection();
    json.wasm = w.json;
    md.push(...w.md, '');
  }
  writeResults(outName, json, md.join('\n'));
}

await main();
