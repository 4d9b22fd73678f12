// Counters behind Transport.stats(), and the one path every refusal takes: counted under its
// reason, logged as one line, reported to onReject.
import type { Rejection, TransportOptions, TransportStats } from './transport.js';

export class Counters {
  framesSent = 0;
  framesReceived = 0;
  bytesSent = 0;
  bytesReceived = 0;
  heartbeatsSent = 0;
  heartbeatsReceived = 0;
  peersLost = 0;
  private readonly rejected: Record<string, number> = {};
  private readonly logLine: (line: string) => void;

  constructor(private readonly rank: number, private readonly options: Pick<TransportOptions, 'log' | 'onReject'> = {}) {
    this.logLine = options.log ?? ((line) => console.warn(line));
  }

  log(line: string): void {
    this.logLine(`[squall transport rank ${this.rank}] ${line}`);
  }

  /** Counts, logs and reports a refused frame or peer. */
  reject(r: Rejection): void {
    this.rejected[r.reason] = (this.rejected[r.reason] ?? 0) + 1;
    const who = [r.rank !== undefined ? `rank ${r.rank}` : '', r.remote ?? ''].filter(Boolean).join(' at ');
    this.log(`refused ${who ? `${who} ` : ''}(${r.reason}): ${r.message}`);
    try {
      this.options.onReject?.(r);
    } catch (err) {
      this.log(`onReject threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  snapshot(): TransportStats {
    return {
      framesSent: this.framesSent,
      framesReceived: this.framesReceived,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      heartbeatsSent: this.heartbeatsSent,
      heartbeatsReceived: this.heartbeatsReceived,
      peersLost: this.peersLost,
      rejected: { ...this.rejected },
    };
  }
}
