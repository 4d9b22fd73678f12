// Mean squared error: loss = mean((input - target)^2) (sum without sizeAverage).
import { Tensor, formatShape } from '../tensor/tensor.js';
import { Criterion } from './criterion.js';

export class MSECriterion extends Criterion<Tensor> {
  constructor(readonly sizeAverage = true) {
    super();
  }

  private check(input: Tensor, target: Tensor): void {
    if (!input.sameShape(target)) throw new RangeError(`nn.MSECriterion: input ${formatShape(input.shape)} and target ${formatShape(target.shape)} differ in shape`);
  }

  forward(input: Tensor, target: Tensor): number {
    this.check(input, target);
    let s = 0;
    for (let i = 0; i < input.size; i++) {
      const d = input.data[i]! - target.data[i]!;
      s += d * d;
    }
    return this.sizeAverage ? s / Math.max(1, input.size) : s;
  }

  backward(input: Tensor, target: Tensor): Tensor {
    this.check(input, target);
    const g = this.gradBuffer(input);
    const k = this.sizeAverage ? 2 / Math.max(1, input.size) : 2;
    for (let i = 0; i < input.size; i++) g.data[i] = k * (input.data[i]! - target.data[i]!);
    return g;
  }

  describe(): string {
    return `nn.MSECriterion(${this.sizeAverage ? 'mean' : 'sum'})`;
  }
}
