// What the trainer's loss (ClassNLLCriterion) needs from a classifier: log-probabilities.
// Models written elsewhere end in different ways: a Caffe deploy net in Softmax (Caffe trains
// it as SoftmaxWithLoss), a Torch or PyTorch net in LogSoftMax, or in raw class scores
// (PyTorch's CrossEntropyLoss applies the log-softmax itself). This turns each into a model
// whose output is log-probabilities, so fine-tuning it minimises the same cross-entropy the
// source framework would, and says what it changed.
import { LogSoftMax, SoftMax, Sequential, type Module } from '../nn/index.js';

export interface ClassifierOutput {
  model: Module;
  /** What was done, for the user ('' when the model already ends in LogSoftMax). */
  change: string;
}

/** The model with a LogSoftMax at its end (replacing a final SoftMax, or appended to raw scores). Before model.to(backend). */
export function withLogProbabilities(model: Module): ClassifierOutput {
  // The last leaf along the chain of final Sequential children.
  let owner: Sequential | null = null;
  let last: Module = model;
  while (last instanceof Sequential && last.length > 0) {
    owner = last;
    last = last.get(last.length - 1);
  }
  if (last instanceof LogSoftMax) return { model, change: '' };
  if (last instanceof SoftMax && owner) {
    owner.set(owner.length - 1, new LogSoftMax());
    return { model, change: 'its final SoftMax is trained as LogSoftMax with the NLL loss (cross-entropy, as Caffe\'s SoftmaxWithLoss)' };
  }
  const wrapped = model instanceof Sequential ? model.add(new LogSoftMax()) : new Sequential(model, new LogSoftMax());
  return { model: wrapped, change: 'its outputs are taken as class scores: a LogSoftMax is appended for the NLL loss (cross-entropy, as PyTorch\'s CrossEntropyLoss)' };
}
