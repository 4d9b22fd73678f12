// `squall train`: local training in one process, e.g.
//   squall train --model lenet5 --dataset fashion-mnist --epochs 2 --backend native
import { loadBackend } from '../backends/registry.js';
import type { Dataset } from '../data/index.js';
import { loadFashionMnist, meanStd, normalise, sliceDataset, syntheticDataset } from '../data/index.js';
import { modelSpec } from '../models/index.js';
import { ClassNLLCriterion } from '../nn/index.js';
import { createOptimizer, type OptimizerName } from '../optim/index.js';
import { train } from '../train/index.js';
import { UsageError, optionsHelp, parseOptions, type OptionSpec } from './args.js';

export const trainOptions: Record<string, OptionSpec> = {
  model: { type: 'string', help: 'lenet5 | vgg_cifar | inception_v1 | vgg16', default: 'lenet5' },
  dataset: { type: 'string', help: 'fashion-mnist | synthetic (random images of the model\'s input shape)', default: 'fashion-mnist' },
  epochs: { type: 'int', help: 'passes over the training set', default: 2 },
  batch: { type: 'int', help: 'mini-batch size (default: the model\'s benchmark batch)' },
  optimizer: { type: 'string', help: 'sgd | adam', default: 'sgd' },
  lr: { type: 'number', help: 'learning rate', default: 0.05 },
  momentum: { type: 'number', help: 'SGD momentum', default: 0.9 },
  'weight-decay': { type: 'number', help: 'L2 weight decay', default: 0 },
  backend: { type: 'string', help: 'native | wasm', default: 'native' },
  threads: { type: 'int', help: 'kernel threads (default: all cores)' },
  seed: { type: 'int', help: 'seeds initialisation and batch order', default: 1 },
  checkpoint: { type: 'string', help: 'write a checkpoint here after every epoch' },
  resume: { type: 'flag', help: 'continue from --checkpoint when it exists' },
  limit: { type: 'int', help: 'use only the first N training samples' },
  'max-iterations': { type: 'int', help: 'stop after N iterations' },
  'synthetic-size': { type: 'int', help: 'samples of the synthetic data set', default: 1024 },
};

export const trainUsage = `usage: squall train [options]\n\n${optionsHelp(trainOptions)}`;

function str(v: unknown): string {
  return String(v);
}

export async function trainCommand(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log(trainUsage);
    return 0;
  }
  const o = parseOptions('squall train', args, trainOptions);
  const spec = modelSpec(str(o.model));
  const backend = loadBackend(str(o.backend));
  if (o.threads !== undefined) backend.setThreads(o.threads as number);
  const batchSize = (o.batch as number | undefined) ?? spec.batch;
  const seed = o.seed as number;

  let trainSet: Dataset;
  let validation: Dataset | undefined;
  if (o.dataset === 'fashion-mnist') {
    if (spec.input.join('x') !== '1x28x28') throw new UsageError(`squall train: fashion-mnist has 1x28x28 images, model ${spec.name} takes ${spec.input.join('x')}; use --dataset synthetic`);
    trainSet = loadFashionMnist({ split: 'train' });
    validation = loadFashionMnist({ split: 'test' });
    // Normalise both with the training set's statistics.
    const { mean, std } = meanStd(trainSet);
    normalise(trainSet, mean, std);
    normalise(validation, mean, std);
  } else if (o.dataset === 'synthetic') {
    const size = o['synthetic-size'] as number;
    trainSet = syntheticDataset({ length: size, shape: spec.input, classes: spec.classes, seed, separation: 1 });
    validation = syntheticDataset({ length: Math.max(batchSize, Math.floor(size / 4)), first: size, shape: spec.input, classes: spec.classes, seed, separation: 1 });
  } else {
    throw new UsageError(`squall train: unknown --dataset '${str(o.dataset)}' (fashion-mnist | synthetic)`);
  }
  if (o.limit !== undefined) trainSet = sliceDataset(trainSet, 0, Math.min(trainSet.length, o.limit as number));

  const model = spec.build(spec.classes).reset(seed).to(backend);
  const name = str(o.optimizer) as OptimizerName;
  const hyper = name === 'sgd'
    ? { lr: o.lr as number, momentum: o.momentum as number, weightDecay: o['weight-decay'] as number }
    : { lr: o.lr as number, weightDecay: o['weight-decay'] as number };
  const optimizer = createOptimizer(name, backend, model.flatParameters().length, { ...hyper, alloc: (n) => backend.allocFloat32(n), free: (a) => backend.free(a) });
  const info = backend.info();
  console.error(`squall train: ${spec.name} (${model.parameterCount()} parameters) on ${backend.name} (${info.blas}, ${info.threads} threads), ` +
    `${o.dataset} ${trainSet.length} samples, batch ${batchSize}, ${name} lr ${str(o.lr)}`);
  const summaries = await train({
    model, criterion: new ClassNLLCriterion(), optimizer, train: trainSet, validation, epochs: o.epochs as number, batchSize, seed,
    checkpointPath: o.checkpoint as string | undefined, resume: Boolean(o.resume), maxIterations: o['max-iterations'] as number | undefined,
    modelSpec: { name: spec.name, classes: spec.classes }, describe: { dataset: o.dataset },
  });
  const last = summaries.at(-1);
  if (last?.validation) console.log(`test accuracy ${(100 * last.validation.accuracy).toFixed(2)}%`);
  return 0;
}
