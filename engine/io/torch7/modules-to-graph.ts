// A Torch7 nn module tree as a LayerGraph. Containers become wiring: nn.Sequential chains
// its children, nn.Concat / nn.DepthConcat feeds its input to every branch and joins the
// branch outputs in one concat node. Every other module is one node named by its path
// (1-based child indices, as Torch prints them: "11.2.3"), with the class as its source type.
//
// The tree comes from a file, so it is not trusted to be a tree: a container that contains
// itself is an error (not an endless recursion), nesting, the total number of layers and the
// weight values they hold are bounded (shared sub-modules could otherwise make a small file
// expand exponentially, or copy one large weight without end), and every field is checked
// for type before use.
import { formatShape, shapeSize } from '../../tensor/tensor.js';
import { ModelFormatError, UnsupportedLayerError } from '../errors.js';
import type { GraphNode, LayerGraph, LayerSpec } from '../graph/ir.js';
import { describe } from './deserialize.js';
import { tensorToFloat32 } from './tensor-data.js';
import { T7Object, T7Storage, T7Table, T7Tensor, type T7Value } from './values.js';

const MAX_NESTING = 200;
const MAX_LAYERS = 100_000;
/** nn.View / nn.Reshape sizes: a handful of dimensions. */
const MAX_VIEW_DIMS = 64;

/** Class names without their package: cudnn's modules keep nn's fields, so they translate alike. */
function baseName(className: string): string {
  return className.replace(/^(nn|cudnn)\./, '');
}

/** One module's fields, with typed, error-reporting access. */
class ModuleFields {
  constructor(readonly obj: T7Object, readonly path: string, readonly file: string, private readonly tensors: TensorValues) {}

  fail(detail: string): ModelFormatError {
    return new ModelFormatError(this.file, `byte offset ${this.obj.offset}`, `module ${this.path} (${this.obj.className}): ${detail}`);
  }

  unsupported(detail?: string): UnsupportedLayerError {
    return new UnsupportedLayerError(this.file, this.path, this.obj.className, detail);
  }

  raw(name: string): T7Value | undefined {
    return this.obj.fields.get(name);
  }

  /** A numeric field; `fallback` when absent (files from older Torch versions lack newer fields). */
  num(name: string, fallback?: number): number {
    const v = this.raw(name);
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.fail(`field ${name} should be a number, is ${describe(v)}`);
    return v;
  }

  /** A positive or non-negative integer field. */
  int(name: string, min: number, fallback?: number): number {
    const v = this.num(name, fallback);
    if (!Number.isInteger(v) || v < min) throw this.fail(`field ${name} should be an integer >= ${min}, is ${v}`);
    return v;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw this.fail(`field ${name} should be a boolean, is ${describe(v)}`);
    return v;
  }

  /** A tensor field; null when absent or nil (a module without bias). */
  tensor(name: string): T7Tensor | null {
    const v = this.raw(name);
    if (v === undefined || v === null) return null;
    if (!(v instanceof T7Tensor)) throw this.fail(`field ${name} should be a tensor, is ${describe(v)}`);
    return v;
  }

  /** A tensor field's values, checked to hold `count` elements (its shape may differ, as SpatialConvolutionMM's 2-D weight). */
  values(name: string, count: number, wanted: readonly number[]): Float32Array {
    const t = this.tensor(name);
    if (!t) throw this.fail(`field ${name} is missing`);
    const n = t.sizes.length ? shapeSize(t.sizes) : 0;
    if (n !== count) throw this.fail(`${name} has shape ${formatShape(t.sizes)} (${n} values), the module's settings need ${formatShape(wanted)} (${count})`);
    return this.tensors.get(t, `${this.path}.${name}`);
  }

  /** The integers of a LongStorage / LongTensor / table field (nn.View's sizes). */
  sizes(name: string): number[] {
    const v = this.raw(name);
    const count = v instanceof T7Storage ? v.length : v instanceof T7Tensor ? shapeSize(v.sizes) : v instanceof T7Table ? v.array().length : -1;
    if (count < 0) throw this.fail(`field ${name} should be a LongStorage of sizes, is ${describe(v)}`);
    if (count > MAX_VIEW_DIMS) throw this.fail(`${name} has ${count} sizes`);
    let out: number[];
    if (v instanceof T7Storage) out = Array.from({ length: v.length }, (_, i) => v.at(i));
    else if (v instanceof T7Tensor) out = Array.from(tensorToFloat32(v, this.file, `${this.path}.${name}`));
    else out = (v as T7Table).array().map((x) => (typeof x === 'number' ? x : NaN));
    if (out.length === 0 || out.some((d) => !(Number.isInteger(d) && (d >= 1 || d === -1)))) throw this.fail(`${name} ${formatShape(out)} is not a list of sizes`);
    return out;
  }

  children(): T7Object[] {
    const v = this.raw('modules');
    if (!(v instanceof T7Table)) throw this.fail(`field modules should be a table, is ${describe(v)}`);
    return v.array().map((m, i) => {
      if (!(m instanceof T7Object)) throw this.fail(`modules[${i + 1}] is ${describe(m)}, not a module`);
      return m;
    });
  }
}

/**
 * The values of the file's tensors, each gathered once (a shared weight is one array), and a
 * bound on their total: the layers may hold at most as many values as the file has bytes
 * (4 times its size as float32), which every file whose modules each appear once meets. A
 * shared module repeated many times by reference (8 bytes each) cannot make the graph, or
 * the model built from it, copy its weights without end.
 */
class TensorValues {
  private readonly done = new Map<T7Tensor, Float32Array>();
  private total = 0;

  constructor(private readonly file: string, private readonly limit: number) {}

  get(t: T7Tensor, what: string): Float32Array {
    let values = this.done.get(t);
    if (!values) {
      values = tensorToFloat32(t, this.file, what);
      this.done.set(t, values);
    }
    this.total += values.length;
    if (this.total > this.limit) {
      throw new ModelFormatError(this.file, `byte offset ${t.offset}`, `${what}: the layers would hold more than ${this.limit} weight values, ` +
        'more than the file holds (a shared module repeated many times?)');
    }
    return values;
  }
}

export function torch7ModelToGraph(root: T7Value, file: string, fileBytes: number): LayerGraph {
  const model = findModel(root, file);
  const t = new ModuleTranslation(file, new TensorValues(file, Math.max(fileBytes, 1 << 20)));
  const output = t.module(model, 'input', '', 0);
  return { source: file, format: 'torch7', inputs: [{ name: 'input', shape: null }], nodes: t.nodes, outputs: [output] };
}

/** The saved module: the file's root object, or a table holding one under `model` / `net` / alone. */
function findModel(root: T7Value, file: string): T7Object {
  if (root instanceof T7Object) return root;
  if (root instanceof T7Table) {
    for (const key of ['model', 'net', 'module', 'network']) {
      const v = root.get(key);
      if (v instanceof T7Object) return v;
    }
    const objects = root.entries.map(([, v]) => v).filter((v): v is T7Object => v instanceof T7Object && /^(nn|cudnn)\./.test(v.className));
    if (objects.length === 1) return objects[0]!;
  }
  throw new ModelFormatError(file, 'byte offset 0', `the file holds ${describe(root)}, not an nn module (or a table with one under "model")`);
}

class ModuleTranslation {
  readonly nodes: GraphNode[] = [];
  private readonly inProgress = new Set<T7Object>();
  private visits = 0;

  constructor(private readonly file: string, private readonly tensors: TensorValues) {}

  private emit(f: ModuleFields, layer: LayerSpec, inputs: string[]): string {
    const name = f.path;
    this.nodes.push({ name, sourceType: f.obj.className, layer, inputs, output: name });
    return name;
  }

  /** Adds the module's nodes reading `input`; returns the value it outputs. */
  module(obj: T7Object, input: string, path: string, depth: number): string {
    const f = new ModuleFields(obj, path || 'model', this.file, this.tensors);
    if (this.inProgress.has(obj)) throw f.fail('contains itself (a reference cycle in the module tree)');
    if (depth > MAX_NESTING) throw f.fail(`containers nested more than ${MAX_NESTING} deep`);
    if (++this.visits > MAX_LAYERS) throw f.fail(`the model has more than ${MAX_LAYERS} modules (is a shared module repeated exponentially?)`);
    this.inProgress.add(obj);
    try {
      return this.translate(f, input, path, depth);
    } finally {
      this.inProgress.delete(obj);
    }
  }

  private translate(f: ModuleFields, input: string, path: string, depth: number): string {
    const child = (i: number): string => (path ? `${path}.${i + 1}` : `${i + 1}`);
    switch (baseName(f.obj.className)) {
      case 'Sequential': {
        let x = input;
        for (const [i, m] of f.children().entries()) x = this.module(m, x, child(i), depth + 1);
        return x;
      }
      case 'Concat':
      case 'DepthConcat': {
        // Torch counts dimensions from 1 with the batch first: dimension 2 is the channels
        const dim = f.int('dimension', 1) - 1;
        if (dim === 0) throw f.unsupported('along the batch dimension (dimension 1); batched models concatenate along 2');
        const branches = f.children();
        if (branches.length === 0) throw f.fail('has no branches');
        const outs = branches.map((m, i) => this.module(m, input, child(i), depth + 1));
        return this.emit(f, { op: 'concat', dim }, outs);
      }
      case 'Identity':
        return input;
      default:
        return this.emit(f, this.layer(f), [input]);
    }
  }

  /** A leaf module's layer. */
  private layer(f: ModuleFields): LayerSpec {
    switch (baseName(f.obj.className)) {
      case 'SpatialConvolution':
      case 'SpatialConvolutionMM':
      case 'SpatialDilatedConvolution':
        return convolution(f);
      case 'SpatialMaxPooling':
      case 'SpatialAveragePooling':
        return pooling(f);
      case 'SpatialCrossMapLRN':
        return { op: 'lrn', size: f.int('size', 1), alpha: f.num('alpha', 1e-4), beta: f.num('beta', 0.75), k: f.num('k', 1) };
      case 'Linear':
        return linear(f);
      case 'ReLU':
      case 'Threshold': {
        // nn.ReLU is Threshold(0, 0); other thresholds are not a ReLU
        const th = f.num('threshold', 0);
        const val = f.num('val', 0);
        if (th !== 0 || val !== 0) throw f.unsupported(`with threshold ${th} and value ${val} (only Threshold(0, 0), a ReLU, is supported)`);
        return { op: 'relu', negativeSlope: 0 };
      }
      case 'LeakyReLU':
        return { op: 'relu', negativeSlope: f.num('negval', 0.01) };
      case 'Tanh':
        return { op: 'tanh' };
      case 'Sigmoid':
        return { op: 'sigmoid' };
      case 'SoftMax':
        return { op: 'softmax' };
      case 'LogSoftMax':
        return { op: 'logsoftmax' };
      case 'Dropout': {
        // The original Dropout (v2 unset) scales by 1 - p at evaluation instead of 1 / (1 - p) in training
        if (!f.bool('v2', false)) throw f.unsupported('without v2 (the original Dropout scales its output by 1 - p at evaluation)');
        const p = f.num('p', 0.5);
        if (!(p >= 0 && p < 1)) throw f.fail(`p must be in [0, 1), is ${p}`);
        return { op: 'dropout', p };
      }
      case 'View':
      case 'Reshape':
        return view(f);
      case 'SpatialBatchNormalization':
      case 'BatchNormalization':
        return batchNorm(f);
      default:
        throw f.unsupported();
    }
  }
}

function convolution(f: ModuleFields): LayerSpec {
  const inC = f.int('nInputPlane', 1);
  const outC = f.int('nOutputPlane', 1);
  const kW = f.int('kW', 1);
  const kH = f.int('kH', 1);
  const strideW = f.int('dW', 1, 1);
  const strideH = f.int('dH', 1, 1);
  // before padW/padH, Torch had one `padding` for both
  const padding = f.int('padding', 0, 0);
  const padW = f.int('padW', 0, padding);
  const padH = f.int('padH', 0, padding);
  const dilationW = f.int('dilationW', 1, 1);
  const dilationH = f.int('dilationH', 1, 1);
  const groups = f.int('groups', 1, 1);
  if (inC % groups !== 0 || outC % groups !== 0) throw f.fail(`groups ${groups} does not divide ${inC} -> ${outC} planes`);
  const shape = [outC, inC / groups, kH, kW];
  const weight = f.values('weight', shapeSize(shape), shape);
  const hasBias = f.tensor('bias') !== null;
  const bias = hasBias ? f.values('bias', outC, [outC]) : null;
  return { op: 'conv', inC, outC, kW, kH, strideW, strideH, padW, padH, groups, dilationW, dilationH, hasBias, weight, bias };
}

function pooling(f: ModuleFields): LayerSpec {
  const max = baseName(f.obj.className) === 'SpatialMaxPooling';
  if (!max && !f.bool('divide', true)) throw f.unsupported('with divide = false (sum pooling)');
  const kW = f.int('kW', 1);
  const kH = f.int('kH', 1);
  return {
    op: max ? 'maxpool' : 'avgpool', kW, kH, strideW: f.int('dW', 1, kW), strideH: f.int('dH', 1, kH),
    padW: f.int('padW', 0, 0), padH: f.int('padH', 0, 0), ceil: f.bool('ceil_mode', false), global: false,
    countIncludePad: max ? true : f.bool('count_include_pad', true),
  };
}

function linear(f: ModuleFields): LayerSpec {
  const w = f.tensor('weight');
  if (!w || w.sizes.length !== 2) throw f.fail(`weight should be a 2-D tensor [out, in], is ${w ? formatShape(w.sizes) : 'missing'}`);
  const [outFeatures, inFeatures] = w.sizes as [number, number];
  if (outFeatures < 1 || inFeatures < 1) throw f.fail(`weight shape ${formatShape(w.sizes)} is empty`);
  const weight = f.values('weight', outFeatures * inFeatures, [outFeatures, inFeatures]);
  const hasBias = f.tensor('bias') !== null;
  const bias = hasBias ? f.values('bias', outFeatures, [outFeatures]) : null;
  return { op: 'linear', inFeatures, outFeatures, hasBias, weight, bias };
}

/**
 * nn.View / nn.Reshape keep the batch: View(-1) flattens each sample, View(192) and
 * View(a, b) reshape it (which also checks the sample has that many values). A leading -1
 * with more sizes after it (View(-1, 1024)) is the batch itself.
 */
function view(f: ModuleFields): LayerSpec {
  let sizes = f.sizes('size');
  if (sizes.length >= 2 && sizes[0] === -1) sizes = sizes.slice(1);
  if (sizes.filter((d) => d === -1).length > 1) throw f.fail(`sizes ${formatShape(sizes)} have more than one -1`);
  if (sizes.length === 1 && sizes[0] === -1) return { op: 'flatten' };
  return { op: 'reshape', shape: sizes };
}

function batchNorm(f: ModuleFields): LayerSpec {
  const mean = f.tensor('running_mean');
  if (!mean || mean.sizes.length !== 1) throw f.fail('running_mean should be a 1-D tensor');
  const features = mean.sizes[0]!;
  const eps = f.num('eps', 1e-5);
  let variance: Float32Array;
  if (f.tensor('running_var')) {
    variance = f.values('running_var', features, [features]);
  } else {
    // Torch before 2016 kept 1 / sqrt(var + eps) as running_std
    const std = f.values('running_std', features, [features]);
    variance = std.map((s) => 1 / (s * s) - eps);
  }
  const affine = f.tensor('weight') !== null;
  return {
    op: 'batchnorm', features, eps, momentum: f.num('momentum', 0.1), affine,
    mean: f.values('running_mean', features, [features]), variance,
    scale: affine ? f.values('weight', features, [features]) : null,
    shift: affine ? f.values('bias', features, [features]) : null,
  };
}
