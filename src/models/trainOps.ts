/**
 * Training-mode layer operations with hand-written gradients (`tf.customGrad`), for the training forward
 * (forward.ts). Two reasons, both about what tfjs keeps alive during `tf.variableGrads`:
 *
 * - A composed BN (moments, batchNorm, relu) records every intermediate on the tape and saves many B·H·W·C
 *   tensors for its backward; here BN(+ReLU) saves only its input, its output and per-channel statistics (the batch
 *   mean and 1/σ, or the fused kernel's reserve spaces).
 * - tfjs' backward keeps every activation gradient and every saved tensor until the whole backward pass ends.
 *   These ops free their incoming gradient and their saved tensors as soon as their own backward has run
 *   (each backward runs exactly once), so the backward pass releases memory as it goes, as PyTorch's does.
 *
 * The gradients are the textbook ones (checked against tfjs' own and finite differences in the tests):
 *   BN, per channel over n = B·H·W values, x̂ = (x − μ)/σ, g = dy (⊙ 1[y > 0] with the ReLU):
 *     dβ = Σ g,  dγ = Σ g·x̂,  dx = γ/σ · (g − (dβ + x̂·dγ)/n)
 *   On the native backend BN runs as TensorFlow's fused kernels each way (kernels.ts); the same formulas, summed in
 *   another order, so values and statistics agree with tfjs' ops to float32 rounding, not bit for bit.
 *   conv: TF's own Conv2DBackpropInput / Conv2DBackpropFilter kernels (kernels.ts: explicit padding included).
 *   ReLU: dy·1[y > 0] in one TF ReluGrad pass (kernels.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { conv2dBackpropFilter, conv2dBackpropInput, fusedBatchNormGrad, fusedBatchNormTrain, reluBackward, type ConvPad } from '../kernels.js';

/** Frees the incoming gradient and the tensors saved for this backward (safe: each backward runs once). */
function release(dy: tf.Tensor, saved: tf.Tensor[]): void {
  dy.dispose();
  for (const t of saved) t.dispose();
}

export interface BatchNormTrainResult {
  y: tf.Tensor4D;
  /** Batch mean and biased batch variance (for the running statistics); the caller disposes them. */
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

/** BN over N, H, W with batch statistics (then ReLU when `relu`), NHWC input. */
export function batchNormTrain(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number, relu: boolean): BatchNormTrainResult {
  let mean: tf.Tensor1D | undefined;
  let variance: tf.Tensor1D | undefined;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, g, b, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const fused = fusedBatchNormTrain(xIn, g, b, epsilon);
    if (fused) {
      mean = tf.keep(fused.mean);
      variance = tf.keep(fused.variance);
      const y = relu ? tf.relu(fused.y) : fused.y;
      save([xIn, g, ...fused.saved.reserve, ...(relu ? [y] : [])]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
          const [xs, gm, r1, r2, r3, ys] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor4D | undefined];
          const grads = tf.tidy(() => fusedBatchNormGrad(relu ? (reluBackward(dy, ys!) as tf.Tensor4D) : dy, xs, gm, { reserve: [r1, r2, r3] }, epsilon));
          release(dy, saved);
          return grads;
        },
      };
    }
    // Same ops as tfjs-layers' BatchNormalization (moments, then the batchNorm kernel), so values and running
    // statistics match model.apply bit for bit.
    const m = tf.moments(xIn, [0, 1, 2]);
    mean = tf.keep(m.mean as tf.Tensor1D);
    variance = tf.keep(m.variance as tf.Tensor1D);
    const normed = tf.batchNorm4d(xIn, mean, variance, b, g, epsilon);
    const y = relu ? tf.relu(normed) : normed;
    const invStd = tf.rsqrt(tf.add(variance, epsilon));
    save([xIn, mean, invStd, g, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xs, mu, inv, gm, ys] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Tensor4D];
        const grads = tf.tidy(() => {
          const gy = relu ? reluBackward(dy, ys) : dy;
          const n = xs.size / xs.shape[3];
          const xHat = tf.mul(tf.sub(xs, mu), inv);
          const dBeta = tf.sum(gy, [0, 1, 2]);
          const dGamma = tf.sum(tf.mul(gy, xHat), [0, 1, 2]);
          const correction = tf.add(tf.mul(xHat, tf.div(dGamma, n)), tf.div(dBeta, n));
          const dx = tf.mul(tf.sub(gy, correction), tf.mul(gm, inv));
          return [dx, dGamma, dBeta];
        });
        release(dy, saved);
        return grads;
      },
    };
  });
  const y = op(x, gamma, beta) as tf.Tensor4D;
  return { y, mean: mean!, variance: variance! };
}

/**
 * NHWC convolution without bias (stride s; 'same', 'valid' or explicit padding), dilation 1. With `inputGradient`
 * false, x is a constant of the differentiation (the network's input): only the filter gets a gradient, which saves
 * the largest input-gradient convolution of a training step (the first layer's, at full resolution).
 */
export function conv2dTrain(x: tf.Tensor4D, filter: tf.Tensor4D, strides: [number, number], pad: ConvPad, inputGradient = true): tf.Tensor4D {
  if (!inputGradient) {
    const filterOnly = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [w, save] = args as [tf.Tensor4D, tf.GradSaveFunc];
      save([x]);
      return {
        value: tf.conv2d(x, w, strides, pad),
        gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
          const dw = conv2dBackpropFilter(saved[0] as tf.Tensor4D, dy, w.shape, strides, pad);
          release(dy, saved);
          return [dw];
        },
      };
    });
    return filterOnly(filter) as tf.Tensor4D;
  }
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([xIn, w]);
    return {
      value: tf.conv2d(xIn, w, strides, pad),
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const dx = conv2dBackpropInput(dy, ws, xs.shape, strides, pad);
        const dw = conv2dBackpropFilter(xs, dy, ws.shape, strides, pad);
        release(dy, saved);
        return [dx, dw];
      },
    };
  });
  return op(x, filter) as tf.Tensor4D;
}

/** a + b (same shapes), then ReLU when `relu`. Saves nothing without the ReLU, only its output with it. */
export function addTrain(a: tf.Tensor, b: tf.Tensor, relu: boolean): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [aIn, bIn, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const sum = tf.add(aIn, bIn);
    const y = relu ? tf.relu(sum) : sum;
    save(relu ? [y] : []);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const g = relu ? reluBackward(dy, saved[0]!) : dy.clone();
        const grads = [g, g.clone()];
        release(dy, saved);
        return grads;
      },
    };
  });
  return op(a, b);
}
