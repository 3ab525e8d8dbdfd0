export * from './types.js';
export {
  CIFAR10_DIR,
  CIFAR100_DIR,
  RECORD_BYTES,
  readCifar10,
  readCifar100,
  readCifar10Test,
  readCifar100Test,
  readExtraData,
  recordsToNhwc,
  type CifarLayout,
  type Cifar10ReadOptions,
  type Cifar100ReadOptions,
} from './cifar.js';
export { CIFAR_SOURCES, ensureCifar, md5File, type CifarSource, type EnsureCifarOptions } from './download.js';
export { extractTarGz, safeMemberName } from './tar.js';
export { makeSynthetic, SYNTHETIC_CLASSES } from './synthetic.js';
export { augmentationName, batches, copyScaled, CROP_PADDING, cropFlip, epochOrder, numBatches } from './batches.js';
export { Augmenter, augmentBatch, type ImageShape } from './augment.js';
export { firstN, splitValidation, subset, trainSubset } from './subsets.js';
export { loadDataset, loadTestSet, SYNTHETIC_DEFAULTS, type LoadDatasetOptions } from './load.js';
