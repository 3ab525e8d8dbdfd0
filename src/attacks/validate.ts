/** Argument checks shared by the attacks: bad user input is an InputError naming the attack and the field. */
import type * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { checkCount } from '../input.js';
import type { Norm } from './types.js';

export const NORMS: readonly Norm[] = ['linf', 'l2', 'l1'];

export function checkInputs(who: string, x: tf.Tensor4D, y: tf.Tensor1D): void {
  if (x.rank !== 4) throw new InputError(`${who}: x expected an NHWC tensor of rank 4, got rank ${x.rank}`);
  if (y.rank !== 1 || y.shape[0] !== x.shape[0]) {
    throw new InputError(`${who}: y expected a label vector of length ${x.shape[0]}, got shape [${y.shape.join(', ')}]`);
  }
}

export function checkNorm(who: string, norm: unknown): Norm {
  if (!NORMS.includes(norm as Norm)) throw new InputError(`${who}: norm expected one of ${NORMS.join('|')}, got '${String(norm)}'`);
  return norm as Norm;
}

export function checkNonNegative(who: string, field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new InputError(`${who}: ${field} expected a finite number >= 0, got ${String(v)}`);
  }
  return v;
}

export { checkCount };

/** A number in (lo, hi] when loOpen, else in [lo, hi]. */
export function checkRange(who: string, field: string, v: unknown, lo: number, hi: number, loOpen: boolean): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && v <= hi;
  if (!ok) throw new InputError(`${who}: ${field} expected a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${String(v)}`);
  return v as number;
}

/** Seeds are integers: every random stream is derived from them with deriveSeed. */
export function checkSeed(who: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InputError(`${who}: seed expected an integer, got ${String(v)}`);
  return v;
}

/** The options every iterative white-box attack (PGD, APGD) shares. */
export function checkIterativeOptions(
  who: string,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  opts: { norm: unknown; eps: unknown; steps: unknown; restarts: unknown; seed: unknown },
  minSteps: number,
): void {
  checkInputs(who, x, y);
  checkNorm(who, opts.norm);
  checkNonNegative(who, 'eps', opts.eps);
  checkCount(who, 'steps', opts.steps, minSteps);
  checkCount(who, 'restarts', opts.restarts, 1);
  checkSeed(who, opts.seed);
}
