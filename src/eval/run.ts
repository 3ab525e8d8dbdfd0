/**
 * An evaluation run: clean accuracy, then each attack stage on the examples still robust, batch by batch,
 * with resumable state. Every random choice is a function of (seed, global batch index, stage), so a run
 * that is interrupted and resumed, or split into shards, gives the same per-example results as one run.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../rng.js';
import type { ModelFn } from '../attacks/types.js';
import type { BackendInfo } from '../backend.js';
import { loadDataset } from '../data/index.js';
import type { ImageSet } from '../data/types.js';
import { InputError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { loadEvalSubject, type EvalSubject } from './model.js';
import { DEFAULT_N_EXAMPLES, shardSlice, type PartialEvalOptions } from './options.js';
import { planAttack, type AttackPlan, type Stage } from './plan.js';
import { buildReport } from './report.js';
import { evalSanityWarnings } from './sanity.js';
import { assertSameOptions, loadState, newState, saveState, type EvalState } from './state.js';
import type { EvalOptions, EvalReport } from './types.js';
import { measureValidity } from './measure.js';
import { combineValidity } from './validity.js';

export interface RunEvalHooks {
  /** Resumable state file (`--state`). Without it nothing is written. */
  stateFile?: string;
  logger?: Logger;
  backend?: Pick<BackendInfo, 'name' | 'package' | 'devices'>;
  /** Called after every finished batch with the number of finished / total batches of the slice. */
  onProgress?: (done: number, total: number) => void;
  /** Stop (returning null) after this many batches were processed in this call: simulates a killed run. */
  stopAfterBatches?: number;
  /** Stop (returning null) after this many attack stages ran in this call, possibly mid-batch (tests). */
  stopAfterStages?: number;
  /** Replaces the attack plan of `options.attack` (tests of multi-stage runs with cheap stages). */
  plan?: AttackPlan;
  /** Minimum seconds between state writes inside a batch (after a stage); batch ends always write. */
  saveEverySeconds?: number;
  /** Architecture of a PyTorch weight file given as the checkpoint (`--arch`; recognised from its keys when absent). */
  arch?: string;
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

/** 1 where argmax(model(x)) = y. */
export function predictCorrect(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D): Uint8Array {
  const t = tf.tidy(() => tf.equal(tf.argMax(model(x), 1).toInt(), y.toInt()));
  const out = Uint8Array.from(t.dataSync());
  t.dispose();
  return out;
}

/** The options of a run once the checkpoint and dataset are known. */
export function completeOptions(partial: PartialEvalOptions, subject: { dataset: EvalOptions['dataset'] | null }, testSize: number): EvalOptions {
  const dataset = partial.dataset ?? subject.dataset;
  if (dataset === null) throw new InputError(`--dataset: required, checkpoint ${partial.checkpoint} does not name its dataset`);
  if (partial.nExamples !== null && partial.nExamples > testSize) {
    throw new InputError(`--n-examples: the ${dataset} test set has ${testSize} examples, got ${partial.nExamples}`);
  }
  return { ...partial, dataset, nExamples: partial.nExamples ?? Math.min(DEFAULT_N_EXAMPLES, testSize) };
}

/**
 * Runs (or resumes) an evaluation and returns its report, or null when stopped early by `stopAfterBatches`.
 * Bad options, an unreadable checkpoint or a state made with other options throw InputError.
 */
export async function runEval(partial: PartialEvalOptions, hooks: RunEvalHooks = {}): Promise<EvalReport | null> {
  const log = hooks.logger ?? silentLogger;
  const subject = await loadEvalSubject(partial.checkpoint, { arch: hooks.arch });
  try {
    const datasetName = partial.dataset ?? subject.dataset;
    if (datasetName === null) throw new InputError(`--dataset: required, checkpoint ${partial.checkpoint} does not name its dataset`);
    // Only the test split is used; synthetic test images do not depend on the training-set size.
    const synthetic = { nTrain: 1, ...(subject.synthetic.nTest !== undefined ? { nTest: subject.synthetic.nTest } : {}), ...(subject.synthetic.seed !== undefined ? { seed: subject.synthetic.seed } : {}) };
    const { test } = await loadDataset(datasetName, { dataDir: partial.dataDir, logger: log, synthetic });
    if (test.numClasses !== subject.numClasses) {
      throw new InputError(`--dataset ${datasetName}: has ${test.numClasses} classes but checkpoint ${partial.checkpoint} has ${subject.numClasses}`);
    }
    const options = completeOptions(partial, subject, test.n);
    const report = await evaluate(options, subject, test, hooks, log);
    return report && subject.source ? { ...report, ...subject.source } : report;
  } finally {
    subject.dispose();
  }
}

async function evaluate(o: EvalOptions, subject: EvalSubject, test: ImageSet, hooks: RunEvalHooks, log: Logger): Promise<EvalReport | null> {
  const slice = shardSlice(o.nExamples, o.batchSize, o.shard);
  const plan = hooks.plan ?? planAttack(o);
  const stageNames = plan.stages.map((s) => s.name);

  let state: EvalState | undefined;
  if (hooks.stateFile) {
    state = loadState(hooks.stateFile);
    if (state) {
      assertSameOptions(hooks.stateFile, state.options, o);
      if (JSON.stringify(state.stages) !== JSON.stringify(stageNames)) {
        throw new InputError(`--state ${hooks.stateFile}: made with stages ${state.stages.join(',')}, this run has ${stageNames.join(',')}; use another --state file`);
      }
      const done = Object.values(state.batches).filter((b) => b.stagesDone === stageNames.length).length;
      log.info({ state: hooks.stateFile, batchesDone: done }, 'resuming from state');
    }
  }
  state ??= newState(o, stageNames, { start: slice.start, end: slice.end });

  const save = (): void => {
    if (hooks.stateFile) saveState(hooks.stateFile, state!);
  };

  if (state.sanityWarnings === null) {
    // Always on global batch 0, whatever the shard: every shard then reports the same warnings.
    const probe = imageBatch(test, 0, Math.min(o.batchSize, o.nExamples));
    try {
      state.sanityWarnings = await evalSanityWarnings(subject.modelFn, probe.x, probe.y, { numClasses: subject.numClasses, attack: o.attack });
    } finally {
      tf.dispose([probe.x, probe.y]);
    }
    for (const w of state.sanityWarnings) log.warn(w);
    save();
  }

  const totalBatches = slice.endBatch - slice.firstBatch;
  const saveEvery = hooks.saveEverySeconds ?? 60;
  let lastSave = Date.now();
  let processed = 0;
  let stagesRun = 0;
  const completeBatches = (): number => Object.values(state.batches).filter((x) => x.stagesDone === stageNames.length).length;
  hooks.onProgress?.(completeBatches(), totalBatches);
  for (let b = slice.firstBatch; b < slice.endBatch; b++) {
    const key = String(b);
    const bs = state.batches[key];
    if (bs && bs.stagesDone === stageNames.length) continue;
    if (hooks.stopAfterBatches !== undefined && processed >= hooks.stopAfterBatches) return null;
    const start = b * o.batchSize;
    const end = Math.min(o.nExamples, start + o.batchSize);
    const finished = await runBatch(b, start, end, state, plan.stages, subject.modelFn, test, o, () => {
      stagesRun++;
      if (Date.now() - lastSave >= saveEvery * 1000) {
        save();
        lastSave = Date.now();
      }
      return hooks.stopAfterStages !== undefined && stagesRun >= hooks.stopAfterStages;
    });
    if (!finished) {
      save();
      return null;
    }
    save();
    lastSave = Date.now();
    processed++;
    if (hooks.stopAfterStages !== undefined && stagesRun >= hooks.stopAfterStages) return null;
    const done = completeBatches();
    log.debug({ batch: b, done, total: totalBatches, memory: tf.memory().numTensors }, 'batch done');
    hooks.onProgress?.(done, totalBatches);
  }

  return buildReport(state, {
    arch: subject.arch,
    numClasses: subject.numClasses,
    loss: plan.loss,
    details: plan.details,
    backend: hooks.backend ? { name: hooks.backend.name, package: hooks.backend.package, devices: [...hooks.backend.devices] } : { name: tf.getBackend(), package: 'unknown', devices: [] },
  });
}

/**
 * Clean pass and the remaining stages of one batch; updates `state` in place after each stage. `afterStage`
 * returns true to stop here; the result says whether the batch is complete.
 */
async function runBatch(
  b: number,
  start: number,
  end: number,
  state: EvalState,
  stages: Stage[],
  model: ModelFn,
  test: ImageSet,
  o: EvalOptions,
  afterStage: () => boolean,
): Promise<boolean> {
  const key = String(b);
  const off = start - state.slice.start;
  const { x, y } = imageBatch(test, start, end);
  try {
    let bs = state.batches[key];
    if (!bs) {
      const t0 = performance.now();
      const correct = predictCorrect(model, x, y);
      correct.forEach((c, i) => {
        state.clean[off + i] = c;
        state.brokenAt[off + i] = -1;
      });
      bs = { stagesDone: 0, cleanTime: (performance.now() - t0) / 1000, stageTimes: [], validity: { max_perturbation: 0, nan_count: 0, min: Infinity, max: -Infinity } };
      state.batches[key] = bs;
    }
    for (let s = bs.stagesDone; s < stages.length; s++) {
      const t0 = performance.now();
      // Attack only what is still robust: clean-correct and not broken by an earlier stage.
      const idx: number[] = [];
      for (let i = 0; i < end - start; i++) if (state.clean[off + i] === 1 && state.brokenAt[off + i] === -1) idx.push(i);
      if (idx.length > 0) {
        const sel = tf.tensor1d(idx, 'int32');
        const xs = tf.gather(x, sel) as tf.Tensor4D;
        const ys = tf.gather(y, sel) as tf.Tensor1D;
        try {
          const { xAdv } = await stages[s]!.run(model, xs, ys, deriveSeed(o.seed, b, s));
          let stillCorrect: Uint8Array;
          try {
            bs.validity = combineValidity(bs.validity, await measureValidity(xs, xAdv, { eps: o.eps, norm: o.norm, attack: stages[s]!.name }));
            // Judged by our own forward pass, not the attack's bookkeeping (as AutoAttack re-checks its outputs).
            stillCorrect = predictCorrect(model, xAdv, ys);
          } finally {
            xAdv.dispose();
          }
          idx.forEach((i, j) => {
            if (!stillCorrect[j]) state.brokenAt[off + i] = s;
          });
        } finally {
          tf.dispose([sel, xs, ys]);
        }
      }
      bs.stageTimes[s] = (performance.now() - t0) / 1000;
      bs.stagesDone = s + 1;
      if (afterStage() && s + 1 < stages.length) return false;
    }
    return true;
  } finally {
    tf.dispose([x, y]);
  }
}
