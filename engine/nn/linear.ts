// y = x W^T + b for x of shape [batch, inFeatures]; W is [outFeatures, inFeatures] (Torch's layout).
import { Tensor, type Shape } from '../tensor/tensor.js';
import { fanInUniform } from './init.js';
import { Module, type Parameter } from './module.js';

export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, withBias = true) {
    super();
    for (const [what, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`nn.Linear: ${what} must be a positive integer, got ${v}`);
    }
    this.weight = this.addParameter('weight', [outFeatures, inFeatures], fanInUniform(inFeatures));
    this.bias = withBias ? this.addParameter('bias', [outFeatures], fanInUniform(inFeatures)) : null;
  }

  outputShape(input: Shape): Shape {
    this.expectDims(input, 2, '[batch, features]');
    this.expectSize(input, 1, this.inFeatures, 'inFeatures');
    return [input[0]!, this.outFeatures];
  }

  /** A column of ones, for adding the bias and summing its gradient with a GEMM. */
  private ones(batch: number): Float32Array {
    const t = this.buffer('ones', [batch]);
    t.data.fill(1);
    return t.data;
  }

  async forward(input: Tensor): Promise<Tensor> {
    const [batch, outF] = this.outputShape(input.shape) as [number, number];
    const inF = this.inFeatures;
    const y = this.buffer('output', [batch, outF]);
    if (this.bias) {
      // y = 1 b^T, then y += x W^T
      this.backend.sgemm(false, false, batch, outF, 1, 1, this.ones(batch), 1, this.bias.value.data, outF, 0, y.data, outF);
      await this.gemm(false, true, batch, outF, inF, 1, input.data, inF, this.weight.value.data, inF, 1, y.data, outF);
    } else {
      await this.gemm(false, true, batch, outF, inF, 1, input.data, inF, this.weight.value.data, inF, 0, y.data, outF);
    }
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    const batch = input.shape[0]!;
    const inF = this.inFeatures;
    const outF = this.outFeatures;
    // gradW += gy^T x ; gradB += gy^T 1
    await this.gemm(true, false, outF, inF, batch, 1, gradOutput.data, outF, input.data, inF, 1, this.weight.grad.data, inF);
    if (this.bias) this.backend.sgemm(true, false, outF, 1, batch, 1, gradOutput.data, outF, this.ones(batch), 1, 1, this.bias.grad.data, 1);
    if (!needGradInput) return null;
    const gx = this.buffer('gradInput', input.shape);
    await this.gemm(false, false, batch, inF, outF, 1, gradOutput.data, outF, this.weight.value.data, inF, 0, gx.data, inF);
    this.gradInput = gx;
    return gx;
  }

  describe(): string {
    return `nn.Linear(${this.inFeatures} -> ${this.outFeatures}${this.bias ? '' : ', no bias'})`;
  }
}
