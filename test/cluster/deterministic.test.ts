// Training under the deterministic mode, for every BLAS provider that loads (each in its own
// child process: the mode and the provider are chosen once per process).
//
// 1. N workers equal one process, bit for bit: LeNet-5, 5 iterations of SGD with momentum,
//    global batch 64 split over 2 workers evenly and 3 workers 2:1:1 (in-process cluster,
//    f32 wire). The one-process oracle does the same arithmetic as the cluster's owners,
//    one share after another: the sum-loss gradient of each share, the shares summed in rank
//    order (sumSlices), scaled by 1/64, one SGD step. The oracle runs on 1 thread and the
//    cluster on 2, so the comparison also covers the thread count. In the default mode the
//    same comparison holds to relative 1e-5 (kernels may then partition by thread count).
// Resume after a checkpoint, the other half of the promise: test/cli/deterministic-resume.test.ts.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../../engine/backends/backend.js';
import { loadNativeBackend, nativeModule } from '../../engine/backends/native.js';
import { runLocalCluster } from '../../engine/cluster/index.js';
import { epochOrder, gatherBatch, globalBatch, shareRange, splitBatch, syntheticDataset } from '../../engine/data/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';
import { relErr } from './compare.js';
import { createFakeMesh } from './fake-transport.js';

const B = 64;
const K = 5;
const SEED = 3;
const MODEL_SEED = 5;

function sgd(be: Backend, n: number): SGD {
  return new SGD(be, n, { lr: 0.05, momentum: 0.9 });
}

interface Comparison { what: string; err: number; identical: boolean }

/** One process doing the owners' arithmetic share by share (see the file comment). */
async function oneProcess(be: Backend, data: ReturnType<typeof syntheticDataset>, weights: number[]): Promise<Float32Array> {
  const model = lenet5().reset(MODEL_SEED).to(be);
  const criterion = new ClassNLLCriterion(false);
  const flat = model.flatParameters();
  const opt = sgd(be, flat.length);
  const sum = new Float32Array(flat.length);
  const order = epochOrder(data.length, { seed: SEED, epoch: 0 });
  for (let k = 0; k < K; k++) {
    const global = globalBatch(order, B, k);
    const counts = splitBatch(global.length, weights);
    const parts: Float32Array[] = [];
    for (let r = 0; r < weights.length; r++) {
      const { start, end } = shareRange(counts, r);
      model.zeroGradParameters();
      if (end > start) {
        const batch = gatherBatch(data, global.subarray(start, end));
        const out = await model.forward(batch.input);
        criterion.forward(out, batch.target);
        await model.backwardParameters(batch.input, criterion.backward(out, batch.target));
      }
      parts.push(flat.grads.slice());
    }
    be.sumSlices(parts, sum);
    be.scale(sum, 1 / global.length, sum);
    opt.step(flat.values, sum);
  }
  const w = flat.values.slice();
  opt.dispose();
  model.dispose();
  return w;
}

async function child(): Promise<void> {
  const be = loadNativeBackend();
  const data = syntheticDataset({ length: 300, shape: [1, 28, 28], classes: 10, seed: 11, separation: 1 });
  const out: Comparison[] = [];
  for (const weights of [[1, 1], [2, 1, 1]]) {
    be.setThreads(1);
    const want = await oneProcess(be, data, weights);
    be.setThreads(2);
    const res = await runLocalCluster({
      transports: createFakeMesh(weights.length), backends: weights.map(() => be), model: () => lenet5().reset(MODEL_SEED),
      optimizer: sgd, data, batchSize: B, iterations: K, seed: SEED, weights,
    });
    res.weights.forEach((w, r) => out.push({
      what: `N=${weights.length} ${weights.join(':')}, rank ${r} (2 threads) vs one process (1 thread)`,
      err: relErr(w, want), identical: w.every((v, i) => Object.is(v, want[i])),
    }));
  }
  const i = nativeModule().info();
  console.log(`CHILD ${JSON.stringify({ blas: i.blas, deterministic: i.reproducibility.deterministic, out })}`);
}

function runChild(provider: string, deterministic: boolean): { blas: string; deterministic: boolean; out: Comparison[] } | string {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
    encoding: 'utf8', timeout: 120_000,
    env: { ...process.env, SQUALL_BLAS: provider, SQUALL_DETERMINISTIC: deterministic ? '1' : '0', SQUALL_DETERMINISTIC_CHILD: '1' },
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('CHILD '));
  return line ? JSON.parse(line.slice(6)) : `no report (status ${r.status}): ${r.stderr.slice(-800)}`;
}

function parent(): void {
  let providers: string[];
  try {
    loadNativeBackend();
    providers = nativeModule().info().providers;
  } catch (err) {
    t.pass(`skipped: the native backend is not available (${(err as Error).message})`);
    return;
  }
  for (const p of providers) {
    for (const deterministic of [true, false]) {
      const mode = deterministic ? 'deterministic' : 'default';
      t.test(`${p}, ${mode} mode: N workers end where one process does`, (t) => {
        const r = runChild(p, deterministic);
        if (typeof r === 'string') {
          t.fail(r);
          return t.end();
        }
        t.equal(r.deterministic, deterministic, `child ran ${r.blas} in the ${mode} mode`);
        for (const c of r.out) {
          if (deterministic) t.ok(c.identical, `${c.what}: bit for bit (relative error ${c.err.toExponential(2)})`);
          else t.ok(c.err <= 1e-5, `${c.what}: within ${c.err.toExponential(2)} <= 1e-5`);
        }
        t.end();
      });

    }
  }
}

if (process.env.SQUALL_DETERMINISTIC_CHILD === '1') await child();
else parent();
