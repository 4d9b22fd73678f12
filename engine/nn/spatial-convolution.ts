// 2-D convolution over [batch, inC, H, W]; weight [outC, inC / groups, kH, kW] (Torch's
// SpatialConvolution; arguments in Torch's order: planes, kernel W/H, stride W/H, pad W/H).
import type { Conv2dShape } from '../backends/backend.js';
import { convOutputSize } from '../backends/backend.js';
import { Tensor, type Shape } from '../tensor/tensor.js';
import { fanInUniform } from './init.js';
import { Module, ShapeError, type Parameter } from './module.js';

export interface ConvOptions {
  groups?: number;
  dilationW?: number;
  dilationH?: number;
  bias?: boolean;
}

export class SpatialConvolution extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly groups: number;
  readonly dilationW: number;
  readonly dilationH: number;

  constructor(readonly inC: number, readonly outC: number, readonly kW: number, readonly kH: number = kW,
              readonly strideW = 1, readonly strideH = strideW, readonly padW = 0, readonly padH = padW, options: ConvOptions = {}) {
    super();
    this.groups = options.groups ?? 1;
    this.dilationW = options.dilationW ?? 1;
    this.dilationH = options.dilationH ?? this.dilationW;
    const positive = { inC, outC, kW, kH, strideW, strideH, groups: this.groups, dilationW: this.dilationW, dilationH: this.dilationH };
    for (const [k, v] of Object.entries(positive)) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`nn.SpatialConvolution: ${k} must be a positive integer, got ${v}`);
    }
    for (const [k, v] of Object.entries({ padW, padH })) {
      if (!Number.isInteger(v) || v < 0) throw new RangeError(`nn.SpatialConvolution: ${k} must be a non-negative integer, got ${v}`);
    }
    if (inC % this.groups || outC % this.groups) {
      throw new RangeError(`nn.SpatialConvolution: groups (${this.groups}) must divide inC (${inC}) and outC (${outC})`);
    }
    const fanIn = (inC / this.groups) * kH * kW;
    this.weight = this.addParameter('weight', [outC, inC / this.groups, kH, kW], fanInUniform(fanIn));
    this.bias = options.bias === false ? null : this.addParameter('bias', [outC], fanInUniform(fanIn));
  }

  private geometry(input: Shape): Conv2dShape {
    this.expectDims(input, 4, '[batch, channels, height, width]');
    this.expectSize(input, 1, this.inC, 'input channels');
    const [batch, inC, inH, inW] = input as [number, number, number, number];
    const s: Conv2dShape = { batch, inC, inH, inW, outC: this.outC, kH: this.kH, kW: this.kW, strideH: this.strideH, strideW: this.strideW,
      padH: this.padH, padW: this.padW, dilationH: this.dilationH, dilationW: this.dilationW, groups: this.groups };
    if (this.outSize(s)[0] < 1 || this.outSize(s)[1] < 1) {
      throw new ShapeError(this, `input ${inH}x${inW} is smaller than the ${this.kH}x${this.kW} kernel with padding ${this.padH},${this.padW}`);
    }
    return s;
  }

  private outSize(s: Conv2dShape): [number, number] {
    return [convOutputSize(s.inH, s.kH, s.strideH, s.padH, s.dilationH), convOutputSize(s.inW, s.kW, s.strideW, s.padW, s.dilationW)];
  }

  private static work(s: Conv2dShape, oh: number, ow: number): number {
    return s.batch * s.outC * oh * ow * (s.inC / s.groups) * s.kH * s.kW;
  }

  outputShape(input: Shape): Shape {
    const s = this.geometry(input);
    const [oh, ow] = this.outSize(s);
    return [s.batch, this.outC, oh, ow];
  }

  async forward(input: Tensor): Promise<Tensor> {
    const s = this.geometry(input.shape);
    const [oh, ow] = this.outSize(s);
    const y = this.buffer('output', [s.batch, this.outC, oh, ow]);
    const b = this.bias ? this.bias.value.data : null;
    if (Module.isLarge(SpatialConvolution.work(s, oh, ow))) await this.backend.conv2dForwardAsync(s, input.data, this.weight.value.data, b, y.data);
    else this.backend.conv2dForward(s, input.data, this.weight.value.data, b, y.data);
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    const s = this.geometry(input.shape);
    const [oh, ow] = this.outSize(s);
    const large = Module.isLarge(SpatialConvolution.work(s, oh, ow));
    const gb = this.bias ? this.bias.grad.data : null;
    if (large) await this.backend.conv2dBackwardFilterAsync(s, input.data, gradOutput.data, this.weight.grad.data, gb);
    else this.backend.conv2dBackwardFilter(s, input.data, gradOutput.data, this.weight.grad.data, gb);
    if (!needGradInput) return null;
    const gx = this.buffer('gradInput', input.shape);
    if (large) await this.backend.conv2dBackwardDataAsync(s, gradOutput.data, this.weight.value.data, gx.data);
    else this.backend.conv2dBackwardData(s, gradOutput.data, this.weight.value.data, gx.data);
    this.gradInput = gx;
    return gx;
  }

  describe(): string {
    const extra = [this.groups > 1 ? `groups ${this.groups}` : '', this.dilationW > 1 || this.dilationH > 1 ? `dilation ${this.dilationW},${this.dilationH}` : '',
      this.bias ? '' : 'no bias'].filter(Boolean);
    return `nn.SpatialConvolution(${this.inC} -> ${this.outC}, ${this.kW}x${this.kH}, ${this.strideW},${this.strideH}, ${this.padW},${this.padH}` +
      `${extra.length ? `, ${extra.join(', ')}` : ''})`;
  }
}
