/**
 * The run directory of a training run and everything written to it (as timm's CheckpointSaver owns its output
 * directory): the resolved config, metrics.jsonl, curves.svg and the last/ best/ wa/ checkpoints.
 *
 *   config.resolved.yaml   the config this run trains with
 *   metrics.jsonl          one JSON record per epoch (rewritten from the checkpoint on resume)
 *   curves.svg             loss and accuracy against the epoch
 *   last/  best/  wa/      checkpoints (src/checkpoint): the resume point, the best by validation metric, the
 *                          weight average. Each holds the model, optimiser state, position, class weights,
 *                          weight-average state, config + hash and metrics.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../backend.js';
import { findResumableCheckpoint, readCheckpoint, writeCheckpoint, type BestRule, type CheckpointState } from '../checkpoint/index.js';
import { configHash, configToYaml, describeConfigDiff, type TrainConfig } from '../config/index.js';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import type { Logger } from '../log.js';
import { ClassWeights, type ClassWeightsJSON } from '../losses/index.js';
import { restoreWeights } from '../models/index.js';
import { curvesSvg, type MetricRecord } from './plot.js';
import type { Trainer } from './step.js';

/** Run-directory file names. */
export const RUN_FILES = {
  config: 'config.resolved.yaml',
  metrics: 'metrics.jsonl',
  curves: 'curves.svg',
  last: 'last',
  best: 'best',
  wa: 'wa',
} as const;

export type CheckpointKind = 'last' | 'best' | 'wa';

/** Partial sums of the epoch in progress (saved mid-epoch so a resumed epoch reports the same figures). */
export interface EpochAccum {
  images: number;
  loss: number;
  natural: number;
  robust: number;
  cleanCorrect: number;
  advCorrect: number;
  seconds: number;
}

export const emptyAccum = (): EpochAccum => ({ images: 0, loss: 0, natural: 0, robust: 0, cleanCorrect: 0, advCorrect: 0, seconds: 0 });

/** Where a run stands: what a checkpoint records besides the tensors, and what a resume restores. */
export interface RunProgress {
  /** The next batch to run: epoch (1-based) and batch index (0-based). With the seed, this is the RNG state. */
  position: { epoch: number; batch: number };
  step: number;
  accum: EpochAccum;
  metrics: MetricRecord[];
  best: BestRule;
}

/** The JSON state stored in every checkpoint. */
interface RunState {
  version: 1;
  position: { epoch: number; batch: number };
  seed: number;
  step: number;
  classWeights?: ClassWeightsJSON;
  /** KD with GI: the class prior over the teacher's logits (including the partial sums of the epoch). */
  kdPrior?: ClassWeightsJSON;
  /** KD: sha256 of the teacher's weight file; a resume with another teacher is refused. */
  teacherSha256?: string;
  weightAverageCount: number;
  epochAccum: EpochAccum;
}

export class RunDirectory {
  readonly hash: string;
  /** The newest checkpoint this run wrote (or resumed from): named in error messages. */
  lastDir: string | undefined;
  /** Recorded in every checkpoint's info: the evaluation ran on test images (no validation split). */
  evalOnTest = false;
  /** KD runs: the teacher's weight digest, recorded in every checkpoint and checked on resume. */
  teacherSha256: string | undefined;
  /**
   * Whether this process writes the run's files. Data parallelism: task 0 writes, the other tasks (same weights,
   * checked every epoch) only read, so one run directory has one writer.
   */
  writer = true;

  constructor(
    readonly dir: string,
    private readonly config: TrainConfig,
  ) {
    this.hash = configHash(config);
  }

  /**
   * The checkpoint to start from: `resume` a path, the run's own last/ (resume true), or none. A fresh run never
   * overwrites an existing one.
   */
  async resumePoint(resume: boolean | string | undefined, log: Logger): Promise<string | undefined> {
    await mkdir(this.dir, { recursive: true });
    if (typeof resume === 'string') return resume;
    const found = await findResumableCheckpoint(this.dir, { warn: (m) => log.warn(m) });
    if (found && !resume) {
      throw new InputError(`${this.dir}: already holds a checkpoint (${RUN_FILES.last}/); pass --resume to continue it or choose another run directory`);
    }
    if (resume && !found) log.info({ runDir: this.dir }, 'no checkpoint to resume from; starting a new run');
    return found?.dir;
  }

  /** Restores the trainer from a checkpoint of this config and returns where the run stands. */
  async restore(from: string, t: Trainer, progress: RunProgress): Promise<RunProgress> {
    const ck = await readCheckpoint(from, { withTensors: true });
    try {
      if (ck.meta.configHash !== this.hash) {
        throw new InputError(
          `${from}: the checkpoint was trained with another config (hash ${String(ck.meta.configHash).slice(0, 12)}, this one ${this.hash.slice(0, 12)}; ` +
            `${ck.meta.config ? `differs in ${describeConfigDiff(ck.meta.config, this.config)}` : 'the checkpoint stores no config'}); resume with its config.resolved.yaml`,
        );
      }
      const st = ck.state as unknown as RunState;
      if (st.version !== 1 || !st.position) throw new InputError(`${from}: checkpoint.json state is not a trainer state (version ${String(st.version)})`);
      if (st.teacherSha256 !== this.teacherSha256) {
        throw new InputError(
          `${from}: the checkpoint was distilled from another teacher (weights sha256 ${String(st.teacherSha256).slice(0, 12)}, ` +
            `${this.config.teacher.checkpoint ?? 'no teacher'} has ${String(this.teacherSha256).slice(0, 12)}); resume with the same teacher`,
        );
      }
      restoreWeights(
        t.model,
        ck.model.weights.map((w) => w.read()),
      );
      t.optimizer.setState(ck.tensors);
      if (t.weightAverage) t.weightAverage.setState(ck.tensors, st.weightAverageCount);
      if (t.classWeights && st.classWeights) {
        t.classWeights.dispose();
        t.classWeights = ClassWeights.fromJSON(st.classWeights, `${from}: checkpoint.json state.classWeights`);
      }
      if (t.kdPrior) {
        if (!st.kdPrior) throw new InputError(`${from}: checkpoint.json state has no kdPrior (the KD class prior this config uses)`);
        t.kdPrior.dispose();
        t.kdPrior = ClassWeights.fromJSON(st.kdPrior, `${from}: checkpoint.json state.kdPrior`);
      }
      this.lastDir = from;
      return {
        position: st.position,
        step: st.step,
        accum: st.epochAccum ?? emptyAccum(),
        metrics: ck.meta.metrics ?? [],
        best: ck.meta.best ?? progress.best,
      };
    } finally {
      ck.model.dispose();
      tf.dispose(Object.values(ck.tensors));
    }
  }

  /** The resolved config and the metrics so far (a resumed run rewrites them from its checkpoint). */
  async start(metrics: readonly MetricRecord[]): Promise<void> {
    if (!this.writer) return;
    await writeFileAtomic(join(this.dir, RUN_FILES.config), configToYaml(this.config, `ikl-train resolved config (hash ${this.hash})`));
    await writeFileAtomic(join(this.dir, RUN_FILES.metrics), metrics.map((m) => JSON.stringify(m) + '\n').join(''));
  }

  /** Writes checkpoint `kind` of `model` (the trainer's model, or its weight-average model) at `progress`. */
  async save(kind: CheckpointKind, model: tf.LayersModel, t: Trainer, progress: RunProgress): Promise<string> {
    if (!this.writer) {
      if (kind === 'last') this.lastDir = join(this.dir, kind);
      return join(this.dir, kind);
    }
    const c = this.config;
    const state: RunState = {
      version: 1,
      position: progress.position,
      seed: c.run.seed,
      step: progress.step,
      classWeights: t.classWeights?.toJSON(),
      ...(t.kdPrior ? { kdPrior: t.kdPrior.toJSON() } : {}),
      ...(this.teacherSha256 !== undefined ? { teacherSha256: this.teacherSha256 } : {}),
      weightAverageCount: t.weightAverage?.count ?? 0,
      epochAccum: progress.accum,
    };
    const tensors = { ...t.optimizer.getState(), ...(t.weightAverage?.getState() ?? {}) };
    try {
      const res = await writeCheckpoint(join(this.dir, kind), {
        model,
        meta: {
          arch: c.model.arch,
          numClasses: c.model.numClasses,
          dataset: c.data.dataset,
          epoch: progress.position.epoch - 1,
          step: progress.step,
          kind,
          config: c,
          configHash: this.hash,
          metrics: progress.metrics,
          best: progress.best,
          info: { backend: backendInfo()?.name, tfjs: tf.version.tfjs, evalOnTest: this.evalOnTest },
        },
        state: state as unknown as CheckpointState,
        tensors,
      });
      if (kind === 'last') this.lastDir = res.generationDir;
      return res.generationDir;
    } finally {
      tf.dispose(Object.values(tensors));
    }
  }

  /** Appends an epoch record to metrics.jsonl and redraws curves.svg from all of them. */
  async recordEpoch(record: MetricRecord, metrics: readonly MetricRecord[]): Promise<void> {
    if (!this.writer) return;
    await appendFile(join(this.dir, RUN_FILES.metrics), JSON.stringify(record) + '\n');
    await writeFileAtomic(
      join(this.dir, RUN_FILES.curves),
      curvesSvg([...metrics], `${this.config.run.name}: ${this.config.model.arch}, ${this.config.objective.type}`),
    );
  }
}
