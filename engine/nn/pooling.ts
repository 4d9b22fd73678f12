// What max and average pooling share: Torch's argument order, floor/ceil output rounding,
// and the geometry checks.
import type { Pool2dShape } from '../backends/backend.js';
import { poolOutputSize } from '../backends/backend.js';
import type { Shape } from '../tensor/tensor.js';
import { Module, ShapeError } from './module.js';

export abstract class SpatialPooling extends Module {
  ceilMode = false;

  constructor(readonly kW: number, readonly kH: number = kW, readonly strideW: number = kW, readonly strideH: number = strideW,
              readonly padW = 0, readonly padH = padW) {
    super();
    for (const [k, v] of Object.entries({ kW, kH, strideW, strideH })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${this.typeName()}: ${k} must be a positive integer, got ${v}`);
    }
    for (const [k, v] of Object.entries({ padW, padH })) {
      if (!Number.isInteger(v) || v < 0) throw new RangeError(`${this.typeName()}: ${k} must be a non-negative integer, got ${v}`);
    }
    if (2 * padW > kW || 2 * padH > kH) throw new RangeError(`${this.typeName()}: padding (${padW},${padH}) must be at most half the kernel (${kW}x${kH})`);
  }

  protected abstract typeName(): string;

  /** Rounds the output size up (Caffe's default, Torch's :ceil()). */
  ceil(): this {
    this.ceilMode = true;
    return this;
  }

  floor(): this {
    this.ceilMode = false;
    return this;
  }

  protected geometry(input: Shape, countIncludePad: boolean): Pool2dShape {
    this.expectDims(input, 4, '[batch, channels, height, width]');
    const [batch, channels, inH, inW] = input as [number, number, number, number];
    if (inH + 2 * this.padH < this.kH || inW + 2 * this.padW < this.kW) {
      throw new ShapeError(this, `input ${inH}x${inW} is smaller than the ${this.kH}x${this.kW} window with padding ${this.padH},${this.padW}`);
    }
    return { batch, channels, inH, inW, kH: this.kH, kW: this.kW, strideH: this.strideH, strideW: this.strideW, padH: this.padH, padW: this.padW,
      ceilMode: this.ceilMode, countIncludePad };
  }

  protected static outSize(s: Pool2dShape): [number, number] {
    return [poolOutputSize(s.inH, s.kH, s.strideH, s.padH, s.ceilMode), poolOutputSize(s.inW, s.kW, s.strideW, s.padW, s.ceilMode)];
  }

  protected describeWindow(): string {
    return `${this.kW}x${this.kH}, ${this.strideW},${this.strideH}, ${this.padW},${this.padH}${this.ceilMode ? ', ceil' : ''}`;
  }
}
