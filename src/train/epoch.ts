/** Everything constant within one epoch, as a pure function of the config and the epoch (1-based). */
import type { TrainConfig } from '../config/index.js';
import { warmupFactor } from '../losses/index.js';
import { isKdObjective } from './names.js';
import { epsilonAt, learningRate, momentumAt, stepSizeFor, type LrSchedule } from './schedules.js';

export interface EpochSettings {
  lr: number;
  /** SGD momentum of this epoch (optimizer.momentum unless a onecycle schedule cycles it). */
  momentum: number;
  /** Attack radius ε_t and absolute attack step size of this epoch. */
  epsilon: number;
  stepSize: number;
  /** AWP is on from awp.warmupEpoch. */
  awp: boolean;
  /** The weight average is updated after every step (perStep) ... */
  averageSteps: boolean;
  /** ... or once, at the end of the epoch. */
  averageAtEnd: boolean;
  /** The model is evaluated at the end of the epoch (every eval.everyEpochs, and always after the last). */
  evaluate: boolean;
  /** KD objectives: factor min(epoch / distill.warmupEpochs, 1) of the distillation term (ikl-kd, dkd; 1 for kd). */
  kdWarmup: number;
}

export function epochSettings(config: TrainConfig, epoch: number): EpochSettings {
  const E = config.schedule.epochs;
  const s = config.schedule;
  const lrSchedule: LrSchedule = {
    kind: s.type,
    lr: config.optimizer.lr,
    epochs: E,
    milestones: s.milestones,
    gamma: s.gamma,
    warmupEpochs: s.warmupEpochs,
    oneCycle: s.oneCycle,
  };
  const lr = learningRate(lrSchedule, epoch);
  const epsilon = epsilonAt({ kind: config.attack.schedule, epsilon: config.attack.epsilon, epochs: E }, epoch);
  const ss = config.attack.stepSize;
  const stepSize = stepSizeFor('relative' in ss ? { stepSize: ss.relative, relative: true } : { stepSize: ss.absolute, relative: false }, epsilon);
  const wa = config.weightAverage;
  const averaging = wa.enabled && epoch >= wa.startEpoch;
  return {
    lr,
    momentum: momentumAt(lrSchedule, epoch, config.optimizer.momentum),
    epsilon,
    stepSize,
    awp: config.awp.enabled && epoch >= config.awp.warmupEpoch,
    averageSteps: averaging && wa.perStep,
    averageAtEnd: averaging && !wa.perStep,
    evaluate: config.eval.everyEpochs > 0 && (epoch % config.eval.everyEpochs === 0 || epoch === E),
    // mdistiller's KD has no warm-up; IKL_KD and DKD ramp their distillation term.
    kdWarmup: isKdObjective(config.objective.type) && config.objective.type !== 'kd' ? warmupFactor(epoch, config.distill.warmupEpochs) : 1,
  };
}
