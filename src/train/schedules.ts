/**
 * Per-epoch schedules of the learning rate (and, for onecycle, the SGD momentum), the attack budget ε_t and the
 * attack step size. Epochs are 1-based (e = 1..E) as in the reference code; every value is constant within an epoch.
 */
import { InputError } from '../errors.js';
import type { EPSILON_SCHEDULES, LR_SCHEDULES } from './names.js';

export interface LrSchedule {
  /**
   * cosine: lr·½(1 + cos(π·e/(E+1))) (the IKL-AT reference); piecewise: lr·γ^{#milestones < e}; constant;
   * onecycle: PyTorch's OneCycleLR over E steps, one per epoch (DM-Improves-AT's 'cosinew', see oneCycleAt).
   */
  kind: (typeof LR_SCHEDULES)[number];
  lr: number;
  epochs: number;
  /**
   * piecewise: epochs AFTER which the lr is multiplied by gamma (epoch e > m), as PyTorch's MultiStepLR counts
   * them; TRADES' `if epoch >= 75` (1-based) is milestone 74.
   */
  milestones?: number[];
  gamma?: number;
  /**
   * Linear warm-up W, as the reference's `--lr-warmup` (train_dkl_cifar10.py, adjust_learning_rate_cosine):
   * epochs e < W use lr·e/W; from e = W the cosine restarts at lr, ½(1 + cos(π(e − W)/(E − W + 1))).
   * piecewise/constant: e < W use the scheduled value·e/W. 0 = none (so is 1: no epoch is below it).
   */
  warmupEpochs?: number;
  /** onecycle: its parameters (default ONE_CYCLE_DEFAULTS). warmupEpochs does not apply (it has its own warm-up). */
  oneCycle?: OneCycleOptions;
}

/** PyTorch OneCycleLR's parameters (three_phase=False, anneal_strategy 'cos'). */
export interface OneCycleOptions {
  /** Fraction of the steps spent rising from lr/divFactor to lr (DM-Improves-AT: 0.025). */
  pctStart: number;
  /** The start is lr/divFactor (25). */
  divFactor: number;
  /** The end is lr/(divFactor·finalDivFactor) (1e4: lr/2.5e5). */
  finalDivFactor: number;
  /** Momentum cycled inversely to the lr, maxMomentum → baseMomentum → maxMomentum; false: optimizer.momentum. */
  cycleMomentum: boolean;
  baseMomentum: number;
  maxMomentum: number;
}

export const ONE_CYCLE_DEFAULTS: OneCycleOptions = {
  pctStart: 0.025,
  divFactor: 25,
  finalDivFactor: 1e4,
  cycleMomentum: true,
  baseMomentum: 0.85,
  maxMomentum: 0.95,
};

/** start → end as pct goes 0 → 1 along half a cosine (OneCycleLR's _annealing_cos, same operations). */
function annealCos(start: number, end: number, pct: number): number {
  return end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
}

/**
 * lr and momentum of OneCycleLR at step `stepNum` (0-based; torch's last_epoch) of `totalSteps`, with torch's
 * formulas: phase 1 ends at step pctStart·total − 1 (lr/div → lr, momentum max → base), phase 2 at total − 1
 * (lr → lr/(div·finalDiv), momentum base → max); pct = (step − phase start)/(phase end − phase start).
 * DM-Improves-AT steps it once per epoch (train-wa.py, 'cosinew': total_steps = epochs), so epoch e uses step e − 1.
 * Where torch would divide by zero (a phase of zero length: pctStart·total = 1), the phase's end value is used.
 */
export function oneCycleAt(stepNum: number, totalSteps: number, maxLr: number, o: OneCycleOptions = ONE_CYCLE_DEFAULTS): { lr: number; momentum: number } {
  const initialLr = maxLr / o.divFactor;
  const minLr = initialLr / o.finalDivFactor;
  const phases = [
    { end: o.pctStart * totalSteps - 1, lr: [initialLr, maxLr], momentum: [o.maxMomentum, o.baseMomentum] },
    { end: totalSteps - 1, lr: [maxLr, minLr], momentum: [o.baseMomentum, o.maxMomentum] },
  ] as const;
  let start = 0;
  for (let i = 0; i < phases.length; i++) {
    const ph = phases[i]!;
    if (stepNum <= ph.end || i === phases.length - 1) {
      const pct = ph.end === start ? 1 : (stepNum - start) / (ph.end - start);
      return { lr: annealCos(ph.lr[0], ph.lr[1], pct), momentum: annealCos(ph.momentum[0], ph.momentum[1], pct) };
    }
    start = ph.end;
  }
  throw new Error('unreachable');
}

/** SGD momentum of epoch e: the onecycle schedule's when it cycles momentum, else `momentum` (optimizer.momentum). */
export function momentumAt(schedule: LrSchedule, epoch: number, momentum: number): number {
  if (schedule.kind !== 'onecycle') return momentum;
  checkEpoch(epoch, schedule.epochs, 'schedule.momentum');
  const o = schedule.oneCycle ?? ONE_CYCLE_DEFAULTS;
  return o.cycleMomentum ? oneCycleAt(epoch - 1, schedule.epochs, schedule.lr, o).momentum : momentum;
}

function checkEpoch(epoch: number, epochs: number, what: string): void {
  if (!Number.isInteger(epoch) || epoch < 1 || epoch > epochs) {
    throw new InputError(`${what}: epoch must be an integer in 1..${epochs}, got ${epoch}`);
  }
}

/** Learning rate of epoch e (1-based). */
export function learningRate(schedule: LrSchedule, epoch: number): number {
  const { lr, epochs } = schedule;
  checkEpoch(epoch, epochs, 'schedule.lr');
  const warm = schedule.warmupEpochs ?? 0;
  let value: number;
  switch (schedule.kind) {
    case 'cosine':
      // E − W + 1 in the denominator (E + 1 without warm-up): the reference never reaches lr = 0 at the last epoch.
      value = lr * 0.5 * (1 + Math.cos((Math.PI * (epoch - warm)) / (epochs - warm + 1)));
      break;
    case 'piecewise': {
      const passed = (schedule.milestones ?? []).filter((m) => epoch > m).length;
      value = lr * Math.pow(schedule.gamma ?? 0.1, passed);
      break;
    }
    case 'constant':
      value = lr;
      break;
    case 'onecycle':
      // Its own warm-up (pctStart); warmupEpochs is refused with it by the config.
      return oneCycleAt(epoch - 1, epochs, lr, schedule.oneCycle).lr;
    default:
      throw new InputError(`schedule.kind: expected cosine|piecewise|constant|onecycle, got '${String((schedule as { kind: unknown }).kind)}'`);
  }
  if (warm > 0 && epoch < warm) return (schedule.kind === 'cosine' ? lr : value) * (epoch / warm);
  return value;
}

export interface EpsilonSchedule {
  /** constant: ε every epoch; linear: ε_t = ε·e/E (the IKL-AT reference, a budget that grows with the epoch). */
  kind: (typeof EPSILON_SCHEDULES)[number];
  epsilon: number;
  epochs: number;
}

/** Attack budget ε_t of epoch e (1-based). */
export function epsilonAt(schedule: EpsilonSchedule, epoch: number): number {
  checkEpoch(epoch, schedule.epochs, 'attack.epsilonSchedule');
  return schedule.kind === 'linear' ? (schedule.epsilon * epoch) / schedule.epochs : schedule.epsilon;
}

export interface StepSizeRule {
  /** Absolute step (TRADES: 0.007) or a fraction of ε_t (IKL-AT reference: 0.5, i.e. ε_t/2). */
  stepSize: number;
  relative: boolean;
}

/** Attack step size for budget ε_t. */
export function stepSizeFor(rule: StepSizeRule, epsilonT: number): number {
  return rule.relative ? rule.stepSize * epsilonT : rule.stepSize;
}
