/**
 * AutoAttack-style sanity checks. Each returns a warning string (or null): they flag setups in which a
 * robustness number would be unreliable, they never change the evaluation.
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../losses/index.js';
import { APGD_TARGET_CLASSES } from './apgd.js';
import { lossAndGrad } from './grad.js';
import type { StageResult } from './autoattack.js';
import type { ModelFn } from './types.js';

/**
 * Gradient masking: examples whose input gradient of the cross-entropy is exactly zero give gradient-based
 * attacks nothing to follow. Warns when their fraction exceeds `threshold` (AutoAttack warns on any, threshold 0).
 */
export async function checkZeroGradients(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, threshold = 0): Promise<string | null> {
  if (x.shape[0] === 0) return null;
  const zeroT = tf.tidy(() => {
    const { grad } = lossAndGrad(model, (z) => crossEntropy(z, y, { reduction: 'none' }) as tf.Tensor1D, x);
    return tf.sum(tf.cast(tf.equal(tf.max(tf.abs(grad.reshape([x.shape[0], -1])), 1), 0), 'float32'));
  });
  const zero = (await zeroT.data())[0]!;
  zeroT.dispose();
  const fraction = zero / x.shape[0];
  if (fraction <= threshold) return null;
  return `${zero} of ${x.shape[0]} points (${(100 * fraction).toFixed(1)}%) have an all-zero input gradient: gradient-based attacks (APGD, FAB) may overestimate robustness there`;
}

/** The model should return logits; rows that are non-negative and sum to 1 look like probabilities (softmax applied). */
export async function checkProbabilityOutputs(model: ModelFn, x: tf.Tensor4D, tolerance = 1e-5): Promise<string | null> {
  if (x.shape[0] === 0) return null;
  const statsT = tf.tidy(() => {
    const z = model(x);
    return tf.stack([tf.min(z), tf.max(tf.abs(tf.sub(tf.sum(z, 1), 1)))]);
  });
  const [min, worstSum] = Array.from(await statsT.data());
  statsT.dispose();
  if (min! >= 0 && worstSum! <= tolerance) {
    return 'the model outputs look like probabilities (non-negative rows summing to 1): pass logits, not softmax outputs, or the cross-entropy and DLR losses are wrong';
  }
  return null;
}

/** Two forward passes on the same input must agree: randomness (dropout, train-mode batch norm) makes attacks unreliable. */
export async function checkDeterminism(model: ModelFn, x: tf.Tensor4D, tolerance = 1e-5): Promise<string | null> {
  if (x.shape[0] === 0) return null;
  const diffT = tf.tidy(() => tf.max(tf.abs(tf.sub(model(x), model(x)))));
  const diff = (await diffT.data())[0]!;
  diffT.dispose();
  if (diff > tolerance) {
    return `the model is not deterministic: two forward passes on the same inputs differ by up to ${diff}; use inference mode (no dropout, batch-norm running statistics) or an attack for randomized defenses`;
  }
  return null;
}

/**
 * A black-box attack (Square) fooling points that every white-box stage before it missed suggests the gradients
 * are uninformative (gradient masking). Takes the per-stage results of autoAttack.
 */
export function checkBlackBoxStronger(stages: ReadonlyArray<Pick<StageResult, 'name' | 'blackBox' | 'fooled'>>): string | null {
  const sawWhiteBox = stages.some((s) => !s.blackBox);
  const culprits = stages.filter((s, i) => s.blackBox && s.fooled > 0 && stages.slice(0, i).some((w) => !w.blackBox));
  if (!sawWhiteBox || culprits.length === 0) return null;
  const total = culprits.reduce((a, s) => a + s.fooled, 0);
  return `${culprits.map((s) => s.name).join(', ')} (black-box) fooled ${total} points that the white-box attacks missed: the gradients may be masked, so the robustness evaluation may be unreliable`;
}

/** Targeted stages need numTargetClasses + 1 classes; fewer means fewer targets than the standard protocol. */
export function checkNumClasses(numClasses: number, numTargetClasses: number): string | null {
  if (numClasses >= numTargetClasses + 1) return null;
  return `the model has ${numClasses} classes: APGD-T and FAB-T will use ${Math.max(numClasses - 1, 0)} target classes instead of ${numTargetClasses}${numClasses < 4 ? ', and APGD-T (targeted DLR) needs at least 4 classes' : ''}`;
}

/**
 * Runs the model-only checks (zero gradients, probabilities, determinism, class count) and returns every warning.
 * `nTargetClasses` is the largest target-class count of the stages to run (default AutoAttack's 9); null when no
 * stage is targeted, which skips the class-count check.
 */
export async function sanityChecks(
  model: ModelFn,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  opts: { zeroGradientThreshold?: number; nTargetClasses?: number | null } = {},
): Promise<string[]> {
  if (x.shape[0] === 0) return [];
  const probe = tf.tidy(() => model(x.slice([0, 0, 0, 0], [1, -1, -1, -1])));
  const numClasses = probe.shape[1];
  probe.dispose();
  const warnings = [
    await checkZeroGradients(model, x, y, opts.zeroGradientThreshold ?? 0),
    await checkProbabilityOutputs(model, x),
    await checkDeterminism(model, x),
    opts.nTargetClasses === null ? null : checkNumClasses(numClasses, opts.nTargetClasses ?? APGD_TARGET_CLASSES),
  ];
  return warnings.filter((w): w is string => w !== null);
}
