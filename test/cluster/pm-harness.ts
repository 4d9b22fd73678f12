// Drives N parameter managers over synthetic gradients (no model): worker r's gradient at
// iteration k is a seeded function of (r, k), so a one-process reference can rebuild the
// sum. Used by parameter-manager.test.ts.
import type { Backend } from '../../engine/backends/backend.js';
import { availableBackends } from '../../engine/backends/registry.js';
import { IterationAbortedError, ParameterManager, type IterationReport, type WireFormat } from '../../engine/cluster/index.js';
import { SGD } from '../../engine/optim/index.js';
import type { Transport } from '../../transport/transport.js';
import { Rng, randArray } from '../conformance/util.js';

/** The backends that load here, restricted by SQUALL_TEST_BACKENDS=native,wasm as the conformance suite does. */
export function testBackends(): Backend[] {
  const only = process.env.SQUALL_TEST_BACKENDS?.split(',').map((x) => x.trim()).filter(Boolean);
  return availableBackends().filter((b) => !only || only.includes(b.name));
}

export const LR = 0.1;
export const MOMENTUM = 0.9;

export function sgd(be: Backend, n: number): SGD {
  return new SGD(be, n, { lr: LR, momentum: MOMENTUM, ...(n > 0 ? { alloc: (k: number) => be.allocFloat32(k), free: (a: Float32Array) => be.free(a) } : {}) });
}

/** Initial weights shared by every worker. */
export function initialWeights(P: number): Float32Array {
  return randArray(new Rng(7), P, -0.5, 0.5);
}

/** Worker r's local gradient at iteration k (a sum over its share: values up to ~10). */
export function localGradient(P: number, rank: number, k: number): Float32Array {
  return randArray(new Rng(1000 * k + rank + 1), P, -10, 10);
}

export interface HarnessOptions {
  transports: Transport[];
  backends: Backend[];
  P: number;
  iterations: number;
  globalBatch?: number;
  gradientWire?: WireFormat;
  weightWire?: WireFormat;
  chunkElements?: number;
  /** How gradients are reported before finish(): not at all, in decreasing pieces, or in a random order of pieces. */
  ready?: 'none' | 'reverse' | 'random';
  /** Changes worker r's gradient of iteration k before it is reported (fault injection). */
  corrupt?: (rank: number, k: number, g: Float32Array) => void;
  veto?: (rank: number, k: number) => string | undefined;
}

export interface HarnessResult {
  /** Each rank's values after every iteration (copies), [rank][k]. */
  history: Float32Array[][];
  /** [rank][k]: the error of finish(), or undefined. */
  errors: (unknown | undefined)[][];
  reports: (IterationReport | undefined)[][];
  managers: ParameterManager[];
  /** Optimiser iteration counts at the end, per rank. */
  steps: number[];
}

export async function runHarness(o: HarnessOptions): Promise<HarnessResult> {
  const N = o.transports.length;
  const B = o.globalBatch ?? 32;
  const init = initialWeights(o.P);
  const managers: ParameterManager[] = [];
  const flats = o.transports.map((tr, r) => {
    const be = o.backends[r]!;
    const values = be.allocFloat32(o.P);
    const grads = be.allocFloat32(o.P);
    values.set(init);
    managers.push(new ParameterManager({
      transport: tr, backend: be, values, grads, optimizer: (n) => sgd(be, n),
      gradientWire: o.gradientWire, weightWire: o.weightWire, chunkElements: o.chunkElements,
    }));
    return { values, grads };
  });
  const history: Float32Array[][] = flats.map(() => []);
  const errors: (unknown | undefined)[][] = flats.map(() => []);
  const reports: (IterationReport | undefined)[][] = flats.map(() => []);
  const worker = async (r: number): Promise<void> => {
    const pm = managers[r]!;
    const { values, grads } = flats[r]!;
    const rng = new Rng(500 + r);
    for (let k = 0; k < o.iterations; k++) {
      const g = localGradient(o.P, r, k);
      o.corrupt?.(r, k, g);
      grads.fill(0);
      pm.begin(k);
      // Backward "produces" the gradient in pieces, last piece first, yielding in between.
      const cuts = [0, ...Array.from({ length: 5 }, () => rng.int(0, o.P)), o.P].sort((a, b) => a - b);
      const pieces = cuts.slice(1).map((e, i) => [cuts[i]!, e] as const).reverse();
      if (o.ready === 'random') pieces.sort(() => rng.next() - 0.5);
      for (const [s, e] of pieces) {
        grads.set(g.subarray(s, e), s);
        if (o.ready !== undefined && o.ready !== 'none') pm.gradientsReady(s, e - s);
        await new Promise((res) => setImmediate(res));
      }
      try {
        reports[r]!.push(await pm.finish({ globalBatch: B, veto: o.veto?.(r, k) }));
        errors[r]!.push(undefined);
      } catch (err) {
        reports[r]!.push(undefined);
        errors[r]!.push(err);
        if (!(err instanceof IterationAbortedError)) throw err;
      }
      history[r]!.push(values.slice());
    }
  };
  await Promise.all(o.transports.map((_, r) => worker(r)));
  const steps = managers.map((m) => m.optimizer.iteration);
  for (const [r, m] of managers.entries()) {
    m.dispose();
    o.backends[r]!.free(flats[r]!.values);
    o.backends[r]!.free(flats[r]!.grads);
  }
  return { history, errors, reports, managers, steps };
}

/**
 * One process: the same gradients summed over all N workers in rank order, scaled by
 * 1/B, one optimiser over all P values; iterations listed in `skip` are left out (as an
 * aborted iteration is). Returns the values after every iteration.
 */
export function reference(be: Backend, P: number, N: number, iterations: number, B = 32, skip: number[] = []): Float32Array[] {
  const values = initialWeights(P);
  const opt = sgd(be, P);
  const sum = new Float32Array(P);
  const out: Float32Array[] = [];
  for (let k = 0; k < iterations; k++) {
    if (!skip.includes(k)) {
      const parts = Array.from({ length: N }, (_, r) => localGradient(P, r, k));
      if (P > 0) {
        be.sumSlices(parts, sum);
        be.scale(sum, 1 / B, sum);
      }
      opt.step(values, sum);
    }
    out.push(values.slice());
  }
  opt.dispose();
  return out;
}
