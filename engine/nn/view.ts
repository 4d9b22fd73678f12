// View / Reshape: the same storage with another per-sample shape; the batch dimension is kept.
// View(192) turns [b, 12, 4, 4] into [b, 192]; one size may be -1 (inferred).
import { Tensor, formatShape, shapeSize, type Shape } from '../tensor/tensor.js';
import { Module, ShapeError } from './module.js';

export class View extends Module {
  readonly sizes: readonly number[];

  constructor(...sizes: number[]) {
    super();
    if (sizes.length === 0) throw new RangeError(`${this.typeName()}: give the per-sample shape, e.g. View(192)`);
    if (sizes.filter((d) => d === -1).length > 1) throw new RangeError(`${this.typeName()}: at most one size may be -1`);
    for (const d of sizes) if (d !== -1 && !(Number.isInteger(d) && d >= 1)) throw new RangeError(`${this.typeName()}: sizes must be positive integers or -1, got ${d}`);
    this.sizes = sizes;
  }

  protected typeName(): string {
    return 'nn.View';
  }

  outputShape(input: Shape): Shape {
    if (input.length < 1) throw new ShapeError(this, 'expected an input with a batch dimension');
    const batch = input[0]!;
    const per = shapeSize(input.slice(1));
    const known = shapeSize(this.sizes.filter((d) => d !== -1));
    const sizes = this.sizes.map((d) => (d === -1 ? per / known : d));
    if (!sizes.every((d) => Number.isInteger(d)) || shapeSize(sizes) !== per) {
      throw new ShapeError(this, `cannot view a sample of shape ${formatShape(input.slice(1))} (${per} values) as ${formatShape(this.sizes)}`);
    }
    return [batch, ...sizes];
  }

  async forward(input: Tensor): Promise<Tensor> {
    this.output = input.view(this.outputShape(input.shape));
    return this.output;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    if (!needGradInput) return null;
    this.gradInput = gradOutput.view(input.shape);
    return this.gradInput;
  }

  describe(): string {
    return `${this.typeName()}(${this.sizes.join(', ')})`;
  }
}

/** Torch's Reshape; the storage is contiguous, so it is a View. */
export class Reshape extends View {
  protected override typeName(): string {
    return 'nn.Reshape';
  }
}
