// Saving and restoring models and training state in Squall's own format (format.ts).
//
//   await saveCheckpoint('run/ckpt.sqck', { model, modelSpec: { name: 'lenet5', classes: 10 },
//     optimizers: [sgd], meta: { epoch: 3, iteration: 1200 } });
//   const ck = await loadCheckpoint('run/ckpt.sqck');
//   restoreModel(model, ck);              // every parameter and state buffer, by name and shape
//   restoreOptimizer(sgd, ck, '0');       // iteration, epoch, hyper-parameters and buffers
//
//   await saveModel('lenet.sqm', model, { modelSpec: 'lenet5' });
//   const { model } = await loadModelFile('lenet.sqm');   // built from MODELS by the header
//   await saveModel('net.sqm', imported, { architecture: true, inputShape: [3, 224, 224] });
//   const { model } = await loadModelFile('net.sqm');     // any model: built from its stored module tree
//
// Tensor names are relative to the model passed in: "model.<path below it>.<name>", whatever
// the root module is called, so a model saved as the root restores into a fresh instance.
// Restoring checks everything first and changes nothing when anything does not fit.
import { open } from 'node:fs/promises';
import { isDeterministic } from '../../backends/determinism.js';
import { MODELS, modelSpec as lookupModel } from '../../models/index.js';
import { buildArchitecture, describeArchitecture } from '../architecture.js';
import type { Module } from '../../nn/module.js';
import type { Optimizer, OptimizerName, OptimizerState } from '../../optim/optimizer.js';
import { Tensor, formatShape } from '../../tensor/tensor.js';
import {
  CheckpointFormatError, PREFIX_BYTES, TRAILER_BYTES, checkPrefix, checkTrailer, parseCheckpoint,
  type CheckpointHeader, type CheckpointKind, type Json, type ModelDescription, type OptimizerEntry, type StoredTensor,
} from './format.js';
import { writeCheckpointFile, type TensorSource, type WriteOptions } from './write.js';

/** A model of engine/models' MODELS: its name, or its name and class count. */
export type ModelSpecRef = string | { name: string; classes?: number };

/** An optimiser, or a state snapshot of one (e.g. collected from a worker). */
export type OptimizerLike = Optimizer | OptimizerState;

export interface SaveModelOptions extends WriteOptions {
  /** Which MODELS entry the model is, so loadModelFile can build it; omitted: the header's model is null. */
  modelSpec?: ModelSpecRef;
  /** Free-form JSON stored in the header. */
  meta?: Record<string, unknown>;
  /** Further tensors to store, as "extra.<name>". */
  extra?: Record<string, Tensor | Float32Array>;
  /**
   * Store the model's module tree (engine/io/architecture.ts), so loadModelFile can build any
   * model, not only one of MODELS (default false; an error when a module cannot be described).
   */
  architecture?: boolean;
  /** Per-sample input shape to store with the model (e.g. [1, 28, 28]). */
  inputShape?: readonly number[];
}

export interface SaveCheckpointOptions extends SaveModelOptions {
  model: Module;
  /** An array is stored under the keys "0", "1", ... */
  optimizers?: readonly OptimizerLike[] | Record<string, OptimizerLike>;
}

export interface SaveResult {
  path: string;
  bytes: number;
  tensors: number;
}

/** The file is valid but does not fit what it is restored into (or lacks what was asked for). */
export class CheckpointMismatchError extends Error {
  constructor(readonly path: string, readonly problems: readonly string[], what = 'the checkpoint does not fit') {
    const shown = problems.slice(0, 8).join('; ');
    const more = problems.length > 8 ? `; and ${problems.length - 8} more` : '';
    super(`${path}: ${what}: ${shown}${more}`);
    this.name = 'CheckpointMismatchError';
  }
}

/** A file read by loadCheckpoint/loadModelFile. */
export class Checkpoint {
  readonly kind: CheckpointKind;
  readonly created: string;
  /** The MODELS entry the file names, or null. */
  readonly model: ModelDescription | null;
  readonly meta: Record<string, Json>;
  readonly optimizers: Readonly<Record<string, OptimizerEntry>>;
  /** The stored module tree, or null. */
  readonly architecture: Json | null;
  /** The stored per-sample input shape, or null. */
  readonly inputShape: number[] | null;

  constructor(readonly path: string, readonly version: number, readonly header: CheckpointHeader,
    private readonly stored: ReadonlyMap<string, StoredTensor>, readonly bytes: number) {
    this.kind = header.kind;
    this.created = header.created;
    this.model = header.model;
    this.meta = header.meta;
    this.optimizers = header.optimizers;
    this.architecture = header.architecture ?? null;
    this.inputShape = header.inputShape ?? null;
  }

  /** Tensor names in file order. */
  names(): string[] {
    return [...this.stored.keys()];
  }

  has(name: string): boolean {
    return this.stored.has(name);
  }

  /** The header entry and data of a tensor, or undefined. */
  entry(name: string): StoredTensor | undefined {
    return this.stored.get(name);
  }

  /** A tensor by name (a view of the loaded file; clone it to keep it apart). */
  tensor(name: string): Tensor {
    const e = this.stored.get(name);
    if (!e) throw new CheckpointMismatchError(this.path, [`no tensor "${name}" in the file`], 'missing tensor');
    return new Tensor(e.shape, e.data);
  }

  /** "lenet5 (classes 7)" or "a model not from MODELS". */
  describeModel(): string {
    return describeModel(this.model);
  }
}

function describeModel(m: ModelDescription | null): string {
  if (!m) return 'a model not from MODELS';
  const args = Object.entries(m.args).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ');
  return args ? `${m.name} (${args})` : m.name;
}

// ---- model tensors --------------------------------------------------------------------------

interface ModelTensor {
  name: string;
  role: 'parameter' | 'state';
  get: () => Tensor;
}

/** The parameters and state buffers of `model` with their file names ("model.0.weight", "model.1.runningMean"). */
export function modelTensorNames(model: Module): { name: string; role: 'parameter' | 'state'; shape: number[] }[] {
  return modelTensors(model).map((m) => ({ name: m.name, role: m.role, shape: [...m.get().shape] }));
}

function modelTensors(model: Module): ModelTensor[] {
  const root = model.path();
  const rel = (m: Module): string => `model${m.path().slice(root.length)}`;
  const out: ModelTensor[] = [];
  for (const p of model.parameters()) out.push({ name: `${rel(p.module)}.${p.name}`, role: 'parameter', get: () => p.value });
  for (const s of model.states()) out.push({ name: `${rel(s.module)}.${s.name}`, role: 'state', get: () => s.value });
  return out;
}

function describeSpec(path: string, ref: ModelSpecRef | undefined): ModelDescription | null {
  if (ref === undefined) return null;
  const r = typeof ref === 'string' ? { name: ref } : ref;
  lookupModel(r.name); // an unknown name is an error here rather than when loading
  if (r.classes !== undefined && !(Number.isSafeInteger(r.classes) && r.classes >= 1)) {
    throw new RangeError(`${path}: modelSpec.classes must be a positive integer, got ${r.classes}`);
  }
  return { name: r.name, args: r.classes === undefined ? {} : { classes: r.classes } };
}

function isOptimizer(o: OptimizerLike): o is Optimizer {
  return typeof (o as Optimizer).state === 'function';
}

function sources(path: string, model: Module, optimizers: SaveCheckpointOptions['optimizers'],
  extra: SaveModelOptions['extra']): { tensors: TensorSource[]; entries: Record<string, OptimizerEntry> } {
  const tensors: TensorSource[] = modelTensors(model).map((m) => ({
    name: m.name, role: m.role, shape: m.get().shape, data: () => m.get().data,
  }));
  const entries: Record<string, OptimizerEntry> = {};
  const list: [string, OptimizerLike][] = Array.isArray(optimizers)
    ? optimizers.map((o, i) => [String(i), o]) : Object.entries(optimizers ?? {});
  for (const [key, o] of list) {
    if (key === '') throw new RangeError(`${path}: an optimiser key must not be empty`);
    const st = isOptimizer(o) ? o.state() : o;
    if (st === null || typeof st !== 'object' || typeof st.name !== 'string' || typeof st.buffers !== 'object') {
      throw new TypeError(`${path}: optimizers["${key}"] is neither an Optimizer nor an OptimizerState`);
    }
    const buffers: Record<string, string> = {};
    for (const [b, arr] of Object.entries(st.buffers)) {
      const name = `optimizer.${key}.${b}`;
      buffers[b] = name;
      tensors.push({ name, role: 'optimizer', shape: [arr.length], data: () => arr });
    }
    entries[key] = {
      name: st.name, iteration: st.iteration, epoch: st.epoch, hyper: { ...st.hyper },
      sliceLength: isOptimizer(o) ? o.sliceLength : null, buffers,
    };
  }
  for (const [k, v] of Object.entries(extra ?? {})) {
    const t = v instanceof Tensor ? v : new Tensor([v.length], v);
    tensors.push({ name: `extra.${k}`, role: 'extra', shape: t.shape, data: () => t.data });
  }
  return { tensors, entries };
}

/** The optional header fields: the module tree and the input shape, when asked for. */
function modelHeader(path: string, model: Module, o: SaveModelOptions): { architecture?: Json; inputShape?: number[] } {
  const out: { architecture?: Json; inputShape?: number[] } = {};
  if (o.architecture) {
    try {
      out.architecture = describeArchitecture(model) as unknown as Json;
    } catch (err) {
      throw new TypeError(`${path}: ${(err as Error).message}`);
    }
  }
  if (o.inputShape !== undefined) {
    if (!Array.isArray(o.inputShape) || o.inputShape.length === 0 || !o.inputShape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
      throw new RangeError(`${path}: inputShape must be a list of positive integers, got ${JSON.stringify(o.inputShape)}`);
    }
    out.inputShape = [...o.inputShape];
  }
  return out;
}

function metaOf(path: string, meta: Record<string, unknown> | undefined): Record<string, Json> {
  if (meta === undefined) return {};
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new TypeError(`${path}: meta must be a plain object`);
  return meta as Record<string, Json>;
}

// ---- saving ---------------------------------------------------------------------------------

/**
 * The header's `created` field: SOURCE_DATE_EPOCH when set (the reproducible-builds
 * convention), else none in the deterministic mode (two runs then write byte-identical
 * files), else the time of writing.
 */
function creationTime(): { created?: string } {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && /^\d+$/.test(epoch.trim())) return { created: new Date(Number(epoch) * 1000).toISOString() };
  return isDeterministic() ? {} : { created: new Date().toISOString() };
}

/** Writes a training checkpoint (model, optimisers, progress) atomically. */
export async function saveCheckpoint(path: string, options: SaveCheckpointOptions): Promise<SaveResult> {
  const { model, modelSpec, optimizers, meta, extra, architecture, inputShape, ...write } = options;
  const { tensors, entries } = sources(path, model, optimizers, extra);
  const bytes = await writeCheckpointFile(path, {
    kind: 'squall-checkpoint', ...creationTime(), model: describeSpec(path, modelSpec),
    optimizers: entries, meta: metaOf(path, meta), ...modelHeader(path, model, { architecture, inputShape }),
  }, tensors, write);
  return { path, bytes, tensors: tensors.length };
}

/** Writes a model file (parameters and state buffers) atomically. */
export async function saveModel(path: string, model: Module, options: SaveModelOptions = {}): Promise<SaveResult> {
  const { modelSpec, meta, extra, architecture, inputShape, ...write } = options;
  const { tensors } = sources(path, model, undefined, extra);
  const bytes = await writeCheckpointFile(path, {
    kind: 'squall-model', ...creationTime(), model: describeSpec(path, modelSpec),
    optimizers: {}, meta: metaOf(path, meta), ...modelHeader(path, model, { architecture, inputShape }),
  }, tensors, write);
  return { path, bytes, tensors: tensors.length };
}

// ---- loading --------------------------------------------------------------------------------

export interface LoadOptions {
  /** Require this kind of file. */
  kind?: CheckpointKind;
}

/**
 * Reads and validates a model or checkpoint file. Invalid files give CheckpointFormatError
 * (file and offset). The magic, version, header length and end marker are checked before the
 * file's contents are read; the one allocation is the file's real size.
 */
export async function loadCheckpoint(path: string, options: LoadOptions = {}): Promise<Checkpoint> {
  const fh = await open(path, 'r');
  let bytes: Uint8Array;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CheckpointFormatError(path, 0, 'not a regular file');
    const size = st.size;
    const head = new Uint8Array(Math.min(PREFIX_BYTES, size));
    await readFully(path, fh, head, 0);
    checkPrefix(path, head, size);
    const tail = new Uint8Array(TRAILER_BYTES);
    await readFully(path, fh, tail, size - TRAILER_BYTES);
    checkTrailer(path, tail, size);
    bytes = new Uint8Array(new ArrayBuffer(size));
    await readFully(path, fh, bytes, 0);
  } finally {
    await fh.close();
  }
  const parsed = parseCheckpoint(bytes, path);
  if (options.kind && parsed.header.kind !== options.kind) {
    throw new CheckpointMismatchError(path, [`the file is a ${parsed.header.kind}, not a ${options.kind}`], 'wrong kind of file');
  }
  return new Checkpoint(path, parsed.version, parsed.header, parsed.tensors, bytes.length);
}

/** Fills `into` from the file at `position`; a file that ends early is a format error at the offset where it ended. */
async function readFully(path: string, fh: Awaited<ReturnType<typeof open>>, into: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const n = Math.min(into.length - done, 1 << 30);
    const { bytesRead } = await fh.read(into, done, n, position + done);
    if (bytesRead === 0) {
      throw new CheckpointFormatError(path, position + done, `the file ended at byte ${position + done} while reading ` +
        `(it was shorter than its size said: changed while being read?)`);
    }
    done += bytesRead;
  }
}

// ---- restoring ------------------------------------------------------------------------------

export interface RestoreOptions {
  /** Tolerate "model.*" tensors in the file that the model does not have (default false). */
  allowExtra?: boolean;
}

/**
 * Copies every parameter and state buffer of `model` from the checkpoint, matched by name
 * and shape. Anything missing, mis-shaped or (unless allowExtra) extra is an error naming
 * the tensor and both shapes; in that case nothing is changed.
 */
export function restoreModel(model: Module, ck: Checkpoint, options: RestoreOptions = {}): { parameters: number; states: number } {
  const wanted = modelTensors(model);
  const problems: string[] = [];
  const pairs: [Tensor, StoredTensor][] = [];
  for (const w of wanted) {
    const t = w.get();
    const s = ck.entry(w.name);
    if (!s) {
      problems.push(`${w.name} (${w.role} ${formatShape(t.shape)} in the model) is not in the checkpoint`);
    } else if (!sameShape(s.shape, t.shape)) {
      problems.push(`${w.name} has shape ${formatShape(s.shape)} in the checkpoint but ${formatShape(t.shape)} in the model`);
    } else {
      pairs.push([t, s]);
    }
  }
  if (!options.allowExtra) {
    const names = new Set(wanted.map((w) => w.name));
    for (const n of ck.names()) {
      const e = ck.entry(n)!;
      if ((e.role === 'parameter' || e.role === 'state') && !names.has(n)) {
        problems.push(`${n} (${e.role} ${formatShape(e.shape)} in the checkpoint) is not in the model`);
      }
    }
  }
  if (problems.length) {
    throw new CheckpointMismatchError(ck.path, problems, `the checkpoint (${ck.describeModel()}) does not fit the model`);
  }
  for (const [t, s] of pairs) t.data.set(s.data);
  return { parameters: wanted.filter((w) => w.role === 'parameter').length, states: wanted.filter((w) => w.role === 'state').length };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The OptimizerState stored under `key` (its buffers are views of the loaded file). */
export function optimizerState(ck: Checkpoint, key = '0'): OptimizerState {
  const e = Object.prototype.hasOwnProperty.call(ck.optimizers, key) ? ck.optimizers[key] : undefined;
  if (!e) {
    const keys = Object.keys(ck.optimizers);
    throw new CheckpointMismatchError(ck.path, [`no optimiser "${key}" in the checkpoint (it has ${keys.length ? keys.map((k) => `"${k}"`).join(', ') : 'none'})`],
      'missing optimiser state');
  }
  const buffers: Record<string, Float32Array> = {};
  for (const [b, tensorName] of Object.entries(e.buffers)) buffers[b] = ck.entry(tensorName)!.data;
  return { name: e.name as OptimizerName, iteration: e.iteration, epoch: e.epoch, buffers, hyper: { ...e.hyper } };
}

/** Loads the optimiser state stored under `key` into `opt` (validated by opt.loadState: all or nothing). */
export function restoreOptimizer(opt: Optimizer, ck: Checkpoint, key = '0'): void {
  const st = optimizerState(ck, key);
  try {
    opt.loadState(st);
  } catch (err) {
    const e = new CheckpointMismatchError(ck.path, [(err as Error).message], `optimiser "${key}" does not fit`);
    (e as Error & { cause?: unknown }).cause = err;
    throw e;
  }
}

/** Builds the MODELS entry a file names (parameters uninitialised: restore them). */
export function buildModel(desc: ModelDescription, path = '<model>'): Module {
  const spec = MODELS[desc.name];
  if (!spec || !Object.prototype.hasOwnProperty.call(MODELS, desc.name)) {
    throw new CheckpointMismatchError(path, [`the file names model "${desc.name}", which this Squall does not have ` +
      `(known: ${Object.keys(MODELS).join(', ')})`], 'unknown model');
  }
  return spec.build(desc.args.classes);
}

/**
 * Reads a model file (or a checkpoint: its optimiser state is ignored) and restores it into
 * `model`, or, when none is given, into a model built from the file's stored module tree
 * (architecture) or else from the MODELS entry the file names.
 */
export async function loadModelFile(path: string, model?: Module, options: RestoreOptions = {}): Promise<{ model: Module; checkpoint: Checkpoint }> {
  const ck = await loadCheckpoint(path);
  let m = model;
  if (!m) {
    if (ck.architecture) {
      m = buildArchitecture(ck.architecture, path);
    } else if (ck.model) {
      m = buildModel(ck.model, path);
    } else {
      throw new CheckpointMismatchError(path, ['the file does not name a model from MODELS (it was saved without modelSpec) ' +
        'and holds no architecture (saved without architecture: true); pass a model instance to restore it into'], 'no model to build');
    }
  }
  restoreModel(m, ck, options);
  return { model: m, checkpoint: ck };
}
