// Batch normalisation: BatchNormalization over [batch, features] (PyTorch's BatchNorm1d),
// SpatialBatchNormalization over [batch, channels, H, W] (BatchNorm2d). Training uses the
// batch statistics and updates the running ones (unbiased variance, PyTorch's momentum
// convention); evaluation uses the running statistics.
import type { BatchNormShape } from '../backends/backend.js';
import { Tensor, type Shape } from '../tensor/tensor.js';
import { constant } from './init.js';
import { Module, ShapeError, type Parameter, type StateBuffer } from './module.js';

export interface BatchNormOptions {
  eps?: number;
  momentum?: number;
  affine?: boolean;
}

export class BatchNormalization extends Module {
  readonly eps: number;
  readonly momentum: number;
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly runningMean: StateBuffer;
  readonly runningVar: StateBuffer;

  constructor(readonly features: number, options: BatchNormOptions = {}) {
    super();
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    if (!Number.isInteger(features) || features < 1) throw new RangeError(`${this.typeName()}: features must be a positive integer, got ${features}`);
    if (!(this.eps > 0)) throw new RangeError(`${this.typeName()}: eps must be > 0, got ${this.eps}`);
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new RangeError(`${this.typeName()}: momentum must be in [0, 1], got ${this.momentum}`);
    const affine = options.affine ?? true;
    this.weight = affine ? this.addParameter('weight', [features], constant(1)) : null;
    this.bias = affine ? this.addParameter('bias', [features], constant(0)) : null;
    this.runningMean = this.addState('runningMean', [features], 0);
    this.runningVar = this.addState('runningVar', [features], 1);
  }

  protected typeName(): string {
    return 'nn.BatchNormalization';
  }

  /** Input rank this form accepts. */
  protected inputDims(): number {
    return 2;
  }

  outputShape(input: Shape): Shape {
    const dims = this.inputDims();
    this.expectDims(input, dims, dims === 2 ? '[batch, features]' : '[batch, channels, height, width]');
    this.expectSize(input, 1, this.features, dims === 2 ? 'features' : 'channels');
    return input;
  }

  private geometry(input: Shape): BatchNormShape {
    this.outputShape(input);
    const spatial = input.slice(2).reduce((a, b) => a * b, 1);
    return { n: input[0]!, c: this.features, spatial, eps: this.eps };
  }

  /** gamma and beta: the parameters, or constant ones and zeros without affine. */
  private affine(): [Float32Array, Float32Array] {
    if (this.weight && this.bias) return [this.weight.value.data, this.bias.value.data];
    const g = this.buffer('ones', [this.features]);
    const b = this.buffer('zeros', [this.features]);
    g.data.fill(1);
    b.data.fill(0);
    return [g.data, b.data];
  }

  async forward(input: Tensor): Promise<Tensor> {
    const s = this.geometry(input.shape);
    if (this.training && s.n * s.spatial < 2) {
      throw new ShapeError(this, `training needs more than one value per channel, got input ${JSON.stringify(input.shape)}`);
    }
    const y = this.buffer('output', input.shape);
    const [gamma, beta] = this.affine();
    this.backend.batchNormForward(s, input.data, y.data, gamma, beta, this.runningMean.value.data, this.runningVar.value.data,
      this.buffer('saveMean', [s.c]).data, this.buffer('saveInvStd', [s.c]).data, this.training, this.momentum);
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    const s = this.geometry(input.shape);
    const [gamma] = this.affine();
    const gx = this.buffer('gradInput', input.shape);
    if (this.training) {
      const gGamma = this.weight ? this.weight.grad.data : this.buffer('gradOnes', [s.c]).data;
      const gBeta = this.bias ? this.bias.grad.data : this.buffer('gradZeros', [s.c]).data;
      this.backend.batchNormBackward(s, input.data, gamma, this.buffer('saveMean', [s.c]).data, this.buffer('saveInvStd', [s.c]).data,
        gradOutput.data, gx.data, gGamma, gBeta);
    } else {
      this.evaluationBackward(s, input, gradOutput, gx, gamma);
    }
    if (!needGradInput) return null;
    this.gradInput = gx;
    return gx;
  }

  /**
   * Backward through the fixed affine map of evaluation mode (fine-tuning with frozen
   * statistics): gradInput = gy * gamma / sqrt(runningVar + eps); gamma and beta get their
   * gradients against the normalised input.
   */
  private evaluationBackward(s: BatchNormShape, input: Tensor, gradOutput: Tensor, gx: Tensor, gamma: Float32Array): void {
    const mean = this.runningMean.value.data;
    const variance = this.runningVar.value.data;
    const gy = gradOutput.data;
    const x = input.data;
    for (let c = 0; c < s.c; c++) {
      const inv = 1 / Math.sqrt(variance[c]! + s.eps);
      const scale = gamma[c]! * inv;
      let dGamma = 0;
      let dBeta = 0;
      for (let n = 0; n < s.n; n++) {
        const base = (n * s.c + c) * s.spatial;
        for (let i = base; i < base + s.spatial; i++) {
          gx.data[i] = gy[i]! * scale;
          dGamma += gy[i]! * (x[i]! - mean[c]!) * inv;
          dBeta += gy[i]!;
        }
      }
      if (this.weight) this.weight.grad.data[c]! += dGamma;
      if (this.bias) this.bias.grad.data[c]! += dBeta;
    }
  }

  describe(): string {
    return `${this.typeName()}(${this.features}, eps ${this.eps}, momentum ${this.momentum}${this.weight ? '' : ', no affine'})`;
  }
}

export class SpatialBatchNormalization extends BatchNormalization {
  protected override typeName(): string {
    return 'nn.SpatialBatchNormalization';
  }

  protected override inputDims(): number {
    return 4;
  }
}
