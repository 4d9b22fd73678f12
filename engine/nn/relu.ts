import type { Backend } from '../backends/backend.js';
import { Activation } from './activation.js';

/** max(0, x) */
export class ReLU extends Activation {
  protected readonly backwardUsesInput = true;
  protected apply(b: Backend, x: Float32Array, y: Float32Array): void {
    b.relu(x, y);
  }
  protected gradient(b: Backend, x: Float32Array, gy: Float32Array, gx: Float32Array): void {
    b.reluBackward(x, gy, gx);
  }
  describe(): string {
    return 'nn.ReLU';
  }
}
