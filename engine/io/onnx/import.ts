// ONNX model -> LayerGraph. The passes, in order:
//   decode      protobuf -> messages (decode.ts; byte offsets in errors)
//   check+sort  one producer per value, every read defined, nodes in dependency order; a
//               node that depends on itself (a cycle) is named with the cycle
//   fold        Constant nodes and shape arithmetic on constants become constants (fold.ts)
//   patterns    PyTorch's LocalResponseNorm arithmetic becomes one lrn layer (lrn-pattern.ts)
//   dead code   nodes no output depends on are dropped (the pattern's leftovers, shape nodes)
//   translate   each remaining node -> a layer (layers.ts); an operator Squall cannot run is
//               an UnsupportedLayerError naming the node and its op_type
import { readModelFile } from '../model-file.js';
import { ModelFormatError } from '../errors.js';
import type { GraphInput, GraphNode, LayerGraph } from '../graph/ir.js';
import { decodeOnnx } from './decode.js';
import { foldNode, isFoldable } from './fold.js';
import { GraphView, describeNode, makeNode, type OnnxNode } from './graph-view.js';
import { translateNode } from './layers.js';
import { matchLrn } from './lrn-pattern.js';
import { DataType, int, type GraphMsg, type ModelMsg } from './schema.js';
import { readTensor, type ConstTensor } from './tensor.js';

/** Reads an ONNX file into a LayerGraph (build it with buildModule). */
export async function loadOnnx(path: string): Promise<LayerGraph> {
  return importOnnx(await readModelFile(path), path);
}

export function importOnnx(bytes: Uint8Array, file = '<onnx>'): LayerGraph {
  const model = decodeOnnx(bytes, file);
  return new OnnxImport(model, file, bytes.length).run();
}

class OnnxImport {
  private readonly graph: GraphMsg;
  private readonly view: GraphView;
  private readonly lrnMisses = new Map<OnnxNode, string>();

  constructor(model: ModelMsg, private readonly file: string, private readonly fileBytes: number) {
    this.graph = model.graph!;
    this.view = new GraphView(file, defaultOpset(model, file));
  }

  private fail(where: string, detail: string): never {
    throw new ModelFormatError(this.file, where, detail);
  }

  run(): LayerGraph {
    const g = this.graph;
    for (const t of g.initializer) this.view.addInitializer(t);
    const input = this.input();
    const external = new Set([input.name, ...g.input.map((i) => i.name), ...g.initializer.map((t) => t.name)]);
    const sorted = this.sort(g.node.map((m, i) => makeNode(m, i, this.file)), external);
    const computed = this.fold(sorted);
    this.view.index(computed);
    const nodes = computed.map((n) => this.lrn(n));
    this.view.index(nodes);

    const outputs = g.output.map((o) => o.name);
    if (outputs.length === 0) this.fail('graph', 'the graph has no outputs');
    for (const o of outputs) {
      if (this.view.isConstant(o)) this.fail(`output "${o}"`, 'the graph\'s output is a constant');
      if (!this.view.producers.has(o) && o !== input.name) this.fail(`output "${o}"`, 'no node produces the graph\'s output');
    }
    const live = liveNodes(nodes, outputs);
    const readers = (v: string): OnnxNode[] => this.view.readersOf(v).filter((r) => live.has(r));

    const alias = new Map<string, string>();
    const resolve = (v: string): string => alias.get(v) ?? v;
    const fused = new Set<OnnxNode>();
    const layers: GraphNode[] = [];
    for (const n of nodes) {
      if (!live.has(n) || fused.has(n)) continue;
      const t = translateNode(n, { view: this.view, readers, lrnMiss: (m) => this.lrnMisses.get(m) });
      if (t.kind === 'alias') {
        alias.set(t.output, resolve(t.input));
        continue;
      }
      if (t.fused) fused.add(t.fused);
      layers.push({ name: n.name, sourceType: t.sourceType ?? n.sourceType ?? n.op, layer: t.spec, inputs: t.inputs.map(resolve), output: t.output });
    }
    return { source: this.file, format: 'onnx', inputs: [input], nodes: layers, outputs: outputs.map(resolve) };
  }

  /** The one real input (graph inputs that are not initializers) and its per-sample shape when every size is fixed. */
  private input(): GraphInput {
    const inits = new Set(this.graph.initializer.map((t) => t.name));
    const real = this.graph.input.filter((i) => !inits.has(i.name));
    if (real.length !== 1) {
      this.fail('graph inputs', `the graph has ${real.length} inputs besides its initializers (${real.map((i) => `"${i.name}"`).join(', ') || 'none'}); ` +
        'Squall models read one tensor');
    }
    const v = real[0]!;
    const tensor = v.type?.tensor_type;
    if (v.type && !tensor) this.fail(`input "${v.name}"`, 'is not a tensor');
    if (tensor && tensor.elem_type !== DataType.FLOAT) {
      this.fail(`input "${v.name}"`, `has element type ${DataType[tensor.elem_type] ?? tensor.elem_type}; Squall models read float32`);
    }
    const dims = tensor?.shape?.dim ?? null;
    if (!dims) return { name: v.name, shape: null };
    if (dims.length < 2) this.fail(`input "${v.name}"`, `is ${dims.length}-d; Squall models read [batch, ...] with at least one more dimension`);
    const sizes = dims.slice(1).map((d) => (d.value === 'dim_value' ? int(d.dim_value) : 0));
    return { name: v.name, shape: sizes.every((d) => Number.isSafeInteger(d) && d >= 1) ? sizes : null };
  }

  /**
   * Nodes in dependency order, file order kept where it is already one (depth first over
   * the nodes in file order, iteratively: no recursion a deep file could overflow).
   */
  private sort(nodes: OnnxNode[], external: Set<string>): OnnxNode[] {
    const producer = new Map<string, OnnxNode>();
    for (const n of nodes) {
      if (n.outputs.length === 0 || n.outputs.every((o) => !o)) this.fail(describeNode(n), 'has no outputs');
      for (const o of n.outputs) {
        if (!o) continue;
        if (external.has(o)) this.fail(describeNode(n), `writes "${o}", which is a graph input or initializer`);
        const other = producer.get(o);
        if (other) this.fail(describeNode(n), `writes "${o}", which ${describeNode(other)} writes too`);
        producer.set(o, n);
      }
    }
    const deps = new Map<OnnxNode, { node: OnnxNode; via: string }[]>();
    for (const n of nodes) {
      const list: { node: OnnxNode; via: string }[] = [];
      for (const v of [...n.inputs, ...n.implicit]) {
        if (!v || external.has(v)) continue;
        const p = producer.get(v);
        if (!p) this.fail(describeNode(n), `reads "${v}", which no node, initializer or graph input defines`);
        list.push({ node: p, via: v });
      }
      deps.set(n, list);
    }
    const state = new Map<OnnxNode, 1 | 2>();
    const order: OnnxNode[] = [];
    for (const root of nodes) {
      if (state.has(root)) continue;
      const stack: { node: OnnxNode; next: number }[] = [{ node: root, next: 0 }];
      state.set(root, 1);
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        const list = deps.get(top.node)!;
        if (top.next === list.length) {
          state.set(top.node, 2);
          order.push(top.node);
          stack.pop();
          continue;
        }
        const d = list[top.next++]!;
        const s = state.get(d.node);
        if (s === 2) continue;
        if (s === 1) this.cycle(stack.map((e) => e.node), d.node);
        state.set(d.node, 1);
        stack.push({ node: d.node, next: 0 });
      }
    }
    return order;
  }

  private cycle(path: OnnxNode[], back: OnnxNode): never {
    const loop = path.slice(path.indexOf(back));
    const names = [...loop, back].reverse().map((n) => `"${n.name}"`).join(' -> ');
    this.fail(describeNode(back), loop.length === 1
      ? `reads its own output "${back.outputs.find((o) => back.inputs.includes(o)) ?? back.outputs[0]}" (a reference loop)`
      : `is on a cycle of ${loop.length} nodes: ${names} (each reads the previous one's output)`);
  }

  /** Evaluates Constant nodes and shape arithmetic on constants; returns the nodes that remain. */
  private fold(nodes: OnnxNode[]): OnnxNode[] {
    const out: OnnxNode[] = [];
    const ctx = { file: this.file, opset: this.view.opset, maxElements: this.fileBytes };
    for (const n of nodes) {
      if (n.op === 'Constant') {
        this.view.setConstant(n.outputs[0]!, this.constantValue(n));
        continue;
      }
      const inputs = n.inputs.filter(Boolean);
      if (isFoldable(n.op) && n.implicit.length === 0 && inputs.length > 0 && inputs.every((v) => this.view.isConstant(v))) {
        const values = foldNode(n.msg, n.inputs.map((v) => (v ? this.view.constant(v) : null)), n.attrs, ctx);
        for (const [i, o] of n.outputs.entries()) if (o && values[i]) this.view.setConstant(o, values[i]!);
        continue;
      }
      out.push(n);
    }
    return out;
  }

  private constantValue(n: OnnxNode): ConstTensor {
    const a = n.attrs;
    const t = a.tensor('value');
    if (t) return readTensor(t, this.file, `${describeNode(n)} attribute value`);
    if (a.has('value_float')) return { dims: [], dtype: DataType.FLOAT, data: new Float32Array([a.float('value_float', 0)]) };
    if (a.has('value_int')) return { dims: [], dtype: DataType.INT64, data: new Float64Array([a.int('value_int', 0)]) };
    const ints = a.ints('value_ints', null);
    if (ints) return { dims: [ints.length], dtype: DataType.INT64, data: Float64Array.from(ints) };
    return a.fail(`has none of the constant attributes Squall reads (value, value_float, value_int, value_ints; it has ${a.names().join(', ') || 'none'})`);
  }

  /** The Div of PyTorch's LRN pattern becomes one lrn node reading the pattern's input. */
  private lrn(n: OnnxNode): OnnxNode {
    const m = matchLrn(n, this.view);
    if (!m) return n;
    if ('miss' in m) {
      this.lrnMisses.set(n, m.miss);
      return n;
    }
    return {
      ...n, op: 'LocalResponseNorm', inputs: [m.input], implicit: [], spec: m.spec,
      sourceType: 'PyTorch LocalResponseNorm (Mul, Unsqueeze, Reshape, Pad, AveragePool, Squeeze, Mul, Add, Pow, Div)',
    };
  }
}

/** The version of the default (ai.onnx) operator set. */
function defaultOpset(model: ModelMsg, file: string): number {
  const entry = model.opset_import.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (!entry) throw new ModelFormatError(file, 'opset_import', 'the model imports no version of the default operator set (ai.onnx)');
  const v = int(entry.version);
  if (!(Number.isSafeInteger(v) && v >= 1)) throw new ModelFormatError(file, 'opset_import', `operator set version ${v} is not valid`);
  return v;
}

/** Nodes some graph output depends on (nodes are in dependency order). */
function liveNodes(nodes: readonly OnnxNode[], outputs: readonly string[]): Set<OnnxNode> {
  const values = new Set(outputs);
  const live = new Set<OnnxNode>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((o) => o && values.has(o))) continue;
    live.add(n);
    for (const v of [...n.inputs, ...n.implicit]) if (v) values.add(v);
  }
  return live;
}
