/**
 * DKL, the decoupled form of KL (Theorem 1 of Cui et al. 2024), per example:
 *   (β/4) Σ_{j,k} S(s_j s_k) (Δ_jk − S(Δ'_jk))²  +  α · (−Σ_j S(s_j) log s'_j),
 * s = softmax(z), Δ_jk = z_j − z_k, S = stop-gradient. With α = β = 1 its gradients equal klLoss's in both
 * inputs (∂/∂z from the wMSE, ∂/∂z' = s' − s from the soft CE); the values differ by the constant
 * entropy of s and by the wMSE, which KL does not contain.
 * Naming as in the paper: α weights the soft CE, β the wMSE.
 * Sign: an attack maximises it (both terms grow as z' moves away from z).
 */
import * as tf from '@tensorflow/tfjs';
import { detached, stopGradient } from './gradient.js';
import { weightedPairwiseSquares } from './pairwise.js';
import { reduce, type Reduced, type Reduction } from './reduction.js';
import { softCrossEntropy } from './softCrossEntropy.js';
import { checkLogits, checkNumber, checkReduction, checkSameShape } from './validate.js';

export interface DklOptions<R extends Reduction = 'mean'> {
  /** Weight of the soft cross-entropy (default 1: Theorem 1). */
  alpha?: number;
  /** Weight of the weighted MSE on logit differences (default 1: Theorem 1). */
  beta?: number;
  reduction?: R;
}

export function dklLoss<R extends Reduction = 'mean'>(logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D, opts: DklOptions<R> = {}): Reduced<R> {
  checkLogits('dklLoss', 'logitsNat', logitsNat);
  checkSameShape('dklLoss', 'logitsAdv', logitsAdv, 'logitsNat', logitsNat);
  const alpha = checkNumber('dklLoss', 'alpha', opts.alpha ?? 1, { min: 0 });
  const beta = checkNumber('dklLoss', 'beta', opts.beta ?? 1, { min: 0 });
  const reduction = checkReduction('dklLoss', opts.reduction ?? 'mean') as R;
  return tf.tidy(() => {
    // w = S(s sᵀ) is the outer product of the constant vector S(s); Δ − S(Δ') = pairwise differences of z − S(z').
    const weights = detached((z) => tf.softmax(z as tf.Tensor2D), logitsNat) as tf.Tensor2D;
    const d = tf.sub(logitsNat, stopGradient(logitsAdv)) as tf.Tensor2D;
    const wmse = tf.mul(beta / 4, weightedPairwiseSquares(weights, d));
    const softCe = tf.mul(alpha, softCrossEntropy(logitsNat, logitsAdv));
    return reduce(tf.add(wmse, softCe) as tf.Tensor1D, reduction);
  });
}
