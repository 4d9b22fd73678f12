// A whole cluster job in this process: the driver and N workers on one in-process mesh of
// N + 1 ranks (transport/inproc), each worker with its own backend and model. The same
// Driver and runWorker code as a job of processes; `squall train --transport inproc` and the
// tests use it.
import type { Backend, BackendName } from '../backends/backend.js';
import { InProcessHub } from '../../transport/inproc/index.js';
import type { Transport } from '../../transport/transport.js';
import { Driver, type DriverOptions, type DriverResult } from './driver.js';
import type { JobData } from './job.js';
import type { JobSpec } from './protocol.js';
import { runWorker, type WorkerResult } from './worker.js';

export interface InProcessJobOptions extends Omit<DriverOptions, 'transport'> {
  /** One entry per worker: its backend. */
  backends: readonly (BackendName | Backend)[];
  /** Replaces loading the data on every worker (e.g. one shared synthetic set). */
  loadData?: (job: JobSpec) => JobData;
  /** Test hook, per worker: before each iteration; gets the worker's transport (close it to play a crash). */
  beforeIteration?: (info: { rank: number; iteration: number; transport: Transport }) => void | Promise<void>;
  /** Called with the driver once it exists (to abort it, or report exits). */
  onDriver?: (driver: Driver) => void;
  log?: (line: string) => void;
}

export interface InProcessJobResult {
  driver: DriverResult;
  workers: WorkerResult[];
}

/** Thrown when the job fails: the driver's error, with every worker's outcome. */
export class InProcessJobError extends Error {
  constructor(readonly driverError: unknown, readonly workerErrors: readonly unknown[]) {
    super((driverError as Error)?.message ?? String(driverError));
    this.name = 'InProcessJobError';
  }
}

export async function runInProcessJob(o: InProcessJobOptions): Promise<InProcessJobResult> {
  const N = o.backends.length;
  if (N < 1) throw new RangeError('runInProcessJob: give at least one worker backend');
  const raw = o.log ?? (() => {});
  // Ranks close one after the other at the end: "peer lost" lines are not news (a loss that matters is reported by the driver).
  const log = (line: string): void => {
    if (!/peer rank \d+ lost/.test(line)) raw(line);
  };
  const hub = new InProcessHub(N + 1, { log });
  const { backends, loadData, beforeIteration, onDriver, ...driverOptions } = o;
  const driver = new Driver({ ...driverOptions, transport: hub.endpoint(N) });
  onDriver?.(driver);
  const workers = backends.map((b, r) => {
    const transport = hub.endpoint(r);
    return runWorker({
      transport, backend: b, log,
      ...(loadData ? { loadData } : {}),
      ...(beforeIteration ? { beforeIteration: (i: { rank: number; iteration: number }) => beforeIteration({ ...i, transport }) } : {}),
    });
  });
  const [d, ...ws] = await Promise.allSettled([driver.run(), ...workers]);
  if (d!.status === 'rejected' || ws.some((w) => w.status === 'rejected')) {
    const workerErrors = ws.map((w) => (w.status === 'rejected' ? w.reason : undefined));
    throw new InProcessJobError(d!.status === 'rejected' ? d!.reason : workerErrors.find((e) => e !== undefined), workerErrors);
  }
  return {
    driver: (d as PromiseFulfilledResult<DriverResult>).value,
    workers: ws.map((w) => (w as PromiseFulfilledResult<WorkerResult>).value),
  };
}
