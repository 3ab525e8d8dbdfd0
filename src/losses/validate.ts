/**
 * Argument checks shared by the losses. They look at shapes, dtypes and option values only: checking
 * label values would need a device-to-host read on every call, and the data module validates labels.
 */
import type * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { REDUCTIONS, type Reduction } from './reduction.js';

export function checkLogits(fn: string, name: string, logits: tf.Tensor, minClasses = 1): void {
  if (logits.rank !== 2) throw new InputError(`${fn}: ${name} must be a B×C tensor (rank 2), got shape [${logits.shape.join(', ')}]`);
  if (logits.dtype !== 'float32') throw new InputError(`${fn}: ${name} must be float32, got ${logits.dtype}`);
  const [b, c] = logits.shape as [number, number];
  if (b < 1) throw new InputError(`${fn}: ${name} must hold at least one example, got shape [${b}, ${c}]`);
  if (c < minClasses) throw new InputError(`${fn}: ${name} must have at least ${minClasses} classes, got ${c}`);
}

export function checkSameShape(fn: string, name: string, t: tf.Tensor, refName: string, ref: tf.Tensor): void {
  if (t.rank !== ref.rank || t.shape.some((d, i) => d !== ref.shape[i])) {
    throw new InputError(`${fn}: ${name} must have the shape of ${refName} [${ref.shape.join(', ')}], got [${t.shape.join(', ')}]`);
  }
}

/** Labels: int32 Tensor1D with one entry per row of `logits`. */
export function checkLabels(fn: string, name: string, labels: tf.Tensor, logits: tf.Tensor): void {
  if (labels.rank !== 1) throw new InputError(`${fn}: ${name} must be a Tensor1D, got shape [${labels.shape.join(', ')}]`);
  if (labels.dtype !== 'int32') throw new InputError(`${fn}: ${name} must be int32, got ${labels.dtype}`);
  if (labels.shape[0] !== logits.shape[0]) {
    throw new InputError(`${fn}: ${name} has ${labels.shape[0]} entries but the logits have ${logits.shape[0]} rows`);
  }
}

export function checkNumber(fn: string, name: string, value: unknown, range: { min?: number; minExclusive?: number; max?: number }): number {
  const parts: string[] = [];
  if (range.min !== undefined) parts.push(`>= ${range.min}`);
  if (range.minExclusive !== undefined) parts.push(`> ${range.minExclusive}`);
  if (range.max !== undefined) parts.push(`<= ${range.max}`);
  const expected = `a finite number${parts.length > 0 ? ` ${parts.join(' and ')}` : ''}`;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (range.min === undefined || value >= range.min) &&
    (range.minExclusive === undefined || value > range.minExclusive) &&
    (range.max === undefined || value <= range.max);
  if (!ok) throw new InputError(`${fn}: option '${name}' must be ${expected}, got ${String(value)}`);
  return value as number;
}

export function checkReduction(fn: string, value: unknown): Reduction {
  if (!(REDUCTIONS as readonly unknown[]).includes(value)) {
    throw new InputError(`${fn}: option 'reduction' must be one of ${REDUCTIONS.join('|')}, got ${String(value)}`);
  }
  return value as Reduction;
}
