/** Argument checks shared by the attacks: bad user input is an InputError naming the attack and the field. */
import type * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import type { Norm } from './types.js';

export const NORMS: readonly Norm[] = ['linf', 'l2'];

export function checkInputs(who: string, x: tf.Tensor4D, y: tf.Tensor1D): void {
  if (x.rank !== 4) throw new InputError(`${who}: x expected an NHWC tensor of rank 4, got rank ${x.rank}`);
  if (y.rank !== 1 || y.shape[0] !== x.shape[0]) {
    throw new InputError(`${who}: y expected a label vector of length ${x.shape[0]}, got shape [${y.shape.join(', ')}]`);
  }
}

export function checkNorm(who: string, norm: unknown): asserts norm is Norm {
  if (!NORMS.includes(norm as Norm)) throw new InputError(`${who}: norm expected one of ${NORMS.join('|')}, got '${String(norm)}'`);
}

export function checkNonNegative(who: string, field: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new InputError(`${who}: ${field} expected a finite number >= 0, got ${String(v)}`);
  }
}

export function checkCount(who: string, field: string, v: unknown, min: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new InputError(`${who}: ${field} expected an integer >= ${min}, got ${String(v)}`);
  }
}
