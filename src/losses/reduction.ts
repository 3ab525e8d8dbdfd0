import * as tf from '@tensorflow/tfjs';

/**
 * How per-example losses become the returned value.
 * 'mean' (default): the batch mean, a scalar (training objectives, PyTorch's 'batchmean' for KL).
 * 'sum': the batch sum, a scalar (attacks: each example's input gradient then does not shrink with B).
 * 'none': one value per example, a Tensor1D of length B (attacks that track per-example progress).
 */
export type Reduction = 'mean' | 'sum' | 'none';

/** Return type of a loss for a given reduction. */
export type Reduced<R extends Reduction> = R extends 'none' ? tf.Tensor1D : tf.Scalar;

export const REDUCTIONS: readonly Reduction[] = ['mean', 'sum', 'none'];

/** Applies `reduction` to a per-example loss vector. Call inside tf.tidy: the input is an intermediate. */
export function reduce<R extends Reduction>(perExample: tf.Tensor1D, reduction: R): Reduced<R> {
  if (reduction === 'none') return perExample as Reduced<R>;
  return (reduction === 'sum' ? tf.sum(perExample) : tf.mean(perExample)) as Reduced<R>;
}
