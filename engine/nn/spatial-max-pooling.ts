// Max pooling over [batch, channels, H, W]; remembers the argmax of each window for backward.
import { Tensor, type Shape } from '../tensor/tensor.js';
import { SpatialPooling } from './pooling.js';

export class SpatialMaxPooling extends SpatialPooling {
  private indices = new Int32Array(0);

  protected typeName(): string {
    return 'nn.SpatialMaxPooling';
  }

  outputShape(input: Shape): Shape {
    const s = this.geometry(input, false);
    return [s.batch, s.channels, ...SpatialPooling.outSize(s)];
  }

  async forward(input: Tensor): Promise<Tensor> {
    const s = this.geometry(input.shape, false);
    const [oh, ow] = SpatialPooling.outSize(s);
    const y = this.buffer('output', [s.batch, s.channels, oh, ow]);
    if (this.indices.length !== y.size) this.indices = new Int32Array(y.size);
    this.backend.maxPool2dForward(s, input.data, y.data, this.indices);
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    if (!needGradInput) return null;
    if (this.indices.length !== gradOutput.size) throw new Error(`${this.path()}: backward before forward (no argmax indices for this shape)`);
    const gx = this.buffer('gradInput', input.shape);
    this.backend.maxPool2dBackward(this.geometry(input.shape, false), gradOutput.data, this.indices, gx.data);
    this.gradInput = gx;
    return gx;
  }

  describe(): string {
    return `nn.SpatialMaxPooling(${this.describeWindow()})`;
  }
}
