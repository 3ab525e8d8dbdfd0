/** Attacks: FGSM, PGD, APGD-CE/T, FAB-T, Square, the AutoAttack sequencer, validity and sanity checks. */
export type { ModelFn, Norm, BaseAttackOptions, AttackOptions, AttackResult } from './types.js';
export { fgsm, type FgsmOptions } from './fgsm.js';
export { pgd, pgdPerturb, pgdStep, restartSeed, defaultStepSize, PGD_STARTS, type PgdOptions, type PgdStart } from './pgd.js';
export {
  apgd,
  apgdCe,
  apgdDlr,
  apgdT,
  apgdRun,
  apgdCheckpoints,
  apgdStart,
  APGD_MOMENTUM,
  APGD_RHO,
  APGD_TARGET_CLASSES,
  type ApgdOptions,
  type ApgdTOptions,
  type ApgdLoss,
  type ApgdRun,
} from './apgd.js';
// FAB-T and Square are written in their own files by their own author: everything they export is public.
export * from './fab.js';
export * from './square.js';
export {
  autoAttack,
  runStages,
  stageFromSpec,
  versionSpecs,
  customSpecs,
  stageBudget,
  withBudget,
  standardStages,
  AUTOATTACK_STANDARD,
  AUTOATTACK_STANDARD_L1,
  AUTOATTACK_VERSIONS,
  AUTOATTACK_VERSION_NAMES,
  AUTOATTACK_STAGE_NAMES,
  ATTACK_NAMES,
  STANDARD_STAGE_NAMES,
  type AttackName,
  type AutoAttackOptions,
  type AutoAttackResult,
  type AutoAttackStage,
  type AutoAttackStageName,
  type AutoAttackVersion,
  type SequenceOptions,
  type SequenceResult,
  type StageEvent,
  type StageFn,
  type StageOptions,
  type StageResult,
  type StageSpec,
  type StandardBudget,
  type StandardStageName,
} from './autoattack.js';
export { validityLine, formatValidity, combineValidity, EMPTY_VALIDITY, InvalidAdversarialError, VALIDITY_TOLERANCE, type ValidityLine } from './validity.js';
export { checkZeroGradients, checkProbabilityOutputs, checkDeterminism, checkBlackBoxStronger, checkNumClasses, sanityChecks } from './checks.js';
export { attackObjective, ATTACK_LOSSES, type AttackLoss, type AttackLossOptions, type AttackObjective } from './objective.js';
export { lossAndGrad, eotLossAndGrad, correctMask, type PerExampleLoss, type LossAndGrad } from './grad.js';
export { indicesWhere, gatherRows, scatterRows, predictCorrect } from './subset.js';
export {
  project,
  normalizeL2,
  steepestDirection,
  l2NormPerExample,
  linfNormPerExample,
  normPerExample,
  uniformBallStart,
  tradesStart,
  selectPerExample,
} from './project.js';
