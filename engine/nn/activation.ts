// Element-wise activations: the output has the input's shape; backward needs either the
// forward input (ReLU) or the forward output (tanh, sigmoid).
import type { Backend } from '../backends/backend.js';
import { Tensor, type Shape } from '../tensor/tensor.js';
import { Module } from './module.js';

export abstract class Activation extends Module {
  /** Whether backward reads the forward input (else the forward output). */
  protected abstract readonly backwardUsesInput: boolean;
  protected abstract apply(b: Backend, x: Float32Array, y: Float32Array): void;
  protected abstract gradient(b: Backend, saved: Float32Array, gy: Float32Array, gx: Float32Array): void;

  outputShape(input: Shape): Shape {
    return input;
  }

  async forward(input: Tensor): Promise<Tensor> {
    const y = this.buffer('output', input.shape);
    this.apply(this.backend, input.data, y.data);
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    if (!needGradInput) return null;
    if (!this.backwardUsesInput && this.output.size !== input.size) throw new Error(`${this.path()}: backward before forward`);
    const gx = this.buffer('gradInput', input.shape);
    this.gradient(this.backend, this.backwardUsesInput ? input.data : this.output.data, gradOutput.data, gx.data);
    this.gradInput = gx;
    return gx;
  }
}
