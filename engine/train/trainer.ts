// One-process training: seeded mini-batches, forward, loss, backward into the flat gradient
// buffer, one optimiser over the whole flat parameter vector, validation per epoch,
// progress, and checkpoints that a later run resumes from.
//
// Reproducibility: the batch order of epoch e depends only on (seed, e), so a run resumed
// from a checkpoint taken after iteration k of epoch e sees exactly the batches an
// uninterrupted run would have seen next.
import type { Dataset } from '../data/index.js';
import { batchCount, batches } from '../data/index.js';
import { loadCheckpoint, restoreModel, restoreOptimizer, saveCheckpoint } from '../io/checkpoint/index.js';
import type { Criterion, Module } from '../nn/index.js';
import type { Optimizer } from '../optim/index.js';
import { evaluate, type Evaluation } from './evaluate.js';
import { ProgressBar } from './progress.js';

export interface TrainOptions {
  model: Module;
  criterion: Criterion<Int32Array>;
  optimizer: Optimizer;
  train: Dataset;
  validation?: Dataset;
  epochs: number;
  batchSize: number;
  /** Seeds the batch order (per epoch). */
  seed: number;
  /**
   * The order of epoch e (from 0) as a permutation of the training indices, overriding the
   * seeded shuffle: e.g. another framework's order, to replay its run exactly. Must give the
   * same order for the same epoch when a run is resumed.
   */
  order?: (epoch: number) => Int32Array;
  /** Write a checkpoint here after every epoch (and every `checkpointEvery` iterations). */
  checkpointPath?: string;
  checkpointEvery?: number;
  /** Continue from checkpointPath when it exists. */
  resume?: boolean;
  /** Skip the last, smaller batch of each epoch (default false: train on every sample, as PyTorch's loop over a permutation does). */
  dropLast?: boolean;
  /** Stop after this many iterations in total (quick runs, tests). */
  maxIterations?: number;
  /** Progress output; null for none. */
  progress?: NodeJS.WritableStream | null;
  /** The MODELS entry of the model, stored in checkpoints so a file can rebuild it. */
  modelSpec?: { name: string; classes?: number };
  /** Store the module tree in checkpoints instead (any model, e.g. an imported one), with its per-sample input shape. */
  architecture?: boolean;
  inputShape?: readonly number[];
  /** Free-form description stored in checkpoints (data set, ...). */
  describe?: Record<string, unknown>;
  onIteration?: (info: IterationInfo) => void;
}

export interface IterationInfo {
  epoch: number;
  /** Iteration within the epoch, from 0. */
  step: number;
  /** Iterations since the start of training, from 1. */
  iteration: number;
  loss: number;
}

export interface EpochSummary {
  epoch: number;
  meanLoss: number;
  imagesPerSecond: number;
  seconds: number;
  validation: Evaluation | null;
}

export class NonFiniteLossError extends Error {
  constructor(readonly epoch: number, readonly step: number, readonly loss: number) {
    super(`training diverged: the loss is ${loss} at epoch ${epoch + 1}, iteration ${step + 1}; the parameters were not updated ` +
      `(lower the learning rate, or check the data for NaN/Inf)`);
    this.name = 'NonFiniteLossError';
  }
}

interface Position {
  epoch: number;
  step: number;
  iteration: number;
}

export async function train(o: TrainOptions): Promise<EpochSummary[]> {
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new RangeError(`train: epochs must be a positive integer, got ${o.epochs}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new RangeError(`train: batchSize must be a positive integer, got ${o.batchSize}`);
  const model = o.model;
  const flat = model.flatParameters();
  if (o.optimizer.sliceLength !== flat.length) {
    throw new RangeError(`train: the optimiser updates ${o.optimizer.sliceLength} values, the model has ${flat.length} parameters`);
  }
  const dropLast = o.dropLast ?? false;
  const steps = batchCount(o.train.length, o.batchSize, dropLast);
  if (steps === 0) throw new RangeError(`train: ${o.train.length} training samples make no full batch of ${o.batchSize}`);
  let pos: Position = { epoch: 0, step: 0, iteration: 0 };
  if (o.resume && o.checkpointPath) pos = await resumeFrom(o);

  const summaries: EpochSummary[] = [];
  model.train();
  for (let epoch = pos.epoch; epoch < o.epochs; epoch++) {
    const skip = epoch === pos.epoch ? pos.step : 0;
    const bar = o.progress === null ? null : new ProgressBar(`epoch ${epoch + 1}/${o.epochs}`, steps, (o.progress ?? process.stderr) as never);
    const t0 = performance.now();
    let lossSum = 0;
    let done = 0;
    let step = 0;
    const order = o.order?.(epoch);
    for (const b of batches(o.train, { batchSize: o.batchSize, seed: o.seed, epoch, dropLast, reuseBuffers: true, ...(order ? { order } : {}) })) {
      if (step < skip) {
        step++;
        continue;
      }
      if (o.maxIterations !== undefined && pos.iteration >= o.maxIterations) break;
      const loss = await trainStep(o, b.input, b.target, epoch, step);
      pos = { epoch, step: step + 1, iteration: pos.iteration + 1 };
      lossSum += loss * b.target.length;
      done += b.target.length;
      step++;
      o.onIteration?.({ epoch, step: step - 1, iteration: pos.iteration, loss });
      const seconds = (performance.now() - t0) / 1000;
      bar?.update(step, { loss: lossSum / done, imagesPerSecond: done / seconds });
      if (o.checkpointPath && o.checkpointEvery && pos.iteration % o.checkpointEvery === 0) await checkpoint(o, pos);
    }
    const seconds = (performance.now() - t0) / 1000;
    const finishedEpoch = step >= steps;
    if (finishedEpoch) pos = { epoch: epoch + 1, step: 0, iteration: pos.iteration };
    const validation = o.validation ? await evaluate(model, o.validation, o.criterion) : null;
    const summary = { epoch: epoch + 1, meanLoss: done ? lossSum / done : NaN, imagesPerSecond: done / seconds, seconds, validation };
    summaries.push(summary);
    if (o.progress !== null) {
      (o.progress ?? process.stderr).write(`epoch ${epoch + 1}: mean loss ${summary.meanLoss.toFixed(4)}, ${summary.imagesPerSecond.toFixed(0)} img/s` +
        `${validation ? `, validation accuracy ${(100 * validation.accuracy).toFixed(2)}% (loss ${validation.loss.toFixed(4)})` : ''}\n`);
    }
    if (o.checkpointPath) await checkpoint(o, pos);
    if (!finishedEpoch) break; // maxIterations reached
  }
  return summaries;
}

/** One iteration; the parameters are untouched when the loss or a gradient is not finite. */
async function trainStep(o: TrainOptions, input: Parameters<Module['forward']>[0], target: Int32Array, epoch: number, step: number): Promise<number> {
  const model = o.model;
  const flat = model.flatParameters();
  model.zeroGradParameters();
  const out = await model.forward(input);
  const loss = o.criterion.forward(out, target);
  if (!Number.isFinite(loss)) throw new NonFiniteLossError(epoch, step, loss);
  await model.backwardParameters(input, o.criterion.backward(out, target));
  o.optimizer.step(flat.values, flat.grads);
  return loss;
}

async function checkpoint(o: TrainOptions, pos: Position): Promise<void> {
  await saveCheckpoint(o.checkpointPath!, {
    model: o.model,
    optimizers: { main: o.optimizer },
    ...(o.modelSpec ? { modelSpec: o.modelSpec } : {}),
    ...(o.architecture ? { architecture: true, ...(o.inputShape ? { inputShape: o.inputShape } : {}) } : {}),
    meta: { training: { ...pos, epochs: o.epochs, batchSize: o.batchSize, seed: o.seed }, ...(o.describe ?? {}) },
  });
}

async function resumeFrom(o: TrainOptions): Promise<Position> {
  const { existsSync } = await import('node:fs');
  if (!existsSync(o.checkpointPath!)) return { epoch: 0, step: 0, iteration: 0 };
  const ck = await loadCheckpoint(o.checkpointPath!);
  const t = (ck.meta as { training?: Partial<Position & { batchSize: number; seed: number }> }).training;
  if (!t || !Number.isInteger(t.epoch) || !Number.isInteger(t.step) || !Number.isInteger(t.iteration)) {
    throw new Error(`${o.checkpointPath}: holds no training position (epoch/step/iteration): not a training checkpoint`);
  }
  if (t.batchSize !== o.batchSize || t.seed !== o.seed) {
    throw new Error(`${o.checkpointPath}: written with batch size ${t.batchSize} and seed ${t.seed}; resuming needs the same (got ${o.batchSize}, ${o.seed})`);
  }
  restoreModel(o.model, ck);
  restoreOptimizer(o.optimizer, ck, 'main');
  return { epoch: t.epoch!, step: t.step!, iteration: t.iteration! };
}
