// Resume under the deterministic mode, for every BLAS provider that loads: `squall train`
// (synthetic data, 384 samples) for 2 epochs in one run (2 threads), and as 1 epoch (1 thread) then --resume for the
// second (2 threads), writes a byte-identical checkpoint in the deterministic mode (the
// oracle is the uninterrupted run); in the default mode the weights agree to relative 1e-5.
// N workers against one process: test/cluster/deterministic.test.ts.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNativeBackend, nativeModule } from '../../engine/backends/native.js';
import { loadCheckpoint } from '../../engine/io/checkpoint/index.js';
import { relErr } from '../cluster/compare.js';
import { squall, stopSquallProcesses } from '../cluster/squall-cli.js';

// About 30 s on an idle machine (eighteen squall train processes: three runs per provider
// and mode) but 45-70 s beside a CPU-bound load, too close to the suite's 90 s.
t.setTimeout(150_000);

let providers: string[] = [];
try {
  loadNativeBackend();
  providers = nativeModule().info().providers;
} catch (err) {
  t.pass(`skipped: the native backend is not available (${(err as Error).message})`);
}
const dir = mkdtempSync(join(tmpdir(), 'squall-deterministic-resume-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
t.teardown(stopSquallProcesses);

for (const p of providers) {
  for (const deterministic of [true, false]) {
    const mode = deterministic ? 'deterministic' : 'default';
    t.test(`${p}, ${mode} mode: squall train resumed from a checkpoint ends where one run does`, async (t) => {
      const env = { SQUALL_BLAS: p, SQUALL_DETERMINISTIC: deterministic ? '1' : '0' };
      const common = ['train', '--model', 'lenet5', '--dataset', 'synthetic', '--synthetic-size', '384', '--batch', '64', '--seed', '4'];
      const whole = join(dir, `${p}-${mode}-whole.sqck`);
      const resumed = join(dir, `${p}-${mode}-resumed.sqck`);
      const runs = [
        await squall([...common, '--epochs', '2', '--threads', '2', '--checkpoint', whole], env),
        await squall([...common, '--epochs', '1', '--threads', '1', '--checkpoint', resumed], env),
        await squall([...common, '--epochs', '2', '--threads', '2', '--checkpoint', resumed, '--resume'], env),
      ];
      runs.forEach((r, k) => t.equal(r.code, 0, `run ${k + 1} exits 0${r.code ? `: ${r.err.slice(-400)}` : ''}`));
      if (runs.some((r) => r.code !== 0)) return;
      if (deterministic) {
        const [a, b] = [readFileSync(whole), readFileSync(resumed)];
        t.ok(a.equals(b), `the checkpoints are byte-identical (${a.length} bytes)`);
      }
      const [ca, cb] = [await loadCheckpoint(whole), await loadCheckpoint(resumed)];
      const names = ca.names().filter((n) => n.startsWith('model.'));
      const flat = (c: typeof ca): Float32Array => Float32Array.from(names.flatMap((n) => [...c.tensor(n).data]));
      const err = relErr(flat(ca), flat(cb));
      t.ok(err <= 1e-5, `the weights agree to ${err.toExponential(2)} <= 1e-5`);
    });
  }
}
