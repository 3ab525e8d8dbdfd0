/**
 * FAB-T: the targeted Fast Adaptive Boundary attack (Croce & Hein, "Minimally distorted adversarial examples
 * with a fast adaptive boundary attack", ICML 2020) as AutoAttack "standard" runs it; `fab`, the untargeted
 * version of AutoAttack "plus", differs only in the boundary it linearises at each step: that of the class whose
 * linearised boundary is closest (host-model.ts, closestBoundary) instead of a fixed target's.
 *
 * For each of the top-`nTargetClasses` non-true classes t of the clean logits, and each restart, on the points
 * still robust: linearise the boundary f = z_t − z_y at the iterate x1, project both x1 and the original x0 onto
 * that hyperplane inside [0, 1]^d (fab-projection.ts), step to a convex combination of the two extrapolated
 * projections (biased towards x0 by alpha = min(‖d1‖ / (‖d1‖ + ‖d2‖), alphaMax)), and whenever the iterate is
 * misclassified record it if it is the least distorted so far, then pull it back towards x0 by beta. A point
 * counts as fooled only if its least distorted adversarial point is within eps; otherwise it is returned clean.
 * One target per run means one backward of (z_t − z_y) per step rather than one per class.
 */
import * as tf from '@tensorflow/tfjs';
import { distance, projectOntoHyperplaneBox } from './fab-projection.js';
import { restoredArray } from './progress.js';
import { argmaxRow, closestBoundary, diffAndGrad, labelsOf, logitsOf, readInputs, type Shape4 } from './host-model.js';
import { checkCount, checkNorm, checkRange, checkSeed } from './validate.js';
import { deriveSeed, SeededRng } from '../rng.js';
import type { AttackResult, BaseAttackOptions, ModelFn, Norm } from './types.js';

/** eps: radius of the threat model, success needs ‖xAdv − x‖ ≤ eps. */
export interface FabOptions extends BaseAttackOptions {
  /** Iterations per target class and restart (AutoAttack: 100). */
  steps?: number;
  /** Runs per target class; every run after the first starts at a random point at distance eps/2. */
  restarts?: number;
  /** FAB-T: how many of the highest-scoring wrong classes to target (AutoAttack: 9); capped at classes − 1. Unused by `fab`. */
  nTargetClasses?: number;
  /** Upper bound on the bias towards the original point (paper: alpha_max). */
  alphaMax?: number;
  /** Extrapolation factor of the projection step (paper: eta). */
  eta?: number;
  /** Backward step towards the original point after finding an adversarial iterate (paper: beta). */
  beta?: number;
  /** Tests: called after every step of every run with the iterates x1 (flat, the run's points) and best norms. */
  onIteration?: FabIterationHook;
}

/** What a test sees after each FAB step: target rank k (1 = second most likely class), restart, step, iterates. */
export type FabIterationHook = (info: { k: number; restart: number; step: number; x1: Float32Array; bestNorm: Float64Array }) => void;

export interface FabResult extends AttackResult {
  /**
   * ‖xAdv − x‖ of the least distorted adversarial point found within eps (0 for points misclassified from the
   * start, Infinity where the attack failed and xAdv = x).
   */
  distance: Float64Array;
}

interface RunResult {
  best: Float32Array;
  bestNorm: Float64Array;
}

/** The boundary a step linearises at x1: per point f(x1) and ∇f(x1) (flat n×D). */
type Linearise = (x1: Float32Array) => { df: Float32Array; dg: Float32Array };

/**
 * One FAB run (AutoAttack's attack_single_run) on n points: x0 (n×D, flat), labels y, the boundary to linearise.
 * Returns, per point, the least distorted misclassified iterate and its norm (Infinity if none).
 */
function fabSingleRun(
  model: ModelFn,
  x0: Float32Array,
  shape: Shape4,
  y: Int32Array,
  linearise: Linearise,
  o: { eps: number; norm: Norm; steps: number; alphaMax: number; eta: number; beta: number },
  randomStart: SeededRng | undefined,
  onStep?: (step: number, x1: Float32Array, bestNorm: Float64Array) => void,
): RunResult {
  const n = shape[0];
  const D = x0.length / n;
  const x1 = Float32Array.from(x0);
  if (randomStart) {
    // AutoAttack's random start: a random direction scaled to norm eps/2, clamped to the box.
    const dir = new Float64Array(D);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < D; j++) dir[j] = o.norm === 'linf' ? 2 * randomStart.next() - 1 : randomStart.normal();
      let size = 0;
      for (let j = 0; j < D; j++) size = o.norm === 'linf' ? Math.max(size, Math.abs(dir[j]!)) : size + dir[j]! * dir[j]!;
      if (o.norm === 'l2') size = Math.sqrt(size);
      const scale = (0.5 * o.eps) / Math.max(size, 1e-12);
      for (let j = 0; j < D; j++) x1[i * D + j] = clip01(x0[i * D + j]! + scale * dir[j]!);
    }
  }
  const best = Float32Array.from(x0);
  const bestNorm = new Float64Array(n).fill(Infinity);
  const d1 = new Float64Array(D);
  const d2 = new Float64Array(D);

  for (let step = 0; step < o.steps; step++) {
    const { df, dg } = linearise(x1);
    for (let i = 0; i < n; i++) {
      const lo = i * D;
      const w = dg.subarray(lo, lo + D);
      const p1 = x1.subarray(lo, lo + D);
      const p0 = x0.subarray(lo, lo + D);
      // Linearised boundary at x1: f(x1) + ⟨∇f, z − x1⟩ = 0  ⇔  ⟨w, z⟩ = ⟨w, x1⟩ − f(x1).
      let wx1 = 0;
      for (let j = 0; j < D; j++) wx1 += w[j]! * p1[j]!;
      const b = wx1 - df[i]!;
      const a1 = Math.max(projectOntoHyperplaneBox(p1, w, b, o.norm, d1), 1e-8);
      const a2 = Math.max(projectOntoHyperplaneBox(p0, w, b, o.norm, d2), 1e-8);
      // Bias towards x0 in proportion to how far x1 already is from the boundary relative to x0 (Eq. 9).
      const alpha = Math.min(Math.max(a1 / (a1 + a2), 0), o.alphaMax);
      for (let j = 0; j < D; j++) {
        p1[j] = clip01((p1[j]! + o.eta * d1[j]!) * (1 - alpha) + (p0[j]! + o.eta * d2[j]!) * alpha);
      }
    }
    const pred = labelsOf(model, x1, shape);
    for (let i = 0; i < n; i++) {
      if (pred[i] === y[i]) continue;
      const lo = i * D;
      const p1 = x1.subarray(lo, lo + D);
      const p0 = x0.subarray(lo, lo + D);
      const dist = distance(p1, p0, o.norm);
      if (dist < bestNorm[i]!) {
        bestNorm[i] = dist;
        best.set(p1, lo);
      }
      // Past the boundary: restart the search from a point closer to x0 to look for a smaller perturbation.
      for (let j = 0; j < D; j++) p1[j] = p0[j]! + o.beta * (p1[j]! - p0[j]!);
    }
    onStep?.(step, x1, bestNorm);
  }
  return { best, bestNorm };
}

/**
 * Targeted FAB on a batch. Points misclassified from the start are left as they are (success 1, distance 0).
 * Model calls run in inference mode through `model`; no tensor is kept and the model is never modified.
 */
export function fabT(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: FabOptions): Promise<FabResult> {
  return fabAttack(model, x, y, opts, true);
}

/** Untargeted FAB (AutoAttack "plus": 5 restarts): each step moves towards the closest linearised boundary. */
export function fab(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: FabOptions): Promise<FabResult> {
  return fabAttack(model, x, y, opts, false);
}

async function fabAttack(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: FabOptions, targeted: boolean): Promise<FabResult> {
  const WHO = targeted ? 'fabT' : 'fab';
  const norm = checkNorm(WHO, opts.norm);
  const o = {
    eps: checkRange(WHO, 'eps', opts.eps, 0, Infinity, true),
    norm,
    steps: checkCount(WHO, 'steps', opts.steps ?? 100, 1),
    alphaMax: checkRange(WHO, 'alphaMax', opts.alphaMax ?? 0.1, 0, 1, false),
    eta: checkRange(WHO, 'eta', opts.eta ?? 1.05, 0, Infinity, true),
    beta: checkRange(WHO, 'beta', opts.beta ?? 0.9, 0, 1, true),
  };
  const restarts = checkCount(WHO, 'restarts', opts.restarts ?? 1, 1);
  const nTargetClasses = checkCount(WHO, 'nTargetClasses', opts.nTargetClasses ?? 9, 1);
  const seed = checkSeed(WHO, opts.seed);
  const { shape, xData, yData } = readInputs(WHO, x, y);
  const [B, H, W, C] = shape;
  const D = H * W * C;

  const { logits: clean, classes } = logitsOf(model, xData, shape);
  const xAdv = Float32Array.from(xData);
  const dist = new Float64Array(B).fill(Infinity);
  const robust: number[] = [];
  for (let i = 0; i < B; i++) {
    if (argmaxRow(clean, i, classes) === yData[i]) robust.push(i);
    else dist[i] = 0;
  }
  // Class ranking of the clean logits: AutoAttack targets the 2nd, 3rd, ... highest-scoring classes.
  const ranking = robust.map((i) => {
    const row = Array.from(clean.subarray(i * classes, (i + 1) * classes));
    return row.map((_, c) => c).sort((a, b) => row[b]! - row[a]! || a - b);
  });
  const rankOf = new Map(robust.map((i, k) => [i, ranking[k]!]));

  // Untargeted FAB is one pass (k = 0) whose runs choose their boundary at every step; FAB-T runs the classes
  // ranked 2nd, 3rd, ... (k = 1..nTargetClasses).
  const firstK = targeted ? 1 : 0;
  const nK = targeted ? Math.min(nTargetClasses, classes - 1) : 1;
  // Units (src/attacks/progress.ts): (k-th target class, restart r), target-major; the state is xAdv and dist.
  const progress = opts.progress;
  if (progress?.restored) {
    xAdv.set(restoredArray(progress.restored, 'xAdv', Float32Array, B * D));
    dist.set(restoredArray(progress.restored, 'dist', Float64Array, B));
  }
  for (let u = progress?.restored?.units ?? 0; u < nK * restarts; u++) {
    const k = firstK + Math.floor(u / restarts);
    const r = u % restarts;
    const active = robust.filter((i) => dist[i] === Infinity);
    if (active.length > 0) {
      const n = active.length;
      const x0 = new Float32Array(n * D);
      const ya = new Int32Array(n);
      const ta = new Int32Array(n);
      active.forEach((i, a) => {
        x0.set(xData.subarray(i * D, (i + 1) * D), a * D);
        ya[a] = yData[i]!;
        ta[a] = rankOf.get(i)![k]!;
      });
      const start = r > 0 ? new SeededRng(deriveSeed(seed, k, r)) : undefined;
      const hook = opts.onIteration;
      const onStep = hook ? (step: number, x1: Float32Array, bn: Float64Array) => hook({ k, restart: r, step, x1, bestNorm: bn }) : undefined;
      const runShape: Shape4 = [n, H, W, C];
      const linearise: Linearise = targeted
        ? (x1) => diffAndGrad(model, x1, runShape, ya, ta, classes)
        : (x1) => closestBoundary(model, x1, runShape, ya, classes, norm);
      const { best, bestNorm } = fabSingleRun(model, x0, runShape, ya, linearise, o, start, onStep);
      active.forEach((i, a) => {
        if (bestNorm[a]! <= o.eps) {
          dist[i] = bestNorm[a]!;
          xAdv.set(best.subarray(a * D, (a + 1) * D), i * D);
        }
      });
    }
    await progress?.unitDone(u + 1, () => Promise.resolve({ units: u + 1, arrays: { xAdv: Float32Array.from(xAdv), dist: Float64Array.from(dist) } }));
  }

  const out = tf.tensor4d(xAdv, shape);
  const pred = labelsOf(model, xAdv, shape);
  const success = new Uint8Array(B);
  for (let i = 0; i < B; i++) success[i] = pred[i] !== yData[i] ? 1 : 0;
  return { xAdv: out, success, distance: dist };
}

function clip01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
