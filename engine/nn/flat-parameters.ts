// All parameters of a model in one flat buffer, all gradients in another, with the same
// layout. The parameter manager of a cluster job hands each worker a contiguous slice of
// these buffers to own (sum its gradients, run the optimiser on it, broadcast it), so the
// order is fixed: depth-first module order, each module's parameters in declaration order.
import type { Backend } from '../backends/backend.js';
import { Tensor, type Shape } from '../tensor/tensor.js';
import type { Parameter } from './module.js';

export interface ParameterSpan {
  /** Dotted path, e.g. "model.3.weight". */
  path: string;
  offset: number;
  size: number;
  shape: Shape;
}

export class FlatParameters {
  readonly values: Float32Array;
  readonly grads: Float32Array;
  readonly layout: readonly ParameterSpan[];
  private released = false;

  /** Moves the parameters' current values into new flat buffers and rebinds them as views. */
  constructor(private readonly backend: Backend, params: readonly Parameter[]) {
    const total = params.reduce((n, p) => n + p.value.size, 0);
    this.values = backend.allocFloat32(total);
    this.grads = backend.allocFloat32(total);
    this.grads.fill(0);
    const layout: ParameterSpan[] = [];
    let offset = 0;
    for (const p of params) {
      const size = p.value.size;
      const value = new Tensor(p.value.shape, this.values.subarray(offset, offset + size));
      value.data.set(p.value.data);
      p.value = value;
      p.grad = new Tensor(p.value.shape, this.grads.subarray(offset, offset + size));
      layout.push({ path: `${p.module.path()}.${p.name}`, offset, size, shape: p.value.shape });
      offset += size;
    }
    this.layout = layout;
  }

  get length(): number {
    return this.values.length;
  }

  /**
   * Gives the parameters their own plain copies again and frees the flat buffers (when
   * the model moves to another backend or is disposed).
   */
  release(params?: readonly Parameter[]): void {
    if (this.released) return;
    for (const p of params ?? []) {
      p.value = p.value.clone();
      p.grad = p.grad.clone();
    }
    this.backend.free(this.values);
    this.backend.free(this.grads);
    this.released = true;
  }
}
