/**
 * Per-epoch schedules of the learning rate, the attack budget ε_t and the attack step size.
 * Epochs are 1-based (e = 1..E) as in the reference code; every value is constant within an epoch.
 */
import { InputError } from '../errors.js';
import type { EPSILON_SCHEDULES, LR_SCHEDULES } from './names.js';

export interface LrSchedule {
  /** cosine: lr·½(1 + cos(π·e/(E+1))) (the IKL-AT reference); piecewise: lr·γ^{#milestones < e}; constant. */
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
    default:
      throw new InputError(`schedule.kind: expected cosine|piecewise|constant, got '${String((schedule as { kind: unknown }).kind)}'`);
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
