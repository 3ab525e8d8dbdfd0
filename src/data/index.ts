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
export { batches, batchPlan, copyScaled, CROP_PADDING, cropFlip, epochOrder, numBatches } from './batches.js';
export { firstN, splitValidation, splitValidationFirst, subset, trainSubset } from './subsets.js';
export { loadDataset, loadTestSet, SYNTHETIC_DEFAULTS, type LoadDatasetOptions } from './load.js';
export {
  AUGMENTATIONS,
  augmentationName,
  getAugmentation,
  none as noAugmentation,
  cropFlipAugmentation,
  type Augmentation,
  type ImageShape,
} from './augment.js';
export { makeBatch, TAG_AUGMENT, type HostBatch } from './pipeline.js';
export { EpochSampler, MixedSampler, openSampler, uniformIndex, type BatchSampler, type SamplerSpec } from './sampler.js';
export { ConcatSource, MemorySource, openParts, openSource, PartsSource, type ImageSource, type PartFile, type PartSpec, type SourceSpec } from './source.js';
export { BatchLoader, type LoaderOptions } from './loader.js';
export { readNpyIndex, readNpzIndex, type NpyArray } from './npz.js';
export { npyHeader, writeNpz, type NpzWriteOptions } from './npz-write.js';
