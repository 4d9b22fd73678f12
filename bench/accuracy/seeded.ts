// bench/accuracy (the default mode of run.ts): LeNet-5 on Fashion-MNIST, 2 epochs, SGD lr 0.05
// momentum 0.9, batch 128, mean/std normalisation, seeds 1..3: test accuracy after each epoch,
// Squall (its own seeded initialisation and order) beside PyTorch
// (../shared/peers/fashion_lenet_train.py, same recipe) in the same run.
//   node dist/bench/accuracy/run.js [--seeds 1,2,3] [--backends native] [--threads 2] [--out accuracy]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadBackend } from '../../engine/backends/registry.js';
import { loadFashionMnist, meanStd, normalise } from '../../engine/data/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';
import { train } from '../../engine/train/index.js';
import { machineRecord, markdownTable, repoRoot, writeResults, type Cell } from '../common.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const seeds = arg('seeds', '1,2,3').split(',').map(Number);
const backends = arg('backends', 'native').split(',');
const threads = Number(arg('threads', '2'));
const outName = arg('out', 'accuracy');
const epochs = 2;

interface Run { impl: string; seed: number; accuracy: number[]; seconds: number; error?: string }

const trainSet = loadFashionMnist({ split: 'train' });
const testSet = loadFashionMnist({ split: 'test' });
const { mean, std } = meanStd(trainSet);
normalise(trainSet, mean, std);
normalise(testSet, mean, std);

async function squall(backendName: string, seed: number): Promise<Run> {
  const be = loadBackend(backendName);
  be.setThreads(threads);
  const model = lenet5().reset(seed).to(be);
  const optimizer = new SGD(be, model.flatParameters().length, { lr: 0.05, momentum: 0.9, alloc: (n) => be.allocFloat32(n), free: (a) => be.free(a) });
  const t0 = performance.now();
  const summaries = await train({ model, criterion: new ClassNLLCriterion(), optimizer, train: trainSet, validation: testSet, epochs, batchSize: 128, seed, progress: null });
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  optimizer.dispose();
  return { impl: `squall ${backendName}`, seed, accuracy: summaries.map((s) => s.validation!.accuracy), seconds };
}

function pytorch(seed: number): Run {
  const script = join(repoRoot, '..', 'shared', 'peers', 'fashion_lenet_train.py');
  const out = join(repoRoot, 'build', `fashion-acc-${process.pid}.jsonl`);
  if (!existsSync(script)) return { impl: 'pytorch', seed, accuracy: [], seconds: 0, error: `${script} not found` };
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/python3', [script, '--epochs', String(epochs), '--threads', String(threads), '--seed', String(seed), '--json', out], { encoding: 'utf8' });
  const seconds = (performance.now() - t0) / 1000;
  try {
    const line = JSON.parse(readFileSync(out, 'utf8').trim().split('\n').at(-1)!) as { hist: { test_acc: number }[] };
    rmSync(out);
    return { impl: 'pytorch', seed, accuracy: line.hist.map((h) => h.test_acc), seconds };
  } catch {
    return { impl: 'pytorch', seed, accuracy: [], seconds, error: (r.stderr || `exit ${r.status}`).trim().split('\n').slice(-2).join(' | ') };
  }
}

const runs: Run[] = [];
for (const seed of seeds) {
  for (const b of backends) {
    const r = await squall(b, seed);
    console.log(`${r.impl} seed ${seed}: ${r.accuracy.map((a) => (100 * a).toFixed(2)).join(' / ')} % (${r.seconds.toFixed(1)} s)`);
    runs.push(r);
  }
  const p = pytorch(seed);
  console.log(`pytorch seed ${seed}: ${p.error ?? p.accuracy.map((a) => (100 * a).toFixed(2)).join(' / ')} % (${p.seconds.toFixed(1)} s)`);
  runs.push(p);
}

const impls = [...new Set(runs.map((r) => r.impl))];
const meanOf = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const rows: Cell[][] = [];
const summary: Record<string, number[]> = {};
for (const impl of impls) {
  const mine = runs.filter((r) => r.impl === impl && !r.error);
  for (const r of mine) rows.push([impl, r.seed, ...Array.from({ length: epochs }, (_, e) => r.accuracy[e] !== undefined ? `${(100 * r.accuracy[e]!).toFixed(2)}%` : null), r.seconds]);
  const means = Array.from({ length: epochs }, (_, e) => meanOf(mine.map((r) => r.accuracy[e]!)));
  summary[impl] = means;
  rows.push([`**${impl} mean**`, mine.length, ...means.map((m) => `**${(100 * m).toFixed(2)}%**`), null]);
}
// The spread over seeds: mean, sample standard deviation and the standard error of the mean
// of the final test accuracy, and the difference of the means with its standard error.
const sd = (xs: number[]): number => {
  const m = meanOf(xs);
  return xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1)) : 0;
};
const finals = new Map(impls.map((impl) => [impl, runs.filter((r) => r.impl === impl && !r.error).map((r) => 100 * r.accuracy[epochs - 1]!)]));
const spread = impls.map((impl) => {
  const xs = finals.get(impl)!;
  return `- ${impl}, epoch ${epochs}: mean ${meanOf(xs).toFixed(2)}%, sd ${sd(xs).toFixed(2)} points over ${xs.length} seeds ` +
    `(standard error of the mean ${(sd(xs) / Math.sqrt(xs.length)).toFixed(2)})`;
});
const torchFinals = finals.get('pytorch');
for (const impl of impls.filter((i) => i !== 'pytorch')) {
  const xs = finals.get(impl)!;
  if (!torchFinals || torchFinals.length < 2 || xs.length < 2) continue;
  const se = Math.sqrt(sd(xs) ** 2 / xs.length + sd(torchFinals) ** 2 / torchFinals.length);
  spread.push(`- ${impl} − pytorch: ${(meanOf(xs) - meanOf(torchFinals)).toFixed(2)} points, standard error ${se.toFixed(2)} (Welch)`);
}
const md = ['# bench/accuracy', '',
  `Command: \`node dist/bench/accuracy/run.js ${process.argv.slice(2).join(' ')}\`. ${JSON.stringify(machineRecord())}`, '',
  `LeNet-5 on Fashion-MNIST (Debian dataset-fashion-mnist), ${epochs} epochs, SGD lr 0.05 momentum 0.9, batch 128, mean/std normalisation, ` +
    `${threads} threads; test accuracy on the 10,000 test images after each epoch. PyTorch: ../shared/peers/fashion_lenet_train.py, same recipe.`, '',
  markdownTable(['implementation', 'seed', ...Array.from({ length: epochs }, (_, e) => `epoch ${e + 1}`), 'seconds'], rows),
  '', ...spread,
  ...runs.filter((r) => r.error).map((r) => `- ${r.impl} seed ${r.seed}: ${r.error}`),
].join('\n');
writeResults(outName, { machine: machineRecord(), runs, meanAccuracy: summary }, md);
