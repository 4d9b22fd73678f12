// Runs every branch on the same input and concatenates their outputs along one dimension
// (Torch's Concat / DepthConcat with equal spatial sizes; Inception's channel concat).
// Backward splits gradOutput along that dimension, runs each branch's backward and sums
// the branches' input gradients in branch order.
import { Tensor, formatShape, type Shape } from '../tensor/tensor.js';
import { Module, ShapeError } from './module.js';

export class Concat extends Module {
  private readonly branches: Module[] = [];

  /** dim: the dimension to concatenate along (0-based; 1 = channels of NCHW). */
  constructor(readonly dim = 1, ...branches: Module[]) {
    super();
    if (!Number.isInteger(dim) || dim < 0) throw new RangeError(`nn.Concat: dim must be a non-negative integer, got ${dim}`);
    for (const b of branches) this.add(b);
  }

  add(m: Module): this {
    this.branches.push(this.adopt(m, String(this.branches.length)));
    return this;
  }

  override children(): readonly Module[] {
    return this.branches;
  }

  outputShape(input: Shape): Shape {
    if (this.branches.length === 0) throw new ShapeError(this, 'has no branches');
    const shapes = this.branches.map((b) => b.outputShape(input));
    return this.joined(shapes);
  }

  private joined(shapes: Shape[]): Shape {
    const first = shapes[0]!;
    if (this.dim >= first.length) throw new ShapeError(this, `cannot concatenate along dimension ${this.dim} of ${first.length}-d branch outputs`);
    let total = 0;
    for (const [i, s] of shapes.entries()) {
      if (s.length !== first.length || s.some((d, j) => j !== this.dim && d !== first[j])) {
        throw new ShapeError(this, `branch ${i} gives ${formatShape(s)}, branch 0 gives ${formatShape(first)}: they must agree except in dimension ${this.dim}`);
      }
      total += s[this.dim]!;
    }
    return first.map((d, j) => (j === this.dim ? total : d));
  }

  /** Number of blocks before the concatenated dimension, and the block size of a shape. */
  private blocks(shape: Shape): [outer: number, inner: number] {
    const outer = shape.slice(0, this.dim).reduce((a, b) => a * b, 1);
    const inner = shape.slice(this.dim).reduce((a, b) => a * b, 1);
    return [outer, inner];
  }

  async forward(input: Tensor): Promise<Tensor> {
    // The root checks every shape before anything runs, so a wrong input leaves no side
    // effects (batch-norm statistics, dropout streams) behind.
    if (!this.parent) this.outputShape(input.shape);
    if (this.branches.length === 0) throw new ShapeError(this, 'has no branches');
    const outs: Tensor[] = [];
    for (const b of this.branches) outs.push(await b.forward(input));
    const shape = this.joined(outs.map((o) => o.shape));
    const y = this.buffer('output', shape);
    const [outer, total] = this.blocks(shape);
    let offset = 0;
    for (const o of outs) {
      const [, inner] = this.blocks(o.shape);
      for (let i = 0; i < outer; i++) y.data.set(o.data.subarray(i * inner, (i + 1) * inner), i * total + offset);
      offset += inner;
    }
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    const [outer, total] = this.blocks(gradOutput.shape);
    let offset = 0;
    let gx: Tensor | null = null;
    for (const [k, b] of this.branches.entries()) {
      const shape = b.output.shape;
      const [, inner] = this.blocks(shape);
      const gy = this.buffer(`gradOutput${k}`, shape);
      for (let i = 0; i < outer; i++) gy.data.set(gradOutput.data.subarray(i * total + offset, i * total + offset + inner), i * inner);
      offset += inner;
      const gi = await Module.runBackward(b, input, gy, needGradInput);
      if (b.children().length === 0) this.parametersReady(b);
      if (!needGradInput) continue;
      if (!gi) throw new Error(`${b.path()}: returned no gradInput although it was asked for`);
      if (!gx) {
        gx = this.buffer('gradInput', input.shape);
        gx.data.set(gi.data);
      } else {
        this.backend.axpy(1, gi.data, gx.data);
      }
    }
    if (!needGradInput) return null;
    this.gradInput = gx!;
    return gx;
  }

  describe(): string {
    return `nn.Concat(${this.dim})`;
  }

  override toString(): string {
    const lines = [`nn.Concat(${this.dim}) {`];
    for (const [i, m] of this.branches.entries()) lines.push(`  (${i}): ${m.toString().split('\n').join('\n  ')}`);
    lines.push('}');
    return lines.join('\n');
  }
}
