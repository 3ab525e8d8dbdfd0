/**
 * TRADES' robustness term: KL(softmax(z) || softmax(z')) per example, batch mean by default
 * (PyTorch's `KLDivLoss(reduction='batchmean')` on log_softmax(z'), softmax(z)).
 * Gradient flows into both the natural logits z and the adversarial logits z'.
 * Sign: non-negative and zero iff the two predictions agree; an attack maximises it.
 */
import * as tf from '@tensorflow/tfjs';
import { reduce, type Reduced, type Reduction } from './reduction.js';
import { checkLogits, checkReduction, checkSameShape } from './validate.js';

export interface KlOptions<R extends Reduction = 'mean'> {
  reduction?: R;
}

export function klLoss<R extends Reduction = 'mean'>(logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D, opts: KlOptions<R> = {}): Reduced<R> {
  checkLogits('klLoss', 'logitsNat', logitsNat);
  checkSameShape('klLoss', 'logitsAdv', logitsAdv, 'logitsNat', logitsNat);
  const reduction = checkReduction('klLoss', opts.reduction ?? 'mean') as R;
  return tf.tidy(() => {
    // Stable form: Σ_j s_j (log s_j − log s'_j) with both logs from logSoftmax, s_j = exp(log s_j).
    const logS = tf.logSoftmax(logitsNat);
    const logSAdv = tf.logSoftmax(logitsAdv);
    const perExample = tf.sum(tf.mul(tf.exp(logS), tf.sub(logS, logSAdv)), 1) as tf.Tensor1D;
    return reduce(perExample, reduction);
  });
}
