import * as tf from '@tensorflow/tfjs';
import { detached } from './gradient.js';

/**
 * Per row b: Σ_{j,k} v_j v_k (d_j − d_k)², the weighted sum over all C×C ordered pairs that the wMSE of
 * DKL/IKL needs, in O(B·C) memory instead of the reference code's B×C×C tensors.
 *
 * Identity: Σ_{j,k} v_j v_k (d_j − d_k)² = 2 [V Σ_j v_j d_j² − (Σ_j v_j d_j)²] = 2 V Σ_j v_j (d_j − d̄)²,
 * with V = Σ_j v_j and d̄ = Σ_j v_j d_j / V. We use the centred right-hand form: the middle one subtracts
 * two numbers of size V²·d², which for logits of magnitude 1e4 cancels catastrophically in float32.
 *
 * d̄ is held constant. That is exact for gradients, not an approximation: d̄ minimises Σ_j v_j (d_j − c)²
 * over c, so the derivative with respect to d̄ is −2 Σ_j v_j (d_j − d̄) = 0.
 *
 * `v` (B×C, weights) must already be a constant for gradients; `d` (B×C) may carry gradient.
 * A row whose weights are all zero gives 0.
 */
export function weightedPairwiseSquares(v: tf.Tensor2D, d: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const mean = detached((w, x) => tf.divNoNan(tf.sum(tf.mul(w, x), 1, true), tf.sum(w, 1, true)), v, d);
    const centred = tf.sum(tf.mul(v, tf.square(tf.sub(d, mean))), 1);
    return tf.mul(tf.mul(2, tf.sum(v, 1)), centred) as tf.Tensor1D;
  });
}
