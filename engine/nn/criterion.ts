// Loss functions: forward(input, target) gives the loss as a number, backward(input, target)
// the gradient of that loss w.r.t. the input. Both run on the JavaScript thread: their
// inputs are [batch, classes] or similar, tiny next to the model.
import { Tensor, formatShape } from '../tensor/tensor.js';

export abstract class Criterion<Target> {
  gradInput: Tensor = Tensor.zeros([0]);

  abstract forward(input: Tensor, target: Target): number;
  abstract backward(input: Tensor, target: Target): Tensor;
  abstract describe(): string;

  /** A gradient buffer of the input's shape, reused across calls. */
  protected gradBuffer(input: Tensor): Tensor {
    if (!this.gradInput.sameShape(input)) this.gradInput = Tensor.zeros(input.shape);
    return this.gradInput;
  }

  toString(): string {
    return this.describe();
  }
}

/** Checks [batch, classes] against one label per row, each in 0..classes-1. */
export function checkClassTargets(what: string, input: Tensor, target: Int32Array): [batch: number, classes: number] {
  if (input.dim !== 2) throw new RangeError(`${what}: expected input [batch, classes], got ${formatShape(input.shape)}`);
  const [batch, classes] = input.shape as [number, number];
  if (target.length !== batch) throw new RangeError(`${what}: ${target.length} targets for a batch of ${batch} (input ${formatShape(input.shape)})`);
  for (let i = 0; i < batch; i++) {
    const t = target[i]!;
    if (!(t >= 0 && t < classes)) throw new RangeError(`${what}: target[${i}] = ${t} is not a class index in 0..${classes - 1}`);
  }
  return [batch, classes];
}
