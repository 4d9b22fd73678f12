// Paired measurement of native configurations that can only differ per process (the
// deterministic mode, the BLAS provider, the built-in GEMM's micro-kernel and blocking,
// OPENBLAS_CORETYPE): each configuration runs one workload in its own warm process
// (native_stepper.js, speaking ../train/stepper.ts's protocol), and the processes take
// turns on the machine as bench/train's do: in every round each runs about `turnSeconds`
// of steps, in a rotating order, with a short rest between turns (a provider's idle
// threads spin briefly after their last call). Ratios are taken per round, so a slow
// moment of this shared machine falls on both sides of each; GFLOP/s are medians over all
// steps.
import { join } from 'node:path';
import { median, repoRoot } from '../common.js';
import { Stepper } from '../train/stepper.js';
import type { NativeStepRequest } from './native_stepper.js';

export interface Contender {
  name: string;
  /** Variables set for this process only, over the parent's environment. */
  env: Record<string, string>;
  /** Variables removed for this process only (through `env -u`, in that one command). */
  unset?: string[];
}

export interface PairedOptions { turnSeconds: number; minRounds: number; maxRounds: number; budgetSeconds: number }

export interface ContenderResult {
  name: string;
  /** The stepper's ready line: blas description, provider, reproducibility, ... */
  info: Record<string, unknown>;
  /** Seconds per call of every timed step. */
  times: number[];
  /** Median seconds per call in each round (index = round). */
  roundMedians: number[];
  error?: string;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function startStepper(c: Contender, request: NativeStepRequest): Stepper {
  const script = join(repoRoot, 'dist', 'bench', 'kernels', 'native_stepper.js');
  const args = [script, JSON.stringify(request)];
  if (c.unset?.length) return new Stepper(c.name, '/usr/bin/env', [...c.unset.flatMap((v) => ['-u', v]), process.execPath, ...args], c.env);
  return new Stepper(c.name, process.execPath, args, c.env);
}

/** Runs `request` in one process per contender, in paired rounds; every process is closed at the end. */
export async function runPaired(contenders: Contender[], request: NativeStepRequest, o: PairedOptions): Promise<ContenderResult[]> {
  const steppers = contenders.map((c) => startStepper(c, request));
  const results = new Map<string, ContenderResult>(contenders.map((c) => [c.name, { name: c.name, info: {}, times: [], roundMedians: [] }]));
  const perTurn = new Map<string, number>();
  try {
    // Warm-up one at a time, so no warm-up competes with another.
    for (const s of steppers) {
      try {
        await s.ready();
        results.get(s.impl)!.info = s.info;
      } catch (err) {
        results.get(s.impl)!.error = (err as Error).message;
      }
    }
    const live = steppers.filter((s) => !results.get(s.impl)!.error);
    for (const s of live) {
      const [t] = await s.steps(1);
      const stepSeconds = t! * (Number(s.info.reps) || 1);
      perTurn.set(s.impl, Math.max(1, Math.round(o.turnSeconds / stepSeconds)));
    }
    const start = performance.now();
    for (let round = 0; live.length && round < o.maxRounds &&
      (round < o.minRounds || performance.now() - start < o.budgetSeconds * live.length * 1000); round++) {
      for (let j = 0; j < live.length; j++) {
        const s = live[(j + round) % live.length]!;
        await pause(30);
        const ts = await s.steps(perTurn.get(s.impl)!);
        const r = results.get(s.impl)!;
        r.times.push(...ts);
        r.roundMedians.push(median(ts));
      }
    }
  } catch (err) {
    for (const r of results.values()) r.error ??= (err as Error).message;
  } finally {
    for (const s of steppers) s.close();
  }
  return contenders.map((c) => results.get(c.name)!);
}

/** Median over rounds of a's speed over b's (b's time / a's time in the same round); undefined without shared rounds. */
export function pairedSpeedRatio(a: ContenderResult | undefined, b: ContenderResult | undefined): number | undefined {
  if (!a || !b || a.error || b.error) return undefined;
  const n = Math.min(a.roundMedians.length, b.roundMedians.length);
  if (n === 0) return undefined;
  return median(a.roundMedians.slice(0, n).map((t, i) => b.roundMedians[i]! / t));
}

/** Median GFLOP/s over all timed steps. */
export function gflops(r: ContenderResult | undefined, flop: number): number | undefined {
  return r && !r.error && r.times.length ? flop / median(r.times) / 1e9 : undefined;
}
