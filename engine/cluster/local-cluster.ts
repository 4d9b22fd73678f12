// N data-parallel workers in one process, over an array of Transports (one per rank): each
// worker has its own backend (native or wasm), its own copy of the model, its own
// parameter manager, and takes its share of every global batch (engine/data's
// workerBatches, shares proportional to `weights`, possibly empty). They train K
// iterations together. Tests compare the result with one process training on the same
// global batches (engine/train); a multi-process worker can reuse Replica.iteration().
//
// Loss scaling: each worker back-propagates the SUM of the loss over its share (the
// criterion must not average: ClassNLLCriterion(false) by default) and the owners scale the
// summed gradient by 1 / globalBatch, which is the gradient of the mean loss over the global
// batch, as one process with ClassNLLCriterion() computes it.
//
// Overlap: when the model is a Sequential, the backward pass runs layer by layer here
// (Module.runBackward on each child, last first, exactly as Sequential's own backward
// does) and each layer's parameter ranges go to ParameterManager.gradientsReady() as soon
// as the layer is done, so gradient chunks leave while earlier layers are still computing.
// Other models run model.backwardParameters() and report everything at once. The general
// form belongs in engine/nn: an optional callback on backwardParameters, e.g.
// `backwardParameters(input, gradOutput, { onParametersReady(offset, length) })`, that
// every container calls after each child's backward with the child's flat range, so nested
// containers (Concat in Inception) report at the finest level too.
//
// BatchNorm and Dropout: each replica uses the statistics of its own share and its own
// dropout stream (see parameter-manager.ts), so equivalence with one process holds for
// models without them (LeNet-5), not for VGG/Inception variants that use them.
import type { Backend, BackendName } from '../backends/backend.js';
import { loadBackend } from '../backends/registry.js';
import { batchCount, workerBatches, type Batch, type Dataset } from '../data/index.js';
import { ClassNLLCriterion, Module, Sequential, type Criterion } from '../nn/index.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { Transport } from '../../transport/transport.js';
import type { Aggregator } from './aggregation.js';
import { ParameterManager, type IterationReport } from './parameter-manager.js';
import type { WireFormat } from './wire-codec.js';

export interface LocalClusterOptions {
  /** One connected transport per rank (transports[r].rank === r). */
  transports: readonly Transport[];
  /** The backend of each rank, by name or as a Backend. */
  backends: readonly (Backend | BackendName)[];
  /** Builds a fresh model, identically initialised on every call (e.g. () => lenet5().reset(seed)); not yet on a backend. */
  model: () => Module;
  /** The owned slice's optimiser on a worker (sliceLength may be 0). */
  optimizer: (backend: Backend, sliceLength: number) => Optimizer;
  /** A criterion that SUMS over the batch (default new ClassNLLCriterion(false)). */
  criterion?: () => Criterion<Int32Array>;
  data: Dataset;
  /** Global batch size B. */
  batchSize: number;
  /** Iterations to run (K), continuing into the next epochs as needed. */
  iterations: number;
  /** Seeds the batch order, as engine/train's seed. */
  seed: number;
  /** Share of each worker (relative; a 0 gives an empty share). Default: equal. */
  weights?: readonly number[];
  dropLast?: boolean;
  gradientWire?: WireFormat;
  weightWire?: WireFormat;
  chunkElements?: number;
  /** Report gradients layer by layer during backward (default true). */
  overlap?: boolean;
  /** Called on each worker after its backward pass, before finish() (tests inject faults here). */
  afterBackward?: (info: { rank: number; iteration: number; grads: Float32Array }) => void;
}

export interface LocalClusterResult {
  /** Each rank's flat parameter values at the end (copies). */
  weights: Float32Array[];
  /** The float32 master weights: each slice taken from its owner. */
  masterWeights: Float32Array;
  /** Mean loss over the global batch, per iteration. */
  losses: number[];
  /** Per rank, per iteration. */
  reports: IterationReport[][];
}

/** A worker or more failed: every rank's error (undefined for ranks that finished) and weights at that point. */
export class LocalClusterError extends Error {
  constructor(readonly errors: readonly unknown[], readonly weights: Float32Array[], readonly completedIterations: readonly number[]) {
    const first = errors.find((e) => e !== undefined) as Error | undefined;
    super(`local cluster: ${errors.filter((e) => e !== undefined).length} of ${errors.length} workers failed; first: ${first?.message ?? String(first)}`);
    this.name = 'LocalClusterError';
  }
}

/** One worker of a data-parallel job: model on its backend, criterion, parameter manager. */
export class Replica {
  readonly rank: number;
  /** The gradient exchange: the parameter manager (all-reduce), or the worker side of the driver / tree modes. */
  readonly pm: Aggregator;
  /** [offset, length] of each top-level layer's parameters, per layer (Sequential models only). */
  private readonly layerRanges: [number, number][][] | null;

  constructor(readonly model: Module, readonly backend: Backend, readonly criterion: Criterion<Int32Array>,
    transport: Transport, optimizer: (backend: Backend, sliceLength: number) => Optimizer,
    o: {
      gradientWire?: WireFormat; weightWire?: WireFormat; chunkElements?: number; overlap?: boolean;
      /** Replaces the parameter manager (driver and tree aggregation modes). */
      aggregator?: (values: Float32Array, grads: Float32Array) => Aggregator;
    } = {}) {
    this.rank = transport.rank;
    if ((criterion as { sizeAverage?: unknown }).sizeAverage === true) {
      throw new RangeError(`${criterion.describe()} averages over the batch; a data-parallel worker must back-propagate the SUM over its share ` +
        '(construct it with sizeAverage = false): the owners divide by the global batch');
    }
    const flat = model.flatParameters();
    this.pm = o.aggregator ? o.aggregator(flat.values, flat.grads) : new ParameterManager({
      transport, backend, values: flat.values, grads: flat.grads, optimizer: (n) => optimizer(backend, n),
      gradientWire: o.gradientWire, weightWire: o.weightWire, chunkElements: o.chunkElements,
    });
    this.layerRanges = (o.overlap ?? true) && model instanceof Sequential ? layerParameterRanges(model) : null;
  }

  /**
   * One iteration on this worker's share `batch` of a global batch of `globalBatch`
   * samples: forward, loss (summed over the share), backward with gradients handed to the
   * parameter manager as layers finish, then the manager's finish(). Returns the summed loss.
   * A local failure (forward, backward) vetoes the iteration so that the peers stop too,
   * then rethrows.
   */
  async iteration(iteration: number, batch: Batch, globalBatch: number,
    afterBackward?: LocalClusterOptions['afterBackward']): Promise<{ loss: number; report: IterationReport }> {
    const model = this.model;
    const pm = this.pm;
    model.zeroGradParameters();
    pm.begin(iteration);
    let loss = 0;
    try {
      if (batch.target.length > 0) {
        const out = await model.forward(batch.input);
        loss = this.criterion.forward(out, batch.target);
        const gradOut = this.criterion.backward(out, batch.target);
        if (this.layerRanges) await this.backwardByLayer(model as Sequential, batch.input, gradOut);
        else await model.backwardParameters(batch.input, gradOut);
      }
      afterBackward?.({ rank: this.rank, iteration, grads: model.flatParameters().grads });
    } catch (err) {
      await pm.finish({ globalBatch, veto: `rank ${this.rank} failed in forward/backward: ${(err as Error).message}` }).catch(() => undefined);
      throw err;
    }
    const report = await pm.finish({ globalBatch });
    return { loss, report };
  }

  /** Sequential's own backward loop, reporting each layer's parameters when it is done. */
  private async backwardByLayer(model: Sequential, input: Batch['input'], gradOutput: Batch['input']): Promise<void> {
    const layers = model.children();
    let g = gradOutput;
    for (let i = layers.length - 1; i >= 0; i--) {
      const m = layers[i]!;
      const x = i === 0 ? input : layers[i - 1]!.output;
      const needs = i > 0;
      const gi = await Module.runBackward(m, x, g, needs);
      for (const [offset, length] of this.layerRanges![i]!) this.pm.gradientsReady(offset, length);
      if (!needs) break;
      if (!gi) throw new Error(`${m.path()}: returned no gradInput although it was asked for`);
      g = gi;
    }
  }

  dispose(): void {
    this.pm.dispose();
    this.model.dispose();
  }
}

/** Per top-level child of a Sequential: [offset, length] of each of its parameters in the flat vector. */
export function layerParameterRanges(model: Sequential): [number, number][][] {
  const flat = model.flatParameters();
  return model.children().map((m) => m.parameters().map((p): [number, number] => {
    const d = p.value.data;
    if (d.buffer !== flat.values.buffer) throw new Error(`${m.path()}.${p.name}: not a view of the model's flat parameters`);
    return [(d.byteOffset - flat.values.byteOffset) / 4, d.length];
  }));
}

export async function runLocalCluster(o: LocalClusterOptions): Promise<LocalClusterResult> {
  const n = o.transports.length;
  if (n < 1) throw new RangeError('runLocalCluster: give one transport per worker (none given)');
  if (o.backends.length !== n) throw new RangeError(`runLocalCluster: ${n} transports but ${o.backends.length} backends`);
  if (o.weights !== undefined && o.weights.length !== n) throw new RangeError(`runLocalCluster: ${n} transports but ${o.weights.length} weights`);
  o.transports.forEach((t, r) => {
    if (t.rank !== r || t.worldSize !== n) throw new RangeError(`runLocalCluster: transports[${r}] has rank ${t.rank} of ${t.worldSize}; expected rank ${r} of ${n}`);
  });
  if (!Number.isSafeInteger(o.iterations) || o.iterations < 0) throw new RangeError(`runLocalCluster: iterations must be a non-negative integer, got ${o.iterations}`);
  const perEpoch = batchCount(o.data.length, o.batchSize, o.dropLast ?? false);
  if (perEpoch === 0 && o.iterations > 0) throw new RangeError(`runLocalCluster: ${o.data.length} samples make no batch of ${o.batchSize}`);

  const workers: Replica[] = [];
  try {
    for (let r = 0; r < n; r++) {
      const b = o.backends[r]!;
      const backend = typeof b === 'string' ? loadBackend(b) : b;
      const model = o.model().to(backend);
      model.train();
      const criterion = o.criterion ? o.criterion() : new ClassNLLCriterion(false);
      try {
        workers.push(new Replica(model, backend, criterion, o.transports[r]!, o.optimizer, {
          gradientWire: o.gradientWire, weightWire: o.weightWire, chunkElements: o.chunkElements, overlap: o.overlap,
        }));
      } catch (err) {
        model.dispose();
        throw err;
      }
    }
    const lossSums: number[][] = workers.map(() => []);
    const globalSizes: number[] = [];
    const reports: IterationReport[][] = workers.map(() => []);
    const completed = workers.map(() => 0);
    const run = async (w: Replica): Promise<void> => {
      let it = 0;
      for (let epoch = 0; it < o.iterations; epoch++) {
        const shares = workerBatches(o.data, {
          batchSize: o.batchSize, rank: w.rank, worldSize: n, ...(o.weights ? { weights: o.weights } : {}),
          seed: o.seed, epoch, dropLast: o.dropLast ?? false, reuseBuffers: true,
        });
        for (const share of shares) {
          if (it >= o.iterations) break;
          // The global batch is full except possibly the epoch's last one.
          const global = globalBatchSize(o.data.length, o.batchSize, it % perEpoch);
          const { loss, report } = await w.iteration(it, share, global, o.afterBackward);
          lossSums[w.rank]!.push(loss);
          reports[w.rank]!.push(report);
          if (w.rank === 0) globalSizes.push(global);
          it++;
          completed[w.rank] = it;
        }
      }
    };
    const settled = await Promise.allSettled(workers.map(run));
    if (settled.some((s) => s.status === 'rejected')) {
      throw new LocalClusterError(settled.map((s) => (s.status === 'rejected' ? s.reason : undefined)),
        workers.map((w) => w.model.flatParameters().values.slice()), completed);
    }
    const P = workers[0]!.pm.length;
    const masterWeights = new Float32Array(P);
    for (const w of workers) masterWeights.set(w.pm.masterSlice(), w.pm.owned.start);
    const losses = globalSizes.map((g, k) => lossSums.reduce((s, l) => s + l[k]!, 0) / g);
    return { weights: workers.map((w) => w.model.flatParameters().values.slice()), masterWeights, losses, reports };
  } finally {
    for (const w of workers) w.dispose();
  }
}

function globalBatchSize(length: number, batchSize: number, k: number): number {
  return Math.min(batchSize, length - k * batchSize);
}
