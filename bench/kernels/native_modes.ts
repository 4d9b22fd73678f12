// bench/kernels sections whose configurations differ per process, measured in paired rounds
// (paired.ts):
// - determinism: the deterministic mode's cost against the default mode, per BLAS provider
//   and thread count, on sgemm and on a VGG-like convolution's forward and filter gradient;
// - gemm-tuning: the built-in GEMM with each micro-kernel this CPU runs and a few blockings
//   around the default, at one thread, beside OpenBLAS with OPENBLAS_CORETYPE as the
//   environment set it and with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset in that one
//   child command (recording the kernel OpenBLAS loaded each time).
import { spawnSync } from 'node:child_process';
import type { Conv2dShape } from '../../engine/backends/backend.js';
import { nativeModule } from '../../engine/backends/native.js';
import { markdownTable, median, type Cell } from '../common.js';
import { workloadFlop, type NativeWorkload } from './native_stepper.js';
import { gflops, pairedSpeedRatio, runPaired, type Contender, type ContenderResult, type PairedOptions } from './paired.js';

export interface Section { json: Record<string, unknown>; md: string[] }

const conv3x3 = (batch: number, c: number, hw: number): Conv2dShape =>
  ({ batch, inC: c, inH: hw, inW: hw, outC: c, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1 });
const gemm = (label: string, m: number, n: number, k: number): NativeWorkload => ({ kind: 'gemm', label, m, n, k });
const IM2COL = gemm('vgg16 conv3 im2col (64x3136x576)', 64, 3136, 576);
const GEMM_1024 = gemm('1024^3', 1024, 1024, 1024);

const fmtX = (x?: number): string | null => (x === undefined ? null : `${x.toFixed(2)}x`);
const num = (x?: number): number | null => (x === undefined ? null : x);
const errorsOf = (rs: ContenderResult[]): string[] => rs.filter((r) => r.error).map((r) => `${r.name}: ${r.error}`);

// ---- determinism ------------------------------------------------------------------------

export async function determinismSection(quick: boolean, threadCounts: number[]): Promise<Section> {
  const workloads: NativeWorkload[] = [
    GEMM_1024, gemm('512^3', 512, 512, 512), IM2COL, gemm('128^3', 128, 128, 128),
    ...(['conv-forward', 'conv-backward-filter'] as const).flatMap((kind) => [
      { kind, label: 'vgg16 conv3 64->64 3x3 @56 b4', shape: conv3x3(4, 64, 56) },
      { kind, label: 'vgg16-cifar conv 64->64 3x3 @32 b32', shape: conv3x3(32, 64, 32) },
    ]),
  ];
  const providers = nativeModule().info().providers;
  const opts: PairedOptions = quick
    ? { turnSeconds: 0.15, minRounds: 4, maxRounds: 8, budgetSeconds: 0.8 }
    : { turnSeconds: 0.2, minRounds: 6, maxRounds: 20, budgetSeconds: 1.6 };
  const rows: Record<string, unknown>[] = [];
  const errors: string[] = [];
  const descriptions: Record<string, { default?: string; deterministic?: string; reproducibility?: unknown }> = {};
  for (const provider of providers) {
    for (const threads of threadCounts) {
      for (const w of workloads) {
        const contenders: Contender[] = [
          { name: 'default', env: { SQUALL_BLAS: provider, SQUALL_DETERMINISTIC: '0' } },
          { name: 'deterministic', env: { SQUALL_BLAS: provider, SQUALL_DETERMINISTIC: '1' } },
        ];
        const [def, det] = await runPaired(contenders, { workload: w, threads }, opts);
        errors.push(...errorsOf([def!, det!]).map((e) => `${provider} ${threads}t ${w.kind} ${w.label}: ${e}`));
        const flop = workloadFlop(w);
        const d = (descriptions[provider] ??= {});
        d.default ??= def!.info.blas as string | undefined;
        d.deterministic ??= det!.info.blas as string | undefined;
        d.reproducibility ??= det!.info.reproducibility;
        const row = {
          provider, threads, kind: w.kind, workload: w.label,
          defaultGflops: gflops(def, flop), deterministicGflops: gflops(det, flop),
          ratio: pairedSpeedRatio(det, def), rounds: Math.min(def!.roundMedians.length, det!.roundMedians.length),
          blasDefault: def!.info.blas, blasDeterministic: det!.info.blas, convAlgorithm: det!.info.convAlgorithm,
          reps: det!.info.reps,
        };
        rows.push(row);
        console.log(`determinism ${provider.padEnd(8)} ${threads}t ${w.kind.padEnd(20)} ${w.label.padEnd(36)} default ` +
          `${row.defaultGflops?.toFixed(1) ?? 'err'} det ${row.deterministicGflops?.toFixed(1) ?? 'err'} GFLOP/s  ` +
          `det/default ${row.ratio?.toFixed(3) ?? 'n/a'} (${row.rounds} rounds)`);
      }
    }
  }
  const kindName = { gemm: 'sgemm', 'conv-forward': 'conv forward', 'conv-backward-filter': 'conv backward filter' } as const;
  const table: Cell[][] = rows.map((r) => [r.provider as string, r.threads as number, `${kindName[r.kind as NativeWorkload['kind']]} ${r.workload as string}`,
    num(r.defaultGflops as number | undefined), num(r.deterministicGflops as number | undefined), fmtX(r.ratio as number | undefined), r.rounds as number]);
  const summary: Cell[][] = providers.flatMap((p) => threadCounts.map((t) => {
    const rs = rows.filter((r) => r.provider === p && r.threads === t && r.ratio !== undefined).map((r) => r.ratio as number);
    const g = rows.filter((r) => r.provider === p && r.threads === t && r.kind === 'gemm' && r.ratio !== undefined).map((r) => r.ratio as number);
    const c = rows.filter((r) => r.provider === p && r.threads === t && r.kind !== 'gemm' && r.ratio !== undefined).map((r) => r.ratio as number);
    return [p, t, fmtX(g.length ? median(g) : undefined), g.length ? `${Math.min(...g).toFixed(2)}-${Math.max(...g).toFixed(2)}` : null,
      fmtX(c.length ? median(c) : undefined), c.length ? `${Math.min(...c).toFixed(2)}-${Math.max(...c).toFixed(2)}` : null,
      fmtX(rs.length ? median(rs) : undefined)] as Cell[];
  }));
  const md = [
    '## Native: the deterministic mode against the default, per provider',
    '',
    'Each provider (`SQUALL_BLAS`) in two processes, one with `SQUALL_DETERMINISTIC=0` and one with `=1`, each kept warm ' +
      'on one workload (bench/kernels/native_stepper.ts) and taking turns with the other, about ' +
      `${opts.turnSeconds} s of calls each per round in alternating order (bench/kernels/paired.ts). GFLOP/s: medians over ` +
      'all timed steps; det / default: the median over rounds of the per-round speed ratio (above 1: the deterministic ' +
      'mode is faster). Convolutions use the default algorithm choice (`auto`: Winograd F(2x2,3x3) forward for these ' +
      'layers; the filter gradient is im2col + GEMM, whose per-task partial sums the deterministic mode plans for 4 tasks).',
    '',
    markdownTable(['provider', 'threads', 'workload', 'default GFLOP/s', 'deterministic GFLOP/s', 'det / default', 'rounds'], table),
    '',
    '### Summary: det / default, median (range) per provider and thread count',
    '',
    markdownTable(['provider', 'threads', 'sgemm', 'sgemm range', 'conv', 'conv range', 'all'], summary),
    '',
    '### What each provider loaded',
    '',
    markdownTable(['provider', 'default mode (info().blas)', 'deterministic mode (info().blas)', 'reproducibility (deterministic)'],
      Object.entries(descriptions).map(([p, d]) => [p, d.default ?? null, d.deterministic ?? null,
        (d.reproducibility as { reason?: string } | undefined)?.reason ?? null])),
    ...(errors.length ? ['', 'Errors:', ...errors.map((e) => `- ${e}`)] : []),
  ];
  return { json: { options: opts, descriptions, rows, errors }, md };
}

// ---- the built-in GEMM's micro-kernels and blocking --------------------------------------

interface Blocking { kc: number; mc: number; nc: number }

/** The micro-kernels this CPU runs, best first, and each one's default blocking (a child reads them). */
function builtinKernels(): { name: string; mr: number; nr: number; block: Blocking }[] {
  const info = nativeModule().info() as ReturnType<ReturnType<typeof nativeModule>['info']> & { builtinKernels?: string[] };
  const f = new Set(info.cpuFeatures);
  const names = info.builtinKernels ?? [...(f.has('avx512f') ? ['avx512'] : []), ...(f.has('avx2') && f.has('fma') ? ['avx2'] : []), 'scalar'];
  return names.map((name) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e',
      `import { nativeModule } from ${JSON.stringify(new URL('../../engine/backends/native.js', import.meta.url).href)}; ` +
      'console.log(nativeModule().info().builtinKernel)'],
    { env: { ...process.env, SQUALL_BLAS: 'builtin', SQUALL_GEMM_KERNEL: name }, encoding: 'utf8' });
    const m = /^(\S+) (\d+)x(\d+) \(kc (\d+), mc (\d+), nc (\d+)\)/.exec(r.stdout.trim());
    if (!m || m[1] !== name) throw new Error(`cannot read the ${name} kernel's blocking: ${r.stdout}${r.stderr}`);
    return { name, mr: Number(m[2]), nr: Number(m[3]), block: { kc: Number(m[4]), mc: Number(m[5]), nc: Number(m[6]) } };
  });
}

const coreOf = (blas: unknown): string | undefined => /\(([^)]+)\)/.exec(String(blas ?? ''))?.[1];

export async function gemmTuningSection(quick: boolean): Promise<Section> {
  const kernels = builtinKernels();
  const DEFAULT = 'builtin default';
  const contenders: (Contender & { kernel?: string; block?: Blocking; isDefaultBlock?: boolean })[] = [];
  for (const [i, k] of kernels.entries()) {
    const b = k.block;
    const alts: Blocking[] = i === 0
      ? [{ ...b, kc: b.kc / 2 }, { ...b, kc: (b.kc * 3) / 2 }, { ...b, mc: b.mc / 2 }, { ...b, nc: 512 }]
      : k.name === 'scalar' ? [] : [{ ...b, kc: b.kc / 2 }];
    for (const [j, block] of [b, ...alts].entries()) {
      const name = i === 0 && j === 0 ? DEFAULT : `builtin ${k.name} ${k.mr}x${k.nr} kc ${block.kc} mc ${block.mc} nc ${block.nc}`;
      contenders.push({ name, kernel: k.name, block, isDefaultBlock: j === 0,
        env: { SQUALL_BLAS: 'builtin', SQUALL_GEMM_KERNEL: k.name, ...(j === 0 ? {} : { SQUALL_GEMM_BLOCK: `${block.kc},${block.mc},${block.nc}` }) } });
    }
  }
  const envCore = process.env.OPENBLAS_CORETYPE;
  const envL2 = process.env.OPENBLAS_L2_SIZE;
  const OB_ENV = `openblas, OPENBLAS_CORETYPE=${envCore ?? '(unset)'}${envL2 ? ` OPENBLAS_L2_SIZE=${envL2}` : ''} (environment)`;
  const OB_OWN = 'openblas, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (its own choice)';
  const haveOpenblas = nativeModule().info().providers.includes('openblas');
  if (haveOpenblas) {
    contenders.push({ name: OB_ENV, env: { SQUALL_BLAS: 'openblas' } });
    if (envCore !== undefined || envL2 !== undefined) contenders.push({ name: OB_OWN, env: { SQUALL_BLAS: 'openblas' }, unset: ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] });
  }
  const opts: PairedOptions = quick
    ? { turnSeconds: 0.15, minRounds: 4, maxRounds: 8, budgetSeconds: 0.8 }
    : { turnSeconds: 0.25, minRounds: 7, maxRounds: 20, budgetSeconds: 2.5 };
  const shapes = [GEMM_1024, IM2COL];
  const results: Record<string, unknown>[] = [];
  const errors: string[] = [];
  const byShape = new Map<string, ContenderResult[]>();
  for (const w of shapes) {
    const rs = await runPaired(contenders, { workload: w, threads: 1 }, opts);
    byShape.set(w.label, rs);
    errors.push(...errorsOf(rs).map((e) => `${w.label}: ${e}`));
    const def = rs.find((r) => r.name === DEFAULT);
    const own = rs.find((r) => r.name === OB_OWN) ?? rs.find((r) => r.name === OB_ENV);
    for (const [i, r] of rs.entries()) {
      const c = contenders[i]!;
      const row = {
        shape: w.label, contender: r.name, kernel: c.kernel ?? null, block: c.block ?? null, env: c.env, unset: c.unset ?? [],
        blas: r.info.blas ?? null, builtinKernel: r.info.builtinKernel ?? null, openblasCore: c.kernel ? null : coreOf(r.info.blas) ?? null,
        gflops: gflops(r, workloadFlop(w)), toBuiltinDefault: pairedSpeedRatio(r, def), toOpenblasOwn: pairedSpeedRatio(r, own),
        rounds: r.roundMedians.length, error: r.error ?? null,
      };
      results.push(row);
      console.log(`gemm-tuning ${w.label.padEnd(34)} ${r.name.padEnd(60)} ${row.gflops?.toFixed(1) ?? 'err'} GFLOP/s ` +
        `(${String(row.blas)}) ${row.toBuiltinDefault?.toFixed(3) ?? 'n/a'}x default, ${row.toOpenblasOwn?.toFixed(3) ?? 'n/a'}x OpenBLAS`);
    }
  }
  const ownName = contenders.some((c) => c.name === OB_OWN) ? OB_OWN : OB_ENV;
  const ownCore = coreOf(byShape.get(GEMM_1024.label)?.find((r) => r.name === ownName)?.info.blas);
  const envCoreLoaded = coreOf(byShape.get(GEMM_1024.label)?.find((r) => r.name === OB_ENV)?.info.blas);
  const table: Cell[][] = contenders.map((c) => {
    const cells: Cell[] = [c.kernel ? c.name : `${c.name}: ${c.name === OB_ENV ? envCoreLoaded ?? '?' : ownCore ?? '?'} kernel`];
    for (const w of shapes) {
      const r = results.find((x) => x.shape === w.label && x.contender === c.name)!;
      cells.push(num(r.gflops as number | undefined), fmtX(r.toBuiltinDefault as number | undefined), fmtX(r.toOpenblasOwn as number | undefined));
    }
    return cells;
  });
  const headers = ['configuration (1 thread)', ...shapes.flatMap((w) => [`${w.label} GFLOP/s`, '/ builtin default', `/ OpenBLAS ${ownCore ?? ''}`])];
  const md = [
    '## Native: the built-in GEMM\'s micro-kernels and blocking, beside OpenBLAS',
    '',
    `One thread, row-major NN. Every configuration is its own warm process (SQUALL_BLAS, SQUALL_GEMM_KERNEL and ` +
      'SQUALL_GEMM_BLOCK=kc,mc,nc are read once per process; "builtin default" is the kernel and blocking the module picks ' +
      `here: ${kernels[0]?.name} kc ${kernels[0]?.block.kc} mc ${kernels[0]?.block.mc} nc ${kernels[0]?.block.nc}); all take turns ` +
      `round after round in a rotating order, about ${opts.turnSeconds} s each (bench/kernels/paired.ts). GFLOP/s: medians over all ` +
      'timed calls; ratios: medians over rounds of the per-round speed ratio. OpenBLAS runs through Squall\'s provider, once ' +
      `with the environment's OPENBLAS_CORETYPE (${envCore ?? 'unset'}) and OPENBLAS_L2_SIZE (${envL2 ?? 'unset'}), loading its ` +
      `${envCoreLoaded ?? '?'} kernels, and once with both unset in that one child command (\`env -u OPENBLAS_CORETYPE -u ` +
      `OPENBLAS_L2_SIZE node ...\`), loading its ${ownCore ?? '?'} kernels (openblas_get_corename).`,
    '',
    markdownTable(headers, table),
    ...(errors.length ? ['', 'Errors:', ...errors.map((e) => `- ${e}`)] : []),
  ];
  return { json: { options: opts, kernels, contenders, results, openblasCore: { environment: envCoreLoaded ?? null, own: ownCore ?? null }, errors }, md };
}
