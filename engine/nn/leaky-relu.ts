// x for x > 0, negativeSlope * x otherwise (Torch's LeakyReLU, Caffe's ReLU with
// negative_slope, ONNX LeakyRelu). The backends have no kernel for it: it is one pass over
// memory, as cheap in TypeScript as a kernel call, and runs on the backends' arrays in place.
import type { Backend } from '../backends/backend.js';
import { Activation } from './activation.js';

export class LeakyReLU extends Activation {
  protected readonly backwardUsesInput = true;

  constructor(readonly negativeSlope = 0.01) {
    super();
    if (!Number.isFinite(negativeSlope)) throw new RangeError(`nn.LeakyReLU: negativeSlope must be finite, got ${negativeSlope}`);
  }

  protected apply(_b: Backend, x: Float32Array, y: Float32Array): void {
    const a = this.negativeSlope;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      y[i] = v > 0 ? v : a * v;
    }
  }

  /** gradInput = gradOutput where x > 0, negativeSlope * gradOutput elsewhere (x: the forward input). */
  protected gradient(_b: Backend, x: Float32Array, gy: Float32Array, gx: Float32Array): void {
    const a = this.negativeSlope;
    for (let i = 0; i < x.length; i++) gx[i] = x[i]! > 0 ? gy[i]! : a * gy[i]!;
  }

  describe(): string {
    return `nn.LeakyReLU(${this.negativeSlope})`;
  }
}
