// The float64 oracle of the optimiser tests: torch.optim.SGD and torch.optim.Adam written
// plainly from their documented update rules, keeping their own state across steps, and an
// independent float64 trajectory of the parameters. The learning rate of each step is
// passed in, so the schedules are checked separately.

export interface RefSgdHyper { momentum: number; dampening: number; nesterov: boolean; weightDecay: number }
export interface RefAdamHyper { beta1: number; beta2: number; eps: number; weightDecay: number }

export class RefSgd {
  /** null until the first step, as PyTorch's momentum_buffer. */
  buf: Float64Array | null = null;
  constructor(readonly h: RefSgdHyper) {}

  step(p: Float64Array, grad: ArrayLike<number>, lr: number): void {
    const { momentum, dampening, nesterov, weightDecay } = this.h;
    const d = Float64Array.from(grad, (g, i) => g + weightDecay * p[i]!);
    let dir: Float64Array = d;
    if (momentum !== 0) {
      if (this.buf === null) {
        this.buf = d.slice();
      } else {
        for (let i = 0; i < d.length; i++) this.buf[i] = momentum * this.buf[i]! + (1 - dampening) * d[i]!;
      }
      dir = nesterov ? d.map((x, i) => x + momentum * this.buf![i]!) : this.buf;
    }
    for (let i = 0; i < p.length; i++) p[i] = p[i]! - lr * dir[i]!;
  }
}

export class RefAdam {
  t = 0;
  m: Float64Array;
  v: Float64Array;
  constructor(readonly h: RefAdamHyper, n: number) {
    this.m = new Float64Array(n);
    this.v = new Float64Array(n);
  }

  step(p: Float64Array, grad: ArrayLike<number>, lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.h;
    this.t += 1;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2 = 1 - Math.pow(beta2, this.t);
    for (let i = 0; i < p.length; i++) {
      const g = grad[i]! + weightDecay * p[i]!;
      this.m[i] = beta1 * this.m[i]! + (1 - beta1) * g;
      this.v[i] = beta2 * this.v[i]! + (1 - beta2) * g * g;
      const mHat = this.m[i]! / bc1;
      const vHat = this.v[i]! / bc2;
      p[i] = p[i]! - lr * mHat / (Math.sqrt(vHat) + eps);
    }
  }
}
