import * as tf from '@tensorflow/tfjs';
import type { Forward } from './types.js';

/**
 * Logits of NHWC inputs in [0, 1] (models normalise internally when their architecture says so).
 *
 * training = true: BN uses batch statistics and updates its running statistics in place, also outside `fit`
 * (tfjs-layers passes `training` through the functional graph to every BatchNormalization, which writes
 * running = momentum·running + (1 - momentum)·batch_stat; tests check the formula). The batch variance in that
 * update is the biased one (divide by n = B·H·W), whereas PyTorch stores the unbiased n/(n - 1) estimate; the
 * relative difference 1/(n - 1) is 1.2e-4 at batch 128 on the smallest (8×8) maps, far below batch-to-batch
 * noise, so we keep tfjs' behaviour rather than replace the layer with a custom one (see archs.ts). Normalisation itself uses the biased variance in
 * both frameworks.
 * training = false: running statistics, no state changes (attacks, evaluation).
 */
export const forward: Forward = (model, x, { training }) => {
  if (x.rank !== 4) throw new Error(`forward: expected NHWC input of rank 4, got shape [${x.shape.join(', ')}]`);
  return model.apply(x, { training }) as tf.Tensor2D;
};
