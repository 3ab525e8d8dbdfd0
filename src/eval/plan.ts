/**
 * Which attacks a run applies, in order. Every stage has the same shape (model, x, y, seed) → AttackResult,
 * so the evaluation loop only sequences stages on what is still robust, as AutoAttack's orchestrator does;
 * doing the sequencing here (rather than calling an ensemble per batch) lets the state record each finished
 * stage of each batch and the report give the accuracy after every stage.
 */
import type * as tf from '@tensorflow/tfjs';
import { APGD_TARGET_CLASSES } from '../attacks/apgd.js';
import { standardStages, type AutoAttackStage } from '../attacks/autoattack.js';
import { fgsm } from '../attacks/fgsm.js';
import { pgd } from '../attacks/pgd.js';
import type { AttackResult, ModelFn } from '../attacks/types.js';
import type { EvalOptions } from './types.js';

export interface Stage {
  name: string;
  /** Score-based (Square): only used to tell "black box beat the gradients" in the sanity warnings. */
  blackBox: boolean;
  run(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, seed: number): Promise<AttackResult>;
}

export interface AttackPlan {
  stages: Stage[];
  /** The loss maximised, for the report (null for the ensemble and the loss-free attacks). */
  loss: string | null;
  /** Settings fixed by the attack rather than by flags (target classes, AutoAttack budgets), for the report. */
  details: Record<string, number | string>;
}

/** AutoAttack "standard" (Croce & Hein 2020): 100 APGD/FAB iterations, 9 target classes, 5000 Square queries, 1 restart each. */
export const AUTOATTACK_STANDARD = { apgdSteps: 100, fabSteps: 100, squareQueries: 5000, targetClasses: APGD_TARGET_CLASSES, restarts: 1 } as const;

/** A stage of the attacks module's AutoAttack, bound to this run's threat model. */
function fromAutoAttack(stage: AutoAttackStage, o: Pick<EvalOptions, 'eps' | 'norm'>): Stage {
  return { name: stage.name, blackBox: stage.blackBox === true, run: async (m, x, y, seed) => stage.run(m, x, y, { eps: o.eps, norm: o.norm, seed }) };
}

export function planAttack(o: EvalOptions): AttackPlan {
  const base = { eps: o.eps, norm: o.norm };
  // Single attacks take --steps; --restarts only where the attacks module has them (PGD restarts below).
  const single = (name: 'apgd-ce' | 'apgd-t' | 'fab-t' | 'square'): Stage =>
    fromAutoAttack(standardStages(name === 'square' ? { squareQueries: o.steps! } : { steps: o.steps! })[name], o);
  switch (o.attack) {
    case 'pgd':
    case 'cw': {
      const loss = o.attack === 'pgd' ? 'ce' : 'cw';
      // TRADES' evaluation starts from x + U[−ε, ε] without clamping it to [0, 1] (options.ts, TRADES_PROTOCOL).
      const start = o.protocol === 'trades' ? 'uniform-unclamped' : 'uniform';
      return {
        loss,
        details: o.protocol === 'trades' ? { start, protocol: 'trades', counting: 'last iterate correct, every point' } : { start },
        stages: [
          {
            name: `${o.attack}-${o.steps}`,
            blackBox: false,
            run: (m, x, y, seed) => pgd(m, x, y, { ...base, steps: o.steps!, stepSize: o.stepSize!, restarts: o.restarts!, seed, start, loss }),
          },
        ],
      };
    }
    case 'fgsm':
      return { loss: 'ce', details: {}, stages: [{ name: 'fgsm', blackBox: false, run: (m, x, y) => fgsm(m, x, y, base) }] };
    case 'apgd-ce':
      return { loss: 'ce', details: { restarts: 1 }, stages: [single('apgd-ce')] };
    case 'apgd-t':
      return { loss: 'dlr-targeted', details: { target_classes: AUTOATTACK_STANDARD.targetClasses, restarts: 1 }, stages: [single('apgd-t')] };
    case 'fab-t':
      return { loss: null, details: { target_classes: AUTOATTACK_STANDARD.targetClasses, restarts: 1 }, stages: [single('fab-t')] };
    case 'square':
      return { loss: 'margin', details: { queries: o.steps!, p_init: 0.8, restarts: 1 }, stages: [single('square')] };
    case 'autoattack': {
      const std = standardStages();
      const a = AUTOATTACK_STANDARD;
      return {
        loss: null,
        details: { version: 'standard', apgd_steps: a.apgdSteps, fab_steps: a.fabSteps, target_classes: a.targetClasses, square_queries: a.squareQueries, restarts: a.restarts },
        stages: [std['apgd-ce'], std['apgd-t'], std['fab-t'], std.square].map((s) => fromAutoAttack(s, o)),
      };
    }
  }
}
