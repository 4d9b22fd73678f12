// The ONNX graph as the importer's passes see it: nodes with their attributes, who produces
// and who reads each value, and the constants (initializers, Constant nodes, folded nodes).
import { ModelFormatError } from '../errors.js';
import type { LayerSpec } from '../graph/ir.js';
import { Attributes } from './attributes.js';
import type { GraphMsg, NodeMsg, TensorMsg } from './schema.js';
import { readTensor, type ConstTensor } from './tensor.js';

export interface OnnxNode {
  /** Position in the file's node list. */
  index: number;
  /** The node's name, or "<op_type> #<index>" when it has none. */
  name: string;
  /** op_type, prefixed with its domain when that is not ONNX's default one. */
  op: string;
  msg: NodeMsg;
  attrs: Attributes;
  /** Input value names; '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  /** Values of this graph that the node's subgraphs (If branches) read. */
  implicit: string[];
  /** Set on nodes a pattern made (PyTorch's LRN): the finished layer. */
  spec?: LayerSpec;
  /** What the file calls it, for nodes a pattern made. */
  sourceType?: string;
}

export function describeNode(n: OnnxNode): string {
  return `node "${n.name}" (${n.sourceType ?? n.op})`;
}

export function makeNode(msg: NodeMsg, index: number, file: string): OnnxNode {
  const domain = msg.domain === 'ai.onnx' ? '' : msg.domain;
  const op = domain ? `${domain}.${msg.op_type}` : msg.op_type;
  const name = msg.name || `${msg.op_type || 'node'} #${index}`;
  const attrs = new Attributes(msg, file, `node "${name}" (${op})`);
  return { index, name, op, msg, attrs, inputs: [...msg.input], outputs: [...msg.output], implicit: outerReads(msg) };
}

/** Names a node's subgraphs read without defining them (outer-scope values), recursively. */
function outerReads(msg: NodeMsg): string[] {
  const out = new Set<string>();
  const visit = (g: GraphMsg, outer: Set<string>): void => {
    const defined = new Set<string>([...g.input.map((i) => i.name), ...g.initializer.map((t) => t.name)]);
    for (const n of g.node) {
      for (const v of n.input) if (v && !defined.has(v)) outer.add(v);
      for (const a of n.attribute) for (const sub of [a.g, ...a.graphs]) if (sub) visit(sub, outer);
      for (const v of n.output) defined.add(v);
    }
    for (const o of g.output) if (!defined.has(o.name)) outer.add(o.name);
  };
  for (const a of msg.attribute) for (const g of [a.g, ...a.graphs]) if (g) visit(g, out);
  return [...out];
}

export class GraphView {
  private readonly constants = new Map<string, ConstTensor | TensorMsg>();
  readonly producers = new Map<string, OnnxNode>();
  private readonly readers = new Map<string, OnnxNode[]>();

  constructor(readonly file: string, readonly opset: number) {}

  addInitializer(t: TensorMsg): void {
    if (this.constants.has(t.name)) throw new ModelFormatError(this.file, `initializer "${t.name}"`, 'the name is used by two initializers');
    this.constants.set(t.name, t);
  }

  setConstant(name: string, value: ConstTensor): void {
    this.constants.set(name, value);
  }

  isConstant(name: string): boolean {
    return this.constants.has(name);
  }

  /** The value of a constant (decoded on first use), or null for a computed value or ''. */
  constant(name: string): ConstTensor | null {
    const c = this.constants.get(name);
    if (!c) return null;
    if ('data' in c && (c.data instanceof Float32Array || c.data instanceof Float64Array)) return c as ConstTensor;
    const t = readTensor(c as TensorMsg, this.file, `initializer "${name}"`);
    this.constants.set(name, t);
    return t;
  }

  /** (Re)indexes producers and readers of the given nodes. */
  index(nodes: readonly OnnxNode[]): void {
    this.producers.clear();
    this.readers.clear();
    for (const n of nodes) {
      for (const o of n.outputs) if (o) this.producers.set(o, n);
      for (const v of [...n.inputs, ...n.implicit]) {
        if (!v) continue;
        const list = this.readers.get(v) ?? [];
        if (!list.includes(n)) list.push(n);
        this.readers.set(v, list);
      }
    }
  }

  /** Nodes reading a value (explicitly or from a subgraph). */
  readersOf(name: string): OnnxNode[] {
    return this.readers.get(name) ?? [];
  }
}
