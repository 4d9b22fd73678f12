// LayerGraph -> Squall modules (ir.ts explains why this is the one place that constructs them).
//
// Squall's containers are Sequential (a chain) and Concat (branches that all read one value
// and are concatenated), so a graph becomes a module tree by series-parallel decomposition:
// a run of single-consumer nodes is a chain; a value read by several nodes starts branches,
// which are followed until they meet in a concat node whose inputs are exactly their ends,
// and become nn.Concat(dim) of the branch chains (nested fan-outs resolve the same way,
// inside out). This covers LeNet-5 and Inception-v1. A graph that is not of that form (a
// residual add, a second output, branches that never meet, a join of values from
// different levels) is refused with a ModelFormatError naming the node where it fails.
//
// Shapes are tracked per value from the input shape (batch 1) with the modules' own
// outputShape, so every layer is checked against its input as it is built, global pooling
// gets its window, and batch normalisation its 1-d or spatial form. When neither the graph
// nor the caller gives the input shape, only the layers that need it (global pooling,
// batch normalisation) fail, asking for it.
//
// Weights: every module is initialised from one seed (reset), then the weights the file
// gives are copied over; a weight given as null keeps the initialisation. Every length is
// checked against the module's parameter shape before anything is copied.
import {
  BatchNormalization, Concat, Dropout, LeakyReLU, Linear, LogSoftMax, ReLU, Reshape, Sequential, Sigmoid, SoftMax,
  SpatialAveragePooling, SpatialBatchNormalization, SpatialConvolution, SpatialCrossMapLRN, SpatialMaxPooling, Tanh, View,
  type Module,
} from '../../nn/index.js';
import { formatShape, shapeSize, type Shape, type Tensor } from '../../tensor/tensor.js';
import { ModelFormatError } from '../errors.js';
import type { GraphNode, LayerGraph, LayerSpec } from './ir.js';

export interface BuildOptions {
  /**
   * Per-sample input shape ([C, H, W] for images) when the graph does not declare it. When
   * both do, they must agree.
   */
  inputShape?: readonly number[];
  /** Seed of the initialisation of the layers whose weights the graph does not give (default 1). */
  seed?: number;
}

/** Builds the module tree of a graph (a Sequential at the root), weights copied, not yet on a backend. */
export function buildModule(graph: LayerGraph, options: BuildOptions = {}): Sequential {
  return new GraphBuilder(graph, options).build();
}

/** The per-sample input shape the build uses: the caller's, else the graph's, else null. */
export function graphInputShape(graph: LayerGraph, options: BuildOptions = {}): number[] | null {
  const declared = graph.inputs[0]?.shape ?? null;
  const given = options.inputShape ? [...options.inputShape] : null;
  for (const [what, s] of [['the caller\'s inputShape', given], ['the declared input shape', declared]] as const) {
    if (s && (s.length === 0 || !s.every((d) => Number.isSafeInteger(d) && d >= 1))) {
      throw new ModelFormatError(graph.source, 'input', `${what} ${formatShape(s)} must be positive integers (per sample, without the batch)`);
    }
  }
  if (given && declared && formatShape(given) !== formatShape(declared)) {
    throw new ModelFormatError(graph.source, `input "${graph.inputs[0]!.name}"`,
      `the file declares the input shape ${formatShape(declared)} per sample, the caller asked for ${formatShape(given)}`);
  }
  return given ?? (declared ? [...declared] : null);
}

/** A path through the graph: the modules from its start to `end`, and the join node it stopped at (or null at a dead end / the output). */
interface Branch {
  modules: Module[];
  end: string;
  join: GraphNode | null;
}

interface Use {
  node: GraphNode;
  slot: number;
}

class GraphBuilder {
  private readonly uses = new Map<string, Use[]>();
  private readonly producer = new Map<string, GraphNode>();
  /** Full shapes (batch 1) of the values, or null when unknown. */
  private readonly shapes = new Map<string, Shape | null>();
  /** Weight copies, run after the tree is initialised. */
  private readonly copies: (() => void)[] = [];
  private readonly file: string;

  constructor(private readonly graph: LayerGraph, private readonly options: BuildOptions) {
    this.file = graph.source;
  }

  private fail(where: string, detail: string): never {
    throw new ModelFormatError(this.file, where, detail);
  }

  private failAt(n: GraphNode, detail: string): never {
    return this.fail(where(n), detail);
  }

  build(): Sequential {
    const g = this.graph;
    if (g.inputs.length !== 1) {
      this.fail('inputs', `the graph has ${g.inputs.length} inputs (${g.inputs.map((i) => `"${i.name}"`).join(', ') || 'none'}); Squall models have one`);
    }
    if (g.outputs.length !== 1) {
      this.fail('outputs', `the graph has ${g.outputs.length} outputs (${g.outputs.map((o) => `"${o}"`).join(', ') || 'none'}); Squall models have one`);
    }
    const input = g.inputs[0]!.name;
    const output = g.outputs[0]!;
    this.checkOrder(input);
    const perSample = graphInputShape(g, this.options);
    this.shapes.set(input, perSample ? [1, ...perSample] : null);

    if (!this.producer.has(output) && output !== input) this.fail('outputs', `the output "${output}" is not produced by any node`);
    const reader = this.uses.get(output)?.[0];
    if (reader) this.failAt(reader.node, `reads the graph's output "${output}": Squall models end at their output (a second output?)`);

    const top = this.follow(input);
    if (top.join) this.unjoinable([top]);
    if (top.end !== output) {
      const n = this.producer.get(top.end);
      this.fail(n ? where(n) : `value "${top.end}"`, `its output "${top.end}" is read by no node and is not the graph's output "${output}" ` +
        '(a second output or a dead end)');
    }
    const root = new Sequential(...top.modules);
    root.reset(this.options.seed ?? 1);
    for (const copy of this.copies) copy();
    return root;
  }

  /** Names are unique and every node reads only the input and earlier nodes' outputs (importers sort topologically). */
  private checkOrder(input: string): void {
    const defined = new Set<string>([input]);
    for (const n of this.graph.nodes) {
      for (const [slot, v] of n.inputs.entries()) {
        if (!defined.has(v)) {
          this.failAt(n, v === n.output || this.graph.nodes.some((m) => m.output === v)
            ? `reads "${v}" before it is computed (a cycle, or the nodes are not in topological order)`
            : `reads "${v}", which neither the graph's input nor any node produces`);
        }
        const list = this.uses.get(v) ?? [];
        list.push({ node: n, slot });
        this.uses.set(v, list);
      }
      if (defined.has(n.output)) this.failAt(n, `writes "${n.output}", which is already defined (each value must have one producer)`);
      if (n.inputs.length === 0) this.failAt(n, 'has no inputs');
      defined.add(n.output);
      this.producer.set(n.output, n);
    }
  }

  /** Follows the graph from `start` through chains and resolved fan-outs until a join it cannot resolve, a dead end or the output. */
  private follow(start: string): Branch {
    const modules: Module[] = [];
    let v = start;
    for (;;) {
      const uses = this.uses.get(v) ?? [];
      if (uses.length === 0) return { modules, end: v, join: null };
      if (uses.length === 1) {
        const n = uses[0]!.node;
        if (n.inputs.length >= 2) return { modules, end: v, join: n };
        modules.push(...this.layer(n));
        v = n.output;
        continue;
      }
      // A fan-out: its branches, merged, continue to wherever they stop.
      const merged = this.fanOut(v, uses);
      return { modules: [...modules, ...merged.modules], end: merged.end, join: merged.join };
    }
  }

  /**
   * The branches that start at `v` (one per use), merged at the joins whose inputs are all
   * ends of branches, until one branch is left.
   */
  private fanOut(v: string, uses: Use[]): Branch {
    let branches: Branch[] = uses.map((u) => {
      if (u.node.inputs.length >= 2) return { modules: [], end: v, join: u.node };
      const first = this.layer(u.node);
      const rest = this.follow(u.node.output);
      return { modules: [...first, ...rest.modules], end: rest.end, join: rest.join };
    });
    while (branches.length > 1) {
      const j = branches.map((b) => b.join).find((n): n is GraphNode => n !== null &&
        branches.filter((b) => b.join === n).length === n.inputs.length);
      if (!j) this.unjoinable(branches);
      // Branches in the order of the join's inputs (each input slot takes one branch ending at that value).
      const pool = branches.filter((b) => b.join === j);
      const ordered = j.inputs.map((value) => {
        const i = pool.findIndex((b) => b.end === value);
        if (i < 0) this.failAt(j, `reads "${value}", which is not the end of a branch from "${v}"`);
        return pool.splice(i, 1)[0]!;
      });
      const joined = this.join(j, ordered);
      const rest = this.follow(j.output);
      const merged: Branch = { modules: [joined, ...rest.modules], end: rest.end, join: rest.join };
      branches = [...branches.filter((b) => b.join !== j), merged];
    }
    return branches[0]!;
  }

  /** Explains why branches cannot be merged, naming the node where it fails. */
  private unjoinable(branches: Branch[]): never {
    const stuck = branches.find((b) => b.join !== null && b.join.layer.op !== 'concat') ?? branches.find((b) => b.join !== null);
    if (stuck?.join) {
      const j = stuck.join;
      if (j.layer.op !== 'concat') {
        this.failAt(j, `joins ${j.inputs.length} values by ${j.layer.op}: Squall builds chains (Sequential) and concatenations (Concat) only, ` +
          'not residual connections or other merges');
      }
      this.failAt(j, `concatenates ${j.inputs.map((i) => `"${i}"`).join(', ')}, which do not all branch from one value at the same level ` +
        '(the graph is not a nesting of chains and concatenations)');
    }
    const dead = branches.find((b) => b.join === null)!;
    const n = this.producer.get(dead.end);
    return this.fail(n ? where(n) : `value "${dead.end}"`, `its output "${dead.end}" is read by no node and is not the graph's output ` +
      '(a branch that never joins the others: a second output?)');
  }

  /** The module of a join node over its branches (a concat; a single-input one is the identity and never gets here). */
  private join(j: GraphNode, branches: Branch[]): Module {
    const spec = j.layer;
    if (spec.op !== 'concat') return this.unjoinable([{ modules: [], end: j.output, join: j }]);
    const shapes = j.inputs.map((v) => this.shapes.get(v) ?? null);
    let dim = spec.dim;
    const rank = shapes.find((s) => s)?.length;
    if (dim < 0 && rank !== undefined) dim += rank;
    if (!Number.isInteger(dim) || dim < 1) {
      this.failAt(j, `concatenation along dimension ${spec.dim}${rank === undefined ? ' (a negative dimension needs the input shape)' : ''}: ` +
        'Squall concatenates along a dimension after the batch (1 = channels)');
    }
    let out: Shape | null = null;
    if (shapes.every((s): s is Shape => s !== null)) {
      const first = shapes[0]!;
      if (dim >= first.length) this.failAt(j, `concatenation along dimension ${dim} of ${first.length}-d inputs`);
      for (const [i, s] of shapes.entries()) {
        if (s.length !== first.length || s.some((d, k) => k !== dim && d !== first[k])) {
          this.failAt(j, `input "${j.inputs[i]}" has shape ${formatShape(s)}, input "${j.inputs[0]}" has ${formatShape(first)}: ` +
            `they must agree except in dimension ${dim}`);
        }
      }
      out = first.map((d, k) => (k === dim ? shapes.reduce((n, s) => n + s[k]!, 0) : d));
    }
    this.shapes.set(j.output, out);
    return new Concat(dim, ...branches.map((b) => new Sequential(...b.modules)));
  }

  // ---- one node ---------------------------------------------------------------------------

  /** The modules of a single-input node (none for an identity), with its output shape recorded. */
  private layer(n: GraphNode): Module[] {
    const inShape = this.shapes.get(n.inputs[0]!) ?? null;
    let modules: Module[];
    try {
      modules = this.construct(n, n.layer, inShape);
    } catch (err) {
      if (err instanceof ModelFormatError) throw err;
      this.failAt(n, (err as Error).message);
    }
    let out: Shape | null = inShape;
    if (inShape) {
      try {
        out = modules.reduce<Shape>((s, m) => m.outputShape(s), inShape);
      } catch (err) {
        this.failAt(n, `does not fit its input "${n.inputs[0]}" of shape ${formatShape(inShape.slice(1))} per sample: ${(err as Error).message}`);
      }
    }
    this.shapes.set(n.output, out);
    return modules;
  }

  private needShape(n: GraphNode, inShape: Shape | null, why: string): Shape {
    if (!inShape) {
      this.failAt(n, `${why} depends on the input shape, which the file does not declare: give it (inputShape, e.g. [3, 224, 224]; ` +
        '--input-shape C,H,W on the command line)');
    }
    return inShape;
  }

  private construct(n: GraphNode, s: LayerSpec, inShape: Shape | null): Module[] {
    switch (s.op) {
      case 'conv': {
        const m = new SpatialConvolution(s.inC, s.outC, s.kW, s.kH, s.strideW, s.strideH, s.padW, s.padH,
          { groups: s.groups, dilationW: s.dilationW, dilationH: s.dilationH, bias: s.hasBias });
        this.copy(n, 'weight', m.weight.value, s.weight);
        this.copy(n, 'bias', m.bias?.value ?? null, s.bias);
        return [m];
      }
      case 'linear': {
        const m = new Linear(s.inFeatures, s.outFeatures, s.hasBias);
        this.copy(n, 'weight', m.weight.value, s.weight);
        this.copy(n, 'bias', m.bias?.value ?? null, s.bias);
        // Caffe's InnerProduct (and Torch code that relies on it) flattens an image input itself.
        return inShape && inShape.length > 2 ? [new View(shapeSize(inShape.slice(1))), m] : [m];
      }
      case 'relu':
        return [s.negativeSlope === 0 ? new ReLU() : new LeakyReLU(s.negativeSlope)];
      case 'tanh':
        return [new Tanh()];
      case 'sigmoid':
        return [new Sigmoid()];
      case 'maxpool':
      case 'avgpool': {
        let { kW, kH, strideW, strideH, padW, padH } = s;
        if (s.global) {
          const shape = this.needShape(n, inShape, 'global pooling (its window is the whole plane)');
          if (shape.length !== 4) this.failAt(n, `global pooling needs a [batch, channels, height, width] input, got ${formatShape(shape)}`);
          [kH, kW] = [shape[2]!, shape[3]!];
          [strideH, strideW, padH, padW] = [1, 1, 0, 0];
        }
        const m = s.op === 'maxpool'
          ? new SpatialMaxPooling(kW, kH, strideW, strideH, padW, padH)
          : new SpatialAveragePooling(kW, kH, strideW, strideH, padW, padH);
        if (s.ceil && !s.global) m.ceil();
        if (m instanceof SpatialAveragePooling && !s.countIncludePad) m.setCountExcludePad();
        return [m];
      }
      case 'lrn':
        // The kernels sum over size/2 channels either side; Caffe, Torch, PyTorch and ONNX agree on that only for odd sizes.
        if (!(Number.isInteger(s.size) && s.size % 2 === 1)) this.failAt(n, `LRN size ${s.size}: Squall supports odd sizes (a window centred on the channel)`);
        return [new SpatialCrossMapLRN(s.size, s.alpha, s.beta, s.k)];
      case 'dropout':
        return [new Dropout(s.p)];
      case 'softmax':
        return [new SoftMax()];
      case 'logsoftmax':
        return [new LogSoftMax()];
      case 'batchnorm': {
        const shape = this.needShape(n, inShape, 'batch normalisation (1-d or spatial)');
        if (shape.length !== 2 && shape.length !== 4) {
          this.failAt(n, `batch normalisation of a ${shape.length}-d input ${formatShape(shape)}: Squall has the 2-d and 4-d forms`);
        }
        const opts = { eps: s.eps, momentum: s.momentum, affine: s.affine };
        const m = shape.length === 4 ? new SpatialBatchNormalization(s.features, opts) : new BatchNormalization(s.features, opts);
        this.copy(n, 'running mean', m.runningMean.value, s.mean);
        this.copy(n, 'running variance', m.runningVar.value, s.variance);
        this.copy(n, 'scale', m.weight?.value ?? null, s.scale);
        this.copy(n, 'shift', m.bias?.value ?? null, s.shift);
        return [m];
      }
      case 'flatten':
        return [inShape ? new View(shapeSize(inShape.slice(1))) : new View(-1)];
      case 'reshape':
        return [new Reshape(...s.shape)];
      case 'concat':
      case 'add':
        return []; // with one input: the identity (with more, the node is a join and never gets here)
      default:
        return this.failAt(n, `unknown layer op ${JSON.stringify((s as { op: unknown }).op)}`);
    }
  }

  /** Checks a given weight against the module's tensor now; copies it after initialisation. */
  private copy(n: GraphNode, what: string, into: Tensor | null, given: Float32Array | null): void {
    if (given === null) return;
    if (!into) this.failAt(n, `the file gives a ${what} (${given.length} values) but the layer has none`);
    if (given.length !== into.size) {
      this.failAt(n, `its ${what} has ${given.length} values; the module's ${what} has shape ${formatShape(into.shape)} (${into.size} values)`);
    }
    this.copies.push(() => into.data.set(given));
  }
}

function where(n: GraphNode): string {
  return `node "${n.name}" (${n.sourceType})`;
}
