// Inverted dropout: in training, each element is zeroed with probability p and the rest are
// scaled by 1 / (1 - p); in evaluation it is the identity. Masks come from the backends'
// shared counter-based generator, seeded per call from the model's seed, so a seeded run
// draws the same masks on every backend.
import { Tensor, type Shape } from '../tensor/tensor.js';
import type { Random } from '../tensor/random.js';
import { Module, type StateBuffer } from './module.js';

export class Dropout extends Module {
  /**
   * The mask stream's position, kept as model state so a checkpoint resumes it: the seed as
   * two 16-bit halves and the number of masks drawn (floats hold integers below 2^24 exactly).
   */
  private readonly generator: StateBuffer;
  /** Whether the last forward applied a mask (training with p > 0). */
  private masked = false;

  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`nn.Dropout: p must be in [0, 1), got ${p}`);
    this.generator = this.addState('generator', [3], 0);
  }

  protected override onReset(rng: Random): void {
    this.setSeed(rng.nextU32());
  }

  /** Sets the stream of masks (e.g. a distinct one per worker of a cluster job). */
  setSeed(seed: number): this {
    const g = this.generator.value.data;
    g[0] = (seed >>> 16) & 0xffff;
    g[1] = seed & 0xffff;
    g[2] = 0;
    return this;
  }

  /** The next call's seed; advances the stream. */
  private nextSeed(): number {
    const g = this.generator.value.data;
    const seed = ((g[0]! << 16) | g[1]!) >>> 0;
    const calls = g[2]! + 1;
    g[2] = calls >= 2 ** 24 ? 0 : calls;
    return (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + Math.imul(calls, 0x85ebca6b)) >>> 0;
  }

  outputShape(input: Shape): Shape {
    return input;
  }

  async forward(input: Tensor): Promise<Tensor> {
    this.masked = this.training && this.p > 0;
    if (!this.masked) {
      this.output = input;
      return input;
    }
    const y = this.buffer('output', input.shape);
    const mask = this.buffer('mask', input.shape);
    // A fresh, reproducible seed per call: the model seed and the call count, mixed.
    this.backend.dropoutForward(this.p, this.nextSeed(), input.data, y.data, mask.data);
    this.output = y;
    return y;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    this.expectGradOutput(input, gradOutput);
    if (!needGradInput) return null;
    if (!this.masked) {
      this.gradInput = gradOutput;
      return gradOutput;
    }
    const gx = this.buffer('gradInput', input.shape);
    this.backend.dropoutBackward(this.buffer('mask', input.shape).data, gradOutput.data, gx.data);
    this.gradInput = gx;
    return gx;
  }

  describe(): string {
    return `nn.Dropout(${this.p})`;
  }
}
