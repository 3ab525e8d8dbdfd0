/** The validity numbers of adversarial inputs, computed from tensors by the attacks' own validity check. */
import type * as tf from '@tensorflow/tfjs';
import { validityLine } from '../attacks/validity.js';
import type { Norm } from '../attacks/types.js';
import type { Validity } from './types.js';
import { EMPTY_VALIDITY } from './validity.js';

/**
 * Validity of one batch of adversarial inputs against their clean originals. Throws (InvalidAdversarialError,
 * exit 1) when an input leaves the eps-ball or [0, 1] or is not finite: that is an attack bug, and a robust
 * accuracy computed from such inputs must not be printed.
 */
export async function measureValidity(x: tf.Tensor4D, xAdv: tf.Tensor4D, opts: { eps: number; norm: Norm; attack: string }): Promise<Validity> {
  if (x.shape[0] === 0) return { ...EMPTY_VALIDITY };
  const v = await validityLine(x, xAdv, opts);
  return { max_perturbation: v.maxPerturbation, nan_count: v.nanCount, min: v.min, max: v.max };
}
