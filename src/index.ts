/**
 * ikl-at: IKL adversarial training and robustness evaluation on TensorFlow.js.
 *
 * The public API, chosen name by name (test/api.test.ts lists it, so it only changes on purpose). Everything
 * else is internal: tests and the CLIs reach it by deep import.
 */

// Process: errors and exit codes, backend, logging, seeds.
export { InputError, EXIT } from './errors.js';
export { initBackend, backendInfo, parseBackendChoice, BACKEND_CHOICES, type BackendChoice, type BackendInfo } from './backend.js';
export { createLogger, LOG_FORMATS, type LogFormat, type Logger } from './log.js';
export { SeededRng, deriveSeed } from './rng.js';

// Losses (pure functions of logits).
export {
  klLoss,
  dklLoss,
  iklLoss,
  ClassWeights,
  crossEntropy,
  cwMarginLoss,
  dlrLoss,
  dlrTargetedLoss,
  iklKdLoss,
  kdLoss,
  dkdLoss,
  warmupFactor,
  type KlOptions,
  type DklOptions,
  type IklOptions,
  type ClassWeightsOptions,
  type ClassWeightsJSON,
  type CrossEntropyOptions,
  type MarginOptions,
  type Reduction,
  type IklKdOptions,
  type KdOptions,
  type DkdOptions,
} from './losses/index.js';

// Data.
export {
  loadDataset,
  makeSynthetic,
  batches,
  numBatches,
  splitValidation,
  firstN,
  readCifar10,
  readCifar100,
  DATASETS,
  DATASET_CLASSES,
  AUGMENTATIONS,
  Augmenter,
  augmentBatch,
  type AugmentationName,
  type ImageShape,
  BatchLoader,
  MemorySource,
  ConcatSource,
  openParts,
  EpochSampler,
  MixedSampler,
  writeNpz,
  type ImageSource,
  type BatchSampler,
  type Augmentation,
  type LoaderOptions,
  type PartFile,
  type LoadDatasetOptions,
  type ImageSet,
  type Batch,
  type BatchOptions,
  type DatasetName,
  type SyntheticOptions,
} from './data/index.js';

// Models.
export { createModel, forward, parseArch, saveModel, loadModel, MODEL_ARCHS, type ModelArch, type ModelSpec, type Forward } from './models/index.js';

// Attacks and the AutoAttack sequencer.
export {
  fgsm,
  pgd,
  apgd,
  apgdCe,
  apgdDlr,
  apgdT,
  fab,
  fabT,
  square,
  autoAttack,
  runStages,
  stageFromSpec,
  versionSpecs,
  customSpecs,
  AUTOATTACK_STANDARD,
  AUTOATTACK_STANDARD_L1,
  AUTOATTACK_VERSIONS,
  AUTOATTACK_STAGE_NAMES,
  ATTACK_NAMES,
  validityLine,
  formatValidity,
  InvalidAdversarialError,
  sanityChecks,
  type ModelFn,
  type Norm,
  type BaseAttackOptions,
  type AttackOptions,
  type AttackResult,
  type FgsmOptions,
  type PgdOptions,
  type ApgdOptions,
  type ApgdTOptions,
  type FabOptions,
  type FabResult,
  type SquareOptions,
  type SquareResult,
  type AttackName,
  type AutoAttackOptions,
  type AutoAttackResult,
  type AutoAttackStage,
  type AutoAttackStageName,
  type AutoAttackVersion,
  type SequenceOptions,
  type StageEvent,
  type StageResult,
  type StageSpec,
  type ValidityLine,
} from './attacks/index.js';

// Checkpoints.
export {
  writeCheckpoint,
  readCheckpoint,
  verifyCheckpoint,
  findResumableCheckpoint,
  type CheckpointData,
  type CheckpointMeta,
  type LoadedCheckpoint,
} from './checkpoint/index.js';

// Training configs.
export {
  resolveConfig,
  parseConfig,
  configHash,
  configToYaml,
  jsonSchemaText,
  trainConfigSchema,
  parseNumberExpr,
  type TrainConfig,
  type TrainConfigInput,
} from './config/index.js';

// Training.
export {
  train,
  evaluateAccuracy,
  epochSettings,
  learningRate,
  momentumAt,
  oneCycleAt,
  emaDecay,
  epsilonAt,
  DivergenceError,
  RUN_FILES,
  type TrainOptions,
  type TrainResult,
  type StepInfo,
  type StepStats,
  type EpochSettings,
  type MetricRecord,
  type OneCycleOptions,
  type EmaDecayOptions,
} from './train/index.js';

// Evaluation runs (ikl-eval).
export {
  runEval,
  resolveEvalOptions,
  mergeReports,
  planAttack,
  writeReportEvents,
  EVAL_ATTACKS,
  type PerClassRow,
  type PerClassSummary,
  type RunEvalHooks,
  type RawEvalOptions,
  type EvalOptions,
  type EvalReport,
  type EvalAttack,
  type AttackPlan,
} from './eval/index.js';

// TensorBoard event files (written and read without TensorFlow).
export { TensorBoardWriter, readEvents, type EventRecord } from './tensorboard.js';

// PyTorch interop: state_dicts (.pt zip or legacy, .safetensors) in and out under the official key names.
export { loadTorchModel, readStateDictFile, recogniseArch, exportModel, type ImportedModel, type WeightSource } from './interop/index.js';
export { exportSource, type ExportResult } from './interop/export.js';
export { initModelFrom } from './interop/init-from.js';
// RobustBench by name (the table of its CIFAR Linf/L2 entries the zoo builds), and our model's leaderboard info.
export {
  ROBUSTBENCH_MODELS,
  ROBUSTBENCH_LACKING,
  findRobustBenchEntry,
  ensureRobustBenchFile,
  loadRobustBench,
  loadRobustBenchModel,
  compareWithRobustBench,
  type RobustBenchEntry,
  type RobustBenchComparison,
} from './interop/robustbench.js';
export { robustBenchInfo, type RobustBenchModelInfo } from './interop/robustbench-info.js';
// Data parallelism on TensorFlow's collective runtime (ikl-launch, TF_CONFIG, Slurm).
export {
  createCollective,
  clusterFromEnv,
  encodeServerDef,
  SingleProcess,
  TensorFlowCollective,
  CollectiveError,
  type Collective,
  type ClusterSpec,
  type ReduceOp,
} from './collective/index.js';
