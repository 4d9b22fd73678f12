// A Squall module tree as JSON, so any model (an imported one, one built by hand) can be
// saved with its weights and built again without its source code:
//
//   { "type": "Sequential", "args": {}, "children": [
//       { "type": "SpatialConvolution", "args": { "inC": 1, "outC": 6, "kW": 5, ... } },
//       { "type": "Concat", "args": { "dim": 1 }, "children": [ ... ] }, ... ] }
//
// `type` is the module's class (Torch's name without "nn."), `args` its constructor
// arguments and settings, `children` the branches of a container. Building one names the
// modules exactly as the saved model did (Sequential and Concat children by index), so the
// checkpoint's tensor names ("model.3.weight") fit the rebuilt model.
//
// Reading is strict: an unknown type, a missing or mistyped argument or an argument the
// constructor rejects is an error naming its place in the tree ("architecture.children[3]
// .args.kW"); trees deeper than MAX_DEPTH are refused (a hostile file cannot exhaust the stack).
import {
  BatchNormalization, Concat, Dropout, LeakyReLU, Linear, LogSoftMax, ReLU, Reshape, Sequential, Sigmoid, SoftMax,
  SpatialAveragePooling, SpatialBatchNormalization, SpatialConvolution, SpatialCrossMapLRN, SpatialMaxPooling, Tanh, View,
  type Module,
} from '../nn/index.js';
import { ModelFormatError } from './errors.js';

export interface ArchitectureNode {
  type: string;
  args: Record<string, number | boolean | number[]>;
  children?: ArchitectureNode[];
}

const MAX_DEPTH = 64;

/** The tree of `model`; throws naming the first module whose type it cannot describe. */
export function describeArchitecture(model: Module): ArchitectureNode {
  const children = (m: Module): ArchitectureNode[] => m.children().map(describeArchitecture);
  // Subclasses first: SpatialBatchNormalization extends BatchNormalization, Reshape extends View.
  if (model instanceof Sequential) return { type: 'Sequential', args: {}, children: children(model) };
  if (model instanceof Concat) return { type: 'Concat', args: { dim: model.dim }, children: children(model) };
  if (model instanceof SpatialConvolution) {
    const m = model;
    return {
      type: 'SpatialConvolution', args: {
        inC: m.inC, outC: m.outC, kW: m.kW, kH: m.kH, strideW: m.strideW, strideH: m.strideH, padW: m.padW, padH: m.padH,
        groups: m.groups, dilationW: m.dilationW, dilationH: m.dilationH, bias: m.bias !== null,
      },
    };
  }
  if (model instanceof Linear) return { type: 'Linear', args: { inFeatures: model.inFeatures, outFeatures: model.outFeatures, bias: model.bias !== null } };
  if (model instanceof LeakyReLU) return { type: 'LeakyReLU', args: { negativeSlope: model.negativeSlope } };
  if (model instanceof SpatialMaxPooling || model instanceof SpatialAveragePooling) {
    const m = model;
    const args: ArchitectureNode['args'] = {
      kW: m.kW, kH: m.kH, strideW: m.strideW, strideH: m.strideH, padW: m.padW, padH: m.padH, ceil: m.ceilMode,
    };
    if (m instanceof SpatialAveragePooling) args.countIncludePad = m.countIncludePad;
    return { type: m instanceof SpatialMaxPooling ? 'SpatialMaxPooling' : 'SpatialAveragePooling', args };
  }
  if (model instanceof SpatialCrossMapLRN) return { type: 'SpatialCrossMapLRN', args: { size: model.size, alpha: model.alpha, beta: model.beta, k: model.k } };
  if (model instanceof Dropout) return { type: 'Dropout', args: { p: model.p } };
  if (model instanceof BatchNormalization) {
    return {
      type: model instanceof SpatialBatchNormalization ? 'SpatialBatchNormalization' : 'BatchNormalization',
      args: { features: model.features, eps: model.eps, momentum: model.momentum, affine: model.weight !== null },
    };
  }
  if (model instanceof View) return { type: model instanceof Reshape ? 'Reshape' : 'View', args: { sizes: [...model.sizes] } };
  for (const [type, cls] of Object.entries(ARGLESS)) if (model.constructor === cls) return { type, args: {} };
  throw new TypeError(`${model.path()} (${model.describe()}): Squall cannot describe this module type in a saved architecture`);
}

const ARGLESS: Record<string, new () => Module> = { ReLU, Tanh, Sigmoid, SoftMax, LogSoftMax };

/** Builds the tree a JSON architecture describes (parameters uninitialised: restore them). `file` names it in errors. */
export function buildArchitecture(json: unknown, file: string, where = 'architecture'): Module {
  return new ArchitectureReader(file).read(json, where, 0);
}

class ArchitectureReader {
  constructor(private readonly file: string) {}

  private fail(where: string, detail: string): never {
    throw new ModelFormatError(this.file, `header field ${where}`, detail);
  }

  read(json: unknown, where: string, depth: number): Module {
    if (depth > MAX_DEPTH) this.fail(where, `the module tree is nested more than ${MAX_DEPTH} deep`);
    if (json === null || typeof json !== 'object' || Array.isArray(json)) this.fail(where, 'must be an object { type, args, children }');
    const node = json as Record<string, unknown>;
    const type = node.type;
    if (typeof type !== 'string') this.fail(`${where}.type`, 'must be a string');
    const rawArgs = node.args ?? {};
    if (rawArgs === null || typeof rawArgs !== 'object' || Array.isArray(rawArgs)) this.fail(`${where}.args`, 'must be an object');
    const args = new Args(this.file, `${where}.args`, rawArgs as Record<string, unknown>);
    const kids = (): Module[] => {
      const c = node.children ?? [];
      if (!Array.isArray(c)) this.fail(`${where}.children`, 'must be an array');
      return c.map((child, i) => this.read(child, `${where}.children[${i}]`, depth + 1));
    };
    try {
      return this.construct(type, args, kids, where);
    } catch (err) {
      if (err instanceof ModelFormatError) throw err;
      return this.fail(where, `${type}: ${(err as Error).message}`);
    }
  }

  private construct(type: string, a: Args, kids: () => Module[], where: string): Module {
    switch (type) {
      case 'Sequential':
        return new Sequential(...kids());
      case 'Concat':
        return new Concat(a.int('dim'), ...kids());
      case 'SpatialConvolution':
        return new SpatialConvolution(a.int('inC'), a.int('outC'), a.int('kW'), a.int('kH'), a.int('strideW'), a.int('strideH'),
          a.int('padW'), a.int('padH'), { groups: a.int('groups'), dilationW: a.int('dilationW'), dilationH: a.int('dilationH'), bias: a.bool('bias') });
      case 'Linear':
        return new Linear(a.int('inFeatures'), a.int('outFeatures'), a.bool('bias'));
      case 'LeakyReLU':
        return new LeakyReLU(a.number('negativeSlope'));
      case 'SpatialMaxPooling':
      case 'SpatialAveragePooling': {
        const dims = [a.int('kW'), a.int('kH'), a.int('strideW'), a.int('strideH'), a.int('padW'), a.int('padH')] as const;
        const m = type === 'SpatialMaxPooling' ? new SpatialMaxPooling(...dims) : new SpatialAveragePooling(...dims);
        if (a.bool('ceil')) m.ceil();
        if (m instanceof SpatialAveragePooling && !a.bool('countIncludePad')) m.setCountExcludePad();
        return m;
      }
      case 'SpatialCrossMapLRN':
        return new SpatialCrossMapLRN(a.int('size'), a.number('alpha'), a.number('beta'), a.number('k'));
      case 'Dropout':
        return new Dropout(a.number('p'));
      case 'BatchNormalization':
      case 'SpatialBatchNormalization': {
        const opts = { eps: a.number('eps'), momentum: a.number('momentum'), affine: a.bool('affine') };
        return type === 'BatchNormalization' ? new BatchNormalization(a.int('features'), opts) : new SpatialBatchNormalization(a.int('features'), opts);
      }
      case 'View':
        return new View(...a.ints('sizes'));
      case 'Reshape':
        return new Reshape(...a.ints('sizes'));
      default: {
        const cls = Object.prototype.hasOwnProperty.call(ARGLESS, type) ? ARGLESS[type] : undefined;
        if (!cls) this.fail(`${where}.type`, `unknown module type "${type}"`);
        return new cls();
      }
    }
  }
}

/** Typed, checked access to a node's args. */
class Args {
  constructor(private readonly file: string, private readonly where: string, private readonly raw: Record<string, unknown>) {}

  private fail(name: string, detail: string): never {
    throw new ModelFormatError(this.file, `header field ${this.where}.${name}`, detail);
  }

  number(name: string): number {
    const v = this.raw[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(name, `must be a finite number, got ${JSON.stringify(v) ?? 'nothing'}`);
    return v;
  }

  int(name: string): number {
    const v = this.number(name);
    if (!Number.isSafeInteger(v)) this.fail(name, `must be an integer, got ${v}`);
    return v;
  }

  bool(name: string): boolean {
    const v = this.raw[name];
    if (typeof v !== 'boolean') this.fail(name, `must be true or false, got ${JSON.stringify(v) ?? 'nothing'}`);
    return v;
  }

  ints(name: string): number[] {
    const v = this.raw[name];
    if (!Array.isArray(v) || v.length > 32 || !v.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) {
      this.fail(name, 'must be a list of at most 32 integers');
    }
    return v as number[];
  }
}
