// engine/optim: optimisers that update one contiguous slice of the flat parameters, and
// learning-rate schedules.
export { NonFiniteGradientError } from './optimizer.js';
export type { CommonConfig, Optimizer, OptimizerName, OptimizerState } from './optimizer.js';
export { SGD, sgdHyperNames } from './sgd.js';
export type { SgdConfig, SgdHyper } from './sgd.js';
export { Adam, adamHyperNames } from './adam.js';
export type { AdamConfig, AdamHyper } from './adam.js';
export { constantLr, stepLr, polyLr, warmupLr, makeSchedule } from './schedule.js';
export type { Schedule, ScheduleSpec, StepOptions, PolyOptions, WarmupOptions } from './schedule.js';
export { createOptimizer, optimizerNames } from './factory.js';
