import type * as tf from '@tensorflow/tfjs';

/** Architectures of the model zoo (names as on the command line and in configs). */
export const MODEL_ARCHS = ['wrn-34-10', 'wrn-28-10', 'wrn-28-10-swish', 'preact-resnet-18', 'resnet-18', 'small-cnn'] as const;
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
