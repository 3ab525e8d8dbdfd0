/**
 * The validity line of an evaluation: largest perturbation, NaN count and value range of every adversarial
 * input produced. An attack that leaves the eps-ball or [0, 1], or produces NaN, makes a robust accuracy
 * meaningless, so these are reported next to it rather than trusted. Pure numbers: no tfjs here, so `merge`
 * loads instantly; measureValidity (src/eval/measure.ts) computes them from tensors.
 */
import type { Norm } from '../attacks/types.js';
import type { Validity } from './types.js';

/** Neutral element of combineValidity: what a run that attacked nothing reports. */
export const EMPTY_VALIDITY: Validity = { max_perturbation: 0, nan_count: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };

/** Validity of the union of two sets of inputs: max / sum / min / max. */
export function combineValidity(a: Validity, b: Validity): Validity {
  return {
    max_perturbation: Math.max(a.max_perturbation, b.max_perturbation),
    nan_count: a.nan_count + b.nan_count,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
  };
}

/** JSON cannot hold ±Infinity: an empty validity is stored with nulls. */
export function validityToJson(v: Validity): Validity {
  return { ...v, min: Number.isFinite(v.min) ? v.min : (null as unknown as number), max: Number.isFinite(v.max) ? v.max : (null as unknown as number) };
}

export function validityFromJson(v: Validity): Validity {
  return { ...v, min: v.min ?? Number.POSITIVE_INFINITY, max: v.max ?? Number.NEGATIVE_INFINITY };
}

/** One human-readable line, e.g. `max ‖δ‖∞ 0.031373 (eps 0.031373) | NaN 0 | range [0, 1]`. */
export function formatValidityLine(v: Validity, eps: number, norm: Norm): string {
  const sym = norm === 'linf' ? '∞' : '2';
  const range = Number.isFinite(v.min) ? `[${v.min.toPrecision(6)}, ${v.max.toPrecision(6)}]` : '(nothing attacked)';
  // A float32 projection can overshoot eps by a few ulps; the slack is the attacks' VALIDITY_TOLERANCE (1e-6).
  const ok = v.nan_count === 0 && v.max_perturbation <= eps + 1e-6 && (!Number.isFinite(v.min) || (v.min >= 0 && v.max <= 1));
  return `${ok ? 'valid' : 'INVALID'}: max ‖δ‖${sym} ${v.max_perturbation.toPrecision(6)} (eps ${eps.toPrecision(6)}) | NaN ${v.nan_count} | range ${range}`;
}
