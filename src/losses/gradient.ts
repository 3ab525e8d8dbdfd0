/**
 * Stop-gradient for tfjs, which has no `tf.stopGradient`.
 *
 * Why a custom-gradient op and not simply "compute it first": tf.grads marks every tensor computed from
 * its inputs as differentiable and fails on ops without a gradient (topk, equal, greater...) on that path.
 * Running `fn` as the forward pass of a `tf.customGrad` op keeps its internal ops off the tape (the engine
 * does not record ops nested inside a kernel), and the op's gradient is zero for every input. This is
 * PyTorch's `.detach()` / the paper's S(.).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Evaluates `fn(...inputs)` as a constant for gradients: the result is a function of `inputs`, but
 * tf.grads sees zero gradient through it and never differentiates what `fn` does.
 */
export function detached<T extends tf.Tensor>(fn: (...inputs: tf.Tensor[]) => T, ...inputs: tf.Tensor[]): T {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xs = args.slice(0, inputs.length) as tf.Tensor[];
    const value = fn(...xs);
    // The op's output must be a tensor of its own, not one of its inputs.
    const out = (xs.includes(value) ? tf.clone(value) : value) as T;
    return { value: out, gradFunc: () => xs.map((x) => tf.zerosLike(x)) };
  });
  return op(...inputs) as T;
}

/** S(x): the same values, zero gradient. */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return detached((t) => tf.clone(t) as T, x);
}
