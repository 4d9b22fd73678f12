// The orchestrator's handle on one stepper process (squall_stepper.js or torch_stepper.py):
// start it, wait for its warm-up, ask it for n steps and get each step's seconds back.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

export class Stepper {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';
  /** The stepper's ready line (batch size, BLAS, versions). */
  info: Record<string, unknown> = {};

  constructor(readonly impl: string, command: string, args: string[], env: Record<string, string> = {}) {
    this.child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    this.child.on('error', (err) => { this.stderr += `\n${err.message}`; });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  private async nextJson(): Promise<Record<string, unknown>> {
    for (;;) {
      const { value, done } = await this.lines.next();
      if (done) throw new Error(`${this.impl} ended: ${this.stderr.trim().split('\n').slice(-2).join(' | ') || `exit ${this.child.exitCode}`}`);
      if (value.startsWith('{')) return JSON.parse(value) as Record<string, unknown>;
    }
  }

  async ready(): Promise<void> {
    this.info = await this.nextJson();
  }

  async steps(n: number): Promise<number[]> {
    this.child.stdin.write(`${n}\n`);
    return (await this.nextJson()).times as number[];
  }

  close(): void {
    if (this.child.exitCode === null) {
      this.child.stdin.end('quit\n');
      setTimeout(() => this.child.kill(), 5000).unref();
    }
  }
}
