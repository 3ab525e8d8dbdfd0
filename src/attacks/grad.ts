/** One forward + backward pass giving the per-example loss, the logits and the input gradient together. */
import * as tf from '@tensorflow/tfjs';
import type { ModelFn } from './types.js';

/** A loss an attack maximises, per example: logits B×C -> [B]. */
export type PerExampleLoss = (logits: tf.Tensor2D) => tf.Tensor1D;

export interface LossAndGrad {
  /** Per-example loss at x, [B]. */
  loss: tf.Tensor1D;
  /** Logits at x, B×C. */
  logits: tf.Tensor2D;
  /** ∇ₓ Σ_b loss_b: each example's gradient is its own loss's gradient (examples are independent in inference mode). */
  grad: tf.Tensor4D;
}

/**
 * Computes loss, logits and gradient in a single pass (attacks need all three every step and a second forward
 * pass would cost a third of a step). A model whose output does not depend on x gets a zero gradient rather
 * than an exception, so the zero-gradient sanity check can report it. Returned tensors belong to the caller's scope.
 */
export function lossAndGrad(model: ModelFn, lossFn: PerExampleLoss, x: tf.Tensor4D): LossAndGrad {
  if (model.forwardBackward && tapeFree) return lossAndGradByLayers(model.forwardBackward, lossFn, x);
  const kept: { logits?: tf.Tensor2D; loss?: tf.Tensor1D } = {};
  const { value, grads } = tf.engine().gradients(
    () => {
      // tf.keep: the engine's forward tidy would otherwise dispose these intermediates.
      kept.logits = tf.keep(model(x));
      kept.loss = tf.keep(lossFn(kept.logits));
      return tf.sum(kept.loss);
    },
    [x],
    undefined,
    true,
  );
  value.dispose();
  const g = grads[0];
  const out: LossAndGrad = {
    loss: tf.clone(kept.loss!),
    logits: tf.clone(kept.logits!),
    grad: (g ?? tf.zerosLike(x)) as tf.Tensor4D,
  };
  kept.loss!.dispose();
  kept.logits!.dispose();
  return out;
}

let tapeFree = true;

/** Whether lossAndGrad uses the executor's own backward where it has one (default) or tfjs' tape: A/B benches. */
export function preferTapeFree(on: boolean): void {
  tapeFree = on;
}

/** lossAndGrad through the executor's own backward: the tape only records the loss (logits → [B]). */
function lossAndGradByLayers(forwardBackward: NonNullable<ModelFn['forwardBackward']>, lossFn: PerExampleLoss, x: tf.Tensor4D): LossAndGrad {
  let loss: tf.Tensor1D | undefined;
  const { logits, grad } = forwardBackward(x, (z) => {
    const { value, grads } = tf.engine().gradients(
      () => {
        loss = tf.keep(lossFn(z));
        return tf.sum(loss);
      },
      [z],
      undefined,
      true,
    );
    value.dispose();
    return (grads[0] ?? tf.zerosLike(z)) as tf.Tensor2D;
  });
  // As lossAndGrad's: the loss belongs to the caller's scope (a kept tensor would outlive the caller's tidy).
  const owned = tf.clone(loss!);
  loss!.dispose();
  return { loss: owned, logits, grad };
}

/** Per-example correctness (argmax == y) as a bool tensor [B]. */
export function correctMask(logits: tf.Tensor2D, y: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => tf.equal(tf.argMax(logits, 1), tf.cast(y, 'int32')) as tf.Tensor1D);
}

/**
 * Expectation over transformation for randomised models (AutoAttack's `eot_iter`): `draws` forward + backward
 * passes at the same x, the gradient averaged over them; loss and logits are those of the last draw, as the
 * reference keeps them. draws = 1 is lossAndGrad itself.
 */
export function eotLossAndGrad(model: ModelFn, lossFn: PerExampleLoss, x: tf.Tensor4D, draws: number): LossAndGrad {
  if (draws === 1) return lossAndGrad(model, lossFn, x);
  return tf.tidy(() => {
    let sum: tf.Tensor4D | null = null;
    let last: LossAndGrad | null = null;
    for (let k = 0; k < draws; k++) {
      last = lossAndGrad(model, lossFn, x);
      sum = sum ? (tf.add(sum, last.grad) as tf.Tensor4D) : last.grad;
    }
    return { loss: last!.loss, logits: last!.logits, grad: tf.div(sum!, draws) as tf.Tensor4D };
  });
}
