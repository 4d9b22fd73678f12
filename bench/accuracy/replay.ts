// The Squall side of the controlled comparison: LeNet-5 trained by engine/train from given
// initial weights (PyTorch's, in parameters() order) over given epoch orders (PyTorch's
// permutations), recording what torch_controlled.py records: the loss of every iteration,
// the gradients and parameters of the first iteration, the final parameters and the test
// accuracy after each epoch.
import { loadBackend } from '../../engine/backends/registry.js';
import type { Dataset } from '../../engine/data/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';
import { train } from '../../engine/train/index.js';

export interface ReplayInput {
  backend: string;
  threads: number;
  train: Dataset;
  test: Dataset;
  /** Initial parameters, flat in parameters() order, with the shape of each. */
  init: Float32Array;
  shapes: number[][];
  /** One permutation of the training indices per epoch. */
  perms: Int32Array[];
  batchSize: number;
  lr: number;
  momentum: number;
}

export interface ReplayRun {
  /** Squall's parameter paths, in flat order. */
  paths: string[];
  losses: Float64Array;
  grad1: Float32Array;
  step1: Float32Array;
  final: Float32Array;
  accuracy: number[];
  seconds: number;
}

export async function replay(o: ReplayInput): Promise<ReplayRun> {
  const be = loadBackend(o.backend);
  be.setThreads(o.threads);
  const model = lenet5().to(be);
  const optimizer = new SGD(be, model.flatParameters().length, { lr: o.lr, momentum: o.momentum, alloc: (n) => be.allocFloat32(n), free: (a) => be.free(a) });
  try {
    const flat = model.flatParameters();
    const shapes = flat.layout.map((s) => [...s.shape]);
    if (JSON.stringify(shapes) !== JSON.stringify(o.shapes) || flat.length !== o.init.length) {
      throw new Error(`Squall's lenet5 parameters ${JSON.stringify(shapes)} (${flat.length} values) differ from the reference's ${JSON.stringify(o.shapes)} (${o.init.length})`);
    }
    flat.values.set(o.init);
    const steps = o.perms.reduce((n, p) => n + Math.ceil(p.length / o.batchSize), 0);
    const losses = new Float64Array(steps);
    let grad1: Float32Array | null = null;
    let step1: Float32Array | null = null;
    const t0 = performance.now();
    const summaries = await train({
      model, criterion: new ClassNLLCriterion(), optimizer, train: o.train, validation: o.test,
      epochs: o.perms.length, batchSize: o.batchSize, seed: 0, order: (e) => o.perms[e]!, progress: null,
      onIteration: (info) => {
        losses[info.iteration - 1] = info.loss;
        if (info.iteration === 1) {
          // After the step: the gradient buffer still holds this iteration's gradients.
          grad1 = flat.grads.slice();
          step1 = flat.values.slice();
        }
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    return {
      paths: flat.layout.map((s) => s.path), losses, grad1: grad1!, step1: step1!, final: flat.values.slice(),
      accuracy: summaries.map((s) => s.validation!.accuracy), seconds,
    };
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}
