/**
 * FGSM (Goodfellow et al. 2015): one step of size eps along the steepest-ascent direction of the
 * cross-entropy at x, sign(∇) for L-inf (the original) or ∇/‖∇‖₂ for L2, then clamped to [0, 1].
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../losses/index.js';
import { InputError } from '../errors.js';
import { correctMask, lossAndGrad } from './grad.js';
import { project, steepestDirection } from './project.js';
import type { AttackResult, ModelFn, Norm } from './types.js';
import { checkInputs, checkNonNegative, checkNorm } from './validate.js';

export interface FgsmOptions {
  eps: number;
  norm?: Norm;
}

export async function fgsm(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: FgsmOptions): Promise<AttackResult> {
  const norm = opts.norm ?? 'linf';
  checkInputs('fgsm', x, y);
  checkNorm('fgsm', norm);
  if (norm === 'l1') throw new InputError(`fgsm: norm 'l1' is served by the AutoAttack stages (apgd-ce, apgd-t, fab, fab-t, square), not FGSM`);
  checkNonNegative('fgsm', 'eps', opts.eps);
  if (x.shape[0] === 0) return { xAdv: tf.clone(x), success: new Uint8Array(0) };
  const xAdv = tf.tidy(() => {
    const { grad } = lossAndGrad(model, (z) => crossEntropy(z, y, { reduction: 'none' }) as tf.Tensor1D, x);
    // project() only clamps here: a step of exactly eps is already on the ball.
    return project(tf.add(x, tf.mul(steepestDirection(grad, norm), opts.eps)), x, opts.eps, norm);
  });
  const wrongT = tf.tidy(() => tf.cast(tf.logicalNot(correctMask(model(xAdv), y)), 'int32'));
  const success = Uint8Array.from(await wrongT.data());
  wrongT.dispose();
  return { xAdv, success };
}
