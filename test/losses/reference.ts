/**
 * Independent float64 formulations for the loss tests: plain JS arrays, explicit double loops over
 * class pairs (the O(C²) definition, no variance identity), and central finite differences.
 */
import * as tf from '@tensorflow/tfjs';
import { rng } from '../helpers.js';

export type Matrix = number[][];

export function randomMatrix(rows: number, cols: number, seed: number, scale = 1, shift = 0): Matrix {
  const next = rng(seed);
  // Box-Muller: roughly normal logits, like a network's.
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => shift + scale * normal()));
}

/** The float32 values a tensor made from m holds, as float64 arrays (references must see what tf sees). */
export function asFloat32(m: Matrix): Matrix {
  return m.map((row) => Array.from(new Float32Array(row)));
}

export function logSoftmax(z: number[]): number[] {
  const max = Math.max(...z);
  const lse = max + Math.log(z.reduce((acc, v) => acc + Math.exp(v - max), 0));
  return z.map((v) => v - lse);
}

export function softmax(z: number[]): number[] {
  return logSoftmax(z).map(Math.exp);
}

export function klRef(nat: Matrix, adv: Matrix): number[] {
  return nat.map((z, b) => {
    const ls = logSoftmax(z);
    const la = logSoftmax(adv[b]!);
    return ls.reduce((acc, l, j) => acc + Math.exp(l) * (l - la[j]!), 0);
  });
}

export interface IklRefParams {
  alpha: number;
  beta: number;
  /** Weights w (B×C) before the power γ, held constant. */
  weights: Matrix;
  /** Soft-CE target softmax(z/τ) (B×C), held constant. */
  target: Matrix;
  gamma: number;
  temperature: number;
}

/**
 * IKL/GKL by its definition: β·(1/M) Σ_b ¼ Σ_{j,k} v_j v_k (Δ_jk − Δ'_jk)² + α·(1/B) Σ_b −Σ_j t_j log_softmax(z'/τ)_j,
 * v = w^γ, M = Σ_b (Σ_j v_j)². Returns the per-example terms whose mean is the batch loss.
 */
export function iklRef(nat: Matrix, adv: Matrix, p: IklRefParams): number[] {
  const batch = nat.length;
  const v = p.weights.map((row) => row.map((w) => (p.gamma === 0 ? 1 : w ** p.gamma)));
  const mass = v.reduce((acc, row) => acc + row.reduce((s, x) => s + x, 0) ** 2, 0);
  return nat.map((z, b) => {
    const za = adv[b]!;
    const c = z.length;
    let pairs = 0;
    for (let j = 0; j < c; j++) {
      for (let k = 0; k < c; k++) {
        const diff = z[j]! - z[k]! - (za[j]! - za[k]!);
        pairs += v[b]![j]! * v[b]![k]! * diff * diff;
      }
    }
    const la = logSoftmax(za.map((x) => x / p.temperature));
    const softCe = -p.target[b]!.reduce((acc, t, j) => acc + t * la[j]!, 0);
    return (p.beta * (batch / mass) * pairs) / 4 + p.alpha * softCe;
  });
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Central differences of f at x (float64), one entry per element of x. */
export function finiteDiff(f: (x: Matrix) => number, x: Matrix, h = 1e-6): Matrix {
  return x.map((row, i) =>
    row.map((_, j) => {
      const plus = x.map((r) => r.slice());
      const minus = x.map((r) => r.slice());
      plus[i]![j]! += h;
      minus[i]![j]! -= h;
      return (f(plus) - f(minus)) / (2 * h);
    }),
  );
}

/** Central differences of a tf loss evaluated at perturbed float32 inputs (loose: float32 rounding / 2h). */
export function tfFiniteDiff(f: (x: tf.Tensor2D) => tf.Scalar, x: Matrix, h = 1e-2): Matrix {
  const value = (m: Matrix) =>
    tf.tidy(() => {
      const out = f(tf.tensor2d(m));
      return out.dataSync()[0]!;
    });
  return finiteDiff(value, x, h);
}

export function flat(m: Matrix): number[] {
  return m.flat();
}

export function data(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}
