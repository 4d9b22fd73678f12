// Stochastic gradient descent as torch.optim.SGD: momentum, dampening, Nesterov momentum
// and L2 weight decay, on one slice of the flat parameters (backend.sgdUpdate).
import type { Backend } from '../backends/backend.js';
import type { CommonConfig } from './optimizer.js';
import { checkBoolean, checkNumber } from './options.js';
import { SliceOptimizer, checkConfig, type BufferSpec } from './slice-optimizer.js';

export interface SgdConfig extends CommonConfig {
  /** Default 0.001, as torch.optim.SGD. */
  lr?: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export type SgdHyper = { lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number };

export const sgdHyperNames = ['lr', 'momentum', 'dampening', 'nesterov', 'weightDecay'] as const;

const defaults: SgdHyper = { lr: 1e-3, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 };

function checkSgdHyper(owner: string, o: Record<string, unknown>, base: SgdHyper): SgdHyper {
  const h: SgdHyper = {
    lr: checkNumber(owner, 'lr', o.lr, base.lr, { min: 0 }),
    momentum: checkNumber(owner, 'momentum', o.momentum, base.momentum, { min: 0 }),
    dampening: checkNumber(owner, 'dampening', o.dampening, base.dampening, { min: 0, max: 1 }),
    nesterov: checkBoolean(owner, 'nesterov', o.nesterov, base.nesterov),
    weightDecay: checkNumber(owner, 'weightDecay', o.weightDecay, base.weightDecay, { min: 0 }),
  };
  // PyTorch's rule: Nesterov's look-ahead is defined for undamped momentum only.
  if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
    throw new RangeError(`${owner}: option 'nesterov' requires momentum > 0 and dampening = 0, ` +
      `got momentum ${h.momentum} and dampening ${h.dampening}`);
  }
  return h;
}

export class SGD extends SliceOptimizer<SgdHyper> {
  // The backend takes a buffer of the slice's length even when momentum is 0 (it then
  // leaves it alone), so one is always allocated; state() exports it only once a step
  // with momentum has filled it, as PyTorch keeps no momentum_buffer before that.
  private readonly momentumBuf: Float32Array;
  private momentumReady = false;

  constructor(backend: Backend, sliceLength: number, config: SgdConfig = {}) {
    const o = checkConfig('SGD', config, sgdHyperNames);
    super('sgd', 'SGD', backend, sliceLength, o, checkSgdHyper('SGD', o, defaults), 'sgdUpdate');
    this.momentumBuf = this.allocState('momentum');
  }

  protected bufferSpec(): BufferSpec {
    return { required: [], optional: ['momentum'] };
  }

  protected liveBuffers(): Record<string, Float32Array> {
    return this.momentumReady ? { momentum: this.momentumBuf } : {};
  }

  protected restoreBuffers(b: Record<string, Float32Array>): void {
    const m = b.momentum;
    if (m) this.momentumBuf.set(m);
    else this.momentumBuf.fill(0);
    this.momentumReady = m !== undefined;
  }

  protected checkHyper(owner: string, o: Record<string, unknown>, base: SgdHyper): SgdHyper {
    return checkSgdHyper(owner, o, base);
  }

  protected update(params: Float32Array, grads: Float32Array, lr: number): void {
    const h = this.hyper;
    const withMomentum = h.momentum !== 0;
    this.backend.sgdUpdate({
      lr, momentum: h.momentum, dampening: h.dampening, weightDecay: h.weightDecay, nesterov: h.nesterov,
      firstStep: withMomentum && !this.momentumReady,
    }, params, grads, this.momentumBuf);
    if (withMomentum) this.momentumReady = true;
  }
}
