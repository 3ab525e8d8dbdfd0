/**
 * The outer-minimisation objectives, per batch (x, y) with x' from the inner attack:
 *   ikl-at:   L = CE(z, y) + IKL(z, z'; s̄_y, α, β, γ, τ)      z = f(x), z' = f(x'), both in train mode
 *   trades:   L = CE(z, y) + β_trades · KL(s ‖ s')
 *   pgd-at:   L = CE(f(x'), y)
 *   standard: L = CE(f(x), y)
 * For ikl-at and trades the clean and adversarial batches go through the model in two separate train-mode
 * passes (each updates the BN running statistics once), as the reference does; concatenating them would
 * change the batch statistics.
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, iklLoss, klLoss } from '../losses/index.js';

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
      const logitsNat = forward(x);
      const logitsAdv = forward(needAdv());
      const natural = ce(logitsNat);
      const robust = tf.mul(klLoss(logitsNat, logitsAdv), opts.tradesBeta) as tf.Scalar;
      return { natural, robust, total: tf.add(natural, robust) as tf.Scalar, logitsNat, logitsAdv };
    }
    case 'ikl-at': {
      const logitsNat = forward(x);
      const logitsAdv = forward(needAdv());
      const natural = ce(logitsNat);
      const robust = iklLoss(logitsNat, logitsAdv, {
        alpha: opts.alpha,
        beta: opts.beta,
        classPrior,
        gamma: opts.gamma,
        temperature: opts.temperature,
      });
      return { natural, robust, total: tf.add(natural, robust) as tf.Scalar, logitsNat, logitsAdv };
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
