// engine/io/checkpoint: Squall's own model and checkpoint file format (format.ts documents
// the layout), written atomically (write.ts), with the model/optimiser API (checkpoint.ts).
export {
  Checkpoint, CheckpointMismatchError, buildModel, loadCheckpoint, loadModelFile, modelTensorNames, optimizerState,
  restoreModel, restoreOptimizer, saveCheckpoint, saveModel,
} from './checkpoint.js';
export type {
  LoadOptions, ModelSpecRef, OptimizerLike, RestoreOptions, SaveCheckpointOptions, SaveModelOptions, SaveResult,
} from './checkpoint.js';
export {
  CheckpointFormatError, END_MARKER, FORMAT_VERSION, MAGIC, parseCheckpoint,
} from './format.js';
export type {
  CheckpointHeader, CheckpointKind, Json, ModelDescription, OptimizerEntry, ParsedFile, StoredTensor, TensorEntry, TensorRole,
} from './format.js';
export type { WriteOptions } from './write.js';
export { crc32, crc32Implementation, crc32TS } from './crc32.js';
export type { Crc32Implementation } from './crc32.js';
