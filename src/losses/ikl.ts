/**
 * IKL (Improved KL, Cui et al. 2024) with the GKL generalisations (power γ, temperature τ):
 *
 *   IKL = β · (1/M) Σ_b (1/4) Σ_{j,k} v_b,j v_b,k (Δ_b,jk − Δ'_b,jk)²  +  α · (1/B) Σ_b −Σ_j S(softmax(z_b/τ))_j log_softmax(z'_b/τ)_j
 *
 * with v_b = w_b^γ, w_b = S(classPrior_b) (the class-wise global weights s̄_{y_b}) or, without a prior,
 * S(softmax(z_b)); M = Σ_b (Σ_j v_b,j)², which equals B when γ = 1 and every row of w sums to 1.
 * Against KL/DKL, IKL (1) keeps the gradient of Δ' so the wMSE trains the adversarial branch too, and
 * (2) replaces the per-sample weights by class-wise ones. The soft-CE target stays detached.
 * Naming trap kept from the paper: α weights the soft CE (TRADES' β), β weights the wMSE.
 *
 * reduction 'none' gives per-example values whose mean is the 'mean' result: example b's wMSE is scaled by
 * B/M, a batch constant (the weights carry no gradient), so per-example gradients stay per-example.
 * Sign: an attack maximises it.
 */
import * as tf from '@tensorflow/tfjs';
import { detached } from './gradient.js';
import { weightedPairwiseSquares } from './pairwise.js';
import { reduce, type Reduced, type Reduction } from './reduction.js';
import { softCrossEntropy } from './softCrossEntropy.js';
import { InputError } from '../errors.js';
import { checkLogits, checkNumber, checkReduction, checkSameShape } from './validate.js';

export interface IklOptions<R extends Reduction = 'mean'> {
  /** Weight of the soft cross-entropy (the paper's α; 3–5 in the published runs). */
  alpha: number;
  /** Weight of the wMSE (the paper's β; 10–20 in the published runs). */
  beta: number;
  /**
   * B×C class-wise weights: row b is s̄ of example b's class (`ClassWeights.gather(labels)`). Treated as a
   * constant. Absent: per-example weights S(softmax(logitsNat)).
   */
  classPrior?: tf.Tensor2D;
  /** GKL power on the weights, v = w^γ (default 1 = IKL; 0 = uniform weights, a plain MSE on logit differences). */
  gamma?: number;
  /** GKL temperature τ of the soft CE only (default 1). */
  temperature?: number;
  reduction?: R;
}

export function iklLoss<R extends Reduction = 'mean'>(logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D, opts: IklOptions<R>): Reduced<R> {
  const fn = 'iklLoss';
  checkLogits(fn, 'logitsNat', logitsNat);
  checkSameShape(fn, 'logitsAdv', logitsAdv, 'logitsNat', logitsNat);
  if (opts === undefined || opts === null) throw new InputError(`${fn}: options { alpha, beta } are required`);
  const alpha = checkNumber(fn, 'alpha', opts.alpha, { min: 0 });
  const beta = checkNumber(fn, 'beta', opts.beta, { min: 0 });
  const gamma = checkNumber(fn, 'gamma', opts.gamma ?? 1, { min: 0 });
  const temperature = checkNumber(fn, 'temperature', opts.temperature ?? 1, { minExclusive: 0 });
  const reduction = checkReduction(fn, opts.reduction ?? 'mean') as R;
  const prior = opts.classPrior;
  if (prior !== undefined) {
    checkSameShape(fn, 'classPrior', prior, 'logitsNat', logitsNat);
    if (prior.dtype !== 'float32') throw new InputError(`${fn}: classPrior must be float32, got ${prior.dtype}`);
  }
  const batch = logitsNat.shape[0];

  return tf.tidy(() => {
    const weightSource = prior ?? logitsNat;
    const v = detached((t) => {
      const w = prior !== undefined ? t : tf.softmax(t as tf.Tensor2D);
      if (gamma === 1) return w;
      return gamma === 0 ? tf.onesLike(w) : tf.pow(w, gamma);
    }, weightSource) as tf.Tensor2D;
    // B / M with M = Σ_b (Σ_j v_b,j)²; 0 when every weight is 0 (the wMSE is then 0 too).
    const massScale = detached((w) => tf.divNoNan(tf.scalar(batch), tf.sum(tf.square(tf.sum(w, 1)))), v);
    const d = tf.sub(logitsNat, logitsAdv) as tf.Tensor2D;
    const wmse = tf.mul(tf.mul(beta / 4, massScale), weightedPairwiseSquares(v, d));
    const softCe = tf.mul(alpha, softCrossEntropy(logitsNat, logitsAdv, temperature));
    return reduce(tf.add(wmse, softCe) as tf.Tensor1D, reduction);
  });
}
