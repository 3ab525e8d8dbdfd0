/**
 * The public API is a choice: src/index.ts names every export, and this list must be edited with it, so the
 * exported surface never changes by accident (a new `export *` or a removed name fails here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as api from '../src/index.js';

/** Runtime values (functions, classes, constants). */
const VALUES = `
  ATTACK_NAMES AUTOATTACK_STAGE_NAMES AUTOATTACK_STANDARD AUTOATTACK_VERSIONS BACKEND_CHOICES ClassWeights DATASETS DATASET_CLASSES DivergenceError
  EVAL_ATTACKS EXIT InputError InvalidAdversarialError LOG_FORMATS MODEL_ARCHS RUN_FILES SeededRng apgd apgdCe apgdDlr apgdT
  autoAttack backendInfo batches configHash configToYaml createLogger createModel crossEntropy cwMarginLoss deriveSeed
  dkdLoss dklLoss dlrLoss dlrTargetedLoss epochSettings epsilonAt evaluateAccuracy fabT fgsm findResumableCheckpoint
  firstN formatValidity forward iklKdLoss iklLoss initBackend jsonSchemaText kdLoss klLoss learningRate loadDataset
  loadModel makeSynthetic mergeReports numBatches parseArch parseBackendChoice parseConfig parseNumberExpr pgd
  planAttack readCheckpoint readCifar10 readCifar100 resolveConfig resolveEvalOptions runEval runStages sanityChecks
  saveModel splitValidation square stageFromSpec train trainConfigSchema validityLine verifyCheckpoint versionSpecs
  warmupFactor writeCheckpoint exportModel exportSource initModelFrom loadTorchModel readStateDictFile recogniseArch
  fab customSpecs momentumAt oneCycleAt emaDecay AUGMENTATIONS Augmenter augmentBatch AUTOATTACK_STANDARD_L1 writeReportEvents TensorBoardWriter readEvents BatchLoader MemorySource ConcatSource openParts EpochSampler MixedSampler writeNpz ROBUSTBENCH_MODELS ROBUSTBENCH_LACKING findRobustBenchEntry ensureRobustBenchFile loadRobustBench loadRobustBenchModel compareWithRobustBench robustBenchInfo createCollective clusterFromEnv encodeServerDef SingleProcess TensorFlowCollective CollectiveError
`;

/** Types only (erased at run time; read from the source of src/index.ts). */
const TYPES = `
  ApgdOptions ApgdTOptions AttackName AttackOptions AttackPlan AttackResult AutoAttackOptions AutoAttackResult
  AutoAttackStage AutoAttackVersion BackendChoice BackendInfo BaseAttackOptions Batch BatchOptions CheckpointData
  CheckpointMeta ClassWeightsJSON ClassWeightsOptions CrossEntropyOptions DatasetName DkdOptions DklOptions
  EpochSettings EvalAttack EvalOptions EvalReport FabOptions FabResult FgsmOptions Forward IklKdOptions IklOptions
  ImageSet KdOptions KlOptions AutoAttackStageName
  LoadDatasetOptions LoadedCheckpoint LogFormat Logger MarginOptions MetricRecord ModelArch ModelFn ModelSpec Norm
  PgdOptions RawEvalOptions Reduction RunEvalHooks SequenceOptions SquareOptions SquareResult StageEvent StageResult
  StageSpec StepInfo StepStats SyntheticOptions TrainConfig TrainConfigInput TrainOptions TrainResult ValidityLine
  ExportResult ImportedModel WeightSource OneCycleOptions EmaDecayOptions AugmentationName ImageShape PerClassRow PerClassSummary EventRecord ImageSource BatchSampler Augmentation LoaderOptions PartFile RobustBenchEntry RobustBenchComparison RobustBenchModelInfo Collective ClusterSpec ReduceOp
`;

const words = (s: string): string[] => s.split(/\s+/).filter(Boolean).sort();

test('the runtime exports of the package are exactly the listed values', () => {
  assert.deepEqual(Object.keys(api).sort(), words(VALUES));
});

test('the type-only exports of src/index.ts are exactly the listed types', () => {
  const src = readFileSync(fileURLToPath(new URL('../../src/index.ts', import.meta.url)), 'utf8');
  assert.doesNotMatch(src, /export \*/, 'no wholesale re-exports in the public index');
  const types = [...src.matchAll(/\btype\s+([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
  assert.deepEqual([...new Set(types)].sort(), words(TYPES));
});
