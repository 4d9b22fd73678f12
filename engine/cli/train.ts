// `squall train`: local training in one process, e.g.
//   squall train --model lenet5 --dataset fashion-mnist --epochs 2 --backend native
// or, with --workers, a cluster job on this machine (a driver here, worker processes):
//   squall train --workers native:2,wasm:1 --transport tcp --schedule group --group-size 10 --wire bf16
//   squall train --workers native,wasm --transport webrtc [--webrtc auto|wrtc|node-datachannel]
// and the commands for the machines of a cluster: `squall driver`, `squall worker`, and
// `squall cluster` (every process of an srun / torchrun job).
import { loadBackend } from '../backends/registry.js';
import type { Dataset } from '../data/index.js';
import { loadFashionMnist, meanStd, normalise, sliceDataset, syntheticDataset } from '../data/index.js';
import { modelSpec, type ModelSpec } from '../models/index.js';
import { ClassNLLCriterion } from '../nn/index.js';
import { createOptimizer, type OptimizerName } from '../optim/index.js';
import { train } from '../train/index.js';
import { DEFAULT_DRIVER_PORT } from '../cluster/env.js';
import { runInProcessJob } from '../cluster/inproc.js';
import { jobModelSpec, loadJobData, readParameters, readStates, type JobData, type JobModel } from '../cluster/job.js';
import { describeArchitecture } from '../io/architecture.js';
import { withLogProbabilities } from '../train/classifier-output.js';
import { loadModel } from '../io/load.js';
import { basename } from 'node:path';
import type { Module } from '../nn/index.js';
import {
  clusterMain, driverMain, launchLocal, newSecret, parseShares, parseWorkerList, readSecret, workerMain, type JobOptions, type MeshChoice, SECRET_ENV,
} from '../cluster/launch.js';
import type { DriverResult } from '../cluster/driver.js';
import type { JobSpec } from '../cluster/protocol.js';
import { isAggregationMode } from '../cluster/aggregation.js';
import { isMeshTransport } from '../cluster/rendezvous.js';
import { isScheduleMode } from '../cluster/scheduler.js';
import { isWireFormat } from '../cluster/wire-codec.js';
import { UsageError, optionsHelp, parseOptions, parseShape, type OptionSpec, type Parsed } from './args.js';
import type { WebRtcImplementationChoice } from '../../transport/webrtc/implementation.js';

export const trainOptions: Record<string, OptionSpec> = {
  model: { type: 'string', help: 'lenet5 | vgg_cifar | inception_v1 | vgg16', default: 'lenet5' },
  'model-file': { type: 'string', help: 'fine-tune a model from a file instead (ONNX, Caffe .prototxt, Torch7 .t7 or Squall; format read from the content)' },
  'model-weights': { type: 'string', help: 'the .caffemodel of a Caffe --model-file' },
  'input-shape': { type: 'string', help: 'C,H,W of one sample, for a --model-file that does not declare it' },
  dataset: { type: 'string', help: 'fashion-mnist | synthetic (random images of the model\'s input shape)', default: 'fashion-mnist' },
  epochs: { type: 'int', help: 'passes over the training set', default: 2 },
  batch: { type: 'int', help: 'mini-batch size (default: the model\'s benchmark batch)' },
  optimizer: { type: 'string', help: 'sgd | adam', default: 'sgd' },
  lr: { type: 'number', help: 'learning rate', default: 0.05 },
  momentum: { type: 'number', help: 'SGD momentum', default: 0.9 },
  'weight-decay': { type: 'number', help: 'L2 weight decay', default: 0 },
  backend: { type: 'string', help: 'native | wasm', default: 'native' },
  threads: { type: 'int', help: 'kernel threads (default: all cores)' },
  seed: { type: 'int', help: 'seeds initialisation and batch order', default: 1 },
  checkpoint: { type: 'string', help: 'write a checkpoint here after every epoch' },
  resume: { type: 'flag', help: 'continue from --checkpoint when it exists' },
  limit: { type: 'int', help: 'use only the first N training samples' },
  'max-iterations': { type: 'int', help: 'stop after N iterations' },
  'synthetic-size': { type: 'int', help: 'samples of the synthetic data set', default: 1024 },
};

/** What --workers adds: a cluster job on this machine. */
export const clusterTrainOptions: Record<string, OptionSpec> = {
  workers: { type: 'string', help: 'train as a cluster job with these workers: native:2,wasm:1 (or a count of --backend workers)' },
  transport: {
    type: 'string', default: 'tcp',
    help: 'tcp (a driver here and worker processes) | webrtc (the same over WebRTC data channels; needs node-datachannel or @roamhq/wrtc) | inproc (everything in this process)',
  },
  webrtc: { type: 'string', help: 'with --transport webrtc, the implementation every process loads: auto (node-datachannel, else @roamhq/wrtc) | wrtc | node-datachannel', default: 'auto' },
  schedule: { type: 'string', help: 'group (Drizzle: one launch per group, the next pre-scheduled) | bsp (a launch per iteration)', default: 'group' },
  'group-size': { type: 'int', help: 'iterations per group (G); also the checkpoint granularity', default: 10 },
  wire: { type: 'string', help: 'f32 | bf16 | fp16 encoding of gradients and weights on the wire', default: 'f32' },
  aggregate: { type: 'string', help: 'allreduce (peer to peer, BigDL) | driver (Spark reduce through the driver) | tree (treeAggregate)', default: 'allreduce' },
  shares: { type: 'string', help: 'relative shares of the global batch per worker, e.g. 2,2,1 (default equal)' },
  timeout: { type: 'number', help: 'seconds after which a silent worker is lost and the job stops', default: 30 },
  'checkpoint-every': { type: 'int', help: 'write --checkpoint every N groups (and at the end)', default: 1 },
  'launch-timeout': { type: 'number', help: 'seconds a launch (group) may take before the job stops (default: no limit)' },
};

const trainAll = { ...trainOptions, ...clusterTrainOptions };

export const trainUsage = `usage: squall train [options]\n\n${optionsHelp(trainAll)}`;

function str(v: unknown): string {
  return String(v);
}

export async function trainCommand(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log(trainUsage);
    return 0;
  }
  const o = parseOptions('squall train', args, trainAll);
  if (o.workers !== undefined) return clusterTrain(o);
  const chosen = await trainedModel('squall train', o);
  const spec = chosen.spec;
  const backend = loadBackend(str(o.backend));
  if (o.threads !== undefined) backend.setThreads(o.threads as number);
  const batchSize = (o.batch as number | undefined) ?? spec.batch;
  const seed = o.seed as number;

  let trainSet: Dataset;
  let validation: Dataset | undefined;
  if (o.dataset === 'fashion-mnist') {
    if (spec.input.join('x') !== '1x28x28') throw new UsageError(`squall train: fashion-mnist has 1x28x28 images, model ${spec.name} takes ${spec.input.join('x')}; use --dataset synthetic`);
    trainSet = loadFashionMnist({ split: 'train' });
    validation = loadFashionMnist({ split: 'test' });
    // Normalise both with the training set's statistics.
    const { mean, std } = meanStd(trainSet);
    normalise(trainSet, mean, std);
    normalise(validation, mean, std);
  } else if (o.dataset === 'synthetic') {
    const size = o['synthetic-size'] as number;
    trainSet = syntheticDataset({ length: size, shape: spec.input, classes: spec.classes, seed, separation: 1 });
    validation = syntheticDataset({ length: Math.max(batchSize, Math.floor(size / 4)), first: size, shape: spec.input, classes: spec.classes, seed, separation: 1 });
  } else {
    throw new UsageError(`squall train: unknown --dataset '${str(o.dataset)}' (fashion-mnist | synthetic)`);
  }
  if (o.limit !== undefined) trainSet = sliceDataset(trainSet, 0, Math.min(trainSet.length, o.limit as number));

  const model = (chosen.module ?? modelSpec(spec.name).build(spec.classes).reset(seed)).to(backend);
  const name = str(o.optimizer) as OptimizerName;
  const hyper = name === 'sgd'
    ? { lr: o.lr as number, momentum: o.momentum as number, weightDecay: o['weight-decay'] as number }
    : { lr: o.lr as number, weightDecay: o['weight-decay'] as number };
  const optimizer = createOptimizer(name, backend, model.flatParameters().length, { ...hyper, alloc: (n) => backend.allocFloat32(n), free: (a) => backend.free(a) });
  const info = backend.info();
  console.error(`squall train: ${spec.name} (${model.parameterCount()} parameters) on ${backend.name} (${info.blas}, ${info.threads} threads), ` +
    `${o.dataset} ${trainSet.length} samples, batch ${batchSize}, ${name} lr ${str(o.lr)}`);
  const summaries = await train({
    model, criterion: new ClassNLLCriterion(), optimizer, train: trainSet, validation, epochs: o.epochs as number, batchSize, seed,
    checkpointPath: o.checkpoint as string | undefined, resume: Boolean(o.resume), maxIterations: o['max-iterations'] as number | undefined,
    ...(chosen.module ? { architecture: true, inputShape: spec.input } : { modelSpec: { name: spec.name, classes: spec.classes } }), describe: { dataset: o.dataset },
  });
  const last = summaries.at(-1);
  if (last?.validation) console.log(`test accuracy ${(100 * last.validation.accuracy).toFixed(2)}%`);
  return 0;
}

// ---- cluster jobs ---------------------------------------------------------------------------

function choice<T extends string>(command: string, name: string, v: unknown, ok: (x: unknown) => x is T, list: string): T {
  if (!ok(v)) throw new UsageError(`${command}: --${name} must be ${list}, got '${str(v)}'`);
  return v;
}

/** The job a driver runs, from the train options. */
/**
 * The model a command trains: --model from engine/models, or --model-file read by
 * engine/io (with its weights, the starting point of the job; classes from its output).
 */
export async function trainedModel(command: string, o: Parsed): Promise<{ spec: TrainedSpec; job: JobModel; module?: Module; initial?: Float32Array; states?: Float32Array }> {
  if (o['model-file'] === undefined) {
    if (o['model-weights'] !== undefined || o['input-shape'] !== undefined) throw new UsageError(`${command}: --model-weights and --input-shape go with --model-file`);
    const spec = modelSpec(str(o.model));
    return { spec, job: { name: spec.name, classes: spec.classes } };
  }
  const file = str(o['model-file']);
  const input = o['input-shape'] !== undefined ? parseShape(command, 'input-shape', str(o['input-shape'])) : undefined;
  const loaded = await loadModel(file, { ...(o['model-weights'] !== undefined ? { weights: str(o['model-weights']) } : {}), ...(input ? { inputShape: input } : {}) });
  // A file that does not declare its input (Torch7, some Caffe nets) takes Fashion-MNIST's images when it trains on them.
  const shape = loaded.inputShape ?? (o.dataset === 'fashion-mnist' ? [1, 28, 28] : null);
  if (!shape || shape.length !== 3) {
    throw new UsageError(`${command}: ${file} does not say the shape of one input sample${shape ? ` as C,H,W (it says ${shape.join(',')})` : ''}; give --input-shape C,H,W`);
  }
  const out = loaded.model.outputShape([1, ...shape]);
  if (out.length !== 2) throw new UsageError(`${command}: ${file} gives outputs of shape ${out.join('x')} per batch; training needs [batch, classes] (a classifier)`);
  const name = basename(file);
  const spec: TrainedSpec = { name, input: shape as [number, number, number], classes: out[1]!, batch: 128 };
  const { model: module, change } = withLogProbabilities(loaded.model);
  console.error(`${command}: ${file} (${loaded.format}): ${module.parameterCount()} parameters, input ${shape.join('x')}, ${spec.classes} classes${change ? `; ${change}` : ''}`);
  return {
    spec, module, job: { name, classes: spec.classes, architecture: describeArchitecture(module), input: [...shape] },
    initial: readParameters(module), states: readStates(module),
  };
}

type TrainedSpec = Pick<ModelSpec, 'name' | 'input' | 'classes' | 'batch'>;

export async function jobOptions(command: string, o: Parsed, workers: number): Promise<JobOptions> {
  const model = await trainedModel(command, o);
  const spec = model.spec;
  const dataset = str(o.dataset);
  if (dataset !== 'fashion-mnist' && dataset !== 'synthetic') throw new UsageError(`${command}: unknown --dataset '${dataset}' (fashion-mnist | synthetic)`);
  if (dataset === 'fashion-mnist' && spec.input.join('x') !== '1x28x28') {
    throw new UsageError(`${command}: fashion-mnist has 1x28x28 images, model ${spec.name} takes ${spec.input.join('x')}; use --dataset synthetic`);
  }
  const name = str(o.optimizer);
  if (name !== 'sgd' && name !== 'adam') throw new UsageError(`${command}: --optimizer must be sgd or adam, got '${name}'`);
  const hyper: Record<string, number> = name === 'sgd'
    ? { lr: o.lr as number, momentum: o.momentum as number, weightDecay: o['weight-decay'] as number }
    : { lr: o.lr as number, weightDecay: o['weight-decay'] as number };
  const wire = choice(command, 'wire', o.wire, isWireFormat, 'f32, bf16 or fp16');
  const schedule = choice(command, 'schedule', o.schedule, isScheduleMode, 'group or bsp');
  const aggregate = choice(command, 'aggregate', o.aggregate, isAggregationMode, 'allreduce, driver or tree');
  const groupSize = o['group-size'] as number;
  if (!(groupSize >= 1)) throw new UsageError(`${command}: --group-size must be at least 1`);
  if (!((o.timeout as number) > 0)) throw new UsageError(`${command}: --timeout must be a positive number of seconds`);
  let weights: number[] | undefined;
  try {
    if (o.shares !== undefined) weights = parseShares(str(o.shares), workers);
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message}`);
  }
  const seed = o.seed as number;
  return {
    model: model.job, seed, ...(model.initial ? { initialWeights: { parameters: model.initial, ...(model.states ? { states: model.states } : {}) } } : {}),
    data: {
      dataset, seed, test: true,
      ...(o.limit !== undefined ? { limit: o.limit as number } : {}),
      ...(dataset === 'synthetic' ? { syntheticSize: o['synthetic-size'] as number } : {}),
    },
    batchSize: (o.batch as number | undefined) ?? spec.batch,
    optimizer: { name, hyper }, gradientWire: wire, weightWire: wire, schedule, groupSize, aggregate,
    epochs: o.epochs as number,
    ...(o['max-iterations'] !== undefined ? { maxIterations: o['max-iterations'] as number } : {}),
    ...(weights ? { weights } : {}),
    ...(o['launch-timeout'] !== undefined ? { launchTimeoutMs: (o['launch-timeout'] as number) * 1000 } : {}),
    ...(o.checkpoint !== undefined ? { checkpointPath: str(o.checkpoint), checkpointEvery: o['checkpoint-every'] as number, resume: Boolean(o.resume) } : {}),
    describe: { dataset },
  };
}

const isWebRtcChoice = (x: unknown): x is WebRtcImplementationChoice => x === 'auto' || x === 'wrtc' || x === 'node-datachannel';

/** --transport tcp|webrtc and --webrtc: the mesh a driver sets up (the workers follow it). */
export function meshChoice(command: string, o: Parsed): Required<MeshChoice> {
  return {
    transport: choice(command, 'transport', o.transport, isMeshTransport, 'tcp or webrtc'),
    webrtc: choice(command, 'webrtc', o.webrtc, isWebRtcChoice, 'auto, wrtc or node-datachannel'),
  };
}

function printResult(command: string, r: DriverResult, workers: string): void {
  const n = r.endIteration - r.startIteration;
  const waits = r.launches.flatMap((l) => l.workers.map((w) => w.waitSeconds));
  // Per worker, in all (the mean over workers of each one's total wait).
  const wait = (1000 * waits.reduce((a, b) => a + b, 0)) / Math.max(1, r.ready.length);
  console.error(`${command}: ${workers}: ${n} iterations (${r.startIteration}-${r.endIteration}) in ${r.seconds.toFixed(1)} s, ` +
    `${r.imagesPerSecond.toFixed(0)} img/s; ${r.control.launchMessages} launch and ${r.control.doneMessages} completion messages, ` +
    `a worker waited ${wait.toFixed(1)} ms in all for its launches${r.checkpoints ? `; ${r.checkpoints} checkpoints` : ''}`);
  if (r.evaluation) console.log(`test accuracy ${(100 * r.evaluation.accuracy).toFixed(2)}% (${r.evaluation.samples} test images)`);
}

/** `squall train --workers ...`: a driver here and the workers on this machine (processes over TCP or WebRTC, or in this process). */
async function clusterTrain(o: Parsed): Promise<number> {
  const command = 'squall train';
  let backends;
  try {
    backends = parseWorkerList(str(o.workers), str(o.backend));
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message}`);
  }
  const job = await jobOptions(command, o, backends.length);
  const transport = str(o.transport);
  if (transport !== 'inproc' && !isMeshTransport(transport)) throw new UsageError(`${command}: --transport must be tcp, webrtc or inproc, got '${transport}'`);
  const mesh = transport === 'inproc' ? undefined : meshChoice(command, o);
  const label = backends.join(',');
  console.error(`${command}: ${job.model.name} on ${backends.length} workers (${label}) over ${transport}${mesh?.transport === 'webrtc' ? ` (${mesh.webrtc})` : ''}, ${job.schedule}` +
    `${job.schedule === 'group' ? ` G=${job.groupSize}` : ''}, global batch ${job.batchSize}, ${job.optimizer.name} lr ${str(o.lr)}, wire ${job.gradientWire}` +
    `${job.aggregate && job.aggregate !== 'allreduce' ? `, aggregate ${job.aggregate}` : ''}`);
  let result: DriverResult;
  if (mesh) {
    const r = await launchLocal({ ...job, ...mesh, backends, timeoutMs: (o.timeout as number) * 1000, ...(o.threads !== undefined ? { threads: o.threads as number } : {}) });
    result = r.driver;
    if (mesh.transport === 'webrtc') {
      console.error(`${command}: WebRTC data channels (workers: ${r.workers.map((w) => w.implementation).join(', ')}); ` +
        `the driver relayed ${r.signalling.relayed} signalling messages`);
    }
  } else {
    // One copy of the data for every worker of this process.
    let data: JobData | undefined;
    const loadData = (j: JobSpec): JobData => (data ??= loadJobData(j.data, jobModelSpec(j.model), j.batchSize));
    result = (await runInProcessJob({ ...job, backends, loadData, log: (l) => console.error(l) })).driver;
  }
  printResult(command, result, `${backends.length} workers (${label})`);
  return 0;
}

const secretOption: OptionSpec = { type: 'string', help: `file holding the job secret (default: $${SECRET_ENV})` };

const meshTransportOption: OptionSpec = {
  type: 'string', default: 'tcp',
  help: 'tcp | webrtc: the mesh of the job, chosen here and followed by every worker (webrtc: the driver relays the signalling; every process needs node-datachannel or @roamhq/wrtc)',
};

export const driverOptions: Record<string, OptionSpec> = {
  ...trainOptions,
  ...clusterTrainOptions,
  workers: { type: 'int', help: 'number of workers to wait for' },
  transport: meshTransportOption,
  host: { type: 'string', help: 'address to listen on', default: '0.0.0.0' },
  port: { type: 'int', help: 'port the workers dial', default: DEFAULT_DRIVER_PORT },
  'secret-file': secretOption,
  'join-timeout': { type: 'number', help: 'seconds to wait for the workers to join', default: 300 },
};
delete (driverOptions as Record<string, unknown>).backend;
delete (driverOptions as Record<string, unknown>).threads;

export const driverUsage = `usage: squall driver --workers N [--port P] [options]\n\n${optionsHelp(driverOptions)}`;

/** `squall driver`: the driver of a cluster job whose workers run elsewhere (`squall worker --driver HOST:PORT`). */
export async function driverCommand(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log(driverUsage);
    return 0;
  }
  const command = 'squall driver';
  const o = parseOptions(command, args, driverOptions);
  if (o.workers === undefined || (o.workers as number) < 1) throw new UsageError(`${command}: --workers N (the number of workers) is required`);
  const N = o.workers as number;
  const job = await jobOptions(command, o, N);
  let secret = readSecret(o['secret-file'] as string | undefined);
  if (!secret) {
    secret = newSecret();
    console.error(`${command}: no ${SECRET_ENV} set; this job's secret is ${secret}\n  start the workers with ${SECRET_ENV}=${secret} in their environment`);
  }
  const result = await driverMain({
    ...job, ...meshChoice(command, o), host: str(o.host), port: o.port as number, workers: N, secret, timeoutMs: (o.timeout as number) * 1000,
    joinTimeoutMs: (o['join-timeout'] as number) * 1000, log: (l) => console.error(l),
    onListening: (a, id) => console.error(`${command}: job ${id} listening on ${a.host}:${a.port} for ${N} workers: squall worker --driver HOST:${a.port} --backend native|wasm`),
  });
  printResult(command, result, `${N} workers (${result.ready.map((m) => `${m.backend}@${m.host}`).join(', ')})`);
  return 0;
}

export const workerOptions: Record<string, OptionSpec> = {
  driver: { type: 'string', help: 'HOST:PORT of the driver (default: MASTER_ADDR:MASTER_PORT, or Slurm\'s first node)' },
  backend: { type: 'string', help: 'native | wasm', default: 'native' },
  rank: { type: 'int', help: 'ask for this worker rank (default: RANK / SLURM_PROCID, else the driver assigns one)' },
  threads: { type: 'int', help: 'kernel threads' },
  listen: { type: 'string', help: 'address the worker listens on for its peers in a TCP job (default 127.0.0.1 for a local driver, else 0.0.0.0); the driver chooses tcp or webrtc' },
  'secret-file': secretOption,
  'connect-timeout': { type: 'number', help: 'seconds to keep dialing the driver', default: 60 },
};

export const workerUsage = `usage: squall worker --driver HOST:PORT --backend native|wasm [options]\n\n${optionsHelp(workerOptions)}`;

/** `squall worker`: one worker process; exits when the driver ends the job (0) or the job fails (1). */
export async function workerCommand(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log(workerUsage);
    return 0;
  }
  const command = 'squall worker';
  const o = parseOptions(command, args, workerOptions);
  const secret = readSecret(o['secret-file'] as string | undefined);
  if (!secret) throw new UsageError(`${command}: set ${SECRET_ENV} (the secret the driver printed) or give --secret-file`);
  let code = 0;
  try {
    await workerMain({
      ...(o.driver !== undefined ? { driver: str(o.driver) } : {}), backend: str(o.backend),
      ...(o.rank !== undefined ? { rank: o.rank as number } : {}), ...(o.threads !== undefined ? { threads: o.threads as number } : {}),
      ...(o.listen !== undefined ? { listen: str(o.listen) } : {}), secret, connectTimeoutMs: (o['connect-timeout'] as number) * 1000,
      log: (l) => console.error(l),
    });
  } catch (err) {
    console.error(`${command}: ${(err as Error).message}`);
    code = 1;
  }
  // Nothing should be left holding the process; if something is, do not linger.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}

export const clusterOptions: Record<string, OptionSpec> = {
  ...trainOptions,
  ...clusterTrainOptions,
  driver: { type: 'string', help: 'HOST:PORT of the driver (default: from the environment)' },
  transport: meshTransportOption,
  host: { type: 'string', help: 'address rank 0\'s driver listens on', default: '0.0.0.0' },
  'secret-file': secretOption,
  'join-timeout': { type: 'number', help: 'seconds to wait for all ranks', default: 300 },
};
delete (clusterOptions as Record<string, unknown>).workers;

export const clusterUsage = `usage: squall cluster [options]   (every process of an srun / torchrun job runs it)\n\n${optionsHelp(clusterOptions)}`;

/** `squall cluster`: rank and world size from Slurm or RANK/WORLD_SIZE; rank 0 also runs the driver. */
export async function clusterCommand(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log(clusterUsage);
    return 0;
  }
  const command = 'squall cluster';
  const o = parseOptions(command, args, clusterOptions);
  const secret = readSecret(o['secret-file'] as string | undefined);
  if (!secret) throw new UsageError(`${command}: every rank needs the same secret: export ${SECRET_ENV} before srun / torchrun, or give --secret-file`);
  const { clusterEnv } = await import('../cluster/env.js');
  const env = clusterEnv();
  if (!env) throw new UsageError(`${command}: no cluster environment (run under srun, or set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)`);
  const job = await jobOptions(command, o, env.worldSize);
  const result = await clusterMain({
    ...job, ...meshChoice(command, o), env, backend: str(o.backend), ...(o.threads !== undefined ? { threads: o.threads as number } : {}), secret, host: str(o.host),
    ...(o.driver !== undefined ? { driver: str(o.driver) } : {}), timeoutMs: (o.timeout as number) * 1000,
    joinTimeoutMs: (o['join-timeout'] as number) * 1000, log: (l) => console.error(l),
    ...(env.rank === 0 ? {} : { progress: null }),
  });
  if (result) printResult(command, result, `${env.worldSize} workers (${env.source})`);
  return 0;
}
