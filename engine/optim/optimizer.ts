// The optimiser contract. An optimiser is bound to one contiguous slice of a model's flat
// parameters (DESIGN.md §4: each worker updates only the slice it owns), so its state has
// exactly the slice's length and never more: N workers together hold one copy of it.
import type { Schedule, ScheduleSpec } from './schedule.js';

export type OptimizerName = 'sgd' | 'adam';

/** A snapshot of an optimiser: enough to continue exactly where it stopped. */
export interface OptimizerState {
  name: OptimizerName;
  /** Steps taken so far (the 0-based index of the next step). */
  iteration: number;
  epoch: number;
  /** Copies (never views of the optimiser's own arrays), each of the slice's length. */
  buffers: Record<string, Float32Array>;
  hyper: Record<string, number | boolean>;
}

export interface Optimizer {
  readonly name: OptimizerName;
  readonly sliceLength: number;
  /** Steps taken so far; the schedule sees it as the index of the next step. */
  readonly iteration: number;
  readonly epoch: number;
  /**
   * Updates `params` in place from `grads`, both of length sliceLength. A gradient holding
   * NaN or an infinity is rejected (NonFiniteGradientError) before anything changes.
   */
  step(params: Float32Array, grads: Float32Array): void;
  /** The learning rate the next step() will use. */
  learningRate(): number;
  /** Epoch-based schedules read it; the training loop sets it at each epoch's start. */
  setEpoch(epoch: number): void;
  state(): OptimizerState;
  /** Replaces iteration, epoch, buffers and hyper-parameters; validates all before changing any. */
  loadState(s: OptimizerState): void;
  /** Releases the state arrays (through the `free` option when given); the optimiser is unusable after. */
  dispose(): void;
}

/** Options every optimiser takes. */
export interface CommonConfig {
  /** Base learning rate; the schedule scales it. */
  lr?: number;
  /** L2 penalty added to the gradient (PyTorch's weight_decay). */
  weightDecay?: number;
  schedule?: Schedule | ScheduleSpec;
  /**
   * Allocates the state arrays, so they can live where the kernels want them (on wasm:
   * backend.allocFloat32, inside linear memory). Default: new Float32Array(n).
   */
  alloc?: (n: number) => Float32Array;
  /** Releases an array from `alloc`, called by dispose(). */
  free?: (a: Float32Array) => void;
}

/** Thrown by step() when the gradient is not finite; params and state are left as they were. */
export class NonFiniteGradientError extends RangeError {
  constructor(readonly optimizer: string, readonly index: number, readonly value: number, readonly iteration: number) {
    super(`${optimizer}.step: grads[${index}] is ${value} (the gradient must be finite; ` +
      `iteration ${iteration}, parameters left unchanged)`);
    this.name = 'NonFiniteGradientError';
  }
}
