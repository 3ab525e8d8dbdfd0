/**
 * FAB-T: the targeted Fast Adaptive Boundary attack (Croce & Hein, "Minimally distorted adversarial examples
 * with a fast adaptive boundary attack", ICML 2020) as AutoAttack "standard" runs it; `fab`, the untargeted
 * version of AutoAttack "plus", differs only in the boundary it linearises at each step: that of the class whose
 * linearised boundary is closest (host-model.ts, closestOfClasses) instead of a fixed target's.
 *
 * For each of the top-`nTargetClasses` non-true classes t of the clean logits, and each restart, on the points
 * still robust: linearise the boundary f = z_t − z_y at the iterate x1, project both x1 and the original x0 onto
 * that hyperplane inside [0, 1]^d (fab-projection.ts), step to a convex combination of the two extrapolated
 * projections (biased towards x0 by alpha = min(‖d1‖ / (‖d1‖ + ‖d2‖), alphaMax)), and whenever the iterate is
 * misclassified record it if it is the least distorted so far, then pull it back towards x0 by beta. A point
 * counts as fooled only if its least distorted adversarial point is within eps; otherwise it is returned clean.
 * One target per run means one backward of (z_t − z_y) per step rather than one per class.
 *
 * Batching. The units (k-th target class, restart r) are independent runs on the points still robust, and a
 * point's run depends only on that point (rows are independent in inference mode; the random start of r > 0 is
 * seeded by (seed, k, r, the point's row in x)). So a *block* of consecutive units runs as ONE run over
 * (units × points) rows, and each point takes, as in series, the first unit (k, r order) whose best norm is within
 * eps: standard's 9 targets cost 100 model steps instead of 900. Blocks hold at most `maxRows` rows; points fooled
 * by a block are dropped before the next.
 */
import * as tf from '@tensorflow/tfjs';
import { blockRows } from './block-rows.js';
import { distance, projectionWorkspace, projectOntoHyperplaneBox } from './fab-projection.js';
import { restoredArray } from './progress.js';
import { argmaxRow, closestOfClasses, labelsOf, logitsOf, readInputs, type Shape4 } from './host-model.js';
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
  /**
   * Largest model batch of one run (default `blockRows`: as many rows as 256 MB of activations hold, at least B;
   * 1024 for a model that does not state its size): a block of units runs on points × units rows (× classes for
   * `fab`, whose every step differentiates all classes). Memory grows with it (a forward + backward of that many
   * inputs, and 2 host copies of rows × input size); the result does not depend on it. Lower it for large models.
   */
  maxRows?: number;
  /** Tests: called after every step of every unit with its iterates x1 (flat, the unit's points) and best norms. */
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

/** f(x1) and ∇f(x1) of the boundary each row linearises (flat n×D), and the labels at the previous iterate. */
interface Linearised {
  df: Float32Array;
  dg: Float32Array;
}

/**
 * The device side of one run over n rows: x0, labels and the boundary's coefficients are uploaded once; each step
 * uploads x1 and reads back one packed tensor. `step` does, in the reference's order (attack_single_run), the label
 * check at the new iterate, the pull-back of the misclassified rows towards x0 by beta, and the next linearisation
 * at the pulled-back iterate: one forward + one forward/backward and one host read per step instead of three.
 */
class RunDevice {
  private readonly x0: tf.Tensor4D;
  private readonly y: tf.Tensor1D;
  /** Per model row: the coefficients c with f = ⟨c, z⟩ (z_t − z_y; for `fab` one row per class and example). */
  private readonly coef: tf.Tensor2D;

  constructor(
    private readonly model: ModelFn,
    x0: Float32Array,
    private readonly shape: Shape4,
    private readonly yHost: Int32Array,
    target: Int32Array | undefined,
    private readonly classes: number,
    private readonly beta: number,
    private readonly norm: Norm,
  ) {
    const n = shape[0];
    [this.x0, this.y, this.coef] = tf.tidy(() => {
      const y = tf.tensor1d(yHost, 'int32');
      // Untargeted: copy c of the batch carries class c's difference z_c − z_y (closestOfClasses' layout).
      const cls = target
        ? tf.tensor1d(target, 'int32')
        : tf.tensor1d(
            Int32Array.from({ length: classes * n }, (_, r) => Math.floor(r / n)),
            'int32',
          );
      const lab = target ? y : tf.tile(y, [classes]);
      const coef = tf.sub(tf.oneHot(cls, classes), tf.oneHot(lab, classes)) as tf.Tensor2D;
      return [tf.tensor4d(x0, shape), y, coef];
    });
  }

  /** The first linearisation, at the starting point (no label check before the first step). */
  first(x1: Float32Array): Linearised {
    return this.read(
      tf.tidy(() => this.pack(null, this.gradient(tf.tensor4d(x1, this.shape)))),
      false,
    ).lin!;
  }

  /** Labels at x1; unless `last`, also the linearisation at x1 with the misclassified rows pulled back. */
  step(x1: Float32Array, last: boolean): { pred: Int32Array; lin?: Linearised } {
    const packed = tf.tidy(() => {
      const x = tf.tensor4d(x1, this.shape);
      const pred = tf.argMax(this.model(x), 1) as tf.Tensor1D;
      if (last) return pred.toFloat();
      // x0 + (x1 − x0)·beta in float32 on the rows the model misclassifies, as pullBack does on the host.
      const pulled = tf.add(this.x0, tf.mul(tf.sub(x, this.x0), this.beta));
      const adv = tf.notEqual(pred, this.y).reshape([this.shape[0], 1, 1, 1]);
      return this.pack(pred, this.gradient(tf.where(tf.broadcastTo(adv, this.shape), pulled, x) as tf.Tensor4D));
    });
    const out = this.read(packed, true);
    return { pred: out.pred!, lin: out.lin };
  }

  dispose(): void {
    tf.dispose([this.x0, this.y, this.coef]);
  }

  /** f and ∇ₓf at x (per model row; rows are independent, so the gradient of Σf is each row's ∇f). */
  private gradient(x: tf.Tensor4D): { f: tf.Tensor; g: tf.Tensor } {
    const xs = this.coef.shape[0] === this.shape[0] ? x : (tf.tile(x, [this.classes, 1, 1, 1]) as tf.Tensor4D);
    const { value, grads } = tf.engine().gradients(() => tf.sum(tf.mul(this.model(xs), this.coef), 1), [xs], undefined, true);
    // A model whose logits do not depend on x gets a zero gradient instead of an exception.
    return { f: value, g: grads[0] ?? tf.zerosLike(xs) };
  }

  /** [labels (as float, exact below 2^24), f, ∇f] flattened into one tensor: one host read per step. */
  private pack(pred: tf.Tensor1D | null, lin: { f: tf.Tensor; g: tf.Tensor }): tf.Tensor1D {
    const parts = [lin.f.reshape([-1]), lin.g.reshape([-1])];
    return tf.concat(pred ? [pred.toFloat(), ...parts] : parts) as tf.Tensor1D;
  }

  private read(packed: tf.Tensor, withPred: boolean): { pred?: Int32Array; lin?: Linearised } {
    const data = packed.dataSync() as Float32Array;
    packed.dispose();
    const n = this.shape[0];
    const pred = withPred ? Int32Array.from(data.subarray(0, n)) : undefined;
    const off = withPred ? n : 0;
    if (data.length === off) return { pred };
    const m = this.coef.shape[0];
    const f = data.subarray(off, off + m);
    const g = data.subarray(off + m);
    return { pred, lin: m === n ? { df: f, dg: g } : closestOfClasses(f, g, this.yHost, this.classes, this.norm) };
  }
}

/**
 * One FAB run (AutoAttack's attack_single_run) on n rows: x0 (n×D, flat), the starting iterates x1 (n×D, changed in
 * place), labels y. Returns, per row, the least distorted misclassified iterate and its norm (Infinity if none).
 */
function fabSingleRun(
  dev: RunDevice,
  x0: Float32Array,
  x1: Float32Array,
  y: Int32Array,
  o: { eps: number; norm: Norm; steps: number; alphaMax: number; eta: number; beta: number },
  onStep?: (step: number, x1: Float32Array, bestNorm: Float64Array) => void,
): RunResult {
  const n = y.length;
  const D = x0.length / n;
  const best = Float32Array.from(x0);
  const bestNorm = new Float64Array(n).fill(Infinity);
  const d1 = new Float64Array(D);
  const d2 = new Float64Array(D);
  const work = projectionWorkspace(D);

  let lin = dev.first(x1);
  for (let step = 0; step < o.steps; step++) {
    const { df, dg } = lin;
    for (let i = 0; i < n; i++) {
      const lo = i * D;
      const w = dg.subarray(lo, lo + D);
      const p1 = x1.subarray(lo, lo + D);
      const p0 = x0.subarray(lo, lo + D);
      // Linearised boundary at x1: f(x1) + ⟨∇f, z − x1⟩ = 0  ⇔  ⟨w, z⟩ = ⟨w, x1⟩ − f(x1).
      let wx1 = 0;
      for (let j = 0; j < D; j++) wx1 += w[j]! * p1[j]!;
      const b = wx1 - df[i]!;
      const a1 = Math.max(projectOntoHyperplaneBox(p1, w, b, o.norm, d1, work), 1e-8);
      const a2 = Math.max(projectOntoHyperplaneBox(p0, w, b, o.norm, d2, work), 1e-8);
      // Bias towards x0 in proportion to how far x1 already is from the boundary relative to x0 (Eq. 9).
      const alpha = Math.min(Math.max(a1 / (a1 + a2), 0), o.alphaMax);
      for (let j = 0; j < D; j++) {
        p1[j] = clip01((p1[j]! + o.eta * d1[j]!) * (1 - alpha) + (p0[j]! + o.eta * d2[j]!) * alpha);
      }
    }
    const next = dev.step(x1, step === o.steps - 1);
    for (let i = 0; i < n; i++) {
      if (next.pred[i] === y[i]) continue;
      const lo = i * D;
      const p1 = x1.subarray(lo, lo + D);
      const p0 = x0.subarray(lo, lo + D);
      const dist = distance(p1, p0, o.norm);
      if (dist < bestNorm[i]!) {
        bestNorm[i] = dist;
        best.set(p1, lo);
      }
      // Past the boundary: restart the search from a point closer to x0 to look for a smaller perturbation
      // (the device linearised the next step at this same point).
      pullBack(p1, p0, o.beta);
    }
    onStep?.(step, x1, bestNorm);
    if (next.lin) lin = next.lin;
  }
  return { best, bestNorm };
}

/**
 * p1 ← p0 + (p1 − p0)·beta with float32 rounding after each operation, as the reference (float32 tensors) and
 * RunDevice.step compute it: the host iterate stays bit-identical to the point the device linearised.
 */
export function pullBack(p1: Float32Array, p0: Float32Array, beta: number): void {
  const b = Math.fround(beta);
  for (let j = 0; j < p1.length; j++) p1[j] = p0[j]! + Math.fround(Math.fround(p1[j]! - p0[j]!) * b);
}

/**
 * AutoAttack's random start, written into x1: a random direction scaled to norm eps/2 around x0, clamped to the
 * box. `dir` is scratch of length x0.length.
 */
function randomStart(x0: Float32Array, x1: Float32Array, rng: SeededRng, eps: number, norm: Norm, dir: Float64Array): void {
  const D = x0.length;
  for (let j = 0; j < D; j++) dir[j] = norm === 'linf' ? 2 * rng.next() - 1 : rng.normal();
  let size = 0;
  for (let j = 0; j < D; j++) size = norm === 'linf' ? Math.max(size, Math.abs(dir[j]!)) : norm === 'l1' ? size + Math.abs(dir[j]!) : size + dir[j]! * dir[j]!;
  if (norm === 'l2') size = Math.sqrt(size);
  const scale = (0.5 * eps) / Math.max(size, 1e-12);
  for (let j = 0; j < D; j++) x1[j] = clip01(x0[j]! + scale * dir[j]!);
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
  const maxRows = checkCount(WHO, 'maxRows', opts.maxRows ?? blockRows(model, x.shape[0], 1024), 1);
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
  const rankOf = new Map(
    robust.map((i) => {
      const row = Array.from(clean.subarray(i * classes, (i + 1) * classes));
      return [i, row.map((_, c) => c).sort((a, b) => row[b]! - row[a]! || a - b)];
    }),
  );

  // Untargeted FAB is one pass (k = 0) whose runs choose their boundary at every step; FAB-T runs the classes
  // ranked 2nd, 3rd, ... (k = 1..nTargetClasses).
  const firstK = targeted ? 1 : 0;
  const nK = targeted ? Math.min(nTargetClasses, classes - 1) : 1;
  const nUnits = nK * restarts;
  // Model rows per (point, unit) row: untargeted FAB differentiates every class of every row.
  const perRow = targeted ? 1 : classes;
  const dir = new Float64Array(D);

  /** Units [u0, u0 + units) on the points `pts` as one run; each point keeps its first success within eps. */
  const runBlock = (pts: number[], u0: number, units: number): void => {
    const n = pts.length;
    const rows = n * units;
    const x0 = new Float32Array(rows * D);
    const x1 = new Float32Array(rows * D);
    const ya = new Int32Array(rows);
    const ta = new Int32Array(rows);
    // Row j·n + a: unit u0 + j on point pts[a] (unit-major, so a unit's rows are contiguous for the hook).
    for (let j = 0; j < units; j++) {
      const k = firstK + Math.floor((u0 + j) / restarts);
      const r = (u0 + j) % restarts;
      pts.forEach((i, a) => {
        const row = j * n + a;
        const p0 = xData.subarray(i * D, (i + 1) * D);
        x0.set(p0, row * D);
        ya[row] = yData[i]!;
        ta[row] = rankOf.get(i)![k]!;
        // Restart r > 0 starts at random, seeded per point so that the start does not depend on the batch.
        if (r > 0) randomStart(p0, x1.subarray(row * D, (row + 1) * D), new SeededRng(deriveSeed(seed, k, r, i)), o.eps, norm, dir);
        else x1.set(p0, row * D);
      });
    }
    const hook = opts.onIteration;
    const onStep = hook
      ? (step: number, it: Float32Array, bn: Float64Array) => {
          for (let j = 0; j < units; j++) {
            const k = firstK + Math.floor((u0 + j) / restarts);
            hook({ k, restart: (u0 + j) % restarts, step, x1: it.subarray(j * n * D, (j + 1) * n * D), bestNorm: bn.subarray(j * n, (j + 1) * n) });
          }
        }
      : undefined;
    const dev = new RunDevice(model, x0, [rows, H, W, C], ya, targeted ? ta : undefined, classes, o.beta, norm);
    try {
      const { best, bestNorm } = fabSingleRun(dev, x0, x1, ya, o, onStep);
      pts.forEach((i, a) => {
        for (let j = 0; j < units; j++) {
          const row = j * n + a;
          if (bestNorm[row]! <= o.eps) {
            dist[i] = bestNorm[row]!;
            xAdv.set(best.subarray(row * D, (row + 1) * D), i * D);
            break;
          }
        }
      });
    } finally {
      dev.dispose();
    }
  };

  // Units (src/attacks/progress.ts): (k-th target class, restart r), target-major; the state is xAdv and dist.
  // One unitDone per block, counting every unit in it.
  const progress = opts.progress;
  if (progress?.restored) {
    xAdv.set(restoredArray(progress.restored, 'xAdv', Float32Array, B * D));
    dist.set(restoredArray(progress.restored, 'dist', Float64Array, B));
  }
  const pointsPerRun = Math.max(1, Math.floor(maxRows / perRow));
  let u = progress?.restored?.units ?? 0;
  while (u < nUnits) {
    const active = robust.filter((i) => dist[i] === Infinity);
    // As many consecutive units as fit maxRows; at least one, its points in chunks if they alone exceed it.
    const units = active.length === 0 ? nUnits - u : Math.min(nUnits - u, Math.max(1, Math.floor(pointsPerRun / active.length)));
    for (let c = 0; c < active.length; c += pointsPerRun) runBlock(active.slice(c, c + pointsPerRun), u, units);
    u += units;
    const done = u;
    await progress?.unitDone(done, () => Promise.resolve({ units: done, arrays: { xAdv: Float32Array.from(xAdv), dist: Float64Array.from(dist) } }));
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
