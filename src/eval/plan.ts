/**
 * Which attacks a run applies, in order, as data: a list of StageSpec that the attacks module's sequencer
 * (runStages in src/attacks/autoattack.ts) runs on what is still robust. A single attack is a one-stage list;
 * `autoattack` is the stage list of the AutoAttack version (--aa-version) or the custom list (--attacks). The report's `details` are read off the same data.
 */
import { APGD_TARGET_CLASSES } from '../attacks/apgd.js';
import { AUTOATTACK_STANDARD, customSpecs, stageBudget, versionSpecs, withBudget, type StageSpec } from '../attacks/autoattack.js';
import type { EvalOptions } from './types.js';

export interface AttackPlan {
  stages: StageSpec[];
  /** The loss maximised, for the report (null for the ensemble and the loss-free attacks). */
  loss: string | null;
  /** Settings fixed by the attack rather than by flags (target classes, AutoAttack budgets), for the report. */
  details: Record<string, number | string>;
}

/** The largest target-class count of the plan's targeted stages, null when none is targeted (sanity checks). */
export function planTargetClasses(plan: AttackPlan): number | null {
  const counts = plan.stages.flatMap((s) => (s.attack === 'apgd-t' || s.attack === 'fab-t' ? [s.options.nTargetClasses ?? APGD_TARGET_CLASSES] : []));
  return counts.length === 0 ? null : Math.max(...counts);
}

export function planAttack(o: EvalOptions): AttackPlan {
  const std = versionSpecs('standard', {}, o.norm);
  // Single AutoAttack stages take --steps (Square: queries); --restarts only where the flags allow it (pgd, cw).
  const single = (name: 'apgd-ce' | 'apgd-t' | 'fab-t' | 'square'): StageSpec =>
    withBudget(
      std.find((s) => s.name === name)!,
      name === 'square' ? { squareQueries: o.steps! } : { steps: o.steps! },
    );
  const a = AUTOATTACK_STANDARD;
  // A single stage's own target classes and restarts (L1 "standard" differs from L-inf/L2).
  const opt = (name: string) => std.find((s) => s.name === name)!.options as { restarts?: number; nTargetClasses?: number };
  switch (o.attack) {
    case 'pgd':
    case 'cw': {
      const loss = o.attack === 'pgd' ? 'ce' : 'cw';
      // TRADES' evaluation starts from x + U[−ε, ε] without clamping it to [0, 1] (options.ts, TRADES_PROTOCOL).
      const start = o.protocol === 'trades' ? 'uniform-unclamped' : 'uniform';
      const options = { steps: o.steps!, stepSize: o.stepSize!, restarts: o.restarts!, start, loss } as const;
      const details: Record<string, string> =
        o.protocol === 'trades' ? { start, protocol: 'trades', counting: 'last iterate correct, every point' } : { start };
      return { loss, details, stages: [{ name: `${o.attack}-${o.steps}`, attack: 'pgd', options }] };
    }
    case 'fgsm':
      return { loss: 'ce', details: {}, stages: [{ name: 'fgsm', attack: 'fgsm', options: {} }] };
    case 'apgd-ce':
      return { loss: 'ce', details: { restarts: opt('apgd-ce').restarts! }, stages: [single('apgd-ce')] };
    case 'apgd-t':
      return {
        loss: 'dlr-targeted',
        details: { target_classes: opt('apgd-t').nTargetClasses!, restarts: opt('apgd-t').restarts! },
        stages: [single('apgd-t')],
      };
    case 'fab-t':
      return { loss: null, details: { target_classes: a.nTargetClasses, restarts: a.restarts }, stages: [single('fab-t')] };
    case 'square':
      return { loss: 'margin', details: { queries: o.steps!, p_init: a.pInit, restarts: a.restarts }, stages: [single('square')] };
    case 'autoattack': {
      const version = o.aaVersion ?? 'standard';
      const stages = version === 'custom' ? customSpecs(o.attacks ?? []) : versionSpecs(version, {}, o.norm);
      // The version, and every stage's budget as "<stage>.<setting>" (steps, restarts, n_target_classes, ...).
      const details: Record<string, number | string> = { version };
      for (const spec of stages) for (const [k, v] of Object.entries(stageBudget(spec))) details[`${spec.name}.${k}`] = v;
      return { loss: null, details, stages };
    }
  }
}
