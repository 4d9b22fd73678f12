// The wasm backend's threads: results do not depend on the thread count, async calls
// leave the JavaScript thread free, a worker that never picks up its part costs time but
// never hangs a call, and core.ts stays free of Node-only APIs (a browser worker reuses it).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Conv2dShape } from '../../engine/backends/backend.js';
import { createWasmBackend, type ThreadSpawner, type WorkerInit } from '../../engine/backends/wasm/core.js';
import { loadWasmBackend, wasmBuildDir } from '../../engine/backends/wasm/node.js';

let seed = 99;
function randArray(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = seed / 2 ** 32 - 0.5;
  }
  return a;
}

const conv: Conv2dShape = { batch: 3, inC: 32, inH: 17, inW: 19, outC: 48, kH: 3, kW: 3, strideH: 1, strideW: 2,
  padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 2 };
const oh = 17, ow = 10;

t.test('results are bit-identical for 1, 2 and 3 threads, sync and async', async (t) => {
  const be = loadWasmBackend({ threads: 1 });
  t.teardown(() => be.dispose());
  const m = 200, n = 150, k = 300;
  const a = randArray(m * k);
  const b = randArray(k * n);
  const x = randArray(conv.batch * conv.inC * conv.inH * conv.inW);
  const w = randArray(conv.outC * 16 * 9);
  const gy = randArray(conv.batch * conv.outC * oh * ow);
  const run = async (threads: number, async: boolean): Promise<Float32Array[]> => {
    be.setThreads(threads);
    const c = new Float32Array(m * n);
    const y = new Float32Array(gy.length);
    const gx = new Float32Array(x.length);
    const gw = new Float32Array(w.length).fill(0.5);
    const gb = new Float32Array(conv.outC);
    if (async) {
      await be.sgemmAsync(false, true, m, n, k, 1, a, k, b, k, 0, c, n);
      await be.conv2dForwardAsync(conv, x, w, null, y);
      await be.conv2dBackwardDataAsync(conv, gy, w, gx);
      await be.conv2dBackwardFilterAsync(conv, x, gy, gw, gb);
    } else {
      be.sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n);
      be.conv2dForward(conv, x, w, null, y);
      be.conv2dBackwardData(conv, gy, w, gx);
      be.conv2dBackwardFilter(conv, x, gy, gw, gb);
    }
    return [c, y, gx, gw, gb];
  };
  const base = await run(1, false);
  for (const [threads, async] of [[2, false], [3, false], [1, true], [2, true], [3, true]] as const) {
    const got = await run(threads, async);
    t.ok(got.every((g, i) => g.every((v, j) => Object.is(v, base[i]![j]))),
      `${threads} thread(s) ${async ? 'async' : 'sync'}: sgemm and the three convolutions equal bit for bit`);
  }
});

t.test('async calls leave the JavaScript thread free', async (t) => {
  const be = loadWasmBackend({ threads: 2 });
  t.teardown(() => be.dispose());
  const n = 768;
  const a = randArray(n * n);
  const c = new Float32Array(n * n);
  await be.sgemmAsync(false, false, 64, 64, 64, 1, a, n, a, n, 0, c, n); // workers started
  let turns = 0;
  let done = false;
  const spin = (): void => {
    if (done) return;
    turns++;
    setImmediate(spin);
  };
  const t0 = performance.now();
  const p = be.sgemmAsync(false, false, n, n, n, 1, a, n, a, n, 0, c, n);
  const callMs = performance.now() - t0;
  let settled = false;
  p.then(() => { settled = true; }, () => { settled = true; });
  for (let i = 0; i < 4; i++) await Promise.resolve();
  const pendingAfterCall = !settled;
  setImmediate(spin);
  await p;
  done = true;
  const totalMs = performance.now() - t0;
  t.ok(pendingAfterCall, `the call returned before the work was done (in ${callMs.toFixed(1)} ms of ${totalMs.toFixed(1)} ms)`);
  t.ok(turns >= 3, `the event loop kept turning while it ran (${turns} turns)`);
});

t.test('a worker that never picks up its part costs time, not a hang', async (t) => {
  const script = new URL('../../engine/backends/wasm/worker.js', import.meta.url);
  let spawned = 0;
  // The first worker announces READY (as a real one would) and then never takes a job; the
  // backend must take its part back, run it itself and replace the worker with a real one.
  const spawner: ThreadSpawner = {
    spawn(init: WorkerInit) {
      spawned++;
      const worker = spawned === 1
        ? new Worker(`
            const { workerData } = require('node:worker_threads');
            const ctl = new Int32Array(workerData.control);
            const base = 16 + workerData.slot * 64; // the control block layout of core.ts
            Atomics.store(ctl, base + 1, 1); Atomics.notify(ctl, base + 1);
            while (Atomics.load(ctl, base + 6) === workerData.gen) Atomics.wait(ctl, base + 6, workerData.gen, 200);
          `, { eval: true, workerData: init })
        : new Worker(script, { workerData: init });
      return { ref: () => worker.ref(), unref: () => worker.unref(), terminate: () => void worker.terminate() };
    },
  };
  const be = createWasmBackend({ module: new WebAssembly.Module(readFileSync(join(wasmBuildDir(), 'squall.wasm'))),
    sharedMemory: true, variant: 'test', spawner, threads: 2 });
  t.teardown(() => be.dispose());
  const m = 128, n = 160, k = 96;
  const a = randArray(m * k);
  const b = randArray(k * n);
  const ref = new Float32Array(m * n);
  be.setThreads(1);
  be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, ref, n);
  be.setThreads(2);
  const c = new Float32Array(m * n);
  const t0 = performance.now();
  be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
  t.same(c, ref, `sync sgemm completed with a stuck worker (${(performance.now() - t0).toFixed(0)} ms)`);
  t.equal(spawned, 3, 'two workers started (threads = 2), the stuck one replaced');
  const c2 = new Float32Array(m * n);
  await be.sgemmAsync(false, false, m, n, k, 1, a, k, b, n, 0, c2, n);
  t.same(c2, ref, 'async sgemm on the replacement worker');
  const c3 = new Float32Array(m * n);
  be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c3, n);
  t.same(c3, ref, 'sync sgemm on the replacement worker');
});

t.test('core.ts uses no Node-only API', (t) => {
  const src = readFileSync(fileURLToPath(new URL('../../engine/backends/wasm/core.js', import.meta.url)), 'utf8');
  const imports = [...src.matchAll(/(?:import|from)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
  t.ok(imports.every((s) => s.startsWith('.')), `only relative imports: ${imports.join(', ')}`);
  t.notMatch(src, /\bprocess\.|\brequire\(|node:|Buffer\./, 'no process, require, node: or Buffer');
  t.end();
});
