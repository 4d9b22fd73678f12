// A chain of modules: each one's output is the next one's input.
import { Tensor, type Shape } from '../tensor/tensor.js';
import { Module } from './module.js';

export class Sequential extends Module {
  private readonly layers: Module[] = [];

  constructor(...modules: Module[]) {
    super();
    for (const m of modules) this.add(m);
  }

  /** Appends a module (named by its index, as Torch prints it). */
  add(m: Module): this {
    this.layers.push(this.adopt(m, String(this.layers.length)));
    return this;
  }

  /** Replaces the module at index i (before the model is on a backend: the flat parameter layout is fixed there). */
  set(i: number, m: Module): this {
    const old = this.get(i);
    if (this.placed) throw new Error(`${this.path()}: replace modules before model.to(backend)`);
    this.layers[i] = this.adopt(m, String(i));
    old.parent = null;
    return this;
  }

  get(i: number): Module {
    const m = this.layers[i];
    if (!m) throw new RangeError(`${this.path()}: no module at index ${i} (it has ${this.layers.length})`);
    return m;
  }

  get length(): number {
    return this.layers.length;
  }

  override children(): readonly Module[] {
    return this.layers;
  }

  outputShape(input: Shape): Shape {
    return this.layers.reduce((s, m) => m.outputShape(s), input);
  }

  async forward(input: Tensor): Promise<Tensor> {
    // The root checks every shape before anything runs, so a wrong input leaves no side
    // effects (batch-norm statistics, dropout streams) behind.
    if (!this.parent) this.outputShape(input.shape);
    let x = input;
    for (const m of this.layers) x = await m.forward(x);
    this.output = x;
    return x;
  }

  protected async backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    let g: Tensor = gradOutput;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const m = this.layers[i]!;
      const x = i === 0 ? input : this.layers[i - 1]!.output;
      const needs = i > 0 || needGradInput;
      const gi = await Module.runBackward(m, x, g, needs);
      if (m.children().length === 0) this.parametersReady(m);
      if (!needs) return null;
      if (!gi) throw new Error(`${m.path()}: returned no gradInput although it was asked for`);
      g = gi;
    }
    if (this.layers.length === 0) g = gradOutput;
    this.gradInput = g;
    return g;
  }

  describe(): string {
    return 'nn.Sequential';
  }

  /** Torch-style tree print. */
  override toString(): string {
    const lines = [`nn.Sequential {`];
    for (const [i, m] of this.layers.entries()) lines.push(`  (${i}): ${m.toString().split('\n').join('\n  ')}`);
    lines.push('}');
    return lines.join('\n');
  }
}
