// One-process training and evaluation.
export { train, NonFiniteLossError, type TrainOptions, type EpochSummary, type IterationInfo } from './trainer.js';
export { evaluate, type Evaluation } from './evaluate.js';
export { ProgressBar, formatSeconds } from './progress.js';
