// A training progress bar: loss, images/s and ETA. On a terminal it redraws one line in
// place; elsewhere (CI logs, pipes) it prints a plain line at most every few seconds and at
// the end, so logs stay readable.
import type { Writable } from 'node:stream';

export interface ProgressStats {
  loss: number;
  imagesPerSecond: number;
}

export class ProgressBar {
  private readonly start = performance.now();
  private lastPrint = 0;
  private readonly tty: boolean;

  constructor(private readonly label: string, private readonly total: number, private readonly out: Writable & { isTTY?: boolean } = process.stderr,
              private readonly plainEverySeconds = 5) {
    this.tty = Boolean(out.isTTY) && process.env.CI !== 'true';
  }

  update(done: number, stats: ProgressStats): void {
    const now = performance.now();
    const final = done >= this.total;
    if (!this.tty && !final && now - this.lastPrint < this.plainEverySeconds * 1000) return;
    if (this.tty && !final && now - this.lastPrint < 100) return;
    this.lastPrint = now;
    const line = this.format(done, stats, now);
    if (this.tty) this.out.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
    else this.out.write(`${line}\n`);
  }

  private format(done: number, s: ProgressStats, now: number): string {
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = `${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? (frac < 1 ? '>' : '=') : ''}${' '.repeat(width - filled)}`;
    const elapsed = (now - this.start) / 1000;
    const eta = frac > 0 ? elapsed * (1 - frac) / frac : NaN;
    return `${this.label} [${bar}] ${done}/${this.total} loss ${s.loss.toFixed(4)} ${s.imagesPerSecond.toFixed(0)} img/s ` +
      `${frac < 1 ? `ETA ${formatSeconds(eta)}` : `in ${formatSeconds(elapsed)}`}`;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
