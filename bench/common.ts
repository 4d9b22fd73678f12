// Shared by every benchmark: timing by medians, the machine record, results as JSON and
// a Markdown table. The machine is shared and noisy, so every figure is a median and
// every claim a ratio to a peer measured in the same run.
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const resultsDir = join(repoRoot, 'bench', 'results');

export interface Timing {
  medianSeconds: number;
  samples: number;
}

/** Median wall time of fn after one warm-up call; repeats until minSeconds and minSamples are both reached. */
export function timeSync(fn: () => void, minSeconds = 0.3, minSamples = 5, maxSamples = 200): Timing {
  fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxSamples && (times.length < minSamples || performance.now() - start < minSeconds * 1000)) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1000);
  }
  return { medianSeconds: median(times), samples: times.length };
}

export async function timeAsync(fn: () => Promise<void>, minSeconds = 0.3, minSamples = 5, maxSamples = 200): Promise<Timing> {
  await fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxSamples && (times.length < minSamples || performance.now() - start < minSeconds * 1000)) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return { medianSeconds: median(times), samples: times.length };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function machineRecord(): Record<string, unknown> {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    // not a checkout
  }
  return {
    date: new Date().toISOString(),
    commit,
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    loadAverage: os.loadavg(),
    OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? null,
    OPENBLAS_L2_SIZE: process.env.OPENBLAS_L2_SIZE ?? null,
  };
}

export type Cell = string | number | null;

export function markdownTable(headers: string[], rows: Cell[][]): string {
  const fmt = (c: Cell): string => (c === null ? '—' : typeof c === 'number' ? formatNumber(c) : c);
  const lines = [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(fmt).join(' | ')} |`);
  return lines.join('\n');
}

export function formatNumber(x: number): string {
  if (!Number.isFinite(x) || Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** Writes bench/results/NAME.json and NAME.md atomically (temp file, then rename). */
export function writeResults(name: string, json: unknown, markdown: string): void {
  mkdirSync(resultsDir, { recursive: true });
  for (const [ext, text] of [['json', JSON.stringify(json, null, 2) + '\n'], ['md', markdown.trimEnd() + '\n']] as const) {
    const path = join(resultsDir, `${name}.${ext}`);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  }
  console.log(`wrote bench/results/${name}.json and bench/results/${name}.md`);
}
