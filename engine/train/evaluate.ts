// Accuracy and mean loss of a classifier over a data set, in evaluation mode (dropout off,
// batch norm on its running statistics); the model's train/eval mode is restored after.
import type { Dataset } from '../data/index.js';
import { batches } from '../data/index.js';
import type { Criterion, Module } from '../nn/index.js';

export interface Evaluation {
  accuracy: number;
  loss: number;
  samples: number;
}

export async function evaluate(model: Module, data: Dataset, criterion: Criterion<Int32Array>, batchSize = 256): Promise<Evaluation> {
  const wasTraining = model.training;
  model.evaluate();
  let correct = 0;
  let lossSum = 0;
  let samples = 0;
  try {
    for (const b of batches(data, { batchSize, reuseBuffers: true })) {
      const out = await model.forward(b.input);
      const predicted = out.argmaxRows();
      for (let i = 0; i < predicted.length; i++) if (predicted[i] === b.target[i]) correct++;
      lossSum += criterion.forward(out, b.target) * b.target.length;
      samples += b.target.length;
    }
  } finally {
    if (wasTraining) model.train();
  }
  return { accuracy: samples ? correct / samples : 0, loss: samples ? lossSum / samples : NaN, samples };
}
