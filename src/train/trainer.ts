/**
 * The training loop: config → data → model → per epoch, epochSettings (lr, ε_t, AWP), runEpoch (the steps) and
 * finishEpoch (class weights, weight average, evaluation, metrics, best model, checkpoints). What is written
 * where is RunDirectory's business (runDir.ts).
 *
 * Determinism: every random choice is a function of (run.seed, epoch, batch index), so resuming from a checkpoint
 * (at an epoch end or mid-epoch) continues the identical trajectory.
 *
 * Data parallelism goes through `opts.collective` (src/collective; one process: the identity): each task takes its
 * shard of every batch, the step sums gradients, figures and class-wise weight increments over the tasks
 * (step.ts), the epoch end sums the validation counts, task 0 writes the run directory, and every task checks after
 * each epoch that its weights are task 0's. Stop requests are agreed on, so all tasks stop at the same step.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { pgdPerturb } from '../attacks/pgd.js';
import type { ModelFn } from '../attacks/types.js';
import { deriveSeed } from '../rng.js';
import type { TrainConfig } from '../config/index.js';
import { CollectiveError, SingleProcess, type Collective } from '../collective/index.js';
import {
  BatchLoader,
  batches,
  ConcatSource,
  EpochSampler,
  firstN,
  loadDataset,
  MemorySource,
  MixedSampler,
  numBatches,
  openParts,
  splitValidation,
  splitValidationFirst,
  trainSubset,
  type Batch,
  type ImageSet,
  type ImageSource,
} from '../data/index.js';
import { InputError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { restoreWeights } from '../models/index.js';
import { inferenceModel } from '../models/inference.js';
import { burnInSteps, emaDecay } from './ema.js';
import { epochSettings, type EpochSettings } from './epoch.js';
import { isKdObjective } from './names.js';
import { loadTeacher } from './teacher.js';
import type { MetricRecord } from './plot.js';
import { emptyAccum, RunDirectory, type RunProgress } from './runDir.js';
import { createTrainer, disposeTrainer, DivergenceError, trainStep, type StepStats, type Trainer } from './step.js';
import { TensorBoardWriter } from '../tensorboard.js';

export interface TrainOptions {
  runDir: string;
  /** true: continue from runDir/last if it exists (fresh start otherwise); a path: continue from that checkpoint. */
  resume?: boolean | string;
  logger?: Logger;
  /** Set stopRequested (e.g. on SIGINT): the current step finishes, last/ is written, train returns stopped. */
  signal?: { stopRequested: boolean };
  /** Called after every optimiser step (monitoring, tests). */
  onStep?: (info: StepInfo, trainer: Trainer) => void;
  /** The tasks of a data-parallel run (createCollective() from TF_CONFIG / Slurm); default one process. */
  collective?: Collective;
}

export interface StepInfo {
  epoch: number;
  /** Batch index within the epoch (0-based). */
  batch: number;
  /** Optimiser steps done in the whole run, this one included. */
  step: number;
  /** Batches per epoch (for progress displays). */
  batches: number;
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
  /** The resumed checkpoint had already finished every epoch: nothing was trained. */
  alreadyComplete?: true;
}

// Purpose tags of derived seeds (different streams from the data pipeline's).
const TAG_ATTACK = 0x41544b;
const TAG_EVAL = 0x45564c;

interface Data {
  train: ImageSet;
  /** Evaluation images: the held-out validation split, or the first test images when valSize is 0. */
  evalSet?: ImageSet;
  evalOnTest: boolean;
  /** Generated images on disk (data.extra), read by position. */
  extra?: ImageSource;
  /** Training images before the validation split: N of the reference sampler's ceil(N/B) batches per epoch. */
  nBeforeSplit: number;
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
    ({ train, val: evalSet } = d.valSplit === 'first' ? splitValidationFirst(full, d.valSize) : splitValidation(full, d.valSize, config.run.seed));
  } else if (test.n > 0) {
    evalSet = test;
    evalOnTest = true;
  }
  if (d.trainSubset !== undefined) {
    if (d.trainSubset > train.n) throw new InputError(`data.trainSubset: expected at most ${train.n} images, got ${d.trainSubset}`);
    train = trainSubset(train, d.trainSubset);
  }
  if (evalSet) evalSet = firstN(evalSet, Math.min(config.eval.nExamples, evalSet.n));
  const extra = d.extra ? openParts(d.extra.files ?? [d.extra.file!], config.model.numClasses) : undefined;
  if (extra) log.info({ extra: d.extra!.files ?? d.extra!.file, images: extra.n, ratio: d.extra!.ratio }, 'extra data opened (read from disk by position)');
  return { train, evalSet, evalOnTest, extra, nBeforeSplit: full.n };
}

/**
 * The training batches: in-memory images alone (shuffled per epoch), or mixed with the generated images by the
 * reference sampler. With data.workers > 0 the batches are made ahead in worker threads.
 */
function trainLoader(config: TrainConfig, data: Data, collective: Collective): BatchLoader {
  const d = config.data;
  const B = d.batchSize;
  const seed = config.run.seed;
  // Workers read the in-memory images in place from a SharedArrayBuffer.
  const real = new MemorySource(data.train, { shared: d.workers > 0 });
  const source = data.extra ? new ConcatSource([real, data.extra]) : real;
  const sampler =
    data.extra && d.extra
      ? new MixedSampler({
          kind: 'mixed',
          nReal: data.train.n,
          nExtra: data.extra.n,
          batchSize: B,
          fraction: d.extra.ratio,
          numBatches: numBatches(data.nBeforeSplit, B),
          seed,
        })
      : new EpochSampler({ kind: 'epoch', n: data.train.n, batchSize: B, shuffle: true, dropLast: false, seed });
  const pair = d.pair.enabled ? d.pair.augment : undefined;
  // A data-parallel task reads its share of every batch (all tasks together: the batches of one process).
  const shard = collective.size > 1 ? { shard: { rank: collective.rank, size: collective.size } } : {};
  return new BatchLoader(source, sampler, { workers: d.workers, prefetch: d.prefetch, augment: d.augment, ...(pair ? { pair } : {}), seed, ...shard });
}

/**
 * Validation accuracies of a model: clean and PGD overall, and the class whose PGD accuracy is lowest (among the
 * classes present; ties: the lower index), the per-class robustness IKL's class-wise weights act on.
 */
export interface ValAccuracy {
  cleanAcc: number;
  robustAcc: number;
  worstClass: number;
  worstClassRobustAcc: number;
}

/** Per-class counts [examples, clean correct, PGD correct] accumulated over batches, and what they give. */
class ClassCounts {
  private readonly counts: Float64Array;
  constructor(private readonly classes: number) {
    this.counts = new Float64Array(3 * classes);
  }

  add(batch: ArrayLike<number>): void {
    for (let j = 0; j < batch.length; j++) this.counts[j]! += batch[j]!;
  }

  /** The counts of every task of a data-parallel run (one process: unchanged). */
  sumOver(collective: Collective): void {
    if (collective.size > 1) this.counts.set(collective.allReduceNumbers([...this.counts], 'sum'));
  }

  accuracy(n: number): ValAccuracy {
    const c = this.classes;
    let clean = 0;
    let robust = 0;
    let worstClass = -1;
    let worst = Infinity;
    for (let k = 0; k < c; k++) {
      const m = this.counts[k]!;
      clean += this.counts[c + k]!;
      robust += this.counts[2 * c + k]!;
      if (m > 0 && this.counts[2 * c + k]! / m < worst) [worst, worstClass] = [this.counts[2 * c + k]! / m, k];
    }
    return { cleanAcc: clean / n, robustAcc: robust / n, worstClass, worstClassRobustAcc: worstClass < 0 ? 0 : worst };
  }
}

/** Clean and PGD accuracy (CE, uniform start, inference mode) of a model on a set, with its worst class. */
export function evaluateAccuracy(model: tf.LayersModel, set: ImageSet, config: TrainConfig): ValAccuracy {
  const exec = inferenceModel(model);
  try {
    const counts = new ClassCounts(set.numClasses);
    for (const b of batches(set, { batchSize: config.data.batchSize, shuffle: false, augment: false }))
      counts.add(evalBatch(exec.fn, b, config, set.numClasses));
    return counts.accuracy(set.n);
  } finally {
    exec.dispose();
  }
}

/** evaluateAccuracy, stopping between batches when a stop is requested (then null). */
async function evaluateUnlessStopped(
  model: tf.LayersModel,
  set: ImageSet,
  config: TrainConfig,
  signal: TrainOptions['signal'],
  collective: Collective,
): Promise<ValAccuracy | null> {
  const exec = inferenceModel(model);
  try {
    const counts = new ClassCounts(set.numClasses);
    // Task r evaluates batches r, r + N, …: each batch as one process evaluates it (same PGD starts), counts
    // summed at the end. Every task walks all batches, so the stop checks (one per round of N) line up.
    const N = collective.size;
    let i = 0;
    for (const b of batches(set, { batchSize: config.data.batchSize, shuffle: false, augment: false })) {
      if (i % N === 0 && collective.anyOf(signal?.stopRequested === true)) {
        tf.dispose([b.x, b.y]);
        return null;
      }
      if (i++ % N !== collective.rank) {
        tf.dispose([b.x, b.y]);
        continue;
      }
      counts.add(evalBatch(exec.fn, b, config, set.numClasses));
      await turnEventLoop();
    }
    counts.sumOver(collective);
    return counts.accuracy(set.n);
  } finally {
    exec.dispose();
  }
}

/** Per class of one evaluation batch: [examples (C), clean correct (C), PGD correct (C)], one download; disposes the batch. */
function evalBatch(
  fn: ModelFn,
  b: { x: tf.Tensor4D; y: tf.Tensor1D; index: number },
  config: TrainConfig,
  classes: number,
): Float32Array | Int32Array | Uint8Array {
  const e = config.eval;
  try {
    return tf.tidy(() => {
      const ok = (x: tf.Tensor4D): tf.Tensor1D => tf.cast(tf.equal(tf.argMax(fn(x), 1), b.y), 'float32') as tf.Tensor1D;
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
      // Rows: one-hot labels, masked by clean and by PGD correctness; summed over the batch in one op.
      const hot = tf.oneHot(b.y, classes).toFloat();
      const rows = tf.stack([hot, tf.mul(hot, ok(b.x).expandDims(1)), tf.mul(hot, ok(xAdv).expandDims(1))]);
      return tf.sum(rows, 1).dataSync();
    });
  } finally {
    tf.dispose([b.x, b.y]);
  }
}

/**
 * Lets Node run what is queued (signal handlers above all). A tfjs step is synchronous: without this turn a
 * SIGINT would be seen only at the next file write, i.e. at the epoch end (issue 11). Costs microseconds.
 */
function turnEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** What every part of the loop works on. */
interface Loop {
  config: TrainConfig;
  opts: TrainOptions;
  log: Logger;
  data: Data;
  t: Trainer;
  run: RunDirectory;
  nBatches: number;
  loader: BatchLoader;
  /** Seconds the current epoch's steps waited for their batch. */
  dataWait: number;
  progress: RunProgress;
  /** TensorBoard event files (config.log.tensorboard), if asked for. */
  tb?: TensorBoardWriter;
}

/** Trains as `config` says. See runDir.ts for what goes into the run directory. */
export async function train(config: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const log = opts.logger ?? silentLogger;
  const collective = opts.collective ?? new SingleProcess();
  const run = new RunDirectory(opts.runDir, config);
  run.writer = collective.rank === 0;
  const resumeDir = await run.resumePoint(opts.resume, log);
  const data = await loadData(config, log);
  run.evalOnTest = data.evalOnTest;
  checkShards(config, data.train.n, collective.size);
  let loader: BatchLoader | undefined;
  const t = createTrainer(config, collective);
  let loopTb: TensorBoardWriter | undefined;
  try {
    loader = trainLoader(config, data, collective);
    // The loader holds the training images now (shared with its workers); drop the other reference.
    data.train = { ...data.train, images: new Uint8Array(0), labels: new Uint8Array(0) };
    if (isKdObjective(config.objective.type)) {
      t.teacher = await loadTeacher(config);
      run.teacherSha256 = t.teacher.weightsSha256;
      log.info({ teacher: t.teacher.source, arch: t.teacher.arch }, 'teacher loaded (inference mode, frozen)');
    }
    const metricKey = config.checkpoint.bestMetric === 'robust' ? 'valRobustAcc' : 'valCleanAcc';
    let progress: RunProgress = { position: { epoch: 1, batch: 0 }, step: 0, accum: emptyAccum(), metrics: [], best: { metric: metricKey, mode: 'max' } };
    if (resumeDir) {
      progress = await run.restore(resumeDir, t, progress);
      log.info({ from: resumeDir, epoch: progress.position.epoch, batch: progress.position.batch, step: progress.step }, 'resuming');
    } else if (config.model.initFrom !== undefined) {
      const { initModelFrom } = await import('../interop/init-from.js');
      log.info(await initModelFrom(t.model, config.model.arch, config.model.initFrom, { dataset: config.data.dataset, logger: log }), 'initial weights loaded');
    }
    const wa = config.weightAverage;
    if (!resumeDir && t.weightAverage && wa.perStep && wa.dynamicDecay && wa.startEpoch === 1) {
      // DM-Improves-AT's average starts as a copy of the initial model (wa_model = deepcopy(model)).
      t.weightAverage.update(t.model.weights.map((w) => w.read()));
    }
    await run.start(progress.metrics);
    const loop: Loop = { config, opts, log, data, t, run, nBatches: loader.numBatches, loader, dataWait: 0, progress };
    const tbDir = config.log.tensorboard === true ? run.dir : config.log.tensorboard === false ? undefined : config.log.tensorboard;
    if (tbDir !== undefined) {
      loop.tb = new TensorBoardWriter(tbDir);
      loopTb = loop.tb;
      log.info({ tensorboard: loop.tb.file }, 'TensorBoard event file');
    }
    const E = config.schedule.epochs;
    log.info(
      {
        runDir: run.dir,
        arch: config.model.arch,
        objective: config.objective.type,
        train: data.train.n,
        ...(data.extra ? { extra: data.extra.n } : {}),
        workers: config.data.workers,
        eval: data.evalSet?.n ?? 0,
        evalOn: data.evalOnTest ? 'test' : 'validation',
        batchesPerEpoch: loop.nBatches,
        epochs: E,
        configHash: run.hash,
        ...(collective.size > 1 ? { tasks: collective.size, rank: collective.rank, rowsPerTask: config.data.batchSize / collective.size } : {}),
      },
      progress.position.epoch > 1 || progress.position.batch > 0 ? 'training resumes' : 'training starts',
    );
    const result = (stopped?: 'signal', epochs = E): TrainResult => ({
      metrics: progress.metrics,
      runDir: run.dir,
      ...(stopped ? { stopped } : {}),
      epochs,
      steps: progress.step,
    });
    if (resumeDir && progress.position.epoch > E) {
      log.info({ runDir: run.dir, epochs: E, steps: progress.step }, `the run already finished its ${E} epochs; nothing to resume`);
      return { ...result(), alreadyComplete: true };
    }
    for (let epoch = progress.position.epoch; epoch <= E; epoch++) {
      const settings = epochSettings(config, epoch);
      if ((await runEpoch(loop, epoch, settings)) || (await finishEpoch(loop, epoch, settings))) {
        log.info({ epoch, batch: progress.position.batch, step: progress.step, checkpoint: run.lastDir }, 'stopped on request; resume with --resume');
        return result('signal', epoch - 1);
      }
      if (opts.signal?.stopRequested) {
        log.info({ epoch, step: progress.step, checkpoint: run.lastDir }, 'stopped on request at the end of an epoch; resume with --resume');
        return result('signal', epoch);
      }
    }
    return result();
  } finally {
    loopTb?.close();
    await loader?.close();
    data.extra?.close();
    disposeTrainer(t);
  }
}

/**
 * The optimiser steps of one epoch, from the resume position. Writes last/ every checkpoint.everySteps steps and,
 * when a stop is requested, after the step in progress (whatever everySteps says); returns true when stopped.
 */
async function runEpoch(loop: Loop, epoch: number, s: EpochSettings): Promise<boolean> {
  const { config, t, progress: p } = loop;
  const startBatch = epoch === p.position.epoch ? p.position.batch : 0;
  const wa = config.weightAverage;
  const emaOptions = { tau: wa.stepTau, warmupSteps: burnInSteps(wa.burnIn, config.schedule.epochs, loop.nBatches), dynamic: wa.dynamicDecay };
  if (startBatch === 0) p.accum = emptyAccum();
  let t0 = performance.now();
  // Start of the current step, for the per-step images/s of TensorBoard.
  let tStep = t0;
  // How long the steps waited for data (with prefetch workers, ~0): monitoring only, not checkpointed.
  loop.dataWait = 0;
  for await (const b of timedBatches(loop, epoch, startBatch)) {
    let stats: StepStats;
    try {
      stats = trainStep(t, b.x, b.y, {
        lr: s.lr,
        momentum: s.momentum,
        // The decay of the update after this step, t = p.step + 1 (1-based, as the reference's global_step).
        averageDecay: s.averageSteps ? emaDecay(p.step + 1, emaOptions) : undefined,
        bnWarmStart: config.model.bnWarmStart && p.step === 0,
        epsilon: s.epsilon,
        stepSize: s.stepSize,
        awp: s.awp,
        averageWeights: s.averageSteps,
        seed: deriveSeed(config.run.seed, epoch, b.index, TAG_ATTACK),
        kdWarmup: s.kdWarmup,
        share: b.x.shape[0] / b.globalSize,
      });
    } catch (e) {
      if (e instanceof DivergenceError) {
        throw new DivergenceError(
          `epoch ${epoch}, batch ${b.index} (step ${p.step + 1}): ${e.message}. Nothing was written after the last good checkpoint ` +
            `(${loop.run.lastDir ?? 'none yet'}); lower optimizer.lr or check the data, then resume.`,
        );
      }
      throw e;
    } finally {
      tf.dispose([b.x, b.y]);
    }
    p.step++;
    const n = stats.batchSize;
    p.accum.images += n;
    p.accum.loss += stats.total * n;
    p.accum.natural += stats.natural * n;
    p.accum.robust += stats.robust * n;
    p.accum.cleanCorrect += stats.cleanCorrect;
    p.accum.advCorrect += stats.advCorrect;
    p.position = { epoch, batch: b.index + 1 };
    loop.opts.onStep?.({ epoch, batch: b.index, step: p.step, batches: loop.nBatches, stats }, t);
    if (loop.tb) {
      const now = performance.now();
      loop.tb.scalars(p.step, {
        'train/loss': stats.total,
        'train/loss_natural': stats.natural,
        'train/loss_robust': stats.robust,
        'train/lr': s.lr,
        'train/epsilon': s.epsilon,
        'train/images_per_second': n / ((now - tStep) / 1000),
      });
      tStep = now;
    }
    await turnEventLoop();
    const lastOfEpoch = b.index + 1 === loop.nBatches;
    const periodic = !lastOfEpoch && config.checkpoint.everySteps > 0 && p.step % config.checkpoint.everySteps === 0;
    // A stop after the epoch's last step is written here too, at position (epoch, nBatches): the resume then
    // runs only the epoch end.
    // Agreed by all tasks, so they stop after the same step (a collective waiting for a stopped task would time out).
    const stopNow = t.collective.anyOf(loop.opts.signal?.stopRequested === true);
    if (periodic || stopNow) {
      p.accum.seconds += (performance.now() - t0) / 1000;
      t0 = performance.now();
      tStep = t0;
      await loop.run.save('last', t.model, t, p);
      if (stopNow) return true;
    }
  }
  p.accum.seconds += (performance.now() - t0) / 1000;
  return false;
}

/** The loader's batches, adding the time spent waiting for each to loop.dataWait. */
async function* timedBatches(loop: Loop, epoch: number, startBatch: number): AsyncGenerator<Batch, void, undefined> {
  const it = loop.loader.epoch(epoch, startBatch);
  try {
    for (;;) {
      const t0 = performance.now();
      const r = await it.next();
      loop.dataWait += (performance.now() - t0) / 1000;
      if (r.done) return;
      yield r.value;
    }
  } finally {
    await it.return();
  }
}

/**
 * Epoch end: evaluation, then class weights (and the KD prior) for the next epoch, weight average, the metric
 * record, best model, checkpoints. A stop requested during the evaluation ends it at the next evaluation batch,
 * before anything is changed: last/ is written at position (epoch, nBatches), so the resume runs this epoch end
 * again, identically. Returns true when stopped so.
 */
async function finishEpoch(loop: Loop, epoch: number, s: EpochSettings): Promise<boolean> {
  const { config, data, t, run, progress: p } = loop;
  const signal = loop.opts.signal;
  // The average this epoch end makes, evaluated before it is adopted.
  const waNext = t.weightAverage && s.averageAtEnd ? t.weightAverage.next(t.model.weights.map((w) => w.read())) : undefined;
  let val: ValAccuracy | null | undefined;
  let wa: ValAccuracy | null | undefined;
  let evalSeconds: number | null = null;
  try {
    if (data.evalSet !== undefined && s.evaluate) {
      const te = performance.now();
      val = await evaluateUnlessStopped(t.model, data.evalSet, config, signal, t.collective);
      if (val && t.waModel && (waNext || t.weightAverage?.initialized)) {
        restoreWeights(t.waModel, waNext ?? t.weightAverage!.weights());
        wa = await evaluateUnlessStopped(t.waModel, data.evalSet, config, signal, t.collective);
      }
      evalSeconds = (performance.now() - te) / 1000;
    }
    if (val === null || wa === null) {
      tf.dispose(waNext ?? []);
      await run.save('last', t.model, t, p);
      return true;
    }
  } catch (e) {
    tf.dispose(waNext ?? []);
    throw e;
  }
  t.classWeights?.finalize();
  t.kdPrior?.finalize();
  if (waNext) t.weightAverage!.adopt(waNext);
  const a = p.accum;
  const record: MetricRecord = {
    epoch,
    step: p.step,
    lr: s.lr,
    epsilon: s.epsilon,
    stepSize: s.stepSize,
    awp: s.awp ? 1 : 0,
    lossTotal: a.loss / a.images,
    lossNatural: finiteOrNull(a.natural / a.images),
    lossRobust: finiteOrNull(a.robust / a.images),
    trainCleanAcc: finiteOrNull(a.cleanCorrect / a.images),
    trainAdvAcc: finiteOrNull(a.advCorrect / a.images),
    valCleanAcc: val?.cleanAcc ?? null,
    valRobustAcc: val?.robustAcc ?? null,
    waCleanAcc: wa?.cleanAcc ?? null,
    waRobustAcc: wa?.robustAcc ?? null,
    // The class with the lowest validation PGD accuracy, and that accuracy (model and weight average).
    valWorstClass: val?.worstClass ?? null,
    valWorstClassRobustAcc: val?.worstClassRobustAcc ?? null,
    waWorstClassRobustAcc: wa?.worstClassRobustAcc ?? null,
    epochSeconds: a.seconds,
    imagesPerSecond: a.images / a.seconds,
    dataWaitSeconds: loop.dataWait,
    evalSeconds,
  };
  // The model is selected on validation data only: with valSize 0 the evaluation runs on test images and best/ is not kept.
  const value = record[config.checkpoint.bestMetric === 'robust' ? 'valRobustAcc' : 'valCleanAcc'];
  const improved = config.checkpoint.keepBest && !data.evalOnTest && typeof value === 'number' && (p.best.value === undefined || value > p.best.value);
  if (improved) p.best = { ...p.best, value: value as number, epoch };
  // best: this epoch's model is the one best/ holds from now on; time: the wall clock at the epoch's end.
  record.best = improved;
  record.time = new Date().toISOString();
  p.metrics = [...p.metrics, record];
  p.position = { epoch: epoch + 1, batch: 0 };
  p.accum = emptyAccum();
  await run.save('last', t.model, t, p);
  if (t.weightAverage?.initialized && t.waModel) {
    restoreWeights(t.waModel, t.weightAverage.weights());
    await run.save('wa', t.waModel, t, p);
  }
  // best/ generations are numbered by save (src/checkpoint), not by epoch: the log line says which epoch it holds.
  if (improved) loop.log.debug({ epoch, checkpoint: await run.save('best', t.model, t, p) }, `best/ now holds epoch ${epoch}`);
  await run.recordEpoch(record, p.metrics);
  if (loop.tb) {
    loop.tb.scalars(p.step, {
      epoch,
      'val/clean_acc': record.valCleanAcc as number | null,
      'val/robust_acc': record.valRobustAcc as number | null,
      'val/worst_class_robust_acc': record.valWorstClassRobustAcc as number | null,
      'wa/clean_acc': record.waCleanAcc as number | null,
      'wa/robust_acc': record.waRobustAcc as number | null,
      'wa/worst_class_robust_acc': record.waWorstClassRobustAcc as number | null,
    });
    loop.tb.flush();
  }
  checkSameWeights(t, epoch);
  loop.log.info({ ...record, best: improved }, `epoch ${epoch}/${config.schedule.epochs}`);
  return false;
}

/** The global batch splits over the tasks: B/N rows each, and every batch (the last one too) gives each task rows. */
function checkShards(config: TrainConfig, n: number, tasks: number): void {
  const B = config.data.batchSize;
  if (tasks === 1) return;
  if (B % tasks !== 0) throw new InputError(`data.batchSize: ${B} does not divide over ${tasks} tasks; use a multiple of ${tasks} (the global batch)`);
  const last = config.data.extra ? B : n - (numBatches(n, B) - 1) * B;
  if (last < tasks)
    throw new InputError(
      `data.batchSize: the last batch of an epoch has ${last} images, fewer than the ${tasks} tasks; change data.batchSize or data.trainSubset`,
    );
}

/**
 * After each epoch: every task's weights (BN statistics and optimiser state included through the weights they
 * produce) must be task 0's. A digest of all weights travels as 16-bit pieces (exact in float32); any mismatch
 * stops every task with one line.
 */
function checkSameWeights(t: Trainer, epoch: number): void {
  const h = createHash('sha256');
  for (const w of t.model.weights) {
    const v = w.read().dataSync() as Float32Array;
    h.update(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }
  const digest = h.digest();
  const mine = Array.from({ length: 8 }, (_, i) => digest.readUInt16BE(2 * i));
  const leader = t.collective.broadcastNumbers(mine);
  const differs = leader.some((v, i) => v !== mine[i]);
  if (t.collective.anyOf(differs)) {
    throw new CollectiveError(
      `epoch ${epoch}: the weights of ${differs ? `task ${t.collective.rank}` : 'another task'} differ from task 0's (non-deterministic kernels or a task trained on other data); the last checkpoint is task 0's`,
    );
  }
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}
