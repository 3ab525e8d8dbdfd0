import type * as tf from '@tensorflow/tfjs';

export const INPUT_SHAPE = [32, 32, 3] as const;

/** Name of the fixed (non-trainable) per-channel affine layer computing (x - mean) / std. */
export const NORMALIZATION_LAYER = 'input_normalization';

/** Architectures of the model zoo (names as on the command line and in configs). */
/** The CIFAR-100 zoo of the mdistiller KD benchmark, spelled as mdistiller's `cifar_model_dict` (mdistiller.ts). */
export const MDISTILLER_ARCHS = [
  'resnet8x4',
  'resnet32x4',
  'resnet20',
  'resnet32',
  'resnet56',
  'resnet110',
  'wrn_16_2',
  'wrn_40_1',
  'wrn_40_2',
  'vgg8',
  'vgg13',
  'MobileNetV2',
  'ShuffleV1',
  'ShuffleV2',
  'ResNet50',
] as const;
export type MdistillerArch = (typeof MDISTILLER_ARCHS)[number];

export const MODEL_ARCHS = ['wrn-34-10', 'wrn-28-10', 'wrn-28-10-swish', 'preact-resnet-18', 'resnet-18', 'small-cnn', ...MDISTILLER_ARCHS] as const;
export type ModelArch = (typeof MODEL_ARCHS)[number];

export interface ModelSpec {
  arch: ModelArch;
  numClasses: number;
  /** Seed of the weight initialisation: the same seed gives the same weights. */
  seed: number;
}

/**
 * Logits of a batch of NHWC inputs in [0, 1].
 * training = true: batch statistics, updates BN running statistics (the loss forward passes).
 * training = false: running statistics, changes nothing (attacks, evaluation).
 */
export type Forward = (model: tf.LayersModel, x: tf.Tensor4D, opts: { training: boolean }) => tf.Tensor2D;
