import type * as tf from '@tensorflow/tfjs';
import { SYNTHETIC_CLASSES } from './synthetic.js';
import type { AugmentationName } from './augment.js';

export { AUGMENTATIONS, type AugmentationName } from './augment.js';

/** Images kept as uint8 NHWC (N×32×32×3) in memory; float batches are built on demand. */
export interface ImageSet {
  name: string;
  images: Uint8Array;
  labels: Uint8Array;
  /** CIFAR-100 coarse labels, when known. */
  coarseLabels?: Uint8Array;
  n: number;
  numClasses: number;
  height: number;
  width: number;
  channels: number;
}

export const DATASETS = ['cifar10', 'cifar100', 'synthetic'] as const;
export type DatasetName = (typeof DATASETS)[number];
/** Classes of each dataset (the synthetic one: one per pattern of SYNTHETIC_CLASSES). */
export const DATASET_CLASSES: Record<DatasetName, number> = { cifar10: 10, cifar100: 100, synthetic: SYNTHETIC_CLASSES.length };

/** How the validation set is taken from the training set (data.valSplit). */
export const VAL_SPLITS = ['random', 'first'] as const;
export type ValSplit = (typeof VAL_SPLITS)[number];

/** One training/evaluation batch. The caller disposes `x` and `y`. */
export interface Batch {
  /** B×H×W×C float32 in [0, 1]. */
  x: tf.Tensor4D;
  /** B int32 labels. */
  y: tf.Tensor1D;
  /** Index of this batch within its epoch (0-based, counts skipped batches too). */
  index: number;
  /** Rows of the whole (global) batch this one is a shard of; x's rows when not sharded. */
  globalSize: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Visit the set in the order permutation(seed, epoch); false keeps the stored order. */
  shuffle: boolean;
  /**
   * Per-sample augmentation (training data only): a policy of src/data/augment.ts; true = 'crop-flip' (random crop
   * from 4-pixel zero padding + horizontal flip), false = 'none'.
   */
  augment: boolean | AugmentationName;
  /**
   * A second view of every sample, augmented by this policy from its own random stream (DKL's AutoAugment pair):
   * x then holds the batch's first views (rows 0..B−1) followed by its second views (rows B..2B−1), y the labels
   * twice. Omitted: one view.
   */
  pair?: AugmentationName;
  /** Base seed of the run. Default 0. */
  seed?: number;
  /** Epoch number used to derive the shuffle order and augmentation. Default 0. */
  epoch?: number;
  /** Skip the first `startBatch` batches (mid-epoch resume); the remaining batches are unchanged. Default 0. */
  startBatch?: number;
  /** Drop a last, smaller batch. Default false. */
  dropLast?: boolean;
  /**
   * Additional training data (e.g. generated images), mixed by the reference sampler (sampler.ts, MixedSampler):
   * each batch takes floor(ratio · batchSize) samples from `set`, with replacement, and the rest from the
   * original data, without replacement within the epoch. The epoch keeps the original data's number of batches.
   */
  extra?: { set: ImageSet; ratio: number };
}

/** The built-in synthetic dataset: sizes and the seed that fixes every pixel. */
export interface SyntheticOptions {
  nTrain: number;
  nTest: number;
  seed: number;
}
