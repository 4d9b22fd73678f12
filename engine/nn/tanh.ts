import type { Backend } from '../backends/backend.js';
import { Activation } from './activation.js';

export class Tanh extends Activation {
  protected readonly backwardUsesInput = false;
  protected apply(b: Backend, x: Float32Array, y: Float32Array): void {
    b.tanh(x, y);
  }
  protected gradient(b: Backend, y: Float32Array, gy: Float32Array, gx: Float32Array): void {
    b.tanhBackward(y, gy, gx);
  }
  describe(): string {
    return 'nn.Tanh';
  }
}
