// Average pooling over [batch, channels, H, W]. countIncludePad (Torch's and PyTorch's
// default) divides by the window clipped to the padded input; false divides by the number
// of real input cells in the window.
import { Tensor, type Shape } from '../tensor/tensor.js';
import { SpatialPooling } from './pooling.js';

export class SpatialAveragePooling extends SpatialPooling {
  countIncludePad = true;

  protected typeName(): string {
    return 'nn.SpatialAveragePooling';
  }

  /** Divide by the number of real input cells in each window instead (Torch's setCountExcludePad()). */
  setCountExcludePad(): this {
    this.countIncludePad = false;
    return this;
  }

  outputShape(input: Shape): Shape {
    const s = this.geometry(input, this.countIncludePad);
    return [s.batch, s.channels, ...SpatialPooling.outSize(s)];
  }

  async forward(input: Tensor): Promise<Tensor> {
    const s = this.geometry(input.shape, this.countIncludePad);
    const y = this.buffer('output', [s.batch, s.channels, ...SpatialPooling.outSize(s)]);
    this.backend.avgPool2dForward(s, input.data, y.data);
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    if (!needGradInput) return null;
    const gx = this.buffer('gradInput', input.shape);
    this.backend.avgPool2dBackward(this.geometry(input.shape, this.countIncludePad), gradOutput.data, gx.data);
    this.gradInput = gx;
    return gx;
  }

  describe(): string {
    return `nn.SpatialAveragePooling(${this.describeWindow()}${this.countIncludePad ? '' : ', exclude pad'})`;
  }
}
