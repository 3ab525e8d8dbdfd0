/** The training core: schedules, SGD, objectives, AWP, weight averaging, the step and the loop. */
export {
  learningRate,
  momentumAt,
  oneCycleAt,
  epsilonAt,
  stepSizeFor,
  type LrSchedule,
  type OneCycleOptions,
  type EpsilonSchedule,
  type StepSizeRule,
} from './schedules.js';
export { emaDecay, type EmaDecayOptions } from './ema.js';
export { Sgd, type SgdOptions } from './sgd.js';
export { objective, disposeParts, type ObjectiveName, type ObjectiveOptions, type ObjectiveParts, type TrainForward } from './objective.js';
export { Awp, awpDirection, kernelVariables, type AwpOptions } from './awp.js';
export { WeightAverage } from './weightAverage.js';
export {
  createTrainer,
  disposeTrainer,
  trainStep,
  usesClassWeights,
  attackLossOf,
  DivergenceError,
  type Trainer,
  type StepParams,
  type StepStats,
} from './step.js';
export { train, evaluateAccuracy, type TrainOptions, type TrainResult, type StepInfo } from './trainer.js';
export { RUN_FILES, RunDirectory } from './runDir.js';
export { epochSettings, type EpochSettings } from './epoch.js';
export { curvesSvg, type MetricRecord } from './plot.js';
