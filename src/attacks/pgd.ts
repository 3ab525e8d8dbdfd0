/**
 * Projected gradient descent (Madry et al. 2018) in L-inf and L2, also the inner maximisation of TRADES and
 * IKL-AT training: x' ← Π_{B(x, eps) ∩ [0,1]}(x' + stepSize · dir(∇ₓ' L)), dir = sign (L-inf) or g/‖g‖₂ (L2).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { correctMask, lossAndGrad, type PerExampleLoss } from './grad.js';
import { attackObjective, type AttackLossOptions } from './objective.js';
import { deriveSeed } from '../rng.js';
import { restoredArray } from './progress.js';
import { project, selectPerExample, steepestDirection, tradesStart, uniformBallStart } from './project.js';
import { PGD_STARTS, type AttackOptions, type AttackResult, type ModelFn, type Norm, type PgdStart } from './types.js';
import { checkIterativeOptions, checkNonNegative } from './validate.js';

export { PGD_STARTS, type PgdStart } from './types.js';

export interface PgdOptions extends AttackOptions, AttackLossOptions {
  /** Default 'uniform'. */
  start?: PgdStart;
  /**
   * Freeze an example as soon as the current iterate is misclassified (its update is dropped), so a found
   * adversarial is never walked back. Default false: the textbook PGD that returns the last iterate.
   */
  earlyStop?: boolean;
}

/** Madry et al.'s rule when no step size is given: 2.5·eps/steps lets the walk reach the boundary from any start. */
export function defaultStepSize(eps: number, steps: number): number {
  return steps > 0 ? (2.5 * eps) / steps : 0;
}

function checkPgdOptions(who: string, x: tf.Tensor4D, y: tf.Tensor1D, opts: PgdOptions): void {
  checkIterativeOptions(who, x, y, opts, 0);
  if (opts.norm === 'l1') throw new InputError(`${who}: norm 'l1' is served by the AutoAttack stages (apgd-ce, apgd-t, fab, fab-t, square), not PGD`);
  if (opts.stepSize !== undefined) checkNonNegative(who, 'stepSize', opts.stepSize);
  if (opts.start !== undefined && !PGD_STARTS.includes(opts.start)) {
    throw new InputError(`${who}: start expected one of ${PGD_STARTS.join('|')}, got '${String(opts.start)}'`);
  }
  if (opts.start === 'uniform-unclamped' && opts.norm !== 'linf')
    throw new InputError(`${who}: start 'uniform-unclamped' is L-inf only, got norm '${opts.norm}'`);
}

function startPoint(x: tf.Tensor4D, eps: number, norm: Norm, start: PgdStart, seed: number): tf.Tensor4D {
  if (start === 'uniform') return uniformBallStart(x, eps, norm, seed);
  if (start === 'trades') return tradesStart(x, seed);
  if (start === 'uniform-unclamped') return tf.tidy(() => tf.add(x, tf.randomUniform(x.shape, -eps, eps, 'float32', seed)) as tf.Tensor4D);
  return tf.clone(x);
}

/** One PGD step: a single forward/backward pass in one tidy, no host synchronisation. */
export function pgdStep(
  model: ModelFn,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  xAdv: tf.Tensor4D,
  lossFn: PerExampleLoss,
  step: { eps: number; norm: Norm; stepSize: number; earlyStop?: boolean },
): tf.Tensor4D {
  return tf.tidy(() => {
    const { grad, logits } = lossAndGrad(model, lossFn, xAdv);
    const moved = project(tf.add(xAdv, tf.mul(steepestDirection(grad, step.norm), step.stepSize)), x, step.eps, step.norm);
    if (!step.earlyStop) return moved;
    // The current iterate is already adversarial: keep it (it stays adversarial, so no extra state is needed).
    return selectPerExample(correctMask(logits, y), moved, xAdv);
  });
}

function runPgd(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, lossFn: PerExampleLoss, opts: PgdOptions, seed: number): tf.Tensor4D {
  if (x.shape[0] === 0) return tf.clone(x);
  const stepSize = opts.stepSize ?? defaultStepSize(opts.eps, opts.steps);
  let xAdv = startPoint(x, opts.eps, opts.norm, opts.start ?? 'uniform', seed);
  for (let t = 0; t < opts.steps; t++) {
    const next = pgdStep(model, x, y, xAdv, lossFn, { eps: opts.eps, norm: opts.norm, stepSize, earlyStop: opts.earlyStop });
    xAdv.dispose();
    xAdv = next;
  }
  // A no-op after any step; makes steps = 0 (and the unclamped TRADES start) valid too.
  const out = project(xAdv, x, opts.eps, opts.norm);
  xAdv.dispose();
  return out;
}

/** The seed of restart r: restart 0 uses the seed itself, so restarts = 1 equals pgdPerturb with the same seed. */
export function restartSeed(seed: number, r: number): number {
  return r === 0 ? seed : deriveSeed(seed, r);
}

/**
 * A single PGD run (one start, no success bookkeeping): the adversarial inputs only, synchronous and without any
 * data download, so a training step can call it inside its own code path. `restarts` is ignored here.
 * Training-time use (TRADES / IKL-AT): `{ start: 'trades', steps: 5, stepSize: epsT / 2, eps: epsT, loss: 'kl' | 'ikl' }`.
 */
export function pgdPerturb(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: PgdOptions): tf.Tensor4D {
  checkPgdOptions('pgd', x, y, opts);
  if (x.shape[0] === 0) return tf.clone(x);
  const objective = attackObjective(model, x, y, opts, 'pgd');
  try {
    return runPgd(model, x, y, objective.fn, opts, opts.seed);
  } finally {
    objective.dispose();
  }
}

/**
 * PGD with restarts. Restart r starts from seed deriveSeed(seed, r). Per example the result is the first restart
 * whose output is misclassified; if none is, the output with the highest attack loss.
 * Resumable (src/attacks/progress.ts): unit r is restart r; the state is the best-so-far xAdv, its attack loss
 * and success (the loss decides between later restarts).
 */
export async function pgd(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: PgdOptions): Promise<AttackResult> {
  checkPgdOptions('pgd', x, y, opts);
  if (x.shape[0] === 0) return { xAdv: tf.clone(x), success: new Uint8Array(0) };
  const objective = attackObjective(model, x, y, opts, 'pgd');
  const progress = opts.progress;
  const n = x.shape[0];
  let best: tf.Tensor4D | undefined;
  let bestLoss: tf.Tensor1D | undefined;
  let bestSuccess: tf.Tensor1D | undefined;
  try {
    const restored = progress?.restored;
    if (restored) {
      best = tf.tensor4d(restoredArray(restored, 'xAdv', Float32Array, x.size), x.shape);
      bestLoss = tf.tensor1d(restoredArray(restored, 'loss', Float32Array, n));
      bestSuccess = tf.tensor1d(restoredArray(restored, 'success', Uint8Array, n), 'bool');
    }
    for (let r = restored?.units ?? 0; r < opts.restarts; r++) {
      if (bestSuccess && (await bestSuccess.data()).every((v) => v !== 0)) break;
      const xr = runPgd(model, x, y, objective.fn, opts, restartSeed(opts.seed, r));
      const [lossR, successR] = tf.tidy(() => {
        const logits = model(xr);
        return [objective.fn(logits), tf.logicalNot(correctMask(logits, y))] as const;
      });
      if (!best || !bestLoss || !bestSuccess) {
        best = xr;
        bestLoss = lossR;
        bestSuccess = successR;
      } else {
        const [b, bl, bs] = tf.tidy(() => {
          const take = tf.logicalAnd(tf.logicalNot(bestSuccess!), tf.logicalOr(successR, tf.greater(lossR, bestLoss!))) as tf.Tensor1D;
          return [
            selectPerExample(take, xr, best!),
            tf.where(take, lossR, bestLoss!) as tf.Tensor1D,
            tf.logicalOr(bestSuccess!, successR) as tf.Tensor1D,
          ] as const;
        });
        tf.dispose([best, bestLoss, bestSuccess, xr, lossR, successR]);
        best = b;
        bestLoss = bl;
        bestSuccess = bs;
      }
      const [xb, lb, sb] = [best, bestLoss, bestSuccess];
      await progress?.unitDone(r + 1, async () => ({
        units: r + 1,
        arrays: {
          xAdv: Float32Array.from(await xb.data()),
          loss: Float32Array.from(await lb.data()),
          success: Uint8Array.from(await sb.data()),
        },
      }));
    }
    const success = Uint8Array.from(await bestSuccess!.data());
    const xAdv = best!;
    best = undefined;
    return { xAdv, success };
  } finally {
    for (const t of [best, bestLoss, bestSuccess]) t?.dispose();
    objective.dispose();
  }
}
