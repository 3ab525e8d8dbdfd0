/**
 * The decay of the per-step exponential moving average of the weights in DM-Improves-AT
 * (gowal21uncovering/utils/watrain.py, ema_update with dynamic_decay=True), after optimiser step t (1-based):
 *   t < W:  decay 0, the average is the current weights (burn-in);
 *   t ≥ W:  decay min(τ, (1 + t − W)/(10 + t − W))  (dynamic), or τ;
 * and θ_EMA ← decay·θ_EMA + (1 − decay)·θ. W = 2.5% of all steps and τ = 0.995 in that recipe. The dynamic decay
 * starts near 0.1 and approaches τ, so the average forgets the burn-in weights quickly.
 */
import { InputError } from '../errors.js';

export interface EmaDecayOptions {
  /** τ, the decay once the dynamic ramp has reached it. */
  tau: number;
  /** Burn-in W in steps (may be fractional, as the reference's 0.025·epochs·steps_per_epoch). */
  warmupSteps: number;
  /** min(τ, (1 + t − W)/(10 + t − W)) instead of τ. */
  dynamic: boolean;
}

/** The decay of the update after step t (1-based: the first optimiser step is t = 1). */
export function emaDecay(t: number, o: EmaDecayOptions): number {
  if (!(o.tau >= 0 && o.tau < 1)) throw new InputError(`weightAverage.stepTau: expected a number in [0, 1), got ${o.tau}`);
  if (t < o.warmupSteps) return 0;
  if (!o.dynamic) return o.tau;
  const delta = t - o.warmupSteps;
  return Math.min(o.tau, (1 + delta) / (10 + delta));
}

/** Burn-in W in steps: fraction `burnIn` of all E·stepsPerEpoch steps (the reference: 0.025·E·update_steps). */
export function burnInSteps(burnIn: number, epochs: number, stepsPerEpoch: number): number {
  return burnIn * epochs * stepsPerEpoch;
}
