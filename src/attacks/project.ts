/**
 * Geometry shared by every attack: per-example norms, projection onto the eps-ball around x intersected
 * with the [0, 1] box, normalised gradient directions, and seeded random starts.
 * All functions are pure and return new tensors (the caller owns them / runs them inside tf.tidy).
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../rng.js';
import { selectRows } from '../kernels.js';
import type { Norm } from './types.js';

/** Keeps divisions finite for an all-zero gradient or perturbation. */
const TINY = 1e-12;

/** Per-example L2 norm of a B×... tensor, shape [B]. */
export function l2NormPerExample(t: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(t.reshape([t.shape[0]!, -1])), 1)) as tf.Tensor1D);
}

/** Per-example L-inf norm of a B×... tensor, shape [B]. */
export function linfNormPerExample(t: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.max(tf.abs(t.reshape([t.shape[0]!, -1])), 1) as tf.Tensor1D);
}

export function normPerExample(t: tf.Tensor, norm: Norm): tf.Tensor1D {
  return norm === 'linf' ? linfNormPerExample(t) : l2NormPerExample(t);
}

/** Reshapes a per-example [B] tensor so it broadcasts against a B×H×W×C tensor. */
export function perExample(v: tf.Tensor1D): tf.Tensor4D {
  return v.reshape([v.shape[0], 1, 1, 1]);
}

/** g / ‖g‖₂ per example (the L2 steepest-ascent direction); an all-zero gradient stays zero. */
export function normalizeL2(g: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.div(g, perExample(l2NormPerExample(g)).add(TINY)));
}

/** The steepest-ascent direction of unit norm for the attack's norm: sign(g) for L-inf, g/‖g‖₂ for L2. */
export function steepestDirection(g: tf.Tensor4D, norm: Norm): tf.Tensor4D {
  return norm === 'linf' ? (tf.sign(g) as tf.Tensor4D) : normalizeL2(g);
}

/**
 * Projects xAdv onto {x' : ‖x' − x‖ ≤ eps} ∩ [0, 1]^d. For L-inf the two sets are boxes, so clipping to one
 * then the other is the exact projection. For L2 we scale δ into the ball then clamp to the box (what AutoAttack
 * and every PGD reference do); clamping moves each coordinate towards x, so the result stays in the ball.
 */
export function project(xAdv: tf.Tensor4D, x: tf.Tensor4D, eps: number, norm: Norm): tf.Tensor4D {
  return tf.tidy(() => {
    const delta = tf.sub(xAdv, x);
    let inBall: tf.Tensor;
    if (norm === 'linf') {
      inBall = tf.clipByValue(delta, -eps, eps);
    } else {
      const n = perExample(l2NormPerExample(delta));
      // min(1, eps/‖δ‖): points already inside the ball are left alone.
      inBall = tf.mul(delta, tf.minimum(1, tf.div(eps, n.add(TINY))));
    }
    return tf.clipByValue(tf.add(x, inBall), 0, 1) as tf.Tensor4D;
  });
}

/**
 * A point drawn uniformly from the eps-ball around x, clamped to [0, 1].
 * L-inf: δ ~ U[−eps, eps]^d. L2: uniform in the ball, δ = eps · u^(1/d) · n/‖n‖ with n ~ N(0, I), u ~ U[0, 1].
 */
export function uniformBallStart(x: tf.Tensor4D, eps: number, norm: Norm, seed: number): tf.Tensor4D {
  return tf.tidy(() => {
    let delta: tf.Tensor;
    if (norm === 'linf') {
      delta = tf.randomUniform(x.shape, -eps, eps, 'float32', seed);
    } else {
      const b = x.shape[0];
      const d = x.size / b;
      const dir = normalizeL2(tf.randomNormal(x.shape, 0, 1, 'float32', seed));
      const radius = tf.pow(tf.randomUniform([b], 0, 1, 'float32', deriveSeed(seed, 1)), 1 / d).mul(eps) as tf.Tensor1D;
      delta = tf.mul(dir, perExample(radius));
    }
    return tf.clipByValue(tf.add(x, delta), 0, 1) as tf.Tensor4D;
  });
}

/** The TRADES start: x + 0.001·N(0, I), deliberately not clamped (the first step's projection and clamp fix it). */
export function tradesStart(x: tf.Tensor4D, seed: number, sigma = 0.001): tf.Tensor4D {
  return tf.tidy(() => tf.add(x, tf.randomNormal(x.shape, 0, sigma, 'float32', seed)) as tf.Tensor4D);
}

/** Per example, a where mask[b] is true, else b (mask: bool [B]; broadcast over H, W, C). */
export function selectPerExample<T extends tf.Tensor>(mask: tf.Tensor1D, a: T, b: T): T {
  return selectRows(mask, a, b);
}
