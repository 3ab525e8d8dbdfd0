/**
 * An evaluation run: clean accuracy, then each attack stage on the examples still robust, batch by batch,
 * with resumable state. Every random choice is a function of (seed, global batch index, stage), so a run
 * that is interrupted and resumed, or split into shards, gives the same per-example results as one run.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../rng.js';
import type { ModelFn } from '../attacks/types.js';
import type { BackendInfo } from '../backend.js';
import { loadTestSet } from '../data/index.js';
import type { ImageSet } from '../data/types.js';
import { InputError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { packageVersion } from '../version.js';
import { runStages, stageFromSpec, type AutoAttackStage, type StageCheckpoint } from '../attacks/autoattack.js';
import { attackStateFromJson, attackStateToJson } from '../attacks/progress.js';
import { sanityChecks } from '../attacks/checks.js';
import { predictCorrect } from '../attacks/subset.js';
import { combineValidity, EMPTY_VALIDITY } from '../attacks/validity.js';
import { loadEvalSubject, type EvalSubject } from './model.js';
import { DEFAULT_N_EXAMPLES, shardSlice, type PartialEvalOptions } from './options.js';
import { planAttack, planTargetClasses, type AttackPlan } from './plan.js';
import { buildReport } from './report.js';
import { assertResumable, loadState, newState, saveState, type BatchState, type EvalState, type PartialStageJson } from './state.js';
import { validityFromJson, validityToJson } from './validity.js';
import type { EvalOptions, EvalReport } from './types.js';

export interface RunEvalHooks {
  /** Resumable state file (`--state`). Without it nothing is written. */
  stateFile?: string;
  logger?: Logger;
  backend?: Pick<BackendInfo, 'name' | 'package' | 'devices'>;
  /** Called after every finished batch with the number of finished / total batches of the slice. */
  onProgress?: (done: number, total: number) => void;
  /** Called after every stage of every batch (global batch index, stage index in the plan). */
  onStage?: (batch: number, stage: number) => void;
  /** Called after every stage of every batch with where the run stands: what progress bars and log lines show. */
  onStageDone?: (p: StageProgress) => void;
  /** Aborting it stops the run at the next stage boundary, state saved; runEval then returns null. */
  signal?: AbortSignal;
  /** A custom attack list (StageSpec data) instead of the one `options.attack` names. */
  plan?: AttackPlan;
  /**
   * Minimum seconds between state writes inside a batch: after a stage, or after a unit of a stage's attack
   * (an APGD restart, an APGD-T/FAB-T target); batch ends always write. 0: at every unit. Default 30.
   */
  saveEverySeconds?: number;
  /** Architecture of a PyTorch weight file given as the checkpoint (`--arch`; recognised from its keys when absent). */
  arch?: string;
}

/** Where a run stands after a stage of a batch, counted over every example evaluated so far (resumed ones too). */
export interface StageProgress {
  /** Batches of the slice finished before this one, and in all. */
  batchesDone: number;
  batches: number;
  /** Index and name of the stage just finished, and the number of stages. */
  stage: number;
  stageName: string;
  stages: number;
  /** Examples evaluated so far (the current batch included), those classified correctly, those still robust. */
  examples: number;
  clean: number;
  robust: number;
  /** Seconds of the stage just finished on this batch. */
  seconds: number;
}

/** Default of `--save-every`: a kill loses at most about this many seconds of a stage's work (plus one unit). */
export const DEFAULT_SAVE_EVERY_SECONDS = 30;

function partialToJson(c: StageCheckpoint): PartialStageJson {
  return { ...c, validity: c.validity ? validityToJson(c.validity) : null, attack: c.attack ? attackStateToJson(c.attack) : null };
}

function partialFromJson(p: PartialStageJson): StageCheckpoint {
  return { ...p, validity: p.validity ? validityFromJson(p.validity) : null, attack: p.attack ? attackStateFromJson(p.attack) : null };
}

/** Float NHWC batch in [0, 1] and int32 labels of examples [start, end) of an ImageSet. */
export function imageBatch(set: ImageSet, start: number, end: number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const per = set.height * set.width * set.channels;
  const pixels = set.images.subarray(start * per, end * per);
  const f = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) f[i] = pixels[i]! / 255;
  return {
    x: tf.tensor4d(f, [end - start, set.height, set.width, set.channels]),
    y: tf.tensor1d(Int32Array.from(set.labels.subarray(start, end)), 'int32'),
  };
}

/** The options of a run once the checkpoint and dataset are known. */
export function completeOptions(
  partial: PartialEvalOptions & { dataDir: string },
  subject: { dataset: EvalOptions['dataset'] | null },
  testSize: number,
): EvalOptions {
  const dataset = partial.dataset ?? subject.dataset;
  if (dataset === null) throw new InputError(`--dataset: required, checkpoint ${partial.checkpoint} does not name its dataset`);
  if (partial.nExamples !== null && partial.nExamples > testSize) {
    throw new InputError(`--n-examples: the ${dataset} test set has ${testSize} examples, got ${partial.nExamples}`);
  }
  return { ...partial, dataset, nExamples: partial.nExamples ?? Math.min(DEFAULT_N_EXAMPLES, testSize) };
}

/**
 * Runs (or resumes) an evaluation and returns its report, or null when stopped early by `hooks.signal`.
 * Bad options, an unreadable checkpoint or a state made with other options throw InputError.
 */
export async function runEval(partial: PartialEvalOptions, hooks: RunEvalHooks = {}): Promise<EvalReport | null> {
  const log = hooks.logger ?? silentLogger;
  const subject = await loadEvalSubject(partial.checkpoint, { arch: hooks.arch, dataset: partial.dataset, norm: partial.norm, logger: log });
  try {
    const datasetName = partial.dataset ?? subject.dataset;
    if (datasetName === null) throw new InputError(`--dataset: required, checkpoint ${partial.checkpoint} does not name its dataset`);
    // Only the test split is used; synthetic test images do not depend on the training-set size.
    const synthetic = {
      nTrain: 1,
      ...(subject.synthetic.nTest !== undefined ? { nTest: subject.synthetic.nTest } : {}),
      ...(subject.synthetic.seed !== undefined ? { seed: subject.synthetic.seed } : {}),
    };
    // --data-dir, else the directory the checkpoint was trained from, else ./data.
    const dataDir = partial.dataDir ?? subject.dataDir ?? 'data';
    const test = await loadTestSet(datasetName, { dataDir, logger: log, synthetic });
    if (test.numClasses !== subject.numClasses) {
      throw new InputError(`--dataset ${datasetName}: has ${test.numClasses} classes but checkpoint ${partial.checkpoint} has ${subject.numClasses}`);
    }
    const options = completeOptions({ ...partial, dataDir }, subject, test.n);
    const report = await evaluate(options, subject, test, hooks, log);
    if (report === null) return null;
    const made = { created_at: new Date().toISOString(), ikl_at_version: packageVersion(), checkpoint_epoch: subject.epoch ?? null };
    const described = { ...report, ...made, ...(subject.source ?? {}) };
    if (!subject.robustbench) return described;
    const { compareWithRobustBench } = await import('../interop/robustbench.js');
    return { ...described, robustbench: compareWithRobustBench(subject.robustbench, report) };
  } finally {
    subject.dispose();
  }
}

async function evaluate(o: EvalOptions, subject: EvalSubject, test: ImageSet, hooks: RunEvalHooks, log: Logger): Promise<EvalReport | null> {
  const slice = shardSlice(o.nExamples, o.batchSize, o.shard);
  const plan = hooks.plan ?? planAttack(o);
  const stages = plan.stages.map(stageFromSpec);
  const stageNames = stages.map((s) => s.name);

  let state: EvalState | undefined;
  if (hooks.stateFile) {
    state = loadState(hooks.stateFile);
    if (state) {
      assertResumable(hooks.stateFile, state, o, subject.weightsSha256, stageNames);
      const done = Object.values(state.batches).filter((b) => b.stagesDone === stageNames.length).length;
      const stagesDone = Object.values(state.batches).reduce((a, b) => a + b.stagesDone, 0);
      // Stages interrupted after some of their attack units: continued from there.
      const inStage = Object.entries(state.batches)
        .filter(([, b]) => b.partial)
        .map(([k, b]) => ({ batch: Number(k), stage: stageNames[b.partial!.stage], chunk: b.partial!.chunk, units: b.partial!.attack?.units ?? 0 }));
      log.info({ state: hooks.stateFile, batchesDone: done, stagesDone, inStage }, 'resuming from state');
    }
  }
  state ??= newState(o, stageNames, { start: slice.start, end: slice.end }, subject.weightsSha256);

  const save = async (): Promise<void> => {
    if (hooks.stateFile) await saveState(hooks.stateFile, state!);
  };

  if (state.sanityWarnings === null) {
    // Always on global batch 0, whatever the shard: every shard then reports the same warnings.
    const probe = imageBatch(test, 0, Math.min(o.batchSize, o.nExamples));
    try {
      state.sanityWarnings = await sanityChecks(subject.modelFn, probe.x, probe.y, { nTargetClasses: planTargetClasses(plan) });
    } finally {
      tf.dispose([probe.x, probe.y]);
    }
    for (const w of state.sanityWarnings) log.warn(w);
    await save();
  }

  const totalBatches = slice.endBatch - slice.firstBatch;
  const saveEvery = hooks.saveEverySeconds ?? DEFAULT_SAVE_EVERY_SECONDS;
  let lastSave = Date.now();
  const due = (): boolean => Date.now() - lastSave >= saveEvery * 1000;
  const completeBatches = (): number => Object.values(state.batches).filter((x) => x.stagesDone === stageNames.length).length;
  hooks.onProgress?.(completeBatches(), totalBatches);
  for (let b = slice.firstBatch; b < slice.endBatch; b++) {
    const bs = state.batches[String(b)];
    if (bs && bs.stagesDone === stageNames.length) continue;
    if (hooks.signal?.aborted) return null;
    const finished = await runBatch(b, state, stages, subject.modelFn, test, o, {
      signal: hooks.signal,
      afterStage: async (s) => {
        if (due()) {
          await save();
          lastSave = Date.now();
        }
        hooks.onStage?.(b, s);
        if (hooks.onStageDone) {
          const c = countSoFar(state, o.protocol === 'trades');
          const seconds = state.batches[String(b)]?.stageTimes[s] ?? 0;
          hooks.onStageDone({
            batchesDone: completeBatches(),
            batches: totalBatches,
            stage: s,
            stageName: stageNames[s]!,
            stages: stageNames.length,
            ...c,
            seconds,
          });
        }
      },
      // Inside a stage: the sequencer's checkpoint, written when the interval has passed.
      saveUnit: hooks.stateFile
        ? async (batch, read) => {
            if (!due()) return;
            batch.partial = partialToJson(await read());
            await save();
            lastSave = Date.now();
          }
        : undefined,
    });
    await save();
    lastSave = Date.now();
    if (!finished) return null;
    const done = completeBatches();
    log.debug({ batch: b, done, total: totalBatches, memory: tf.memory().numTensors }, 'batch done');
    hooks.onProgress?.(done, totalBatches);
  }
  if (hooks.signal?.aborted) return null;

  return buildReport(state, {
    arch: subject.arch,
    weightsSha256: subject.weightsSha256,
    numClasses: subject.numClasses,
    loss: plan.loss,
    details: plan.details,
    labels: test.labels.subarray(slice.start, slice.end),
    backend: hooks.backend
      ? { name: hooks.backend.name, package: hooks.backend.package, devices: [...hooks.backend.devices] }
      : { name: tf.getBackend(), package: 'unknown', devices: [] },
  });
}

/** Examples with a clean result so far, those correct, those not broken by any stage yet (every point under TRADES' protocol). */
function countSoFar(state: EvalState, all: boolean): { examples: number; clean: number; robust: number } {
  let examples = 0;
  let clean = 0;
  let robust = 0;
  for (let i = 0; i < state.clean.length; i++) {
    const c = state.clean[i];
    if (c !== 0 && c !== 1) continue;
    examples++;
    clean += c;
    if ((all || c === 1) && state.brokenAt[i] === -1) robust++;
  }
  return { examples, clean, robust };
}

/**
 * Clean pass and the remaining stages of global batch b, through the attacks' sequencer; updates `state` in
 * place after each stage. Returns whether the batch is complete (false when the signal stopped it).
 */
async function runBatch(
  b: number,
  state: EvalState,
  stages: AutoAttackStage[],
  model: ModelFn,
  test: ImageSet,
  o: EvalOptions,
  hooks: {
    signal?: AbortSignal;
    afterStage: (stage: number) => Promise<void>;
    saveUnit?: (batch: BatchState, read: () => Promise<StageCheckpoint>) => Promise<void>;
  },
): Promise<boolean> {
  const key = String(b);
  const start = b * o.batchSize;
  const end = Math.min(o.nExamples, start + o.batchSize);
  const off = start - state.slice.start;
  const { x, y } = imageBatch(test, start, end);
  try {
    let bs = state.batches[key];
    if (!bs) {
      const t0 = performance.now();
      const correct = await predictCorrect(model, x, y);
      correct.forEach((c, i) => {
        state.clean[off + i] = c;
        state.brokenAt[off + i] = -1;
      });
      bs = { stagesDone: 0, cleanTime: (performance.now() - t0) / 1000, stageTimes: [], validity: { ...EMPTY_VALIDITY } };
      state.batches[key] = bs;
    }
    const batch = bs;
    // Still robust: clean-correct and not broken by an earlier stage. TRADES' protocol attacks every point (a
    // clean error the attack fixes counts as robust there, report.ts).
    const all = o.protocol === 'trades';
    const robust = Uint8Array.from({ length: end - start }, (_, i) => ((all || state.clean[off + i] === 1) && state.brokenAt[off + i] === -1 ? 1 : 0));
    const { stopped } = await runStages(model, x, y, robust, stages, {
      eps: o.eps,
      norm: o.norm,
      fromStage: batch.stagesDone,
      // One seed per (global batch, stage): the same whatever the shard or resume point.
      stageSeed: (s) => deriveSeed(o.seed, b, s),
      signal: hooks.signal,
      progress: hooks.saveUnit && {
        restored: batch.partial?.stage === batch.stagesDone ? partialFromJson(batch.partial) : undefined,
        save: (read) => hooks.saveUnit!(batch, read),
      },
      onStage: async (e) => {
        delete batch.partial;
        for (const i of e.fooledRows) state.brokenAt[off + i] = e.stage;
        if (e.validity) batch.validity = combineValidity(batch.validity, e.validity);
        batch.stageTimes[e.stage] = e.timeMs / 1000;
        batch.stagesDone = e.stage + 1;
        await hooks.afterStage(e.stage);
      },
    });
    return !stopped;
  } finally {
    tf.dispose([x, y]);
  }
}
