// Adam as torch.optim.Adam (amsgrad off, L2 weight decay added to the gradient), on one
// slice of the flat parameters (backend.adamUpdate). The bias-correction step count is the
// optimiser's iteration + 1, so a restored state continues the correction exactly.
import type { Backend } from '../backends/backend.js';
import type { CommonConfig } from './optimizer.js';
import { checkNumber } from './options.js';
import { SliceOptimizer, checkConfig, type BufferSpec } from './slice-optimizer.js';

export interface AdamConfig extends CommonConfig {
  /** Default 0.001, as torch.optim.Adam. */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export type AdamHyper = { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };

export const adamHyperNames = ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'] as const;

const defaults: AdamHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

function checkAdamHyper(owner: string, o: Record<string, unknown>, base: AdamHyper): AdamHyper {
  return {
    lr: checkNumber(owner, 'lr', o.lr, base.lr, { min: 0 }),
    // beta = 1 would make the bias correction divide by zero.
    beta1: checkNumber(owner, 'beta1', o.beta1, base.beta1, { min: 0, max: 1, maxExclusive: true }),
    beta2: checkNumber(owner, 'beta2', o.beta2, base.beta2, { min: 0, max: 1, maxExclusive: true }),
    eps: checkNumber(owner, 'eps', o.eps, base.eps, { min: 0 }),
    weightDecay: checkNumber(owner, 'weightDecay', o.weightDecay, base.weightDecay, { min: 0 }),
  };
}

export class Adam extends SliceOptimizer<AdamHyper> {
  private readonly m: Float32Array;
  private readonly v: Float32Array;

  constructor(backend: Backend, sliceLength: number, config: AdamConfig = {}) {
    const o = checkConfig('Adam', config, adamHyperNames);
    super('adam', 'Adam', backend, sliceLength, o, checkAdamHyper('Adam', o, defaults), 'adamUpdate');
    this.m = this.allocState('m');
    this.v = this.allocState('v');
  }

  protected bufferSpec(): BufferSpec {
    return { required: ['m', 'v'], optional: [] };
  }

  protected liveBuffers(): Record<string, Float32Array> {
    return { m: this.m, v: this.v };
  }

  protected restoreBuffers(b: Record<string, Float32Array>): void {
    this.m.set(b.m!);
    this.v.set(b.v!);
  }

  protected checkHyper(owner: string, o: Record<string, unknown>, base: AdamHyper): AdamHyper {
    return checkAdamHyper(owner, o, base);
  }

  protected update(params: Float32Array, grads: Float32Array, lr: number): void {
    const h = this.hyper;
    this.backend.adamUpdate({
      lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, step: this.iteration + 1,
    }, params, grads, this.m, this.v);
  }
}
