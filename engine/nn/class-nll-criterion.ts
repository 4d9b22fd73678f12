// Negative log-likelihood of the target class, for inputs that are log-probabilities
// (LogSoftMax's output): loss = -mean_i input[i, target[i]] (sum without sizeAverage).
// Targets are 0-based class indices (Torch's are 1-based).
import { Tensor } from '../tensor/tensor.js';
import { Criterion, checkClassTargets } from './criterion.js';

export class ClassNLLCriterion extends Criterion<Int32Array> {
  constructor(readonly sizeAverage = true) {
    super();
  }

  forward(input: Tensor, target: Int32Array): number {
    const [batch, classes] = checkClassTargets('nn.ClassNLLCriterion', input, target);
    let sum = 0;
    for (let i = 0; i < batch; i++) sum -= input.data[i * classes + target[i]!]!;
    return this.sizeAverage ? sum / batch : sum;
  }

  backward(input: Tensor, target: Int32Array): Tensor {
    const [batch, classes] = checkClassTargets('nn.ClassNLLCriterion', input, target);
    const g = this.gradBuffer(input).fill(0);
    const v = this.sizeAverage ? -1 / batch : -1;
    for (let i = 0; i < batch; i++) g.data[i * classes + target[i]!] = v;
    return g;
  }

  describe(): string {
    return `nn.ClassNLLCriterion(${this.sizeAverage ? 'mean' : 'sum'})`;
  }
}
