import type * as tf from '@tensorflow/tfjs';
import type { AttackProgress } from './progress.js';

/**
 * A classifier as the attacks see it: inputs in [0, 1] (NHWC) -> logits, inference mode, no state change.
 * `activationBytesPerRow` (set by the inference executor) is the activation memory of one input row in a forward;
 * attacks that batch independent work size their default blocks with it (block-rows.ts).
 */
export type ModelFn = ((x: tf.Tensor4D) => tf.Tensor2D) & {
  readonly activationBytesPerRow?: number;
  /**
   * Set by the inference executor: the logits and ∂L/∂x given ∂L/∂logits, by the layers' own backwards instead of
   * tfjs' tape (attacks/grad.ts uses it; the same values).
   */
  readonly forwardBackward?: (x: tf.Tensor4D, outputGrad: (logits: tf.Tensor2D) => tf.Tensor2D) => { logits: tf.Tensor2D; grad: tf.Tensor4D };
};

/** The threat models: L-inf, L2, and L1 (AutoAttack's third; APGD, FAB and Square only). */
export type Norm = 'linf' | 'l2' | 'l1';

export const PGD_STARTS = ['uniform', 'trades', 'none', 'uniform-unclamped'] as const;
/**
 * uniform: uniform in the eps-ball. trades: x + 0.001·N(0, I), unclamped (TRADES' training attack). none: x
 * itself. uniform-unclamped (L-inf only): x + U[−eps, eps]^d not clamped to [0, 1], the start of TRADES'
 * PGD-20 evaluation (pgd_attack_cifar10.py, `--random`); the first step's projection and clamp fix it.
 */
export type PgdStart = (typeof PGD_STARTS)[number];

/** AutoAttack's versions (attacks/autoattack.ts holds their stage lists) and the stages a custom list may name. */
export const AUTOATTACK_VERSION_NAMES = ['standard', 'plus', 'rand'] as const;
export type AutoAttackVersion = (typeof AUTOATTACK_VERSION_NAMES)[number];
export const AUTOATTACK_STAGE_NAMES = ['apgd-ce', 'apgd-dlr', 'apgd-t', 'fab', 'fab-t', 'square'] as const;
export type AutoAttackStageName = (typeof AUTOATTACK_STAGE_NAMES)[number];

/** The losses an attack can maximise (src/attacks/objective.ts). */
export const ATTACK_LOSSES = ['ce', 'cw', 'kl', 'ikl'] as const;
export type AttackLoss = (typeof ATTACK_LOSSES)[number];

/** What every randomised attack takes: the threat model and the seed all its random choices derive from. */
export interface BaseAttackOptions {
  eps: number;
  norm: Norm;
  seed: number;
  /** Resumable progress by unit (restart, target class); attacks without units ignore it (src/attacks/progress.ts). */
  progress?: AttackProgress;
}

/** The iterative white-box attacks (PGD, APGD). */
export interface AttackOptions extends BaseAttackOptions {
  /** The iteration budget; every attack calls it `steps` (Square: queries). */
  steps: number;
  /** Absolute step size (PGD/FGSM). */
  stepSize?: number;
  restarts: number;
}

export interface AttackResult {
  /** Adversarial inputs, same shape as x, inside the eps-ball and [0, 1]. Caller disposes. */
  xAdv: tf.Tensor4D;
  /** 1 where the model misclassifies xAdv (the attack succeeded or the point was already wrong). */
  success: Uint8Array;
}
