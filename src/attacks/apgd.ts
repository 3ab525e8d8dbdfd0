/**
 * APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
 * parameter-free attacks"): PGD with momentum whose step size needs no tuning. It starts at 2·eps and is halved
 * per example at checkpoints when progress stalls, restarting from the best point found so far.
 * APGD-CE maximises cross-entropy; APGD-T maximises the targeted DLR loss towards each of the top classes in turn.
 * Written from the paper's Algorithm 1 and Section 3; where the released code (fra31/auto-attack) made a choice the
 * paper leaves open we follow the code, since that is what produced the published numbers: the oscillation test is
 * "≤ ρ·k"; the momentum term after a restart uses the pre-step iterate; the second halving condition counts as
 * "halved last time" at the first checkpoint (`reduced_last_check` starts at ones); and the first step of the first
 * interval is compared with a loss of 0, not with the loss at the start (the reference's `loss_steps[-1]`, a row
 * still zero then). test/reference replays the reference's per-iteration losses and step sizes.
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, dlrLoss, dlrTargetedLoss } from '../losses/index.js';
import { InputError } from '../errors.js';
import { correctMask, eotLossAndGrad, type PerExampleLoss } from './grad.js';
import { deriveSeed } from '../rng.js';
import { linfNormPerExample, normalizeL2, perExample, project, selectPerExample, steepestDirection } from './project.js';
import { restoredArray, type AttackProgress, type AttackState } from './progress.js';
import { gatherRows, indicesWhere, scatterRows } from './subset.js';
import type { AttackOptions, AttackResult, ModelFn, Norm } from './types.js';
import { checkCount, checkIterativeOptions, checkRange } from './validate.js';

/** Momentum weight α of the paper: x^{k+1} = x^k + α(z^{k+1} − x^k) + (1 − α)(x^k − x^{k−1}). */
export const APGD_MOMENTUM = 0.75;
/** ρ: the step size is halved when at most this fraction of the steps since the last checkpoint increased the loss. */
export const APGD_RHO = 0.75;
/** AutoAttack's number of target classes for APGD-T (the 2nd to the 10th most likely class). */
export const APGD_TARGET_CLASSES = 9;

export type ApgdLoss = 'ce' | 'dlr';

export interface ApgdOptions extends AttackOptions {
  /** Threshold ρ of the oscillation condition (default 0.75). */
  rho?: number;
  /**
   * Forward/backward passes averaged into each gradient (expectation over transformation, for randomised
   * defences; AutoAttack "rand": 20). Default 1.
   */
  eotIter?: number;
}

export interface ApgdTOptions extends ApgdOptions {
  /** Number of target classes, tried in order of the clean logits (default 9, capped at C − 1). */
  nTargetClasses?: number;
}

/**
 * Iteration counts after which APGD checks the step size: w_j = ⌈p_j·N⌉ with p_0 = 0, p_1 = 0.22,
 * p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06). Computed in whole iterations as the reference does
 * (first interval ⌊0.22N⌋, each next one 3% of N shorter, never below 6% of N).
 */
export function apgdCheckpoints(nIter: number): number[] {
  // ⌊p·N⌋ in doubles, as the reference's int(p * N).
  const frac = (p: number): number => Math.max(Math.floor(p * nIter), 1);
  const decrease = frac(0.03);
  const minInterval = frac(0.06);
  const out: number[] = [];
  let interval = frac(0.22);
  for (let at = interval; at <= nIter; at += interval) {
    out.push(at);
    interval = Math.max(interval - decrease, minInterval);
  }
  return out;
}

/** The reference's random start: a random direction scaled to norm exactly eps (on the sphere for L2, a corner-touching box point for L-inf), clamped to [0, 1]. */
export function apgdStart(x: tf.Tensor4D, eps: number, norm: Norm, seed: number): tf.Tensor4D {
  return tf.tidy(() => {
    let delta: tf.Tensor;
    if (norm === 'linf') {
      const t = tf.randomUniform(x.shape, -1, 1, 'float32', seed);
      delta = tf.mul(tf.div(t, perExample(linfNormPerExample(t)).add(1e-12)), eps);
    } else {
      delta = tf.mul(normalizeL2(tf.randomNormal(x.shape, 0, 1, 'float32', seed)), eps);
    }
    return tf.clipByValue(tf.add(x, delta), 0, 1) as tf.Tensor4D;
  });
}

// A type alias, not an interface: tf.tidy needs it assignable to TensorContainer.
type ApgdState = {
  xAdv: tf.Tensor4D;
  /** The iterate before the last step (the momentum term is xAdv − xPrev). */
  xPrev: tf.Tensor4D;
  grad: tf.Tensor4D;
  /** Highest-loss point so far, its gradient and loss. */
  xBest: tf.Tensor4D;
  gradBest: tf.Tensor4D;
  lossBest: tf.Tensor1D;
  /** The latest misclassified iterate, and whether there has been one. */
  xBestAdv: tf.Tensor4D;
  fooled: tf.Tensor1D;
  /** Per-example step size η. */
  stepSize: tf.Tensor1D;
  lossPrev: tf.Tensor1D;
  /** Steps since the last checkpoint that increased the loss. */
  increases: tf.Tensor1D;
  lossBestLastCheck: tf.Tensor1D;
  reducedLastCheck: tf.Tensor1D;
};

function replaceState(old: ApgdState, next: ApgdState): ApgdState {
  const keep = new Set<tf.Tensor>(Object.values(next));
  for (const t of Object.values(old) as tf.Tensor[]) if (!keep.has(t)) t.dispose();
  return next;
}

/**
 * Tests only (each call downloads the state): after iteration i (0-based) of a run, the loss at the new iterate,
 * the step size after that iteration's checkpoint (if any), and the best loss and point so far.
 */
export type ApgdIterationHook = (info: { i: number; loss: Float32Array; stepSize: Float32Array; lossBest: Float32Array; xBest: Float32Array }) => void;

export type ApgdRun = {
  /** Per example: the latest misclassified iterate if fooled, else the highest-loss point. */
  xAdv: tf.Tensor4D;
  fooled: tf.Tensor1D;
  lossBest: tf.Tensor1D;
};

/**
 * One APGD run from one random start on every example of x (no restarts, no bookkeeping of clean errors).
 * Synchronous: one tidy per iteration and no download, the checkpoint schedule being the same for every example.
 */
export function apgdRun(
  model: ModelFn,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  lossFn: PerExampleLoss,
  opts: { eps: number; norm: Norm; steps: number; seed: number; rho?: number; eotIter?: number; x0?: tf.Tensor4D; onIteration?: ApgdIterationHook },
): ApgdRun {
  const { eps, norm, steps } = opts;
  const rho = opts.rho ?? APGD_RHO;
  const draws = opts.eotIter ?? 1;
  const checkpoints = apgdCheckpoints(steps);
  let state = tf.tidy((): ApgdState => {
    // opts.x0: a given start (warm starts; tests that replay the algorithm from a known point).
    const x0 = opts.x0 ? project(opts.x0, x, eps, norm) : apgdStart(x, eps, norm, opts.seed);
    const { loss, logits, grad } = eotLossAndGrad(model, lossFn, x0, draws);
    const b = x.shape[0];
    return {
      xAdv: x0,
      xPrev: x0,
      grad,
      xBest: x0,
      gradBest: grad,
      lossBest: loss,
      xBestAdv: x0,
      fooled: tf.logicalNot(correctMask(logits, y)) as tf.Tensor1D,
      stepSize: tf.fill([b], 2 * eps) as tf.Tensor1D,
      // The reference compares the first step's loss with loss_steps[-1], the last row of a zero-filled table.
      lossPrev: tf.zeros([b]) as tf.Tensor1D,
      increases: tf.zeros([b]) as tf.Tensor1D,
      lossBestLastCheck: loss,
      // As if halved before the start: condition 2 cannot fire at the first checkpoint (reference: ones).
      reducedLastCheck: tf.ones([b], 'bool') as tf.Tensor1D,
    };
  });
  let lastCheck = 0;
  for (let i = 0; i < steps; i++) {
    const checkpoint = checkpoints.includes(i + 1);
    const interval = i + 1 - lastCheck;
    if (checkpoint) lastCheck = i + 1;
    const s = state;
    state = replaceState(
      s,
      tf.tidy((): ApgdState => {
        const a = i === 0 ? 1 : APGD_MOMENTUM;
        const z = project(tf.add(s.xAdv, tf.mul(steepestDirection(s.grad, norm), perExample(s.stepSize))), x, eps, norm);
        const xNew = a === 1 ? z : project(tf.add(tf.add(s.xAdv, tf.mul(tf.sub(z, s.xAdv), a)), tf.mul(tf.sub(s.xAdv, s.xPrev), 1 - a)), x, eps, norm);
        const { loss, logits, grad } = eotLossAndGrad(model, lossFn, xNew, draws);
        const wrong = tf.logicalNot(correctMask(logits, y)) as tf.Tensor1D;
        const improved = tf.greater(loss, s.lossBest) as tf.Tensor1D;
        const next: ApgdState = {
          xAdv: xNew,
          xPrev: s.xAdv,
          grad,
          xBest: selectPerExample(improved, xNew, s.xBest),
          gradBest: selectPerExample(improved, grad, s.gradBest),
          lossBest: tf.where(improved, loss, s.lossBest) as tf.Tensor1D,
          xBestAdv: selectPerExample(wrong, xNew, s.xBestAdv),
          fooled: tf.logicalOr(s.fooled, wrong) as tf.Tensor1D,
          stepSize: s.stepSize,
          lossPrev: loss,
          increases: tf.add(s.increases, tf.cast(tf.greater(loss, s.lossPrev), 'float32')) as tf.Tensor1D,
          lossBestLastCheck: s.lossBestLastCheck,
          reducedLastCheck: s.reducedLastCheck,
        };
        if (!checkpoint) return next;
        // Condition 1: at most ρ of the steps since the last checkpoint increased the loss (oscillation).
        const oscillating = tf.lessEqual(next.increases, interval * rho);
        // Condition 2: the step size was kept last time and the best loss has not improved since.
        const stalled = tf.logicalAnd(tf.logicalNot(s.reducedLastCheck), tf.greaterEqual(s.lossBestLastCheck, next.lossBest));
        const reduce = tf.logicalOr(oscillating, stalled) as tf.Tensor1D;
        return {
          ...next,
          // Halving restarts from the best point (and its gradient).
          xAdv: selectPerExample(reduce, next.xBest, xNew),
          grad: selectPerExample(reduce, next.gradBest, grad),
          stepSize: tf.where(reduce, tf.div(s.stepSize, 2), s.stepSize) as tf.Tensor1D,
          increases: tf.zerosLike(next.increases) as tf.Tensor1D,
          lossBestLastCheck: next.lossBest,
          reducedLastCheck: reduce,
        };
      }),
    );
    if (opts.onIteration) {
      const read = (t: tf.Tensor): Float32Array => Float32Array.from(t.dataSync() as Float32Array);
      opts.onIteration({ i, loss: read(state.lossPrev), stepSize: read(state.stepSize), lossBest: read(state.lossBest), xBest: read(state.xBest) });
    }
  }
  const out = tf.tidy(() => ({
    xAdv: selectPerExample(state.fooled, state.xBestAdv, state.xBest),
    fooled: tf.clone(state.fooled),
    lossBest: tf.clone(state.lossBest),
  }));
  for (const t of new Set(Object.values(state) as tf.Tensor[])) t.dispose();
  return out;
}

function checkApgdOptions(who: string, x: tf.Tensor4D, y: tf.Tensor1D, opts: ApgdOptions): void {
  checkIterativeOptions(who, x, y, opts, 1);
  if (opts.rho !== undefined) checkRange(who, 'rho', opts.rho, 0, 1, false);
  if (opts.eotIter !== undefined) checkCount(who, 'eotIter', opts.eotIter, 1);
}

/** State of a multi-run attack: examples still classified correctly are attacked again; the rest keep their adversarial. */
class Sequence {
  xAdv: tf.Tensor4D;
  lossBest: tf.Tensor1D;
  robust: Uint8Array;
  constructor(
    private readonly model: ModelFn,
    readonly x: tf.Tensor4D,
    readonly y: tf.Tensor1D,
  ) {
    this.xAdv = tf.clone(x);
    this.lossBest = tf.fill([x.shape[0]], -Infinity) as tf.Tensor1D;
    this.robust = new Uint8Array(x.shape[0]);
  }

  async init(): Promise<void> {
    const correct = tf.tidy(() => tf.cast(correctMask(this.model(this.x), this.y), 'int32'));
    this.robust = Uint8Array.from(await correct.data());
    correct.dispose();
  }

  /** Runs `attack` on the robust examples; fooled ones take its output, the others keep the higher-loss point. */
  async run(attack: (x: tf.Tensor4D, y: tf.Tensor1D, idx: Int32Array) => ApgdRun): Promise<void> {
    const idx = indicesWhere(this.robust, 1);
    if (idx.length === 0) return;
    const xs = gatherRows(this.x, idx);
    const ys = gatherRows(this.y, idx);
    const res = attack(xs, ys, idx);
    const [rowsX, rowsLoss] = tf.tidy(() => {
      const prevLoss = gatherRows(this.lossBest, idx);
      const take = tf.logicalOr(res.fooled, tf.greater(res.lossBest, prevLoss)) as tf.Tensor1D;
      return [selectPerExample(take, res.xAdv, gatherRows(this.xAdv, idx)), tf.where(take, res.lossBest, prevLoss) as tf.Tensor1D] as const;
    });
    const fooled = await res.fooled.data();
    const newX = scatterRows(this.xAdv, idx, rowsX);
    const newLoss = scatterRows(this.lossBest, idx, rowsLoss);
    tf.dispose([xs, ys, res.xAdv, res.fooled, res.lossBest, rowsX, rowsLoss, this.xAdv, this.lossBest]);
    this.xAdv = newX;
    this.lossBest = newLoss;
    idx.forEach((row, k) => {
      if (fooled[k]) this.robust[row] = 0;
    });
  }

  /** A host copy of the state (the unit state of src/attacks/progress.ts). */
  async read(units: number): Promise<AttackState> {
    return {
      units,
      arrays: {
        xAdv: Float32Array.from(await this.xAdv.data()),
        lossBest: Float32Array.from(await this.lossBest.data()),
        robust: Uint8Array.from(this.robust),
      },
    };
  }

  /** Continues from a state read() made on the same inputs. */
  restore(s: AttackState): void {
    const n = this.x.shape[0];
    const xAdv = restoredArray(s, 'xAdv', Float32Array, this.x.size);
    const lossBest = restoredArray(s, 'lossBest', Float32Array, n);
    this.robust = Uint8Array.from(restoredArray(s, 'robust', Uint8Array, n));
    tf.dispose([this.xAdv, this.lossBest]);
    this.xAdv = tf.tensor4d(xAdv, this.x.shape);
    this.lossBest = tf.tensor1d(lossBest);
  }

  result(): AttackResult {
    this.lossBest.dispose();
    return { xAdv: this.xAdv, success: this.robust.map((r) => 1 - r) };
  }

  dispose(): void {
    tf.dispose([this.xAdv, this.lossBest]);
  }
}

type Unit = (x: tf.Tensor4D, y: tf.Tensor1D, idx: Int32Array) => ApgdRun;

/** Runs the units in order on what is still robust; with `progress`, resumable after every unit. */
async function runSequence(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, units: Unit[], progress?: AttackProgress): Promise<AttackResult> {
  if (x.shape[0] === 0) return { xAdv: tf.clone(x), success: new Uint8Array(0) };
  const seq = new Sequence(model, x, y);
  try {
    await seq.init();
    const from = progress?.restored?.units ?? 0;
    if (progress?.restored) seq.restore(progress.restored);
    for (let u = from; u < units.length; u++) {
      await seq.run(units[u]!);
      await progress?.unitDone(u + 1, () => seq.read(u + 1));
    }
    return seq.result();
  } catch (e) {
    seq.dispose();
    throw e;
  }
}

/**
 * APGD with an untargeted loss (AutoAttack's APGD-CE with loss 'ce'; 'dlr' is APGD-DLR). Examples misclassified
 * at x are not attacked (success 1, xAdv = x). Each restart attacks only what is still robust.
 */
export async function apgd(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: ApgdOptions & { loss?: ApgdLoss }): Promise<AttackResult> {
  const who = opts.loss === 'dlr' ? 'apgd-dlr' : 'apgd-ce';
  checkApgdOptions(who, x, y, opts);
  const loss = opts.loss ?? 'ce';
  if (loss !== 'ce' && loss !== 'dlr') throw new InputError(`${who}: loss expected ce|dlr, got '${String(loss)}'`);
  // Units: the restarts.
  const units = Array.from({ length: opts.restarts }, (_, r): Unit => (xs, ys) => {
    const lossFn: PerExampleLoss =
      loss === 'ce' ? (z) => crossEntropy(z, ys, { reduction: 'none' }) as tf.Tensor1D : (z) => dlrLoss(z, ys, { reduction: 'none' }) as tf.Tensor1D;
    return apgdRun(model, xs, ys, lossFn, { ...opts, seed: deriveSeed(opts.seed, r) });
  });
  return runSequence(model, x, y, units, opts.progress);
}

/** APGD-CE: APGD on the cross-entropy (AutoAttack "standard": 100 steps, 1 restart). */
export function apgdCe(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: ApgdOptions): Promise<AttackResult> {
  return apgd(model, x, y, { ...opts, loss: 'ce' });
}

/** APGD-DLR: APGD on the untargeted DLR loss (AutoAttack "plus" and "rand"). */
export function apgdDlr(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: ApgdOptions): Promise<AttackResult> {
  return apgd(model, x, y, { ...opts, loss: 'dlr' });
}

/**
 * APGD-T: for the 2nd, 3rd, … most likely classes at x (by clean logits) in turn, APGD on the targeted DLR loss
 * towards that class, `restarts` runs per target, each only on the examples still robust. Needs C ≥ 4.
 */
export async function apgdT(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: ApgdTOptions): Promise<AttackResult> {
  checkApgdOptions('apgd-t', x, y, opts);
  if (x.shape[0] === 0) return { xAdv: tf.clone(x), success: new Uint8Array(0) };
  const probe = tf.tidy(() => model(x.slice([0, 0, 0, 0], [Math.min(1, x.shape[0]), -1, -1, -1])));
  const numClasses = probe.shape[1];
  probe.dispose();
  if (numClasses < 4) throw new InputError(`apgd-t: the targeted DLR loss needs at least 4 classes, the model has ${numClasses}`);
  const want = opts.nTargetClasses ?? APGD_TARGET_CLASSES;
  checkCount('apgd-t', 'nTargetClasses', want, 1);
  const numTargets = Math.min(want, numClasses - 1);
  // Units: (target class t, restart r), target-major.
  const units: Unit[] = [];
  for (let t = 0; t < numTargets; t++) {
    for (let r = 0; r < opts.restarts; r++) {
      units.push((xs, ys) => {
        // Target: the (t+2)-th largest clean logit, as AutoAttack ranks them.
        const target = tf.tidy(
          () =>
            tf
              .topk(model(xs), t + 2)
              .indices.slice([0, t + 1], [-1, 1])
              .reshape([-1]) as tf.Tensor1D,
        );
        try {
          const lossFn: PerExampleLoss = (z) => dlrTargetedLoss(z, ys, target, { reduction: 'none' }) as tf.Tensor1D;
          return apgdRun(model, xs, ys, lossFn, { ...opts, seed: deriveSeed(opts.seed, t, r) });
        } finally {
          target.dispose();
        }
      });
    }
  }
  return runSequence(model, x, y, units, opts.progress);
}
