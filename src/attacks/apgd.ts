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
import { l1Projection, linfNormPerExample, normalizeL2, perExample, project, selectPerExample, steepestDirection } from './project.js';
import { restoredArray, type AttackProgress, type AttackState } from './progress.js';
import { gatherRows, indicesWhere, scatterRows } from './subset.js';
import type { AttackOptions, AttackResult, ModelFn, Norm } from './types.js';
import { blockRows } from './block-rows.js';
import { checkCount, checkIterativeOptions, checkRange } from './validate.js';

/** Momentum weight α of the paper: x^{k+1} = x^k + α(z^{k+1} − x^k) + (1 − α)(x^k − x^{k−1}). */
export const APGD_MOMENTUM = 0.75;
/** ρ: the step size is halved when at most this fraction of the steps since the last checkpoint increased the loss. */
export const APGD_RHO = 0.75;
/** AutoAttack's number of target classes for APGD-T (the 2nd to the 10th most likely class). */
export const APGD_TARGET_CLASSES = 9;
/**
 * Cap on the rows of one APGD-T block when the model does not state its activation size (block-rows.ts), unless the
 * input batch is larger (the caller already sized it to fit).
 */
export const APGD_T_MAX_ROWS = 128;

export type ApgdLoss = 'ce' | 'dlr';

export interface ApgdOptions extends AttackOptions {
  /** Threshold ρ of the oscillation condition (default 0.75). */
  rho?: number;
  /**
   * Forward/backward passes averaged into each gradient (expectation over transformation, for randomised
   * defences; AutoAttack "rand": 20). Default 1.
   */
  eotIter?: number;
  /**
   * L1 only: the reference's `use_largereps` (AutoAttack "standard" at L1): each run spends 30%, 30% and 40% of
   * its steps at 3·eps, 2·eps and eps, each phase starting from the previous one's best point projected onto the
   * smaller ball (apgdL1Schedule). Default false.
   */
  largeReps?: boolean;
}

export interface ApgdTOptions extends ApgdOptions {
  /** Number of target classes, tried in order of the clean logits (default 9, capped at C − 1). */
  nTargetClasses?: number;
  /**
   * Most rows (robust examples × units) one block of units runs on; default `blockRows` (as many as 256 MB of
   * activations hold, at least B; max(B, APGD_T_MAX_ROWS) for a model that does not state its size). Memory grows
   * like a batch of that many inputs; the result does not depend on it.
   */
  maxRows?: number;
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

/**
 * The reference's random start: a random direction scaled to norm exactly eps (on the sphere for L2, a
 * corner-touching box point for L-inf), clamped to [0, 1]; for L1, x + t with t ~ N(0, I) projected onto the
 * L1 ball ∩ box (x + t + r, in the reference's order).
 */
export function apgdStart(x: tf.Tensor4D, eps: number, norm: Norm, seed: number): tf.Tensor4D {
  return tf.tidy(() => {
    let delta: tf.Tensor;
    if (norm === 'l1') {
      const t = tf.randomNormal(x.shape, 0, 1, 'float32', seed) as tf.Tensor4D;
      return tf.clipByValue(tf.add(tf.add(x, t), l1Projection(x, t, eps)), 0, 1) as tf.Tensor4D;
    }
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
  /** L1 only: the fraction of coordinates the sparse step moves, and the sparsity of xBest at the last check. */
  topk: tf.Tensor1D;
  spOld: tf.Tensor1D;
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

export type ApgdRunOptions = {
  eps: number;
  norm: Norm;
  steps: number;
  seed: number;
  rho?: number;
  eotIter?: number;
  x0?: tf.Tensor4D;
  /**
   * L1: x0 is a warm start (the reference's `x_init`): the sparse step's initial fraction of coordinates comes
   * from x0's sparsity instead of 20%. Set by apgdL1Schedule; replay tests set it to replay a phase.
   */
  warmStart?: boolean;
  onIteration?: ApgdIterationHook;
};

/** Fraction of the L1 budget the step size starts at and may not fall below (×1/10), and its decay per check. */
const L1_STEP_DECAY = 1.5;
const L1_MIN_STEP_FRACTION = 0.1;
/** The reference's first fraction of coordinates moved by the sparse L1 step, and the topk shrink at checks. */
const L1_INITIAL_TOPK = 0.2;

/** Number of non-zero coordinates of each row of x − x0 (the reference's L0_norm), as float32. */
function l0PerExample(t: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.cast(tf.notEqual(t.reshape([t.shape[0]!, -1]), 0), 'float32'), 1) as tf.Tensor1D);
}

/**
 * The L1 step of "Mind the box" (Croce & Hein 2021, the reference's L1 branch): move along sign(g) on only the
 * coordinates whose |g| is among the top `topk` fraction (ties at the threshold included), scaled to L1 norm
 * η, then project onto the L1 ball ∩ box. One full sort of |g| per row: the threshold's rank differs per row.
 */
function l1Step(xAdv: tf.Tensor4D, x: tf.Tensor4D, grad: tf.Tensor4D, stepSize: tf.Tensor1D, topk: tf.Tensor1D, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const b = x.shape[0];
    const d = x.size / b;
    const absG = tf.abs(grad);
    const sorted = tf.topk(absG.reshape([b, d]), d).values;
    // The reference sorts ascending and reads index ⌊(1 − topk)·d⌋ (clamped to [0, d − 1]): d − 1 − it descending.
    const rank = tf.clipByValue(tf.floor(tf.mul(tf.sub(1, topk), d)), 0, d - 1);
    const at = tf.add(tf.range(0, b * d, d, 'int32'), tf.cast(tf.sub(d - 1, rank), 'int32'));
    const threshold = perExample(tf.gather(sorted.reshape([-1]), at) as tf.Tensor1D);
    const sgn = tf.sign(tf.mul(grad, tf.cast(tf.greaterEqual(absG, threshold), 'float32')));
    const step = tf.div(tf.mul(perExample(stepSize), sgn), perExample(tf.sum(tf.abs(sgn.reshape([b, d])), 1) as tf.Tensor1D).add(1e-10));
    const deltaU = tf.sub(tf.add(xAdv, step), x) as tf.Tensor4D;
    return tf.add(tf.add(x, deltaU), l1Projection(x, deltaU, eps)) as tf.Tensor4D;
  });
}

/**
 * One APGD run from one random start on every example of x (no restarts, no bookkeeping of clean errors).
 * Synchronous: one tidy per iteration and no download, the checkpoint schedule being the same for every example.
 */
export function apgdRun(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, lossFn: PerExampleLoss, opts: ApgdRunOptions): ApgdRun {
  const { xBest, ...run } = apgdRunWithBest(model, x, y, lossFn, opts);
  xBest.dispose();
  return run;
}

/**
 * apgdRun that also returns the highest-loss point (the next phase's start in apgdL1Schedule).
 * L1 (the reference's L1 branch): no momentum, the sparse step (l1Step), the step size starting at eps, and
 * checks every 4% of the steps that reset the step size to eps and restart from the best point when the best
 * point's sparsity fell by more than 5%, else divide it by 1.5 (never below eps/10), and set the fraction of
 * coordinates moved to the best point's sparsity / 1.5.
 */
function apgdRunWithBest(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, lossFn: PerExampleLoss, opts: ApgdRunOptions): ApgdRun & { xBest: tf.Tensor4D } {
  const { eps, norm, steps } = opts;
  const rho = opts.rho ?? APGD_RHO;
  const draws = opts.eotIter ?? 1;
  const l1 = norm === 'l1';
  const checkpoints = apgdCheckpoints(steps);
  const l1Every = Math.max(Math.floor(0.04 * steps), 1);
  const d = x.size / Math.max(x.shape[0], 1);
  let state = tf.tidy((): ApgdState => {
    // opts.x0: a given start (warm starts; tests that replay the algorithm from a known point). L1 adds the
    // correction to x0 itself, as the reference's x_init += L1_projection(x, x_init − x, eps).
    const x0 = opts.x0
      ? l1
        ? (tf.clipByValue(tf.add(opts.x0, l1Projection(x, tf.sub(opts.x0, x) as tf.Tensor4D, eps)), 0, 1) as tf.Tensor4D)
        : project(opts.x0, x, eps, norm)
      : apgdStart(x, eps, norm, opts.seed);
    const { loss, logits, grad } = eotLossAndGrad(model, lossFn, x0, draws);
    const b = x.shape[0];
    const sparsity = l1 && opts.warmStart ? l0PerExample(tf.sub(x0, x)) : null;
    return {
      xAdv: x0,
      xPrev: x0,
      grad,
      xBest: x0,
      gradBest: grad,
      lossBest: loss,
      xBestAdv: x0,
      fooled: tf.logicalNot(correctMask(logits, y)) as tf.Tensor1D,
      // The reference's alpha·eps: 2·eps for L-inf/L2, eps for L1.
      stepSize: tf.fill([b], l1 ? eps : 2 * eps) as tf.Tensor1D,
      // The reference compares the first step's loss with loss_steps[-1], the last row of a zero-filled table.
      lossPrev: tf.zeros([b]) as tf.Tensor1D,
      increases: tf.zeros([b]) as tf.Tensor1D,
      lossBestLastCheck: loss,
      // As if halved before the start: condition 2 cannot fire at the first checkpoint (reference: ones).
      reducedLastCheck: tf.ones([b], 'bool') as tf.Tensor1D,
      topk: sparsity ? (tf.div(tf.div(sparsity, d), 1.5) as tf.Tensor1D) : (tf.fill([b], L1_INITIAL_TOPK) as tf.Tensor1D),
      spOld: sparsity ?? (tf.fill([b], d) as tf.Tensor1D),
    };
  });
  let lastCheck = 0;
  for (let i = 0; i < steps; i++) {
    const checkpoint = l1 ? (i + 1) % l1Every === 0 : checkpoints.includes(i + 1);
    const interval = i + 1 - lastCheck;
    if (checkpoint) lastCheck = i + 1;
    const s = state;
    state = replaceState(
      s,
      tf.tidy((): ApgdState => {
        const a = i === 0 ? 1 : APGD_MOMENTUM;
        const z = l1
          ? l1Step(s.xAdv, x, s.grad, s.stepSize, s.topk, eps)
          : project(tf.add(s.xAdv, tf.mul(steepestDirection(s.grad, norm), perExample(s.stepSize))), x, eps, norm);
        // The reference's L1 branch takes no momentum.
        const xNew = a === 1 || l1 ? z : project(tf.add(tf.add(s.xAdv, tf.mul(tf.sub(z, s.xAdv), a)), tf.mul(tf.sub(s.xAdv, s.xPrev), 1 - a)), x, eps, norm);
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
          topk: s.topk,
          spOld: s.spOld,
        };
        if (!checkpoint) return next;
        if (l1) {
          const spCurr = l0PerExample(tf.sub(next.xBest, x));
          const restart = tf.less(tf.div(spCurr, s.spOld), 0.95) as tf.Tensor1D;
          const decayed = tf.where(restart, tf.fill([x.shape[0]], eps), tf.div(s.stepSize, L1_STEP_DECAY));
          return {
            ...next,
            xAdv: selectPerExample(restart, next.xBest, xNew),
            grad: selectPerExample(restart, next.gradBest, grad),
            stepSize: tf.clipByValue(decayed, eps * L1_MIN_STEP_FRACTION, eps) as tf.Tensor1D,
            topk: tf.div(tf.div(spCurr, d), 1.5) as tf.Tensor1D,
            spOld: spCurr,
          };
        }
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
    xBest: tf.clone(state.xBest),
  }));
  for (const t of new Set(Object.values(state) as tf.Tensor[])) t.dispose();
  return out;
}

/**
 * The reference's `use_largereps` budget split: ⌈0.3N⌉, ⌈0.3N⌉ and the rest of N steps, ⌈·⌉ of the same
 * double product as the reference's math.ceil(.3 * N) (N = 100: 30, 30, 40).
 */
export function largeRepsSchedule(eps: number, steps: number): Array<{ eps: number; steps: number }> {
  const a = Math.ceil(0.3 * steps);
  return [
    { eps: 3 * eps, steps: a },
    { eps: 2 * eps, steps: a },
    { eps, steps: steps - 2 * a },
  ];
}

/** The start of apgdL1Schedule: x + t, t ~ N(0, I), plus its L1 correction at 3·eps (x_init += L1_projection(...)). */
export function largeRepsStart(x: tf.Tensor4D, eps: number, seed: number): tf.Tensor4D {
  return tf.tidy(() => {
    const x0 = tf.add(x, tf.randomNormal(x.shape, 0, 1, 'float32', seed)) as tf.Tensor4D;
    return tf.add(x0, l1Projection(x, tf.sub(x0, x) as tf.Tensor4D, 3 * eps)) as tf.Tensor4D;
  });
}

/**
 * L1 APGD with larger radii first (the reference's decr_eps_pgd): phases at 3·eps, 2·eps and eps
 * (largeRepsSchedule), each a warm-started run from the previous phase's best point projected onto its ball.
 * Only the last phase (at eps) decides which points are fooled. `x0` (default largeRepsStart) is the first
 * phase's start; onIteration counts iterations across the phases.
 */
export function apgdL1Schedule(
  model: ModelFn,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  lossFn: PerExampleLoss,
  opts: Omit<ApgdRunOptions, 'norm' | 'warmStart'>,
): ApgdRun {
  const phases = largeRepsSchedule(opts.eps, opts.steps);
  let start = opts.x0 ? tf.clone(opts.x0) : largeRepsStart(x, opts.eps, opts.seed);
  let offset = 0;
  for (let k = 0; ; k++) {
    const phase = phases[k]!;
    const at = offset;
    const hook = opts.onIteration;
    const run = apgdRunWithBest(model, x, y, lossFn, {
      ...opts,
      ...phase,
      norm: 'l1',
      x0: start,
      warmStart: true,
      onIteration: hook && ((info) => hook({ ...info, i: info.i + at })),
    });
    start.dispose();
    offset += phase.steps;
    if (k === phases.length - 1) {
      run.xBest.dispose();
      return { xAdv: run.xAdv, fooled: run.fooled, lossBest: run.lossBest };
    }
    tf.dispose([run.xAdv, run.fooled, run.lossBest]);
    start = run.xBest;
  }
}

function checkApgdOptions(who: string, x: tf.Tensor4D, y: tf.Tensor1D, opts: ApgdOptions): void {
  checkIterativeOptions(who, x, y, opts, 1);
  if (opts.rho !== undefined) checkRange(who, 'rho', opts.rho, 0, 1, false);
  if (opts.eotIter !== undefined) checkCount(who, 'eotIter', opts.eotIter, 1);
  if (opts.largeReps && opts.norm !== 'l1') throw new InputError(`${who}: largeReps is the L1 budget split, got norm '${opts.norm}'`);
  if (opts.largeReps && opts.steps < 3) throw new InputError(`${who}: largeReps needs steps >= 3 (three phases), got ${opts.steps}`);
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

  /**
   * Runs a block of `count` consecutive units on the robust examples, as `block` lays them out (row j·P + p: unit
   * `first + j` on the p-th robust example), and folds them in as the units run one after another would: the
   * first unit that fooled an example gives its output; for the others each unit in turn replaces the kept point
   * if its loss is higher (ties keep the earlier one). One download (which examples were fooled).
   */
  async run(block: Block, first: number, count: number): Promise<void> {
    const idx = indicesWhere(this.robust, 1);
    if (idx.length === 0) return;
    const p = idx.length;
    const xs = gatherRows(this.x, idx);
    const ys = gatherRows(this.y, idx);
    const res = block(xs, ys, idx, first, count);
    const [rowsX, rowsLoss, anyFooled] = tf.tidy(() => {
      let keptX = gatherRows(this.xAdv, idx);
      let keptLoss = gatherRows(this.lossBest, idx);
      let done = tf.zeros([p], 'bool') as tf.Tensor1D;
      for (let j = 0; j < count; j++) {
        const fooled = res.fooled.slice(j * p, p);
        const loss = res.lossBest.slice(j * p, p);
        // A unit only runs on what earlier units left robust: an example fooled earlier in the block is settled.
        const take = tf.logicalAnd(tf.logicalNot(done), tf.logicalOr(fooled, tf.greater(loss, keptLoss))) as tf.Tensor1D;
        keptX = selectPerExample(take, res.xAdv.slice([j * p, 0, 0, 0], [p, -1, -1, -1]), keptX);
        keptLoss = tf.where(take, loss, keptLoss) as tf.Tensor1D;
        done = tf.logicalOr(done, fooled) as tf.Tensor1D;
      }
      return [keptX, keptLoss, done] as const;
    });
    const fooled = await anyFooled.data();
    const newX = scatterRows(this.xAdv, idx, rowsX);
    const newLoss = scatterRows(this.lossBest, idx, rowsLoss);
    tf.dispose([xs, ys, res.xAdv, res.fooled, res.lossBest, rowsX, rowsLoss, anyFooled, this.xAdv, this.lossBest]);
    this.xAdv = newX;
    this.lossBest = newLoss;
    idx.forEach((row, k) => {
      if (fooled[k]) this.robust[row] = 0;
    });
  }

  /** How many examples are still robust. */
  robustCount(): number {
    return this.robust.reduce((a, v) => a + v, 0);
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

/**
 * Units `first … first + count − 1` run as one APGD run on P examples (xs, ys: the robust rows idx of the input):
 * count·P rows, unit-major (row j·P + p is unit first + j on example p).
 */
type Block = (xs: tf.Tensor4D, ys: tf.Tensor1D, idx: Int32Array, first: number, count: number) => ApgdRun;

/**
 * Runs `numUnits` units in order on what is still robust, as many consecutive units per block as fit
 * (robust examples × units ≤ maxRows, at least one unit); with `progress`, resumable after every block.
 * Examples fooled by a block are dropped before the next one.
 */
async function runSequence(
  model: ModelFn,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  numUnits: number,
  block: Block,
  maxRows: number,
  progress?: AttackProgress,
): Promise<AttackResult> {
  if (x.shape[0] === 0) return { xAdv: tf.clone(x), success: new Uint8Array(0) };
  const seq = new Sequence(model, x, y);
  try {
    await seq.init();
    const from = progress?.restored?.units ?? 0;
    if (progress?.restored) seq.restore(progress.restored);
    for (let u = from; u < numUnits;) {
      const count = Math.min(Math.max(Math.floor(maxRows / Math.max(seq.robustCount(), 1)), 1), numUnits - u);
      await seq.run(block, u, count);
      u += count;
      const done = u;
      await progress?.unitDone(done, () => seq.read(done));
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
  // Units: the restarts, one per block (maxRows 1), each on the examples the earlier ones left robust.
  const block: Block = (xs, ys, _idx, r) => {
    const lossFn: PerExampleLoss =
      loss === 'ce' ? (z) => crossEntropy(z, ys, { reduction: 'none' }) as tf.Tensor1D : (z) => dlrLoss(z, ys, { reduction: 'none' }) as tf.Tensor1D;
    const runOpts = { ...opts, seed: deriveSeed(opts.seed, r) };
    return opts.largeReps ? apgdL1Schedule(model, xs, ys, lossFn, runOpts) : apgdRun(model, xs, ys, lossFn, runOpts);
  };
  return runSequence(model, x, y, opts.restarts, block, 1, opts.progress);
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
 *
 * The units (target t, restart r), target-major, run in blocks: as many consecutive units as fit maxRows run as
 * ONE apgdRun on (robust examples × units) rows, each row with its own target class, so AutoAttack's 9 targets
 * cost 100 iterations of bigger ops instead of 900 when few examples are left (tfjs pays per op). Rows are
 * independent (inference mode) and an example's start is a function of (seed, t, r, its row in x) only, so the
 * result does not depend on how units are grouped: the fold in Sequence.run is the series' rule.
 */
export async function apgdT(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: ApgdTOptions): Promise<AttackResult> {
  checkApgdOptions('apgd-t', x, y, opts);
  if (opts.maxRows !== undefined) checkCount('apgd-t', 'maxRows', opts.maxRows, 1);
  if (x.shape[0] === 0) return { xAdv: tf.clone(x), success: new Uint8Array(0) };
  const probe = tf.tidy(() => model(x.slice([0, 0, 0, 0], [Math.min(1, x.shape[0]), -1, -1, -1])));
  const numClasses = probe.shape[1];
  probe.dispose();
  if (numClasses < 4) throw new InputError(`apgd-t: the targeted DLR loss needs at least 4 classes, the model has ${numClasses}`);
  const want = opts.nTargetClasses ?? APGD_TARGET_CLASSES;
  checkCount('apgd-t', 'nTargetClasses', want, 1);
  const numTargets = Math.min(want, numClasses - 1);
  const restarts = opts.restarts;
  const maxRows = opts.maxRows ?? blockRows(model, x.shape[0], Math.max(x.shape[0], APGD_T_MAX_ROWS));
  // Target t of example i: the (t+2)-th largest clean logit, as AutoAttack ranks them; flat [B·T], i·T + t.
  const targets = tf.tidy(
    () =>
      tf
        .topk(model(x), numTargets + 1)
        .indices.slice([0, 1], [-1, numTargets])
        .reshape([-1]) as tf.Tensor1D,
  );
  const block: Block = (xs, ys, idx, first, count) => {
    const p = idx.length;
    const rows = tf.tidy(() => {
      const at = tf.tensor1d(idx, 'int32');
      const targetAt = new Int32Array(count * p);
      const starts: tf.Tensor4D[] = [];
      for (let j = 0; j < count; j++) {
        const t = Math.floor((first + j) / restarts);
        const r = (first + j) % restarts;
        idx.forEach((row, k) => (targetAt[j * p + k] = row * numTargets + t));
        // The start noise is drawn for all B rows of x and the robust ones taken, so an example's start does
        // not depend on which others are still robust.
        const seed = deriveSeed(opts.seed, t, r);
        const start = () => (opts.largeReps ? largeRepsStart(x, opts.eps, seed) : apgdStart(x, opts.eps, opts.norm, seed));
        starts.push(tf.tidy(() => tf.gather(start(), at)));
      }
      return {
        xs: tf.tile(xs, [count, 1, 1, 1]) as tf.Tensor4D,
        ys: tf.tile(ys, [count]) as tf.Tensor1D,
        target: tf.gather(targets, tf.tensor1d(targetAt, 'int32')) as tf.Tensor1D,
        x0: (count === 1 ? starts[0]! : tf.concat(starts, 0)) as tf.Tensor4D,
      };
    });
    try {
      const lossFn: PerExampleLoss = (z) => dlrTargetedLoss(z, rows.ys, rows.target, { reduction: 'none' }) as tf.Tensor1D;
      const runOpts = { eps: opts.eps, steps: opts.steps, rho: opts.rho, eotIter: opts.eotIter, seed: opts.seed, x0: rows.x0 };
      return opts.largeReps
        ? apgdL1Schedule(model, rows.xs, rows.ys, lossFn, runOpts)
        : apgdRun(model, rows.xs, rows.ys, lossFn, { ...runOpts, norm: opts.norm });
    } finally {
      tf.dispose([rows.xs, rows.ys, rows.target, rows.x0]);
    }
  };
  try {
    return await runSequence(model, x, y, numTargets * restarts, block, maxRows, opts.progress);
  } finally {
    targets.dispose();
  }
}
