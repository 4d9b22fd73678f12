// The reproducibility mode, as PyTorch's use_deterministic_algorithms: the same inputs give
// bit-identical results across runs, processes and buffer alignments on one machine, and
// across thread counts wherever `squall info` says so. What it changes in the native
// kernels is explained in crates/squall-native/src/determinism.rs; the README's
// "Reproducibility" section says what is and is not bit-identical in each mode.
//
// The setting lives in the environment variable SQUALL_DETERMINISTIC so that it reaches
// every place that must agree: the native module (which applies MKL's reproducibility
// control when MKL loads, before it computes anything) and the worker processes a job
// starts, which inherit it.
import { loadedNativeModule } from './native.js';

const ON = new Set(['1', 'true', 'yes', 'on']);

/** Whether the deterministic mode is on (SQUALL_DETERMINISTIC=1 or setDeterministic(true)). */
export function isDeterministic(): boolean {
  return ON.has((process.env.SQUALL_DETERMINISTIC ?? '').trim().toLowerCase());
}

/**
 * Turns the deterministic mode on or off for this process and the processes it starts.
 * Throws, changing nothing, when the loaded BLAS provider cannot follow: MKL that already
 * computed without its reproducibility control (set the mode before the first kernel call,
 * or start the process with SQUALL_DETERMINISTIC=1 / --deterministic).
 */
export function setDeterministic(on: boolean): void {
  loadedNativeModule()?.setDeterministic(on);
  process.env.SQUALL_DETERMINISTIC = on ? '1' : '0';
}
