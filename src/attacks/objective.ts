/** The losses attacks maximise, as per-example functions of the logits (all from src/losses). */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, cwMarginLoss, iklLoss, klLoss } from '../losses/index.js';
import { InputError } from '../errors.js';
import type { PerExampleLoss } from './grad.js';
import { ATTACK_LOSSES, type AttackLoss, type ModelFn } from './types.js';

export { ATTACK_LOSSES, type AttackLoss } from './types.js';

export interface AttackLossOptions {
  /**
   * ce: cross-entropy to y (Madry PGD). cw: CW margin. kl: KL(f(x) ‖ f(x')) to the clean prediction (TRADES inner
   * maximisation). ikl: the IKL loss between clean and adversarial logits (IKL-AT inner maximisation).
   */
  loss?: AttackLoss;
  /** ikl: weight of the soft cross-entropy term (the paper's α). */
  alpha?: number;
  /** ikl: weight of the weighted-MSE term (the paper's β). */
  beta?: number;
  /** ikl: the class-wise global weights s̄_{y_b} of each example, B×C (rows of the class-prior matrix picked by label). */
  classPrior?: tf.Tensor2D;
}

/** A per-example attack loss plus whatever it holds (the detached clean logits for kl/ikl). */
export interface AttackObjective {
  fn: PerExampleLoss;
  dispose(): void;
}

/**
 * Builds the loss an attack maximises. For kl/ikl the clean logits are computed once, outside any gradient
 * tape, so they act as a constant target (TRADES detaches them too).
 */
export function attackObjective(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: AttackLossOptions, who = 'attack'): AttackObjective {
  const loss = opts.loss ?? 'ce';
  switch (loss) {
    case 'ce':
      return { fn: (logits) => crossEntropy(logits, y, { reduction: 'none' }) as tf.Tensor1D, dispose: () => {} };
    case 'cw':
      return { fn: (logits) => cwMarginLoss(logits, y, { reduction: 'none' }) as tf.Tensor1D, dispose: () => {} };
    case 'kl': {
      const clean = tf.tidy(() => model(x));
      return { fn: (logits) => klLoss(clean, logits, { reduction: 'none' }) as tf.Tensor1D, dispose: () => clean.dispose() };
    }
    case 'ikl': {
      const { alpha, beta, classPrior } = opts;
      if (alpha === undefined || beta === undefined || !Number.isFinite(alpha) || !Number.isFinite(beta)) {
        throw new InputError(`${who}: loss 'ikl' needs finite alpha and beta, got alpha=${alpha}, beta=${beta}`);
      }
      if (!classPrior || classPrior.rank !== 2 || classPrior.shape[0] !== x.shape[0]) {
        throw new InputError(
          `${who}: loss 'ikl' needs classPrior of shape [${x.shape[0]}, C] (one class-weight row per example), got ${classPrior ? `[${classPrior.shape.join(', ')}]` : 'none'}`,
        );
      }
      const clean = tf.tidy(() => model(x));
      return {
        fn: (logits) => iklLoss(clean, logits, { alpha, beta, classPrior, reduction: 'none' }) as tf.Tensor1D,
        dispose: () => clean.dispose(),
      };
    }
    default:
      throw new InputError(`${who}: loss expected one of ${ATTACK_LOSSES.join('|')}, got '${String(loss)}'`);
  }
}
