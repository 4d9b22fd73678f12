// What a cluster job needs besides the network: its data sets (the same on every worker and
// the same as `squall train` loads in one process, so the two can be compared), its model
// and the optimiser of an owned slice.
import type { Backend } from '../backends/backend.js';
import { loadFashionMnist, meanStd, normalise, sliceDataset, syntheticDataset, type Dataset } from '../data/index.js';
import { buildArchitecture, type ArchitectureNode } from '../io/architecture.js';
import { modelSpec, type ModelSpec } from '../models/index.js';
import { Dropout, type Module } from '../nn/index.js';
import { deriveSeed } from '../data/seed.js';
import { createOptimizer, type Optimizer, type OptimizerName } from '../optim/index.js';
import type { DataSpec } from './protocol.js';

export interface JobData {
  train: Dataset;
  test?: Dataset;
}

/** Thrown for a data set the model cannot take, or an unknown data set name. */
export class DataSpecError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'DataSpecError';
  }
}

/**
 * The training (and test) set of a job, as `squall train` builds them: Fashion-MNIST
 * normalised with the full training set's statistics, or synthetic images of the model's
 * input shape; then the first `limit` training samples.
 */
export function loadJobData(spec: DataSpec, model: Pick<ModelSpec, 'name' | 'input' | 'classes'>, batchSize: number): JobData {
  let train: Dataset;
  let test: Dataset | undefined;
  if (spec.dataset === 'fashion-mnist') {
    if (model.input.join('x') !== '1x28x28') {
      throw new DataSpecError(`fashion-mnist has 1x28x28 images, model ${model.name} takes ${model.input.join('x')}; use the synthetic data set`);
    }
    train = loadFashionMnist({ split: 'train' });
    const { mean, std } = meanStd(train);
    normalise(train, mean, std);
    if (spec.test) {
      test = loadFashionMnist({ split: 'test' });
      normalise(test, mean, std);
    }
  } else if (spec.dataset === 'synthetic') {
    const size = spec.syntheticSize ?? 1024;
    train = syntheticDataset({ length: size, shape: model.input, classes: model.classes, seed: spec.seed, separation: 1 });
    if (spec.test) {
      test = syntheticDataset({ length: Math.max(batchSize, Math.floor(size / 4)), first: size, shape: model.input, classes: model.classes, seed: spec.seed, separation: 1 });
    }
  } else {
    throw new DataSpecError(`unknown data set '${String((spec as { dataset: unknown }).dataset)}' (fashion-mnist | synthetic)`);
  }
  if (spec.limit !== undefined) train = sliceDataset(train, 0, Math.min(train.length, spec.limit));
  return test ? { train, test } : { train };
}

/**
 * The model of a job: one of engine/models by name, or any module tree (an imported model:
 * `architecture` as engine/io/architecture.ts writes it, its per-sample `input` shape and
 * `classes`), whose starting weights the driver then sends to every worker.
 */
export interface JobModel {
  name: string;
  classes?: number;
  architecture?: ArchitectureNode;
  input?: number[];
}

/** Name, input shape and classes of a job's model (what the data sets are made for). */
export function jobModelSpec(m: JobModel): Pick<ModelSpec, 'name' | 'input' | 'classes'> {
  if (!m.architecture) {
    const spec = modelSpec(m.name);
    return { name: spec.name, input: spec.input, classes: m.classes ?? spec.classes };
  }
  const input = m.input;
  if (!Array.isArray(input) || input.length !== 3 || !input.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw new DataSpecError(`model ${m.name}: an imported model needs its per-sample input shape as [channels, height, width], got ${JSON.stringify(input)}`);
  }
  if (!Number.isSafeInteger(m.classes) || m.classes! < 1) throw new DataSpecError(`model ${m.name}: an imported model needs its number of classes, got ${String(m.classes)}`);
  return { name: m.name, input: input as [number, number, number], classes: m.classes! };
}

/** The model of a job, initialised from the job's seed (identically on every worker), not yet on a backend. */
export function buildJobModel(m: JobModel, seed: number): Module {
  if (m.architecture) return buildArchitecture(m.architecture, `the job's model ${m.name}`).reset(seed);
  const spec = modelSpec(m.name);
  return spec.build(m.classes ?? spec.classes).reset(seed);
}

/** Gives each Dropout of the model its own stream for this worker: deriveSeed(seed, rank, k) for the k-th. */
export function seedDropout(model: Module, seed: number, rank: number): number {
  let k = 0;
  for (const m of model.modules()) if (m instanceof Dropout) m.setSeed(deriveSeed(seed, rank, k++));
  return k;
}

/** The optimiser of one owned slice of `sliceLength` values, its state on the backend. */
export function sliceOptimizer(name: OptimizerName, backend: Backend, sliceLength: number, hyper: Record<string, number | boolean>): Optimizer {
  return createOptimizer(name, backend, sliceLength, {
    ...hyper,
    ...(sliceLength > 0 ? { alloc: (n: number) => backend.allocFloat32(n), free: (a: Float32Array) => backend.free(a) } : {}),
  } as never);
}

/** Total floats of a model's state buffers (BatchNorm statistics, dropout streams). */
export function stateLength(model: Module): number {
  return model.states().reduce((n, s) => n + s.value.size, 0);
}

/** The model's state buffers, concatenated in states() order. */
export function readStates(model: Module): Float32Array {
  const out = new Float32Array(stateLength(model));
  let o = 0;
  for (const s of model.states()) {
    out.set(s.value.data, o);
    o += s.value.size;
  }
  return out;
}

/** Writes concatenated state values back (the inverse of readStates). */
export function writeStates(model: Module, values: Float32Array): void {
  const n = stateLength(model);
  if (values.length !== n) throw new RangeError(`the model has ${n} state values, got ${values.length}`);
  let o = 0;
  for (const s of model.states()) {
    s.value.data.set(values.subarray(o, o + s.value.size));
    o += s.value.size;
  }
}

/** The parameters of a model that is not on a backend, concatenated in flat order. */
export function readParameters(model: Module): Float32Array {
  const out = new Float32Array(model.parameterCount());
  let o = 0;
  for (const p of model.parameters()) {
    out.set(p.value.data, o);
    o += p.value.size;
  }
  return out;
}

/** Writes a flat parameter vector into a model (on a backend or not), in flat order. */
export function writeParameters(model: Module, values: Float32Array): void {
  const n = model.parameterCount();
  if (values.length !== n) throw new RangeError(`the model has ${n} parameters, got ${values.length} values`);
  let o = 0;
  for (const p of model.parameters()) {
    p.value.data.set(values.subarray(o, o + p.value.size));
    o += p.value.size;
  }
}
