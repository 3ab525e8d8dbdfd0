/**
 * The training loop: config → data → model → per-epoch (lr, ε_t, AWP) steps → class weights, weight average,
 * evaluation, logs, metrics, curves and checkpoints.
 *
 * Run directory:
 *   config.resolved.yaml   the config this run trains with
 *   metrics.jsonl          one JSON record per epoch (rewritten from the checkpoint on resume)
 *   curves.svg             loss and accuracy against the epoch
 *   last/  best/  wa/      checkpoints (src/checkpoint): the resume point, the best by validation metric, the
 *                          weight average. Each holds the model, optimiser state, position, class weights,
 *                          weight-average state, config + hash and metrics.
 *
 * Determinism: every random choice is a function of (run.seed, epoch, batch index), so resuming from a checkpoint
 * (at an epoch end or mid-epoch) continues the identical trajectory.
 */
import { appendFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import cliProgress from 'cli-progress';
import { pgdPerturb } from '../attacks/pgd.js';
import { backendInfo } from '../backend.js';
import { deriveSeed } from '../rng.js';
import { findResumableCheckpoint, readCheckpoint, writeCheckpoint, type BestRule, type CheckpointState } from '../checkpoint/index.js';
import { configHash, configToYaml, type TrainConfig } from '../config/index.js';
import {
  batches,
  firstN,
  loadDataset,
  numBatches,
  readExtraData,
  splitValidation,
  trainSubset,
  type ImageSet,
} from '../data/index.js';
import { InputError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { ClassWeights, type ClassWeightsJSON } from '../losses/index.js';
import { restoreWeights } from '../models/index.js';
import { curvesSvg, type MetricRecord } from './plot.js';
import { epsilonAt, learningRate, stepSizeFor } from './schedules.js';
import { inferenceModel } from '../models/inference.js';
import { createTrainer, disposeTrainer, DivergenceError, trainStep, type StepStats, type Trainer } from './step.js';

export interface TrainOptions {
  runDir: string;
  /** true: continue from runDir/last if it exists (fresh start otherwise); a path: continue from that checkpoint. */
  resume?: boolean | string;
  logger?: Logger;
  /** Progress bar on stderr (only when stderr is a TTY). Default: config.run.progress. */
  progress?: boolean;
  /** Set stopRequested (e.g. on SIGINT): the current step finishes, last/ is written, train returns stopped. */
  signal?: { stopRequested: boolean };
  /** Called after every optimiser step (monitoring, tests). */
  onStep?: (info: StepInfo, trainer: Trainer) => void;
}

export interface StepInfo {
  epoch: number;
  /** Batch index within the epoch (0-based). */
  batch: number;
  /** Optimiser steps done in the whole run, this one included. */
  step: number;
  stats: StepStats;
}

export interface TrainResult {
  /** One record per completed epoch (also in metrics.jsonl). */
  metrics: MetricRecord[];
  runDir: string;
  stopped?: 'signal';
  /** Completed epochs and optimiser steps. */
  epochs: number;
  steps: number;
}

/** Run-directory file names. */
export const RUN_FILES = {
  config: 'config.resolved.yaml',
  metrics: 'metrics.jsonl',
  curves: 'curves.svg',
  last: 'last',
  best: 'best',
  wa: 'wa',
} as const;

// Purpose tags of derived seeds (different streams from the data pipeline's).
const TAG_ATTACK = 0x41544b;
const TAG_EVAL = 0x45564c;

/** Partial sums of the epoch in progress (saved mid-epoch so a resumed epoch reports the same figures). */
interface EpochAccum {
  images: number;
  loss: number;
  natural: number;
  robust: number;
  cleanCorrect: number;
  advCorrect: number;
  seconds: number;
}

/** The JSON state stored in every checkpoint. */
interface RunState {
  version: 1;
  /** The next batch to run: epoch (1-based) and batch index (0-based). With the seed, this is the RNG state. */
  position: { epoch: number; batch: number };
  seed: number;
  step: number;
  classWeights?: ClassWeightsJSON;
  weightAverageCount: number;
  epochAccum: EpochAccum;
}

const emptyAccum = (): EpochAccum => ({ images: 0, loss: 0, natural: 0, robust: 0, cleanCorrect: 0, advCorrect: 0, seconds: 0 });

/** Writes a file atomically (temp + rename), so a reader never sees half of it. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

interface Data {
  train: ImageSet;
  /** Evaluation images: the held-out validation split, or the first test images when valSize is 0. */
  evalSet?: ImageSet;
  evalOnTest: boolean;
  extra?: ImageSet;
}

async function loadData(config: TrainConfig, log: Logger): Promise<Data> {
  const d = config.data;
  const { train: full, test } = await loadDataset(d.dataset, {
    dataDir: d.dataDir,
    download: d.download,
    synthetic: { nTrain: d.synthetic.nTrain, nTest: d.synthetic.nTest, seed: d.synthetic.seed },
    logger: log,
  });
  if (full.numClasses !== config.model.numClasses) {
    throw new InputError(`model.numClasses: the dataset ${d.dataset} has ${full.numClasses} classes, the config says ${config.model.numClasses}`);
  }
  let train = full;
  let evalSet: ImageSet | undefined;
  let evalOnTest = false;
  if (d.valSize > 0) {
    if (d.valSize >= full.n) throw new InputError(`data.valSize: expected fewer than the ${full.n} training images, got ${d.valSize}`);
    ({ train, val: evalSet } = splitValidation(full, d.valSize, config.run.seed));
  } else if (test.n > 0) {
    evalSet = test;
    evalOnTest = true;
  }
  if (d.trainSubset !== undefined) {
    if (d.trainSubset > train.n) throw new InputError(`data.trainSubset: expected at most ${train.n} images, got ${d.trainSubset}`);
    train = trainSubset(train, d.trainSubset);
  }
  if (evalSet) evalSet = firstN(evalSet, Math.min(config.eval.nExamples, evalSet.n));
  const extra = d.extra ? await readExtraData(d.extra.file, config.model.numClasses) : undefined;
  return { train, evalSet, evalOnTest, extra };
}

/** Clean and PGD accuracy (CE, uniform start, inference mode) of a model on a set. */
export function evaluateAccuracy(model: tf.LayersModel, set: ImageSet, config: TrainConfig): { cleanAcc: number; robustAcc: number } {
  const e = config.eval;
  const exec = inferenceModel(model);
  const fn = exec.fn;
  let clean = 0;
  let robust = 0;
  for (const b of batches(set, { batchSize: config.data.batchSize, shuffle: false, augment: false })) {
    const counts = tf.tidy(() => {
      const ok = (x: tf.Tensor4D): tf.Scalar => tf.sum(tf.cast(tf.equal(tf.argMax(fn(x), 1), b.y), 'float32'));
      const xAdv = pgdPerturb(fn, b.x, b.y, {
        eps: e.epsilon,
        norm: 'linf',
        steps: e.pgdSteps,
        stepSize: e.pgdStepSize,
        restarts: 1,
        // The same starts every epoch, so epochs are compared on the same attack.
        seed: deriveSeed(config.run.seed, TAG_EVAL, b.index),
        start: 'uniform',
        loss: 'ce',
      });
      return tf.stack([ok(b.x), ok(xAdv)]).dataSync();
    });
    clean += counts[0]!;
    robust += counts[1]!;
    tf.dispose([b.x, b.y]);
  }
  exec.dispose();
  return { cleanAcc: clean / set.n, robustAcc: robust / set.n };
}

/** Trains as `config` says. See the module comment for what goes into the run directory. */
export async function train(config: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const log = opts.logger ?? silentLogger;
  const runDir = opts.runDir;
  const E = config.schedule.epochs;
  const hash = configHash(config);
  await mkdir(runDir, { recursive: true });

  // Where to start: a checkpoint (resume) or nothing. A fresh run never overwrites an existing one.
  let resumeDir: string | undefined;
  if (typeof opts.resume === 'string') {
    resumeDir = opts.resume;
  } else {
    const found = await findResumableCheckpoint(runDir, { warn: (m) => log.warn(m) });
    if (found && !opts.resume) {
      throw new InputError(`${runDir}: already holds a checkpoint (${RUN_FILES.last}/); pass --resume to continue it or choose another run directory`);
    }
    resumeDir = found?.dir;
    if (opts.resume && !found) log.info({ runDir }, 'no checkpoint to resume from; starting a new run');
  }

  const data = await loadData(config, log);
  const nBatches = numBatches(data.train.n, config.data.batchSize);
  const t = createTrainer(config);
  let bar: cliProgress.SingleBar | undefined;
  try {
    let position = { epoch: 1, batch: 0 };
    let step = 0;
    let accum = emptyAccum();
    let metrics: MetricRecord[] = [];
    const metricKey = config.checkpoint.bestMetric === 'robust' ? 'valRobustAcc' : 'valCleanAcc';
    let best: BestRule = { metric: metricKey, mode: 'max' };

    if (resumeDir) {
      const ck = await readCheckpoint(resumeDir, { withTensors: true });
      try {
        if (ck.meta.configHash !== hash) {
          throw new InputError(
            `${resumeDir}: the checkpoint was trained with another config (hash ${String(ck.meta.configHash).slice(0, 12)}, this one ${hash.slice(0, 12)}); resume with its config.resolved.yaml`,
          );
        }
        const st = ck.state as unknown as RunState;
        if (st.version !== 1 || !st.position) throw new InputError(`${resumeDir}: checkpoint.json state is not a trainer state (version ${String(st.version)})`);
        restoreWeights(t.model, ck.model.weights.map((w) => w.read()));
        t.optimizer.setState(ck.tensors);
        if (t.weightAverage) t.weightAverage.setState(ck.tensors, st.weightAverageCount);
        if (t.classWeights && st.classWeights) {
          t.classWeights.dispose();
          t.classWeights = ClassWeights.fromJSON(st.classWeights, `${resumeDir}: checkpoint.json state.classWeights`);
        }
        position = st.position;
        step = st.step;
        accum = st.epochAccum ?? emptyAccum();
        metrics = ck.meta.metrics ?? [];
        best = ck.meta.best ?? best;
      } finally {
        ck.model.dispose();
        tf.dispose(Object.values(ck.tensors));
      }
      log.info({ from: resumeDir, epoch: position.epoch, batch: position.batch, step }, 'resuming');
    }

    await writeAtomic(join(runDir, RUN_FILES.config), configToYaml(config, `ikl-train resolved config (hash ${hash})`));
    await writeAtomic(join(runDir, RUN_FILES.metrics), metrics.map((m) => JSON.stringify(m) + '\n').join(''));
    let lastDir: string | undefined = resumeDir;

    const checkpoint = async (kind: 'last' | 'best' | 'wa', model: tf.LayersModel): Promise<string> => {
      const state: RunState = {
        version: 1,
        position,
        seed: config.run.seed,
        step,
        classWeights: t.classWeights?.toJSON(),
        weightAverageCount: t.weightAverage?.count ?? 0,
        epochAccum: accum,
      };
      const tensors = { ...t.optimizer.getState(), ...(t.weightAverage?.getState() ?? {}) };
      try {
        const res = await writeCheckpoint(join(runDir, kind), {
          model,
          meta: {
            arch: config.model.arch,
            numClasses: config.model.numClasses,
            dataset: config.data.dataset,
            epoch: position.epoch - 1,
            step,
            kind,
            config,
            configHash: hash,
            metrics,
            best,
            info: { backend: backendInfo()?.name, tfjs: tf.version.tfjs, evalOnTest: data.evalOnTest },
          },
          state: state as unknown as CheckpointState,
          tensors,
        });
        return res.generationDir;
      } finally {
        tf.dispose(Object.values(tensors));
      }
    };

    const showBar = (opts.progress ?? config.run.progress) && process.stderr.isTTY === true;
    log.info(
      {
        runDir,
        arch: config.model.arch,
        objective: config.objective.type,
        train: data.train.n,
        eval: data.evalSet?.n ?? 0,
        evalOn: data.evalOnTest ? 'test' : 'validation',
        batchesPerEpoch: nBatches,
        epochs: E,
        configHash: hash,
      },
      position.epoch > 1 || position.batch > 0 ? 'training resumes' : 'training starts',
    );
    for (let epoch = position.epoch; epoch <= E; epoch++) {
      const lr = learningRate(
        { kind: config.schedule.type, lr: config.optimizer.lr, epochs: E, milestones: config.schedule.milestones, gamma: config.schedule.gamma, warmupEpochs: config.schedule.warmupEpochs },
        epoch,
      );
      const epsilon = epsilonAt({ kind: config.attack.schedule, epsilon: config.attack.epsilon, epochs: E }, epoch);
      const ss = config.attack.stepSize;
      const stepSize = stepSizeFor('relative' in ss ? { stepSize: ss.relative, relative: true } : { stepSize: ss.absolute, relative: false }, epsilon);
      const useAwp = config.awp.enabled && epoch >= config.awp.warmupEpoch;
      const averageSteps = config.weightAverage.enabled && config.weightAverage.perStep && epoch >= config.weightAverage.startEpoch;
      const startBatch = epoch === position.epoch ? position.batch : 0;
      if (startBatch === 0) accum = emptyAccum();
      if (showBar) {
        bar = new cliProgress.SingleBar(
          { stream: process.stderr, format: `epoch ${epoch}/${E} [{bar}] {value}/{total} | loss {loss} | {eta_formatted} left` },
          cliProgress.Presets.shades_classic,
        );
        bar.start(nBatches, startBatch, { loss: '-' });
      }
      let stopNow = false;
      let t0 = performance.now();
      for (const b of batches(data.train, {
        batchSize: config.data.batchSize,
        shuffle: true,
        augment: config.data.augment,
        seed: config.run.seed,
        epoch,
        startBatch,
        extra: data.extra && config.data.extra ? { set: data.extra, ratio: config.data.extra.ratio } : undefined,
      })) {
        let stats: StepStats;
        try {
          stats = trainStep(t, b.x, b.y, {
            lr,
            epsilon,
            stepSize,
            awp: useAwp,
            averageWeights: averageSteps,
            seed: deriveSeed(config.run.seed, epoch, b.index, TAG_ATTACK),
          });
        } catch (e) {
          if (e instanceof DivergenceError) {
            throw new DivergenceError(
              `epoch ${epoch}, batch ${b.index} (step ${step + 1}): ${e.message}. Nothing was written after the last good checkpoint ` +
                `(${lastDir ?? 'none yet'}); lower optimizer.lr or check the data, then resume.`,
            );
          }
          throw e;
        } finally {
          tf.dispose([b.x, b.y]);
        }
        step++;
        const n = stats.batchSize;
        accum.images += n;
        accum.loss += stats.total * n;
        accum.natural += stats.natural * n;
        accum.robust += stats.robust * n;
        accum.cleanCorrect += stats.cleanCorrect;
        accum.advCorrect += stats.advCorrect;
        position = { epoch, batch: b.index + 1 };
        opts.onStep?.({ epoch, batch: b.index, step, stats }, t);
        bar?.update(b.index + 1, { loss: stats.total.toFixed(4) });
        const lastOfEpoch = b.index + 1 === nBatches;
        const periodic = config.checkpoint.everySteps > 0 && step % config.checkpoint.everySteps === 0;
        if (opts.signal?.stopRequested) stopNow = true;
        if (!lastOfEpoch && (periodic || stopNow)) {
          accum.seconds += (performance.now() - t0) / 1000;
          t0 = performance.now();
          lastDir = await checkpoint('last', t.model);
          if (stopNow) break;
        }
      }
      bar?.stop();
      bar = undefined;
      if (stopNow && position.batch < nBatches) {
        log.info({ epoch, batch: position.batch, step, checkpoint: lastDir }, 'stopped on request; resume with --resume');
        return { metrics, runDir, stopped: 'signal', epochs: epoch - 1, steps: step };
      }
      accum.seconds += (performance.now() - t0) / 1000;

      // Epoch end: class weights for the next epoch, weight average, evaluation.
      t.classWeights?.finalize();
      if (t.weightAverage && !config.weightAverage.perStep && epoch >= config.weightAverage.startEpoch) {
        t.weightAverage.update(t.model.weights.map((w) => w.read()));
      }
      const record: MetricRecord = {
        epoch,
        step,
        lr,
        epsilon,
        stepSize,
        awp: useAwp ? 1 : 0,
        lossTotal: accum.loss / accum.images,
        lossNatural: finiteOrNull(accum.natural / accum.images),
        lossRobust: finiteOrNull(accum.robust / accum.images),
        trainCleanAcc: finiteOrNull(accum.cleanCorrect / accum.images),
        trainAdvAcc: finiteOrNull(accum.advCorrect / accum.images),
        valCleanAcc: null,
        valRobustAcc: null,
        waCleanAcc: null,
        waRobustAcc: null,
        epochSeconds: accum.seconds,
        imagesPerSecond: accum.images / accum.seconds,
        evalSeconds: null,
      };
      const evalNow = data.evalSet !== undefined && config.eval.everyEpochs > 0 && (epoch % config.eval.everyEpochs === 0 || epoch === E);
      if (evalNow) {
        const te = performance.now();
        const m = evaluateAccuracy(t.model, data.evalSet!, config);
        record.valCleanAcc = m.cleanAcc;
        record.valRobustAcc = m.robustAcc;
        if (t.weightAverage?.initialized && t.waModel) {
          restoreWeights(t.waModel, t.weightAverage.weights());
          const w = evaluateAccuracy(t.waModel, data.evalSet!, config);
          record.waCleanAcc = w.cleanAcc;
          record.waRobustAcc = w.robustAcc;
        }
        record.evalSeconds = (performance.now() - te) / 1000;
      }
      metrics = [...metrics, record];
      position = { epoch: epoch + 1, batch: 0 };
      accum = emptyAccum();

      // The model is selected on validation data only: with valSize 0 the evaluation runs on test images and best/ is not kept.
      const value = record[metricKey];
      const improved = config.checkpoint.keepBest && !data.evalOnTest && typeof value === 'number' && (best.value === undefined || value > best.value);
      if (improved) best = { ...best, value: value as number, epoch };
      lastDir = await checkpoint('last', t.model);
      if (t.weightAverage?.initialized && t.waModel) {
        restoreWeights(t.waModel, t.weightAverage.weights());
        await checkpoint('wa', t.waModel);
      }
      if (improved) await checkpoint('best', t.model);
      await appendFile(join(runDir, RUN_FILES.metrics), JSON.stringify(record) + '\n');
      await writeAtomic(join(runDir, RUN_FILES.curves), curvesSvg(metrics, `${config.run.name}: ${config.model.arch}, ${config.objective.type}`));
      log.info({ ...record, best: best.epoch === epoch }, `epoch ${epoch}/${E}`);
      if (stopNow) {
        log.info({ epoch, step, checkpoint: lastDir }, 'stopped on request at the end of an epoch; resume with --resume');
        return { metrics, runDir, stopped: 'signal', epochs: epoch, steps: step };
      }
    }
    return { metrics, runDir, epochs: E, steps: step };
  } finally {
    bar?.stop();
    disposeTrainer(t);
  }
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}
