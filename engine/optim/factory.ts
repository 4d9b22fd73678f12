// Optimisers by name, for configuration files, the command line and the driver's launch
// messages, where the choice is data rather than code.
import type { Backend } from '../backends/backend.js';
import { Adam, type AdamConfig } from './adam.js';
import type { Optimizer, OptimizerName } from './optimizer.js';
import { describe } from './options.js';
import { SGD, type SgdConfig } from './sgd.js';

export const optimizerNames: readonly OptimizerName[] = ['sgd', 'adam'];

export function createOptimizer(name: 'sgd', backend: Backend, sliceLength: number, options?: SgdConfig): SGD;
export function createOptimizer(name: 'adam', backend: Backend, sliceLength: number, options?: AdamConfig): Adam;
export function createOptimizer(name: OptimizerName, backend: Backend, sliceLength: number,
  options?: SgdConfig | AdamConfig): Optimizer;
export function createOptimizer(name: OptimizerName, backend: Backend, sliceLength: number,
  options: SgdConfig | AdamConfig = {}): Optimizer {
  // Unknown option names and bad values are rejected by the constructors, naming the option.
  switch (name) {
    case 'sgd':
      return new SGD(backend, sliceLength, options as SgdConfig);
    case 'adam':
      return new Adam(backend, sliceLength, options as AdamConfig);
    default:
      throw new TypeError(`createOptimizer: unknown optimiser name ${describe(name)} (known: ${optimizerNames.join(', ')})`);
  }
}
