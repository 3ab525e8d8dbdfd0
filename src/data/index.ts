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
export { batches, batchPlan, epochOrder, numBatches } from './batches.js';
export { Augmenter, augmentBatch, type ImageShape } from './augment.js';
export { firstN, splitValidation, splitValidationFirst, subset, trainSubset } from './subsets.js';
export { loadDataset, loadTestSet, SYNTHETIC_DEFAULTS, type LoadDatasetOptions } from './load.js';
export {
  augmentationFor,
  augmentationName,
  copyScaled,
  CROP_PADDING,
  cropFlip,
  TAG_AUGMENT,
  TAG_PAIR,
  type Augmentation,
  type AugmentSpec,
} from './augmentation.js';
export { makeBatch, type HostBatch } from './pipeline.js';
export { EpochSampler, MixedSampler, openSampler, uniformIndex, type BatchSampler, type SamplerSpec } from './sampler.js';
export { ConcatSource, MemorySource, openParts, openSource, PartsSource, type ImageSource, type PartFile, type PartSpec, type SourceSpec } from './source.js';
export { BatchLoader, type LoaderOptions } from './loader.js';
export { readNpyIndex, readNpzIndex, type NpyArray } from './npz.js';
export { npyHeader, writeNpz, type NpzWriteOptions } from './npz-write.js';
