import * as tf from '@tensorflow/tfjs';
import { detached } from './gradient.js';

/**
 * Per example −Σ_j S(softmax(z/τ))_j · log_softmax(z'/τ)_j: cross-entropy of the adversarial prediction
 * against the natural prediction used as a constant soft label (the soft-CE half of DKL/IKL).
 * Its gradient w.r.t. z' is (softmax(z'/τ) − softmax(z/τ))/τ; none flows into z. No τ² factor (GKL).
 */
export function softCrossEntropy(logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D, temperature = 1): tf.Tensor1D {
  return tf.tidy(() => {
    const scaled = (z: tf.Tensor2D) => (temperature === 1 ? z : tf.div(z, temperature));
    const target = detached((z) => tf.softmax(scaled(z as tf.Tensor2D)), logitsNat);
    return tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(scaled(logitsAdv))), 1)) as tf.Tensor1D;
  });
}
