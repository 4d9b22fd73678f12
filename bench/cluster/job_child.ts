// One worker process of a cluster job for bench/cluster (LeNet-5, VGG-16): what
// `squall worker` does (engine/cluster workerMain: joinJob + runWorker over the TCP mesh),
// plus, at the end, this worker's transport counters sent to the parent over IPC (so the
// benchmark can report the bytes each worker put on the wire per iteration).
//   node dist/bench/cluster/job_child.js '{"driver":"127.0.0.1:PORT","backend":"native","rank":0,"threads":1}'
// The job secret comes in $SQUALL_SECRET, as for `squall worker`.
import { joinJob, runWorker, SECRET_ENV } from '../../engine/cluster/index.js';

interface Args { driver: string; backend: 'native' | 'wasm'; rank: number; threads: number }

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const secret = process.env[SECRET_ENV];
if (!secret) throw new Error(`${SECRET_ENV} is not set`);
const log = (line: string): void => {
  if (!/peer rank \d+ lost/.test(line)) process.stderr.write(`${line}\n`);
};
const joined = await joinJob({ driver: a.driver, secret, backend: a.backend, rank: a.rank, log });
const result = await runWorker({ transport: joined.transport, backend: a.backend, threads: a.threads, log });
process.send?.({ type: 'stats', rank: joined.rank, result, stats: joined.transport.stats() });
process.disconnect?.();
