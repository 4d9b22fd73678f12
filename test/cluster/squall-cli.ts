// The squall command as a child process, and a free port, for the tests of the cluster commands.
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { SQUALL_BIN } from '../../engine/cluster/launch.js';

export interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `squall ...args` with `env` added to this process's environment; resolves when it exits. */
export function squall(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [SQUALL_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => resolve({ code, out, err }));
  });
}

/** A port nothing listens on right now (for a driver started later). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}
