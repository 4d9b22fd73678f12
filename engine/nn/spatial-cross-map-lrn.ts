// Local response normalisation across channels (AlexNet / GoogLeNet; Torch's
// SpatialCrossMapLRN, PyTorch's LocalResponseNorm, Caffe's LRN ACROSS_CHANNELS):
// y = x / (k + alpha / size * sum over `size` neighbouring channels of x^2)^beta.
import { Tensor, type Shape } from '../tensor/tensor.js';
import type { LrnShape } from '../backends/backend.js';
import { Module } from './module.js';

export class SpatialCrossMapLRN extends Module {
  constructor(readonly size = 5, readonly alpha = 1e-4, readonly beta = 0.75, readonly k = 1) {
    super();
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`nn.SpatialCrossMapLRN: size must be a positive integer, got ${size}`);
    for (const [n, v] of Object.entries({ alpha, beta, k })) {
      if (!Number.isFinite(v)) throw new RangeError(`nn.SpatialCrossMapLRN: ${n} must be finite, got ${v}`);
    }
  }

  outputShape(input: Shape): Shape {
    this.expectDims(input, 4, '[batch, channels, height, width]');
    return input;
  }

  private geometry(input: Shape): LrnShape {
    this.outputShape(input);
    const [batch, channels, height, width] = input as [number, number, number, number];
    return { batch, channels, height, width, size: this.size, alpha: this.alpha, beta: this.beta, k: this.k };
  }

  async forward(input: Tensor): Promise<Tensor> {
    const s = this.geometry(input.shape);
    const y = this.buffer('output', input.shape);
    const scale = this.buffer('scale', input.shape);
    this.backend.lrnForward(s, input.data, y.data, scale.data);
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    if (!needGradInput) return null;
    if (this.output.size !== input.size) throw new Error(`${this.path()}: backward before forward`);
    const gx = this.buffer('gradInput', input.shape);
    this.backend.lrnBackward(this.geometry(input.shape), input.data, this.output.data, this.buffer('scale', input.shape).data, gradOutput.data, gx.data);
    this.gradInput = gx;
    return gx;
  }

  describe(): string {
    return `nn.SpatialCrossMapLRN(${this.size}, ${this.alpha}, ${this.beta}, ${this.k})`;
  }
}
