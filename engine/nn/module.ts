// The Torch-style module contract.
//
// forward(input) computes and returns `output`; backward(input, gradOutput) computes and
// returns `gradInput` and ACCUMULATES the gradients of the module's parameters (Torch's
// updateGradInput + accGradParameters in one call). Both are async so that heavy kernels
// can run off the JavaScript thread while a worker's network I/O keeps flowing.
//
// Storage. Outputs, gradients and scratch live in arrays from backend.allocFloat32 (on
// wasm: inside linear memory, so kernels never copy them), kept per module and reused while
// the shapes stay the same. A module's output is valid until its next forward.
//
// Parameters are declared with their shape and initialiser. `to(backend)` on the root of a
// model moves every parameter and gradient into one flat buffer each (FlatParameters) and
// rebinds the tensors as views of it, so one worker can own and update a contiguous slice.
import type { Backend } from '../backends/backend.js';
import { Random } from '../tensor/random.js';
import { Tensor, formatShape, shapeSize, type Shape } from '../tensor/tensor.js';
import { FlatParameters } from './flat-parameters.js';

export type Initialiser = (t: Tensor, rng: Random) => void;

export interface Parameter {
  /** Name within its module ("weight", "bias"); `path` is the dotted name within the model. */
  readonly name: string;
  readonly module: Module;
  value: Tensor;
  grad: Tensor;
  readonly init: Initialiser;
}

/** State that is not learned by gradient but belongs to the model (BatchNorm's running statistics). */
export interface StateBuffer {
  readonly name: string;
  readonly module: Module;
  value: Tensor;
  readonly initial: number;
}

export interface BackwardOptions {
  onParametersReady?: (offset: number, length: number) => void;
}

/** A wrong input shape, named with the module's path and type. */
export class ShapeError extends RangeError {
  constructor(module: Module, message: string) {
    super(`${module.path()} (${module.describe()}): ${message}`);
    this.name = 'ShapeError';
  }
}

/**
 * Multiply-adds above which GEMM and convolution run as async work, off the JS thread.
 * Below it a kernel takes at most a few hundred microseconds, less than the hop to the
 * thread pool and back costs relative to it, and short enough not to stall network I/O.
 */
const ASYNC_MIN_FLOPS = 2.5e7;

export abstract class Module {
  /** Name within the parent ("3", "conv1"); the root's is "model" unless set. */
  name = 'model';
  parent: Module | null = null;
  training = true;
  output: Tensor = Tensor.zeros([0]);
  gradInput: Tensor = Tensor.zeros([0]);
  protected readonly params: Parameter[] = [];
  protected readonly stateBuffers: StateBuffer[] = [];
  private backendRef: Backend | null = null;
  private parametersReadyHook: ((offset: number, length: number) => void) | null = null;
  private readonly scratch = new Map<string, Tensor>();
  private flat: FlatParameters | null = null;

  /** Computes this.output from input and returns it. */
  abstract forward(input: Tensor): Promise<Tensor>;

  /**
   * Computes gradInput when `needGradInput` (else returns null) and accumulates parameter
   * gradients. The first layer of a model skips its input gradient, which nobody reads.
   */
  protected abstract backwardImpl(input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null>;

  /** Output shape for an input shape, without running anything; throws ShapeError for a wrong input. */
  abstract outputShape(input: Shape): Shape;

  /** Torch-style one-line description, e.g. "nn.SpatialConvolution(3 -> 64, 3x3, 1,1, 1,1)". */
  abstract describe(): string;

  /** gradInput for gradOutput, accumulating parameter gradients on the way. */
  async backward(input: Tensor, gradOutput: Tensor): Promise<Tensor> {
    const g = await this.backwardImpl(input, gradOutput, true);
    if (!g) throw new Error(`${this.path()}: backwardImpl returned no gradInput although it was asked for`);
    return g;
  }

  /**
   * Parameter gradients only (the input gradient is not computed): what training needs at
   * the root. onParametersReady(offset, length) is called with each layer's range of the
   * flat gradient buffer as soon as that layer's gradients are final (in backward order),
   * so a cluster worker can start sending them while earlier layers still compute.
   */
  async backwardParameters(input: Tensor, gradOutput: Tensor, options: BackwardOptions = {}): Promise<void> {
    this.parametersReadyHook = options.onParametersReady ?? null;
    try {
      await this.backwardImpl(input, gradOutput, false);
      if (this.children().length === 0) this.parametersReady(this);
    } finally {
      this.parametersReadyHook = null;
    }
  }

  /** Containers call it after a leaf child's backward: reports the leaf's flat gradient range to the root's hook. */
  protected parametersReady(leaf: Module): void {
    let root: Module = this;
    while (root.parent) root = root.parent;
    const hook = root.parametersReadyHook;
    if (!hook || !root.flat) return;
    const params = leaf.ownParameters();
    if (params.length === 0) return;
    // A module's own parameters are contiguous in the flat buffer (declaration order).
    const base = root.flat.grads.byteOffset;
    const offset = (params[0]!.grad.data.byteOffset - base) / 4;
    const length = params.reduce((n, p) => n + p.grad.size, 0);
    hook(offset, length);
  }

  /** Used by containers to run a child's backward with or without its input gradient. */
  static runBackward(m: Module, input: Tensor, gradOutput: Tensor, needGradInput: boolean): Promise<Tensor | null> {
    return m.backwardImpl(input, gradOutput, needGradInput);
  }

  /** Direct sub-modules (containers override). */
  children(): readonly Module[] {
    return [];
  }

  // ---- parameters and state ---------------------------------------------------------------

  protected addParameter(name: string, shape: Shape, init: Initialiser): Parameter {
    const p: Parameter = { name, module: this, value: Tensor.zeros(shape), grad: Tensor.zeros(shape), init };
    this.params.push(p);
    return p;
  }

  protected addState(name: string, shape: Shape, initial: number): StateBuffer {
    const s: StateBuffer = { name, module: this, value: Tensor.full(shape, initial), initial };
    this.stateBuffers.push(s);
    return s;
  }

  /** This module's own parameters (not its children's), in declaration order. */
  ownParameters(): readonly Parameter[] {
    return this.params;
  }

  /** Every parameter of this module and its descendants, in a fixed depth-first order. */
  parameters(): Parameter[] {
    const out: Parameter[] = [...this.params];
    for (const c of this.children()) out.push(...c.parameters());
    return out;
  }

  /** Every state buffer (not learned by gradient) of this module and its descendants. */
  states(): StateBuffer[] {
    const out: StateBuffer[] = [...this.stateBuffers];
    for (const c of this.children()) out.push(...c.states());
    return out;
  }

  /** Number of learnable values. */
  parameterCount(): number {
    return this.parameters().reduce((n, p) => n + p.value.size, 0);
  }

  /** The flat parameter and gradient buffers; they exist once the model is on a backend. */
  flatParameters(): FlatParameters {
    if (!this.flat) throw new Error(`${this.path()}: the flat parameter buffers exist once model.to(backend) has run on the root`);
    return this.flat;
  }

  /** Initialises every parameter from one seeded generator, in parameters() order; resets state buffers. */
  reset(seed: number): this {
    const rng = new Random(seed);
    for (const p of this.parameters()) p.init(p.value, rng);
    for (const s of this.states()) s.value.fill(s.initial);
    for (const m of this.modules()) m.onReset(rng);
    return this;
  }

  /** Hook for modules that draw per-model random state at reset (Dropout's seed). */
  protected onReset(_rng: Random): void {}

  zeroGradParameters(): void {
    if (this.flat) this.flat.grads.fill(0);
    else for (const p of this.parameters()) p.grad.fill(0);
  }

  // ---- tree ---------------------------------------------------------------------------------

  /** Every module below and including this one, depth first. */
  modules(): Module[] {
    const out: Module[] = [this];
    for (const c of this.children()) out.push(...c.modules());
    return out;
  }

  path(): string {
    return this.parent ? `${this.parent.path()}.${this.name}` : this.name;
  }

  /** Attaches a child (containers call it). */
  protected adopt(child: Module, name: string): Module {
    if (child.parent) throw new Error(`${child.describe()} is already part of ${child.parent.path()}: a module can have one parent`);
    if (child.backendRef || child.flat) throw new Error(`${child.describe()}: add modules to a container before model.to(backend)`);
    child.parent = this;
    child.name = name;
    return child;
  }

  train(): this {
    for (const m of this.modules()) m.training = true;
    return this;
  }

  evaluate(): this {
    for (const m of this.modules()) m.training = false;
    return this;
  }

  // ---- backend and storage ------------------------------------------------------------------

  /**
   * Puts the model on a backend: parameters and gradients move into one flat buffer each
   * (values kept), state buffers and scratch are re-allocated there. Call on the root.
   */
  to(backend: Backend): this {
    if (this.parent) throw new Error(`${this.path()}: call to(backend) on the root of the model`);
    for (const m of this.modules()) {
      m.releaseScratch();
      m.backendRef = backend;
    }
    const old = this.flat;
    this.flat = new FlatParameters(backend, this.parameters());
    old?.release();
    for (const s of this.states()) {
      const t = new Tensor(s.value.shape, backend.allocFloat32(s.value.size));
      t.data.set(s.value.data);
      s.value = t;
    }
    return this;
  }

  /** True once model.to(backend) has run on this module. */
  get placed(): boolean {
    return this.backendRef !== null;
  }

  get backend(): Backend {
    if (!this.backendRef) throw new Error(`${this.path()} (${this.describe()}) has no backend: call model.to(backend) first`);
    return this.backendRef;
  }

  hasBackend(): boolean {
    return this.backendRef !== null;
  }

  /**
   * A tensor of the given shape kept under `slot` and reused while its size stays the same
   * (contents are whatever the last user left). Allocated on the module's backend.
   */
  protected buffer(slot: string, shape: Shape): Tensor {
    const have = this.scratch.get(slot);
    const size = shapeSize(shape);
    if (have && have.size === size) {
      const same = have.shape.length === shape.length && have.shape.every((d, i) => d === shape[i]);
      return same ? have : this.keep(slot, new Tensor(shape, have.data));
    }
    if (have) this.backend.free(have.data);
    return this.keep(slot, new Tensor(shape, this.backend.allocFloat32(size)));
  }

  private keep(slot: string, t: Tensor): Tensor {
    this.scratch.set(slot, t);
    return t;
  }

  /** Frees every scratch array of this module (outputs and gradients included). */
  releaseScratch(): void {
    if (this.backendRef) for (const t of this.scratch.values()) this.backendRef.free(t.data);
    this.scratch.clear();
    this.output = Tensor.zeros([0]);
    this.gradInput = Tensor.zeros([0]);
  }

  /** Releases everything the model holds on its backend (call on the root when done with it). */
  dispose(): void {
    for (const m of this.modules()) m.releaseScratch();
    this.flat?.release(this.parameters());
    this.flat = null;
    if (this.backendRef) {
      for (const s of this.states()) {
        const plain = s.value.clone();
        this.backendRef.free(s.value.data);
        s.value = plain;
      }
    }
    for (const m of this.modules()) m.backendRef = null;
  }

  // ---- kernel helpers -----------------------------------------------------------------------

  /** Runs a GEMM, as async work when it is large enough to be worth leaving the JS thread. */
  protected gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array, lda: number,
                 b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number): Promise<void> | void {
    if (m * n * k >= ASYNC_MIN_FLOPS) return this.backend.sgemmAsync(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    this.backend.sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  protected static isLarge(multiplyAdds: number): boolean {
    return multiplyAdds >= ASYNC_MIN_FLOPS;
  }

  // ---- shape checks -------------------------------------------------------------------------

  protected expectDims(input: Shape, dims: number | number[], what: string): void {
    const ok = Array.isArray(dims) ? dims.includes(input.length) : input.length === dims;
    if (!ok) {
      const want = Array.isArray(dims) ? dims.join(' or ') : String(dims);
      throw new ShapeError(this, `expected a ${want}-d input (${what}), got ${formatShape(input)}`);
    }
  }

  protected expectSize(input: Shape, dim: number, size: number, what: string): void {
    if (input[dim] !== size) {
      throw new ShapeError(this, `expected ${what} = ${size} at dimension ${dim} of the input, got input ${formatShape(input)}`);
    }
  }

  /** gradOutput must have the shape forward produced for this input. */
  protected expectGradOutput(input: Tensor, gradOutput: Tensor): void {
    const want = this.outputShape(input.shape);
    if (gradOutput.shape.length !== want.length || gradOutput.shape.some((d, i) => d !== want[i])) {
      throw new ShapeError(this, `gradOutput ${formatShape(gradOutput.shape)} does not match the output shape ${formatShape(want)} for input ${formatShape(input.shape)}`);
    }
  }

  toString(): string {
    return this.describe();
  }
}
