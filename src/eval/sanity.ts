/**
 * Sanity checks run before an evaluation (AutoAttack's checks.py, implemented in src/attacks/checks.ts): each
 * finding is a warning in the report, because each one means a robust accuracy could be an overestimate.
 */
import type * as tf from '@tensorflow/tfjs';
import { APGD_TARGET_CLASSES } from '../attacks/apgd.js';
import { checkDeterminism, checkNumClasses, checkProbabilityOutputs, checkZeroGradients } from '../attacks/checks.js';
import type { ModelFn } from '../attacks/types.js';
import type { EvalAttack } from './types.js';

const TARGETED: readonly EvalAttack[] = ['apgd-t', 'fab-t', 'autoattack'];

export async function evalSanityWarnings(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: { numClasses: number; attack: EvalAttack }): Promise<string[]> {
  const found = [
    await checkZeroGradients(model, x, y),
    await checkProbabilityOutputs(model, x),
    await checkDeterminism(model, x),
    // The class count only matters to the targeted attacks.
    TARGETED.includes(opts.attack) ? checkNumClasses(opts.numClasses, APGD_TARGET_CLASSES) : null,
  ];
  return found.filter((w): w is string => w !== null);
}
