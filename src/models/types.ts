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

export const MODEL_ARCHS = [
  'wrn-34-10',
  'wrn-28-10',
  'wrn-28-10-swish',
  'preact-resnet-18',
  'dm-preact-resnet-18',
  'resnet-18',
  'small-cnn',
  ...MDISTILLER_ARCHS,
] as const;
/**
 * The WRN families are parametric (timm-style: one builder per family, depth and width in the name):
 * `wrn-<depth>-<widen>` is the TRADES / DKL WideResNet (ReLU), `wrn-<depth>-<widen>-swish` DeepMind's (Swish, input
 * normalisation inside); depth = 6n + 4. The named entries of MODEL_ARCHS are the members the presets use.
 */
export type WrnArch = `wrn-${number}-${number}` | `wrn-${number}-${number}-swish`;
export type ModelArch = (typeof MODEL_ARCHS)[number] | WrnArch;

/** Depth, widen factor and family of a parametric WRN name, or null when `name` is not one. */
export function parseWrnArch(name: string): { depth: number; widen: number; family: 'trades-wrn' | 'dm-wrn' } | null {
  const m = /^wrn-([1-9]\d*)-([1-9]\d*)(-swish)?$/.exec(name);
  if (!m) return null;
  const depth = Number(m[1]);
  const widen = Number(m[2]);
  if (depth < 10 || (depth - 4) % 6 !== 0 || depth > 1000 || widen > 64) return null;
  return { depth, widen, family: m[3] ? 'dm-wrn' : 'trades-wrn' };
}

/** Is `name` an architecture of the zoo (a named one or a parametric WRN)? */
export function isModelArch(name: string): name is ModelArch {
  return (MODEL_ARCHS as readonly string[]).includes(name) || parseWrnArch(name) !== null;
}

/** The architectures as a user reads them in errors and help. */
export const MODEL_ARCHS_HELP = `${MODEL_ARCHS.join('|')}|wrn-<depth>-<widen>[-swish] (depth = 6n+4)`;

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
