/**
 * Geometry shared by every attack: per-example norms, projection onto the eps-ball around x intersected
 * with the [0, 1] box, normalised gradient directions, and seeded random starts.
 * All functions are pure and return new tensors (the caller owns them / runs them inside tf.tidy).
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../rng.js';
import { selectRows } from '../kernels.js';
import { InputError } from '../errors.js';
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

/** Per-example L1 norm of a B×... tensor, shape [B]. */
export function l1NormPerExample(t: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.abs(t.reshape([t.shape[0]!, -1])), 1) as tf.Tensor1D);
}

export function normPerExample(t: tf.Tensor, norm: Norm): tf.Tensor1D {
  return norm === 'linf' ? linfNormPerExample(t) : norm === 'l2' ? l2NormPerExample(t) : l1NormPerExample(t);
}

/**
 * The correction r with ‖δ + r‖₁ ≤ eps and x + δ + r ∈ [0, 1]^d, per example (x in the box, δ any move): the
 * Euclidean projection of x + δ onto the L1 ball around x intersected with the box (Croce & Hein 2021, "Mind the
 * box", the reference's `L1_projection`). Coordinate i first gives up the part of δ_i that leaves the box
 * (−u_i ≥ 0), then a common amount α of |δ_i| (never more than |δ_i|): its reduction is clip(α, −u_i, |δ_i|).
 * The total reduction is piecewise linear and non-decreasing in α with kinks at the −u_i and |δ_i|; sorting the
 * 2d kinks gives it at every kink by one cumulative sum, and α is solved on the piece where it reaches
 * ‖δ‖₁ − eps. The reference finds that piece by bisection; the reduction being monotone, counting the kinks
 * below it gives the same index with three ops instead of ⌈log₂ 2d⌉ gathers. Float32 throughout, in the
 * reference's order of operations, so a replay can compare results.
 */
export function l1Projection(x: tf.Tensor4D, delta: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const b = x.shape[0];
    const d = x.size / b;
    const xf = x.reshape([b, d]);
    const y = delta.reshape([b, d]);
    const sigma = tf.sign(y);
    // u ≤ 0: minus the amount by which x + δ leaves the box (min(1 − x − δ, x + δ) clipped at 0); l = −|δ|.
    const u = tf.minimum(tf.minimum(tf.sub(tf.sub(1, xf), y), tf.add(xf, y)), 0);
    const l = tf.neg(tf.abs(y));
    // The kinks −u and −l ascending (the reference sorts −[u, l]); +1 for a −u kink (a coordinate starts to
    // give), −1 for a −l kink (it has given all of |δ_i|): their running sum is the slope after each kink.
    const { values, indices } = tf.topk(tf.concat([u, l], 1), 2 * d);
    const bs = tf.neg(values);
    const bs2 = tf.concat([bs.slice([0, 1], [b, 2 * d - 1]), tf.zeros([b, 1])], 1);
    const size1 = tf.cumsum(tf.sub(tf.mul(tf.cast(tf.less(indices, d), 'float32'), 2), 1), 1);
    const s1 = tf.neg(tf.sum(u, 1));
    const c = tf.sub(eps, tf.sum(tf.abs(y), 1));
    // s[k]: the total reduction at the next kink after k; the reduction needed is −c.
    const s = tf.add(s1.expandDims(1), tf.cumsum(tf.mul(tf.sub(bs2, bs), size1), 1));
    const needed = tf.less(tf.add(s1, c), 0);
    // The bisection's index: the last k ≤ 2d − 2 with s[k] + c < 0 (0 if none).
    const below = tf.sum(tf.cast(tf.less(tf.add(s.slice([0, 0], [b, 2 * d - 1]), c.expandDims(1)), 0), 'int32'), 1);
    // Flat indices row·2d + lb (+1): int32 throughout (a JS number operand would make them float32).
    const lb = tf.clipByValue(tf.sub(below, tf.scalar(1, 'int32')), 0, 2 * d - 2);
    const base = tf.add(tf.range(0, b * 2 * d, 2 * d, 'int32'), lb);
    const at = (t: tf.Tensor, offset: number) => tf.gather(t.reshape([-1]), offset === 0 ? base : tf.add(base, tf.scalar(offset, 'int32')));
    const alpha = tf.add(tf.div(tf.sub(tf.neg(at(s, 0)), c), at(size1, 1)), at(bs2, 0));
    const dNeeded = tf.neg(tf.minimum(tf.maximum(tf.neg(u), alpha.expandDims(1)), tf.neg(l)));
    const dOut = tf.where(tf.broadcastTo(needed.expandDims(1), [b, d]), dNeeded, u);
    return tf.mul(sigma, dOut).reshape(x.shape) as tf.Tensor4D;
  });
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
  // L1 has no dense steepest direction worth taking (APGD's L1 step is sparse, apgd.ts).
  if (norm === 'l1') throw new InputError('the L1 threat model is served by apgd-ce, apgd-t, fab, fab-t and square (no dense L1 step)');
  return norm === 'linf' ? (tf.sign(g) as tf.Tensor4D) : normalizeL2(g);
}

/**
 * Projects xAdv onto {x' : ‖x' − x‖ ≤ eps} ∩ [0, 1]^d. For L-inf the two sets are boxes, so clipping to one
 * then the other is the exact projection. For L2 we scale δ into the ball then clamp to the box (what AutoAttack
 * and every PGD reference do); clamping moves each coordinate towards x, so the result stays in the ball.
 * For L1 the box and the ball are projected onto jointly (l1Projection), as the reference's L1 attacks do.
 */
export function project(xAdv: tf.Tensor4D, x: tf.Tensor4D, eps: number, norm: Norm): tf.Tensor4D {
  return tf.tidy(() => {
    const delta = tf.sub(xAdv, x);
    let inBall: tf.Tensor;
    if (norm === 'l1') {
      // x + δ + r in the reference's order (its L1 steps and starts add the correction last).
      return tf.add(tf.add(x, delta), l1Projection(x, delta as tf.Tensor4D, eps)) as tf.Tensor4D;
    }
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
  if (norm === 'l1') throw new InputError('the L1 threat model is served by apgd-ce, apgd-t, fab, fab-t and square (no uniform L1 start)');
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
