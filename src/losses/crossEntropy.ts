/**
 * Cross-entropy of logits against integer labels, with PyTorch's label smoothing semantics:
 * target = (1 − ε)·onehot(y) + ε/C, loss = −Σ_j target_j log_softmax(z)_j.
 * Sign: training minimises it, an attack (PGD-CE, APGD-CE) maximises it.
 */
import * as tf from '@tensorflow/tfjs';
import { reduce, type Reduced, type Reduction } from './reduction.js';
import { checkLabels, checkLogits, checkNumber, checkReduction } from './validate.js';

export interface CrossEntropyOptions<R extends Reduction = 'mean'> {
  /** ε in [0, 1] (default 0). */
  labelSmoothing?: number;
  reduction?: R;
}

export function crossEntropy<R extends Reduction = 'mean'>(logits: tf.Tensor2D, labels: tf.Tensor1D, opts: CrossEntropyOptions<R> = {}): Reduced<R> {
  checkLogits('crossEntropy', 'logits', logits);
  checkLabels('crossEntropy', 'labels', labels, logits);
  const epsilon = checkNumber('crossEntropy', 'labelSmoothing', opts.labelSmoothing ?? 0, { min: 0, max: 1 });
  const reduction = checkReduction('crossEntropy', opts.reduction ?? 'mean') as R;
  const numClasses = logits.shape[1];
  return tf.tidy(() => {
    const logP = tf.logSoftmax(logits);
    let target = tf.oneHot(labels, numClasses).toFloat();
    if (epsilon > 0) target = tf.add(tf.mul(1 - epsilon, target), epsilon / numClasses);
    return reduce(tf.neg(tf.sum(tf.mul(target, logP), 1)) as tf.Tensor1D, reduction);
  });
}
