/**
 * Margin losses on logits, each signed so that an attack MAXIMISES it (positive = misclassified for CW):
 * - cwMarginLoss: max_{j≠y} z_j − z_y (Carlini & Wagner's margin; > 0 iff the example is misclassified).
 * - dlrLoss: untargeted Difference of Logits Ratio (Croce & Hein 2020, APGD-DLR),
 *   −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3 + 1e-12), π = classes sorted by logit, descending. Needs C ≥ 3.
 * - dlrTargetedLoss: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12), t = target class (APGD-T). Needs C ≥ 4.
 * The DLR denominators are scale-invariant normalisers, and get gradient like the reference's sort does.
 */
import * as tf from '@tensorflow/tfjs';
import { detached } from './gradient.js';
import { reduce, type Reduced, type Reduction } from './reduction.js';
import { checkLabels, checkLogits, checkReduction } from './validate.js';

export interface MarginOptions<R extends Reduction = 'mean'> {
  reduction?: R;
}

/** z_y per row (differentiable). The one-hot mask comes from the labels, so it carries no gradient. */
function logitAt(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.sum(tf.mul(logits, tf.oneHot(labels, logits.shape[1]).toFloat()), 1) as tf.Tensor1D;
}

/** max_{j≠y} z_j per row (differentiable). */
function maxOther(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const isLabel = tf.cast(tf.oneHot(labels, logits.shape[1]), 'bool');
  return tf.max(tf.where(isLabel, tf.fill(logits.shape, -Infinity), logits), 1) as tf.Tensor1D;
}

/**
 * The k largest logits per row, descending (B×k), differentiable like a sort: the ranking is found by
 * topk as a constant (topk has no gradient in tfjs), and the values are read back through a one-hot mask.
 */
function topLogits(logits: tf.Tensor2D, k: number): tf.Tensor2D {
  const numClasses = logits.shape[1];
  const masks = detached((z) => tf.oneHot(tf.topk(z, k).indices, numClasses).toFloat(), logits); // B×k×C
  return tf.sum(tf.mul(tf.expandDims(logits, 1), masks), 2) as tf.Tensor2D;
}

/** Column i of a B×k matrix as a Tensor1D. */
function column(m: tf.Tensor2D, i: number): tf.Tensor1D {
  return tf.reshape(tf.slice(m, [0, i], [-1, 1]), [-1]) as tf.Tensor1D;
}

export function cwMarginLoss<R extends Reduction = 'mean'>(logits: tf.Tensor2D, labels: tf.Tensor1D, opts: MarginOptions<R> = {}): Reduced<R> {
  checkLogits('cwMarginLoss', 'logits', logits, 2);
  checkLabels('cwMarginLoss', 'labels', labels, logits);
  const reduction = checkReduction('cwMarginLoss', opts.reduction ?? 'mean') as R;
  return tf.tidy(() => reduce(tf.sub(maxOther(logits, labels), logitAt(logits, labels)) as tf.Tensor1D, reduction));
}

export function dlrLoss<R extends Reduction = 'mean'>(logits: tf.Tensor2D, labels: tf.Tensor1D, opts: MarginOptions<R> = {}): Reduced<R> {
  checkLogits('dlrLoss', 'logits', logits, 3);
  checkLabels('dlrLoss', 'labels', labels, logits);
  const reduction = checkReduction('dlrLoss', opts.reduction ?? 'mean') as R;
  return tf.tidy(() => {
    const top = topLogits(logits, 3);
    const scale = tf.add(tf.sub(column(top, 0), column(top, 2)), 1e-12);
    const margin = tf.sub(logitAt(logits, labels), maxOther(logits, labels));
    return reduce(tf.neg(tf.div(margin, scale)) as tf.Tensor1D, reduction);
  });
}

export function dlrTargetedLoss<R extends Reduction = 'mean'>(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  targets: tf.Tensor1D,
  opts: MarginOptions<R> = {},
): Reduced<R> {
  checkLogits('dlrTargetedLoss', 'logits', logits, 4);
  checkLabels('dlrTargetedLoss', 'labels', labels, logits);
  checkLabels('dlrTargetedLoss', 'targets', targets, logits);
  const reduction = checkReduction('dlrTargetedLoss', opts.reduction ?? 'mean') as R;
  return tf.tidy(() => {
    const top = topLogits(logits, 4);
    const scale = tf.add(tf.sub(column(top, 0), tf.mul(0.5, tf.add(column(top, 2), column(top, 3)))), 1e-12);
    const margin = tf.sub(logitAt(logits, labels), logitAt(logits, targets));
    return reduce(tf.neg(tf.div(margin, scale)) as tf.Tensor1D, reduction);
  });
}
