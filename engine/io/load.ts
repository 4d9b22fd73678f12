// loadModel: any model file Squall reads, told apart by its content (extensions lie: a file
// renamed .bin or a .pb that is ONNX), built into a module tree with its weights.
//
//   Squall    the magic "SQUALLCK" (engine/io/checkpoint/format.ts); built from its stored
//             architecture, or from the MODELS entry it names
//   ONNX      a protobuf ModelProto: ir_version (field 1) first, then only ModelProto fields (onnx/sniff.ts)
//   Torch7    the torch7 importer's check (engine/io/torch7)
//   Caffe     a prototxt (text; the weights come from options.weights, a .caffemodel) or a
//             binary .caffemodel, which needs its prototxt: the error says so
//
// Everything that is wrong with a file is a ModelFormatError (or the checkpoint reader's
// CheckpointFormatError) naming the file and where.
import { open } from 'node:fs/promises';
import { buildModel, loadCheckpoint, restoreModel, saveModel as saveCheckpointModel, type SaveResult } from './checkpoint/index.js';
import { MAGIC, showBytes } from './checkpoint/format.js';
import { buildArchitecture } from './architecture.js';
import { ModelFormatError } from './errors.js';
import { caffeImporter, torch7Importer, unavailable } from './formats.js';
import { buildModule, graphInputShape } from './graph/build.js';
import type { LayerGraph } from './graph/ir.js';
import { loadOnnx } from './onnx/import.js';
import { looksLikeOnnx } from './onnx/sniff.js';
import { MODELS } from '../models/index.js';
import type { Module } from '../nn/index.js';
import { formatShape } from '../tensor/tensor.js';

export type ModelFormat = 'squall' | 'onnx' | 'caffe' | 'caffemodel' | 'torch7';

export interface LoadModelOptions {
  /** The .caffemodel with the weights of a Caffe prototxt (Caffe only). */
  weights?: string;
  /** Per-sample input shape when the file does not declare it (e.g. [3, 224, 224]); must agree when it does. */
  inputShape?: readonly number[];
  /** Seed of the initialisation of layers the file gives no weights for (default 1). */
  seed?: number;
}

export interface LoadedModel {
  model: Module;
  format: Exclude<ModelFormat, 'caffemodel'>;
  /** Per-sample input shape, when the file or the caller gives it. */
  inputShape: number[] | null;
  /** The imported layer graph (null for Squall files). */
  graph: LayerGraph | null;
}

/** Bytes read to recognise a format. */
const HEAD_BYTES = 64 << 10;

/** Which format a file is in, from its first bytes. */
export async function detectModelFormat(path: string): Promise<ModelFormat> {
  const head = await readHead(path);
  if (startsWith(head, MAGIC)) return 'squall';
  if (looksLikeOnnx(head)) return 'onnx';
  const torch7 = await torch7Importer();
  if (torch7?.looksLikeTorch7(head)) return 'torch7';
  const caffe = await caffeImporter();
  if (caffe?.looksLikeCaffeModel(head)) return 'caffemodel';
  const text = asText(head);
  if (text !== null && caffe?.looksLikePrototxt(text)) return 'caffe';
  const missing = [...unavailable.values()];
  throw new ModelFormatError(path, 'byte offset 0', `not a model file Squall reads (it starts with ${showBytes(head.subarray(0, 16))}); ` +
    'Squall reads its own files (magic "SQUALLCK"), ONNX, Caffe (.prototxt with a .caffemodel) and Torch7 (.t7)' +
    (missing.length ? ` (${missing.join('; ')})` : ''));
}

/** Reads any model file Squall knows (by its content) into a module tree with its weights, not yet on a backend. */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const format = await detectModelFormat(path);
  if (options.weights !== undefined && format !== 'caffe') {
    throw new ModelFormatError(path, 'options', `a separate weights file (${options.weights}) goes with a Caffe prototxt; this file is ${FORMAT_NAMES[format]}`);
  }
  switch (format) {
    case 'squall':
      return loadSquall(path, options);
    case 'onnx':
      return fromGraph(await loadOnnx(path), 'onnx', options);
    case 'torch7':
      return fromGraph(await (await torch7Importer())!.loadTorch7(path), 'torch7', options);
    case 'caffe':
      return fromGraph(await (await caffeImporter())!.loadCaffe(path, options.weights), 'caffe', options);
    case 'caffemodel':
      throw new ModelFormatError(path, 'byte offset 0', 'is a Caffe .caffemodel (trained weights only): Caffe keeps the network in a ' +
        '.prototxt; load that and give this file as its weights (loadModel(prototxt, { weights }); squall ... --model NET.prototxt --weights THIS.caffemodel)');
  }
}

const FORMAT_NAMES: Record<ModelFormat, string> = {
  squall: 'a Squall model file', onnx: 'an ONNX model', caffe: 'a Caffe prototxt', caffemodel: 'a Caffe .caffemodel', torch7: 'a Torch7 file',
};

function fromGraph(graph: LayerGraph, format: LoadedModel['format'], options: LoadModelOptions): LoadedModel {
  const model = buildModule(graph, options);
  return { model, format, inputShape: graphInputShape(graph, options), graph };
}

async function loadSquall(path: string, options: LoadModelOptions): Promise<LoadedModel> {
  const ck = await loadCheckpoint(path);
  let model: Module;
  let stored: number[] | null = ck.inputShape;
  if (ck.architecture) {
    model = buildArchitecture(ck.architecture, path);
  } else if (ck.model) {
    model = buildModel(ck.model, path);
    stored ??= Object.prototype.hasOwnProperty.call(MODELS, ck.model.name) ? [...MODELS[ck.model.name]!.input] : null;
  } else {
    throw new ModelFormatError(path, 'header', 'the file holds weights only (no architecture, no MODELS name): ' +
      'save models with engine/io\'s saveModel (it stores the architecture) to load them without their code');
  }
  if (options.inputShape && stored && formatShape(options.inputShape) !== formatShape(stored)) {
    throw new ModelFormatError(path, 'header field inputShape', `the file was saved for inputs ${formatShape(stored)}, the caller asked for ${formatShape(options.inputShape)}`);
  }
  restoreModel(model, ck);
  return { model, format: 'squall', inputShape: stored ?? (options.inputShape ? [...options.inputShape] : null), graph: null };
}

export interface SaveModelOptions {
  /** Per-sample input shape to store (loadModel reports it; predict uses it). */
  inputShape?: readonly number[];
  /** Free-form JSON stored in the header. */
  meta?: Record<string, unknown>;
}

/** Saves any model in Squall's format with its architecture, so loadModel builds it again without its code. */
export function saveModel(path: string, model: Module, options: SaveModelOptions = {}): Promise<SaveResult> {
  return saveCheckpointModel(path, model, { architecture: true, ...options });
}

async function readHead(path: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ModelFormatError(path, 'byte offset 0', 'not a regular file');
    const head = new Uint8Array(Math.min(HEAD_BYTES, st.size));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (st.size === 0) throw new ModelFormatError(path, 'byte offset 0', 'the file is empty');
    return head.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function startsWith(b: Uint8Array, ascii: string): boolean {
  return b.length >= ascii.length && [...ascii].every((c, i) => b[i] === c.charCodeAt(0));
}

/** The bytes as text when they are UTF-8 without NULs (a prototxt), else null. */
function asText(b: Uint8Array): string | null {
  if (b.includes(0)) return null;
  try {
    // stream: a multi-byte character cut at the end of the head is not an error
    return new TextDecoder('utf-8', { fatal: true }).decode(b, { stream: true });
  } catch {
    return null;
  }
}
