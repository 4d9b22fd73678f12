// bench/accuracy --controlled: is the accuracy gap between Squall and PyTorch a difference
// in the training computation, or the luck of the initial weights and batch order? For each
// seed, PyTorch runs fashion_lenet_train.py's recipe (torch_controlled.py) and writes its
// initial weights and epoch permutations; Squall then trains from exactly those weights over
// exactly those permutations (replay.ts) and the two runs' per-iteration losses, first-step
// gradients, final weights and test accuracies are compared (compare.ts).
//
// Baseline (unless --no-baseline): PyTorch runs the same seed again with its inputs normalised
// exactly as Squall normalises them (they differ from numpy's float32 normalisation by a few
// 1e-6). How far that run drifts from PyTorch's own is the drift that rounding-level
// differences cause in this training; and Squall against that run compares the two
// implementations on bit-identical inputs, weights and order.
//   node dist/bench/accuracy/run.js --controlled [--seeds 1,2,3] [--backend native] [--threads 2] [--no-baseline]
import { loadFashionMnist, meanStd, normalise } from '../../engine/data/index.js';
import { machineRecord, markdownTable, writeResults, type Cell } from '../common.js';
import { divergence, spans, type Divergence } from './compare.js';
import { compareNormalisation, type NormalisationCheck } from './normalisation.js';
import { replay } from './replay.js';
import { torchReference, type TorchRun } from './torch-reference.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const seeds = arg('seeds', '1,2,3').split(',').map(Number);
const backend = arg('backend', 'native');
const threads = Number(arg('threads', '2'));
const baseline = !process.argv.includes('--no-baseline');
const epochs = 2;
const batchSize = 128;
const lr = 0.05;
const momentum = 0.9;
const EARLY = 50;
const TOL = 1e-3;
const MARKS = [10, 50, 100, 200];

const trainSet = loadFashionMnist({ split: 'train' });
const testSet = loadFashionMnist({ split: 'test' });
const stats = meanStd(trainSet);
const squallNorm = { mean: stats.mean[0]!, std: stats.std[0]! };
normalise(trainSet, squallNorm.mean, squallNorm.std);
normalise(testSet, squallNorm.mean, squallNorm.std);

interface RunSummary { accuracy: number[]; seconds: number; losses: number[] }
interface SeedResult {
  seed: number;
  torch: RunSummary;
  squall: RunSummary;
  /** PyTorch on Squall-normalised inputs (the baseline), when run. */
  torchSquallInputs?: RunSummary;
  /** Squall against PyTorch: the question. */
  squallVsTorch: Divergence;
  /** PyTorch on Squall's inputs against PyTorch: the drift that input rounding alone causes. */
  baselineVsTorch?: Divergence;
  /** Squall against PyTorch on the same inputs: the implementations alone. */
  squallVsBaseline?: Divergence;
}

const pct = (a: number | undefined): string => (a === undefined ? '—' : `${(100 * a).toFixed(2)}%`);
const sci = (x: number): string => x.toExponential(1);
const summary = (r: { accuracy: number[]; seconds: number; losses: ArrayLike<number> }): RunSummary =>
  ({ accuracy: r.accuracy, seconds: r.seconds, losses: Array.from(r.losses) });

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const results: SeedResult[] = [];
let norm: NormalisationCheck | null = null;
let mapping = '';
let torchVersion = '';
for (const seed of seeds) {
  const t: TorchRun = torchReference(seed, epochs, threads);
  torchVersion = t.torch;
  norm ??= compareNormalisation(squallNorm, t);
  console.log(`pytorch seed ${seed}: ${t.accuracy.map(pct).join(' / ')} (${t.seconds.toFixed(1)} s)`);
  const s = await replay({ backend, threads, train: trainSet, test: testSet, init: t.init, shapes: t.paramShapes, perms: t.perms, batchSize, lr, momentum });
  console.log(`squall ${backend} seed ${seed}: ${s.accuracy.map(pct).join(' / ')} (${s.seconds.toFixed(1)} s)`);
  mapping = t.paramNames.map((n, i) => `${n} = ${s.paths[i]} [${t.paramShapes[i]!.join(', ')}]`).join('; ');
  const layout = spans(t.paramNames, t.paramShapes);
  const opts = { early: EARLY, tol: TOL, perEpoch: Math.ceil(t.perms[0]!.length / batchSize), marks: MARKS };
  const r: SeedResult = { seed, torch: summary(t), squall: summary(s), squallVsTorch: divergence(s, t, t.init, layout, opts) };
  const line = (what: string, d: Divergence): string => `  ${what}: loss max rel diff first ${EARLY} ${sci(d.lossEarly)}, all ${sci(d.lossAll)}; ` +
    `final weights ‖Δ‖/‖w‖ ${sci(d.finalRel)}`;
  console.log(line('squall vs pytorch', r.squallVsTorch));
  if (baseline) {
    const b = torchReference(seed, epochs, threads, squallNorm);
    if (!sameArray(b.init, t.init) || !b.perms.every((p, e) => sameArray(p, t.perms[e]!))) {
      throw new Error(`seed ${seed}: the baseline PyTorch run drew other initial weights or permutations than the reference run`);
    }
    console.log(`pytorch on squall's inputs seed ${seed}: ${b.accuracy.map(pct).join(' / ')} (${b.seconds.toFixed(1)} s)`);
    r.torchSquallInputs = summary(b);
    r.baselineVsTorch = divergence(b, t, t.init, layout, opts);
    r.squallVsBaseline = divergence(s, b, t.init, layout, opts);
    console.log(line('pytorch(squall inputs) vs pytorch', r.baselineVsTorch));
    console.log(line('squall vs pytorch(squall inputs)', r.squallVsBaseline));
  }
  results.push(r);
}

// ---- report ---------------------------------------------------------------------------------

const meanOf = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const epochCols = Array.from({ length: epochs }, (_, e) => e);
const accRows: Cell[][] = results.map((r) => [
  r.seed,
  ...epochCols.flatMap((e) => [pct(r.torch.accuracy[e]), pct(r.squall.accuracy[e]), ...(baseline ? [pct(r.torchSquallInputs?.accuracy[e])] : [])]),
  sci(r.squallVsTorch.lossEarly), sci(r.squallVsTorch.lossAll), r.squallVsTorch.firstOverTol ?? 'none',
  sci(r.squallVsTorch.finalRel), sci(r.squallVsTorch.finalRelToTravel),
  `${r.torch.seconds.toFixed(1)} / ${r.squall.seconds.toFixed(1)}`,
]);
const meanAcc = (pick: (r: SeedResult) => RunSummary | undefined, e: number): string => {
  const xs = results.map((r) => pick(r)?.accuracy[e]).filter((x): x is number => x !== undefined);
  return xs.length ? `**${pct(meanOf(xs))}**` : '—';
};
accRows.push([
  '**mean**',
  ...epochCols.flatMap((e) => [meanAcc((r) => r.torch, e), meanAcc((r) => r.squall, e), ...(baseline ? [meanAcc((r) => r.torchSquallInputs, e)] : [])]),
  null, null, null, null, null, null,
]);
const accHeaders = ['seed',
  ...epochCols.flatMap((e) => [`PyTorch epoch ${e + 1}`, `Squall epoch ${e + 1}`, ...(baseline ? [`PyTorch on Squall's inputs, epoch ${e + 1}`] : [])]),
  `Squall vs PyTorch: loss max rel diff, iterations 1-${EARLY}`, 'all iterations', `first iteration > ${TOL}`,
  'final weights ‖Δ‖/‖w‖', 'final weights ‖Δ‖/‖w − w0‖', 'seconds PyTorch / Squall'];

const pairs: [string, (r: SeedResult) => Divergence | undefined][] = [
  ['Squall vs PyTorch', (r) => r.squallVsTorch],
  ...(baseline ? [
    ["PyTorch on Squall's inputs vs PyTorch", (r: SeedResult) => r.baselineVsTorch],
    ["Squall vs PyTorch on Squall's inputs", (r: SeedResult) => r.squallVsBaseline],
  ] as [string, (r: SeedResult) => Divergence | undefined][] : []),
];
const windowHeaders = (results[0]?.squallVsTorch.lossWindows ?? []).map((w) => `${w.from + 1}-${w.to}`);
const windowRows: Cell[][] = results.flatMap((r) => pairs.map(([name, pick]) => {
  const d = pick(r)!;
  return [r.seed, name, ...d.lossWindows.map((w) => sci(w.maxRelDiff)), d.firstOverTol ?? 'none', sci(d.finalRel), sci(d.finalRelToTravel)];
}));
const layerNames = results[0]?.squallVsTorch.layers.map((l) => l.layer) ?? [];
const layerRows: Cell[][] = results.flatMap((r) => pairs.map(([name, pick]) => {
  const d = pick(r)!;
  return [r.seed, name, ...d.layers.map((l) => `${sci(l.grad1)} / ${sci(l.step1)} / ${sci(l.final)}`)];
}));

const md = ['# bench/accuracy --controlled', '',
  `Command: \`node dist/bench/accuracy/run.js ${process.argv.slice(2).join(' ')}\`. ${JSON.stringify(machineRecord())}`, '',
  `LeNet-5 on Fashion-MNIST, ${epochs} epochs, SGD lr ${lr} momentum ${momentum}, batch ${batchSize} (the last of each epoch 96), ` +
    `mean NLL loss, ${threads} threads. For each seed PyTorch ${torchVersion} runs fashion_lenet_train.py's recipe ` +
    '(bench/accuracy/torch_controlled.py: torch.manual_seed(seed), models.py LeNet5, one torch.randperm per epoch from a generator seeded with the seed) ' +
    `and writes its initial weights and epoch permutations; Squall (${backend} backend, engine/train with an explicit order) then trains from exactly those ` +
    'weights over exactly those permutations. Both test on the 10,000 test images after each epoch. Relative loss difference: |a − b| / b per iteration.' +
    (baseline ? " Baseline: PyTorch once more on the same seed with its inputs normalised exactly as Squall's (float64 (x − mean) / std with Squall's " +
      'mean and std, one rounding to float32; the same initial weights and permutations, checked): the drift that a rounding-level change of the inputs ' +
      "causes in PyTorch itself; Squall against that run compares the implementations on bit-identical inputs." : ''), '',
  `Parameters (PyTorch = Squall): ${mapping}.`, '',
  norm ? `Normalisation: Squall mean ${norm.squallMean.toPrecision(9)} std ${norm.squallStd.toPrecision(9)} (float64 sums, two passes, then (x − mean) / std ` +
    `in float64); numpy (fashion_lenet_train.py) mean ${norm.numpyMean.toPrecision(9)} std ${norm.numpyStd.toPrecision(9)} (float32 xtr.mean(), xtr.std(), ` +
    `float32 arithmetic); the normalised values differ by at most ${norm.maxAbsDiff.toExponential(2)} ` +
    `(${(norm.maxAbsDiff / norm.maxAbsValue).toExponential(1)} of the largest, ${norm.maxAbsValue.toFixed(3)}).` : '', '',
  '## Test accuracy and Squall-vs-PyTorch divergence', '',
  markdownTable(accHeaders, accRows), '',
  '## Loss difference by iteration window (max relative difference)', '',
  markdownTable(['seed', 'runs', ...windowHeaders, `first iteration > ${TOL}`, 'final ‖Δ‖/‖w‖', 'final ‖Δ‖/‖w − w0‖'], windowRows), '',
  '## Per parameter: first-iteration gradient (max |Δ| / max |g|) / weights after the first step (max rel diff) / final weights (‖Δ‖/‖w‖)', '',
  markdownTable(['seed', 'runs', ...layerNames], layerRows),
].join('\n');
writeResults('accuracy-controlled', {
  machine: machineRecord(), torch: torchVersion, backend, threads, epochs, batchSize, lr, momentum, normalisation: norm, parameters: mapping, seeds: results,
}, md);
