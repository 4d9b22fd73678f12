import type { Backend } from '../backends/backend.js';
import { Activation } from './activation.js';

/** 1 / (1 + exp(-x)) */
export class Sigmoid extends Activation {
  protected readonly backwardUsesInput = false;
  protected apply(b: Backend, x: Float32Array, y: Float32Array): void {
    b.sigmoid(x, y);
  }
  protected gradient(b: Backend, y: Float32Array, gy: Float32Array, gx: Float32Array): void {
    b.sigmoidBackward(y, gy, gx);
  }
  describe(): string {
    return 'nn.Sigmoid';
  }
}
