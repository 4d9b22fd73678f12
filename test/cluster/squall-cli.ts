// The squall command as a child process, and a free port, for the tests of the cluster commands.
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { SQUALL_BIN } from '../../engine/cluster/launch.js';

export interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** squall processes started and not yet ended, with what resolves once each has. */
const running = new Map<ChildProcess, Promise<Run>>();

/** Runs `squall ...args` with `env` added to this process's environment; resolves when it exits. */
export function squall(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const c = spawn(process.execPath, [SQUALL_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const done = new Promise<Run>((resolve) => {
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => {
      running.delete(c);
      resolve({ code, out, err });
    });
  });
  running.set(c, done);
  return done;
}

/**
 * Kills the squall processes still running and waits for them (t.teardown at the top of every
 * test file that runs squall): a test that gave up on one (a within() timeout) must neither
 * stay alive because of it nor leave it running after the suite.
 */
export async function stopSquallProcesses(): Promise<void> {
  const left = [...running];
  for (const [c] of left) c.kill('SIGKILL');
  await Promise.all(left.map(([, done]) => done));
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
