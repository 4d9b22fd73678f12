// One rank of the all-reduce benchmark, a process forked by bench/cluster/run.ts. Talks to
// its parent over the fork's IPC channel:
//   parent -> child  {type:'config', rank, world, transport:'tcp'|'webrtc', secret, sizesMiB, chunkElements?}
//   child -> parent  {type:'address', address}            (tcp: where this rank listens)
//   parent -> child  {type:'book', addresses}              (tcp: every rank's address)
//   child <-> parent {type:'signal', to|from, message}     (webrtc: the parent relays signalling, as the driver would)
//   child -> parent  {type:'connected', implementation?}
//   child -> parent  {type:'result', mib, reps, times, check}   per size: this rank's per-rep seconds
//   child -> parent  {type:'done', stats}  then exits
//
// One all-reduce is exactly one iteration of the parameter manager (engine/cluster,
// DESIGN.md §4): reduce-scatter of the buffer in chunks to the slice owners, owner sum (in
// rank order, with the finiteness check and the status round), the owner's "optimiser"
// (here a copy: weights := reduced gradient) and the all-gather of the owned slices. With
// globalBatch 1 nothing is scaled, so afterwards every rank's `values` holds the SUM of the
// ranks' `grads`. Timing as torch_allreduce_bench.py: 2 warm-up all-reduces, then R reps
// each preceded by a barrier; the parent takes the max over ranks of each rep, then the
// median over reps.
import { loadBackend } from '../../engine/backends/registry.js';
import { ParameterManager } from '../../engine/cluster/index.js';
import type { Optimizer, OptimizerState } from '../../engine/optim/optimizer.js';
import { listenTcp } from '../../transport/tcp/index.js';
import { FrameKind, WireDtype, type Transport } from '../../transport/transport.js';

interface Config {
  type: 'config';
  rank: number;
  world: number;
  transport: 'tcp' | 'webrtc';
  secret: string;
  sizesMiB: number[];
  chunkElements?: number;
  /** Reps per size (default as the torch script: 30 / 10 / 5 / 3). */
  reps?: number[];
  warmup?: number;
}

type Msg = Record<string, unknown> & { type: string };

/** The part of transport/webrtc this script uses. */
interface WebRtcModule {
  loadWebRtcImplementation(choice: string): Promise<unknown>;
  WebRtcTransport: new (options: Record<string, unknown> & {
    signalling: { send(to: number, message: unknown): void; onMessage(h: (from: number, message: unknown) => void): void };
  }, implementation: unknown) => Transport & { connect(): Promise<void>; implementationName: string };
}

const send = (m: Msg): void => {
  process.send!(m);
};

/** The owner's "optimiser" of an all-reduce: weights := the reduced gradient. */
class CopyOptimizer implements Optimizer {
  readonly name = 'sgd' as const;
  iteration = 0;
  epoch = 0;
  constructor(readonly sliceLength: number) {}
  step(params: Float32Array, grads: Float32Array): void {
    params.set(grads);
    this.iteration++;
  }
  learningRate(): number {
    return 1;
  }
  setEpoch(epoch: number): void {
    this.epoch = epoch;
  }
  state(): OptimizerState {
    return { name: 'sgd', iteration: this.iteration, epoch: this.epoch, buffers: {}, hyper: {} };
  }
  loadState(s: OptimizerState): void {
    this.iteration = s.iteration;
    this.epoch = s.epoch;
  }
  dispose(): void {}
}

/** Messages from the parent, by type, queued until asked for. */
const inbox: Msg[] = [];
const waiters: { type: string; resolve: (m: Msg) => void }[] = [];
let signalHandler: ((from: number, message: unknown) => void) | undefined;
const earlySignals: { from: number; message: unknown }[] = [];
process.on('message', (raw) => {
  const m = raw as Msg;
  if (m.type === 'signal') {
    if (signalHandler) signalHandler(m.from as number, m.message);
    else earlySignals.push({ from: m.from as number, message: m.message });
    return;
  }
  const i = waiters.findIndex((w) => w.type === m.type);
  if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m);
  else inbox.push(m);
});
function expect(type: string): Promise<Msg> {
  const i = inbox.findIndex((m) => m.type === type);
  if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]!);
  return new Promise((resolve) => waiters.push({ type, resolve }));
}

const BARRIER_SLICE = 0x2000_0001;
let barriers = 0;
/** Every rank tells every other rank it is here, then waits to hear from all of them. */
async function barrier(t: Transport): Promise<void> {
  const k = barriers++;
  const payload = new Uint8Array(1);
  const sends: Promise<void>[] = [];
  const recvs: Promise<unknown>[] = [];
  for (let j = 0; j < t.worldSize; j++) {
    if (j === t.rank) continue;
    sends.push(t.send(j, { kind: FrameKind.Control, iteration: k, slice: BARRIER_SLICE, dtype: WireDtype.Bytes, payload }));
    recvs.push(t.receive(j, FrameKind.Control, k, BARRIER_SLICE));
  }
  await Promise.all([...sends, ...recvs]);
}

async function connect(c: Config): Promise<{ transport: Transport; implementation?: string }> {
  const log = (line: string): void => {
    if (!/peer rank \d+ lost/.test(line)) process.stderr.write(`rank ${c.rank}: ${line}\n`);
  };
  if (c.transport === 'tcp') {
    const t = await listenTcp({ rank: c.rank, worldSize: c.world, secret: c.secret, host: '127.0.0.1', port: 0, log, peerTimeoutMs: 120_000 });
    send({ type: 'address', address: t.addressString });
    const book = await expect('book');
    await t.connect(book.addresses as string[]);
    return { transport: t };
  }
  // WebRTC: loaded only when asked for, by a specifier tsc does not resolve (this file
  // compiles whether transport/webrtc exists or not).
  const w = (await import(new URL('../../transport/webrtc/index.js', import.meta.url).href)) as WebRtcModule;
  const impl = await w.loadWebRtcImplementation('auto');
  const t = new w.WebRtcTransport({
    rank: c.rank, worldSize: c.world, secret: c.secret, log, peerTimeoutMs: 120_000, connectTimeoutMs: 60_000,
    signalling: {
      send: (to: number, message: unknown) => send({ type: 'signal', to, message: message as Record<string, unknown> }),
      onMessage: (h) => {
        signalHandler = h;
        for (const s of earlySignals.splice(0)) h(s.from, s.message);
      },
    },
  }, impl);
  await t.connect();
  return { transport: t, implementation: t.implementationName };
}

function repsFor(mib: number, c: Config, index: number): number {
  if (c.reps?.[index] !== undefined) return c.reps[index]!;
  return mib <= 1 ? 30 : mib <= 16 ? 10 : mib <= 64 ? 5 : 3;
}

async function main(): Promise<void> {
  const c = (await expect('config')) as unknown as Config;
  const backend = loadBackend('native');
  backend.setThreads(1);
  const { transport, implementation } = await connect(c);
  send({ type: 'connected', ...(implementation ? { implementation } : {}) });
  let iteration = 0;
  for (const [index, mib] of c.sizesMiB.entries()) {
    const n = Math.floor((mib * (1 << 20)) / 4);
    const values = new Float32Array(n);
    const grads = new Float32Array(n);
    // Distinct per rank and per position (so a slice written in the wrong place shows).
    for (let i = 0; i < n; i++) grads[i] = c.rank + 1 + (i % 7);
    const pm = new ParameterManager({
      transport, backend, values, grads, optimizer: (len) => new CopyOptimizer(len),
      ...(c.chunkElements ? { chunkElements: c.chunkElements } : {}),
    });
    const reps = repsFor(mib, c, index);
    for (let k = 0; k < (c.warmup ?? 2); k++) await pm.step(iteration++, { globalBatch: 1 });
    const times: number[] = [];
    let bytesSent = 0;
    for (let k = 0; k < reps; k++) {
      await barrier(transport);
      const t0 = performance.now();
      const report = await pm.step(iteration++, { globalBatch: 1 });
      times.push((performance.now() - t0) / 1000);
      bytesSent = report.bytesSent;
    }
    // Correctness, once per size: every element of every rank's result is the sum.
    values.fill(-1);
    await barrier(transport);
    await pm.step(iteration++, { globalBatch: 1 });
    const W = c.world;
    const base = (W * (W + 1)) / 2;
    let bad = -1;
    for (let i = 0; i < n; i++) {
      if (values[i] !== base + W * (i % 7)) {
        bad = i;
        break;
      }
    }
    const check = bad < 0 ? { ok: true } : { ok: false, index: bad, got: values[bad], want: base + W * (bad % 7) };
    pm.dispose();
    send({ type: 'result', mib, reps, times, check, bytesSentPerRep: bytesSent });
  }
  await barrier(transport);
  const stats = transport.stats();
  await transport.close();
  send({ type: 'done', stats: stats as unknown as Record<string, unknown> });
}

main().then(() => {
  process.disconnect?.();
  setTimeout(() => process.exit(0), 200).unref();
}, (err: unknown) => {
  process.stderr.write(`allreduce rank failed: ${(err as Error).stack ?? String(err)}\n`);
  try {
    send({ type: 'error', message: (err as Error).message });
  } catch {
    // parent gone
  }
  process.exit(1);
});
