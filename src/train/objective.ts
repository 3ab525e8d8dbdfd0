/**
 * The outer-minimisation objectives, per batch (x, y) with x' from the inner attack:
 *   ikl-at:   L = CE(z, y) + IKL(z, z'; s̄_y, α, β, γ, τ)      z = f(x), z' = f(x'), both in train mode
 *   trades:   L = CE(z, y) + β_trades · KL(s ‖ s')
 *   pgd-at:   L = CE(f(x'), y)
 *   standard: L = CE(f(x), y)
 *   ikl-kd / kd / dkd: L = iklKdLoss / kdLoss / dkdLoss(f(x), t(x), y)   t the teacher, inference mode, constant
 *     with distill.adversarial (RSLAD/ARD recipe): L = ...Loss(f(x'), t(x), y), x' crafted against f itself
 * For ikl-at and trades the clean and adversarial batches go through the model in two separate train-mode
 * passes (each updates the BN running statistics once), as the reference does; concatenating them would
 * change the batch statistics. The order is the reference's, adversarial then clean (train_dkl_cifar10.py and
 * the DKL repo's TRADES baseline, train_trades_cifar.py: `model(x_adv), model(x_natural)`): the loss is the
 * same either way, but the BN running statistics, which every inference-mode pass uses, end with the clean
 * batch's update. (The original TRADES code runs clean, adversarial, clean; see docs/METHOD.md.)
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, dkdLoss, iklKdLoss, iklLoss, kdLoss, klLoss } from '../losses/index.js';

import type { ObjectiveName } from './names.js';
export { OBJECTIVES, type ObjectiveName } from './names.js';

/** Field names as in the config's `objective` section, so that section can be passed as is. */
export interface ObjectiveOptions {
  type: ObjectiveName;
  /** IKL: weight of the soft CE (the role of TRADES' β). */
  alpha: number;
  /** IKL: weight of the wMSE. */
  beta: number;
  /** GKL power on the class-wise weights (1 = IKL). */
  gamma: number;
  /** GKL temperature of the soft CE (1 = IKL). */
  temperature: number;
  /** TRADES: weight of KL(s ‖ s') (TRADES' β). */
  tradesBeta: number;
  /** Label smoothing of the CE terms (0 = none). */
  labelSmoothing: number;
  /**
   * ikl-at and trades: which train-mode pass runs first (default adversarial, as the DKL code); clean-first is
   * DM-Improves-AT's TRADES (`model(x_natural)`, then `model(x_adv)`): the BN running statistics end with x'.
   */
  passOrder?: 'adversarial-first' | 'clean-first';
}

/** [z', z] in the configured order of the two train-mode passes. */
function bothPasses(forward: TrainForward, x: tf.Tensor4D, xAdv: tf.Tensor4D, order: ObjectiveOptions['passOrder']): [tf.Tensor2D, tf.Tensor2D] {
  if (order === 'clean-first') {
    const logitsNat = forward(x);
    return [forward(xAdv), logitsNat];
  }
  const logitsAdv = forward(xAdv);
  return [logitsAdv, forward(x)];
}

/** The config's `distill` section. */
export interface DistillOptions {
  alpha: number;
  beta: number;
  temperature: number;
  temperature2: number;
  classPrior: boolean;
  warmupEpochs: number;
  ceWeight?: number;
  kdWeight: number;
  adversarial: boolean;
}

/** What the KD objectives need besides the student: the teacher's logits on the clean batch and the step's settings. */
export interface KdInputs {
  /** t(x), B×C, computed in inference mode outside any gradient tape. */
  logitsTeacher: tf.Tensor2D;
  /** GI class prior rows s̄_{y_b} (distill.classPrior), B×C. */
  prior?: tf.Tensor2D;
  /** warmupFactor(epoch, distill.warmupEpochs). */
  warmup: number;
  distill: DistillOptions;
}

/** A forward pass in train mode (batch statistics, BN running statistics updated). */
export type TrainForward = (x: tf.Tensor4D) => tf.Tensor2D;

export interface ObjectiveParts {
  /** CE on the clean batch (absent for pgd-at, which never forwards x). */
  natural?: tf.Scalar;
  /** The adversarial term (IKL, β·KL or CE(f(x'))); absent for standard training. */
  robust?: tf.Scalar;
  total: tf.Scalar;
  /** Clean logits z (class-weight accumulation, train accuracy); absent for pgd-at. */
  logitsNat?: tf.Tensor2D;
  /** Adversarial logits z'; absent for standard training. */
  logitsAdv?: tf.Tensor2D;
}

/**
 * DKL's AutoAugment pair (train_dkl_cifar100.py --aug autoaug): the batch holds B views A then B views B of the
 * same images. CE runs over all 2B rows; the robust term is IKL(A) + gamma·IKL(B), each the mean over its B rows
 * with its own rows of the class-wise weights.
 */
export interface PairOptions {
  gamma: number;
}

/**
 * Computes the objective. `classPrior` is the B×C matrix of class-wise weights s̄_{y_b} (ClassWeights.gather(y)),
 * used by ikl-at only; without it IKL falls back to the per-sample weights softmax(z) (DKL-style). Every returned tensor is owned by the caller (call inside tf.tidy or dispose them).
 */
export function objective(
  forward: TrainForward,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  xAdv: tf.Tensor4D | undefined,
  classPrior: tf.Tensor2D | undefined,
  opts: ObjectiveOptions,
  kd?: KdInputs,
  pair?: PairOptions,
): ObjectiveParts {
  const ce = (logits: tf.Tensor2D): tf.Scalar => crossEntropy(logits, y, { labelSmoothing: opts.labelSmoothing });
  const needAdv = (): tf.Tensor4D => {
    if (!xAdv) throw new Error(`objective ${opts.type}: needs adversarial inputs`);
    return xAdv;
  };
  switch (opts.type) {
    case 'standard': {
      const logitsNat = forward(x);
      const natural = ce(logitsNat);
      return { natural, total: natural, logitsNat };
    }
    case 'pgd-at': {
      const logitsAdv = forward(needAdv());
      const robust = ce(logitsAdv);
      return { robust, total: robust, logitsAdv };
    }
    case 'trades': {
      const [logitsAdv, logitsNat] = bothPasses(forward, x, needAdv(), opts.passOrder);
      const natural = ce(logitsNat);
      const robust = tf.mul(klLoss(logitsNat, logitsAdv), opts.tradesBeta) as tf.Scalar;
      return { natural, robust, total: tf.add(natural, robust) as tf.Scalar, logitsNat, logitsAdv };
    }
    case 'ikl-at': {
      const [logitsAdv, logitsNat] = bothPasses(forward, x, needAdv(), opts.passOrder);
      const natural = ce(logitsNat);
      const ikl = (nat: tf.Tensor2D, adv: tf.Tensor2D, prior: tf.Tensor2D | undefined): tf.Scalar =>
        iklLoss(nat, adv, { alpha: opts.alpha, beta: opts.beta, classPrior: prior, gamma: opts.gamma, temperature: opts.temperature });
      let robust: tf.Scalar;
      if (pair) {
        const [b, c] = logitsNat.shape;
        if (b % 2 !== 0) throw new Error(`objective: the AutoAugment pair needs an even number of rows (views A then B), got ${b}`);
        const half = (t: tf.Tensor2D, k: number) => tf.slice(t, [k * (b / 2), 0], [b / 2, c]) as tf.Tensor2D;
        const priorHalf = (k: number) => (classPrior ? half(classPrior, k) : undefined);
        robust = tf.add(
          ikl(half(logitsNat, 0), half(logitsAdv, 0), priorHalf(0)),
          tf.mul(pair.gamma, ikl(half(logitsNat, 1), half(logitsAdv, 1), priorHalf(1))),
        ) as tf.Scalar;
      } else {
        robust = ikl(logitsNat, logitsAdv, classPrior);
      }
      return { natural, robust, total: tf.add(natural, robust) as tf.Scalar, logitsNat, logitsAdv };
    }
    case 'ikl-kd':
    case 'kd':
    case 'dkd': {
      if (!kd) throw new Error(`objective ${opts.type}: needs the teacher's logits`);
      const d = kd.distill;
      const adversarial = d.adversarial;
      const logitsStudent = forward(adversarial ? needAdv() : x);
      const t = kd.logitsTeacher;
      const ceWeight = d.ceWeight ?? (opts.type === 'kd' ? 0.1 : 1);
      // The losses include their CE term; `natural` reports CE alone (weighted), `robust` the distillation term.
      const total =
        opts.type === 'ikl-kd'
          ? iklKdLoss(logitsStudent, t, y, {
              alpha: d.alpha,
              beta: d.beta,
              temperature: d.temperature,
              temperature2: d.temperature2,
              classPrior: d.classPrior ? kd.prior : undefined,
              ceWeight,
              warmup: kd.warmup,
            })
          : opts.type === 'kd'
            ? kdLoss(logitsStudent, t, y, { temperature: d.temperature, ceWeight, kdWeight: d.kdWeight })
            : dkdLoss(logitsStudent, t, y, { alpha: d.alpha, beta: d.beta, temperature: d.temperature, ceWeight, warmup: kd.warmup });
      const natural = tf.mul(ceWeight, crossEntropy(logitsStudent, y)) as tf.Scalar;
      const robust = tf.sub(total, natural) as tf.Scalar;
      return adversarial ? { natural, robust, total, logitsAdv: logitsStudent } : { natural, robust, total, logitsNat: logitsStudent };
    }
    default:
      throw new Error(`objective: unknown type '${String(opts.type)}'`);
  }
}

/** Disposes every tensor of an ObjectiveParts. */
export function disposeParts(p: ObjectiveParts): void {
  const all: (tf.Tensor | undefined)[] = [p.natural, p.robust, p.total, p.logitsNat, p.logitsAdv];
  tf.dispose(all.filter((t): t is tf.Tensor => t !== undefined));
}
