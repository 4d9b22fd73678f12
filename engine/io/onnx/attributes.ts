// Typed access to a node's attributes: a missing attribute gives its ONNX default, one of
// the wrong type (or a hostile value: a non-integer, an absurd length) a ModelFormatError
// naming the node and the attribute.
import { ModelFormatError } from '../errors.js';
import { float32Value } from './tensor.js';
import { AttributeType, int, type AttributeMsg, type GraphMsg, type NodeMsg, type TensorMsg } from './schema.js';

export class Attributes {
  private readonly byName = new Map<string, AttributeMsg>();

  constructor(readonly node: NodeMsg, private readonly file: string, readonly where: string) {
    for (const a of node.attribute) this.byName.set(a.name, a);
  }

  fail(detail: string): never {
    throw new ModelFormatError(this.file, this.where, detail);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  private get(name: string, type: AttributeType): AttributeMsg | undefined {
    const a = this.byName.get(name);
    // Old writers leave `type` unset (0); then the field that is set decides.
    if (a && a.type !== type && a.type !== AttributeType.UNDEFINED) {
      this.fail(`attribute ${name} is ${AttributeType[a.type] ?? a.type}, expected ${AttributeType[type]}`);
    }
    return a;
  }

  int(name: string, fallback: number): number {
    const a = this.get(name, AttributeType.INT);
    if (!a) return fallback;
    const v = int(a.i);
    if (!Number.isSafeInteger(v)) this.fail(`attribute ${name} = ${v} is out of range`);
    return v;
  }

  ints(name: string, fallback: number[] | null): number[] | null {
    const a = this.get(name, AttributeType.INTS);
    if (!a) return fallback;
    const v = a.ints.map((x) => int(x));
    if (!v.every((x) => Number.isSafeInteger(x))) this.fail(`attribute ${name} = [${v.join(', ')}] holds out-of-range values`);
    return v;
  }

  float(name: string, fallback: number): number {
    const a = this.get(name, AttributeType.FLOAT);
    if (!a) return fallback;
    if (!Number.isFinite(a.f)) this.fail(`attribute ${name} = ${a.f} is not finite`);
    return float32Value(a.f);
  }

  string(name: string, fallback: string): string {
    const a = this.get(name, AttributeType.STRING);
    return a ? Buffer.from(a.s).toString('utf8') : fallback;
  }

  tensor(name: string): TensorMsg | null {
    const a = this.get(name, AttributeType.TENSOR);
    return a?.t ?? null;
  }

  graph(name: string): GraphMsg | null {
    const a = this.get(name, AttributeType.GRAPH);
    return a?.g ?? null;
  }
}
