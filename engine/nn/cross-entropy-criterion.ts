// LogSoftMax followed by ClassNLLCriterion, on raw scores [batch, classes], computed in
// float64 per row so large logits neither overflow nor lose the small probabilities.
import { Tensor } from '../tensor/tensor.js';
import { Criterion, checkClassTargets } from './criterion.js';

export class CrossEntropyCriterion extends Criterion<Int32Array> {
  constructor(readonly sizeAverage = true) {
    super();
  }

  /** max and log-sum-exp of row i. */
  private static rowLse(x: Float32Array, off: number, classes: number): number {
    let max = -Infinity;
    for (let j = 0; j < classes; j++) max = Math.max(max, x[off + j]!);
    let s = 0;
    for (let j = 0; j < classes; j++) s += Math.exp(x[off + j]! - max);
    return max + Math.log(s);
  }

  forward(input: Tensor, target: Int32Array): number {
    const [batch, classes] = checkClassTargets('nn.CrossEntropyCriterion', input, target);
    let sum = 0;
    for (let i = 0; i < batch; i++) {
      const off = i * classes;
      sum += CrossEntropyCriterion.rowLse(input.data, off, classes) - input.data[off + target[i]!]!;
    }
    return this.sizeAverage ? sum / batch : sum;
  }

  backward(input: Tensor, target: Int32Array): Tensor {
    const [batch, classes] = checkClassTargets('nn.CrossEntropyCriterion', input, target);
    const g = this.gradBuffer(input);
    const scale = this.sizeAverage ? 1 / batch : 1;
    for (let i = 0; i < batch; i++) {
      const off = i * classes;
      const lse = CrossEntropyCriterion.rowLse(input.data, off, classes);
      for (let j = 0; j < classes; j++) g.data[off + j] = scale * (Math.exp(input.data[off + j]! - lse) - (j === target[i] ? 1 : 0));
    }
    return g;
  }

  describe(): string {
    return `nn.CrossEntropyCriterion(${this.sizeAverage ? 'mean' : 'sum'})`;
  }
}
