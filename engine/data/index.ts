// The public API of engine/data: data sets in memory, Fashion-MNIST, synthetic images,
// seeded shuffling, mini-batches and sharding across workers.
export { IdxFormatError, parseIdx, readIdxFile, isGzip, IDX_MAGIC_UINT8_IMAGES, IDX_MAGIC_UINT8_LABELS, DEFAULT_MAX_IDX_BYTES } from './idx.js';
export type { IdxArray, IdxReadOptions } from './idx.js';
export { createDataset, fromUint8, scaleUint8, sliceDataset, gatherDataset, cloneDataset, meanStd, normalise, imageSize } from './dataset.js';
export type { Dataset, ImageShape, MeanStd } from './dataset.js';
export {
  loadFashionMnist,
  fashionMnistDir,
  fashionMnistFiles,
  fashionMnistAvailable,
  FASHION_MNIST_CLASSES,
  DEBIAN_FASHION_MNIST_DIR,
  FASHION_MNIST_DIR_ENV,
} from './fashion-mnist.js';
export type { FashionMnistOptions, FashionMnistSplit } from './fashion-mnist.js';
export { SyntheticImages, syntheticDataset, syntheticBatch } from './synthetic.js';
export type { SyntheticOptions } from './synthetic.js';
export { deriveSeed } from './seed.js';
export { epochPermutation, shuffleInPlace, randomBelow, identityOrder } from './shuffle.js';
export { batches, gatherBatch, epochOrder, globalBatch, batchCount, checkPermutation } from './batches.js';
export type { Batch, BatchOptions, EpochOptions } from './batches.js';
export { shardRange, shardDataset, splitBatch, shareRange, workerBatches } from './shard.js';
export type { Range, WorkerBatchOptions } from './shard.js';
export { NpyFormatError, encodeNpy, isNpy, parseNpy, readNpyFile } from './npy.js';
export type { NpyArray } from './npy.js';
