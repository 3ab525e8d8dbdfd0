/**
 * Model calls on host (JS) arrays, shared by FAB and Square: both attacks keep their state in Float32Arrays and
 * only hand the model a tensor. Input and option checks are in validate.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { checkInputs } from './validate.js';
import type { ModelFn, Norm } from './types.js';

export type Shape4 = [number, number, number, number];

/** Logits of the model on n examples stored contiguously in `data` (NHWC), as a flat n×C Float32Array. */
export function logitsOf(model: ModelFn, data: Float32Array, shape: Shape4): { logits: Float32Array; classes: number } {
  const t = tf.tidy(() => model(tf.tensor4d(data, shape)));
  const classes = t.shape[1];
  const logits = t.dataSync() as Float32Array;
  t.dispose();
  return { logits: Float32Array.from(logits), classes };
}

/** Index of the largest of `classes` logits of example i (ties: the lowest index, like argmax). */
export function argmaxRow(logits: ArrayLike<number>, i: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) if (logits[i * classes + c]! > logits[i * classes + best]!) best = c;
  return best;
}

/** Predicted labels of n examples. */
export function labelsOf(model: ModelFn, data: Float32Array, shape: Shape4): Int32Array {
  const { logits, classes } = logitsOf(model, data, shape);
  const out = new Int32Array(shape[0]);
  for (let i = 0; i < shape[0]; i++) out[i] = argmaxRow(logits, i, classes);
  return out;
}

/**
 * Untargeted FAB's choice of boundary (the reference's get_diff_logits_grads_batch, then the class choice): given,
 * for every example and class k, f_k = z_k − z_y and ∇f_k (from one backward pass on `classes` copies of the
 * batch: f class-major, f[k·n + i], g in the same order with D values per entry), the k ≠ y whose linearised
 * boundary is closest, |f_k| / ‖∇f_k‖_dual (dual of the threat model's norm: L1 for L-inf, L2 for L2, L-inf for L1). Returns
 * that class's f and ∇f per example (n and n×D).
 */
export function closestOfClasses(f: Float32Array, g: Float32Array, y: Int32Array, classes: number, norm: Norm): { df: Float32Array; dg: Float32Array } {
  const n = y.length;
  const D = g.length / (classes * n);
  const df = new Float32Array(n);
  const dg = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    let best = -1;
    let bestDist = Infinity;
    for (let c = 0; c < classes; c++) {
      if (c === y[i]) continue;
      const row = (c * n + i) * D;
      let size = 0;
      if (norm === 'l1') for (let j = 0; j < D; j++) size = Math.max(size, Math.abs(g[row + j]!));
      else for (let j = 0; j < D; j++) size += norm === 'linf' ? Math.abs(g[row + j]!) : g[row + j]! * g[row + j]!;
      if (norm === 'l2') size = Math.sqrt(size);
      const dist = Math.abs(f[c * n + i]!) / (1e-12 + size);
      if (dist < bestDist) [best, bestDist] = [c, dist];
    }
    df[i] = f[best * n + i]!;
    dg.set(g.subarray((best * n + i) * D, (best * n + i + 1) * D), i * D);
  }
  return { df, dg };
}

/** The input of an attack as flat arrays, after shape checks. */
export function readInputs(who: string, x: tf.Tensor4D, y: tf.Tensor1D): { shape: Shape4; xData: Float32Array; yData: Int32Array } {
  checkInputs(who, x, y);
  const xData = Float32Array.from(x.dataSync() as ArrayLike<number>);
  const yData = Int32Array.from(y.dataSync() as ArrayLike<number>);
  return { shape: [...x.shape] as Shape4, xData, yData };
}
