// SoftMax and LogSoftMax over the last dimension of [batch, classes] (or of a 1-d vector).
import type { Backend } from '../backends/backend.js';
import { Tensor, type Shape } from '../tensor/tensor.js';
import { Module } from './module.js';

abstract class SoftMaxBase extends Module {
  protected abstract fwd(b: Backend, rows: number, cols: number, x: Float32Array, y: Float32Array): void;
  protected abstract bwd(b: Backend, rows: number, cols: number, y: Float32Array, gy: Float32Array, gx: Float32Array): void;

  outputShape(input: Shape): Shape {
    this.expectDims(input, [1, 2], '[batch, classes] or [classes]');
    return input;
  }

  private static dims(shape: Shape): [number, number] {
    return shape.length === 1 ? [1, shape[0]!] : [shape[0]!, shape[1]!];
  }

  async forward(input: Tensor): Promise<Tensor> {
    this.outputShape(input.shape);
    const [rows, cols] = SoftMaxBase.dims(input.shape);
    const y = this.buffer('output', input.shape);
    this.fwd(this.backend, rows, cols, input.data, y.data);
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    if (!needGradInput) return null;
    if (this.output.size !== input.size) throw new Error(`${this.path()}: backward before forward`);
    const [rows, cols] = SoftMaxBase.dims(input.shape);
    const gx = this.buffer('gradInput', input.shape);
    this.bwd(this.backend, rows, cols, this.output.data, gradOutput.data, gx.data);
    this.gradInput = gx;
    return gx;
  }
}

export class SoftMax extends SoftMaxBase {
  protected fwd(b: Backend, rows: number, cols: number, x: Float32Array, y: Float32Array): void {
    b.softmaxForward(rows, cols, x, y);
  }
  protected bwd(b: Backend, rows: number, cols: number, y: Float32Array, gy: Float32Array, gx: Float32Array): void {
    b.softmaxBackward(rows, cols, y, gy, gx);
  }
  describe(): string {
    return 'nn.SoftMax';
  }
}

export class LogSoftMax extends SoftMaxBase {
  protected fwd(b: Backend, rows: number, cols: number, x: Float32Array, y: Float32Array): void {
    b.logSoftmaxForward(rows, cols, x, y);
  }
  protected bwd(b: Backend, rows: number, cols: number, y: Float32Array, gy: Float32Array, gx: Float32Array): void {
    b.logSoftmaxBackward(rows, cols, y, gy, gx);
  }
  describe(): string {
    return 'nn.LogSoftMax';
  }
}
