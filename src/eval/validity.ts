/**
 * The validity figures (src/attacks/validity.ts) as stored in the JSON state and report: snake_case field names,
 * and JSON cannot hold ±Infinity, so the range of a run that attacked nothing is stored as nulls.
 */
import type { ValidityLine } from '../attacks/validity.js';
import type { Validity } from './types.js';

export function validityToJson(v: ValidityLine): Validity {
  const finite = (x: number): number => (Number.isFinite(x) ? x : (null as unknown as number));
  return { max_perturbation: v.maxPerturbation, nan_count: v.nanCount, min: finite(v.min), max: finite(v.max) };
}

export function validityFromJson(v: Validity): ValidityLine {
  return { maxPerturbation: v.max_perturbation, nanCount: v.nan_count, min: v.min ?? Number.POSITIVE_INFINITY, max: v.max ?? Number.NEGATIVE_INFINITY };
}
