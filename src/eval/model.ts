/**
 * The one place evaluation touches checkpoints: a checkpoint directory → the model as attacks see it
 * (inputs in [0, 1] → logits, inference mode) plus what the report needs to say about it.
 */
import { stat } from 'node:fs/promises';
import type * as tf from '@tensorflow/tfjs';
import type { ModelFn } from '../attacks/types.js';
import type { DatasetName } from '../data/types.js';
import { DATASETS } from '../data/types.js';
import { InputError } from '../errors.js';
import { readCheckpoint } from '../checkpoint/index.js';
import { inferenceModel } from '../models/inference.js';
import type { Logger } from '../log.js';

export interface EvalSubject {
  modelFn: ModelFn;
  model: tf.LayersModel;
  arch: string;
  numClasses: number;
  /** The dataset the checkpoint was trained on, when it says so. */
  dataset: DatasetName | null;
  /** Test-set size and seed of the synthetic dataset the checkpoint was trained with (from its config). */
  synthetic: { nTest?: number; seed?: number };
  /** The data directory of the checkpoint's training config (data.dataDir), when it records one. */
  dataDir?: string;
  /** The epoch the checkpoint was written after (checkpoint.json), when it says so. */
  epoch?: number;
  /** sha256 over the weights: what identifies the model in reports and states (never the path). */
  weightsSha256: string;
  /** Provenance of a PyTorch/safetensors weight file (absent for our checkpoint directories). */
  source?: { checkpoint_sha256: string; weights_source: { format: string; container: string; prefix: string; file?: string } };
  /** A RobustBench model by name: its table entry (the report states the leaderboard's numbers beside ours). */
  robustbench?: import('../interop/robustbench.js').RobustBenchEntry;
  dispose(): void;
}

/** A PyTorch / safetensors weight file (src/interop): architecture from --arch or recognised, dataset from --dataset. */
async function loadWeightFileSubject(file: string, arch: string | undefined): Promise<EvalSubject> {
  const { loadTorchModel } = await import('../interop/index.js');
  const m = await loadTorchModel(file, { arch });
  const { sha256, format, container, prefix } = m.source;
  // Attacks run on the inference executor, as for our checkpoints.
  const exec = inferenceModel(m.model);
  return {
    model: m.model,
    synthetic: {},
    modelFn: exec.fn,
    arch: m.arch,
    numClasses: m.numClasses,
    dataset: null,
    // The file's own sha256 identifies a weight file: the same file merges and resumes, another file never does.
    weightsSha256: sha256,
    source: { checkpoint_sha256: sha256, weights_source: { format, container, prefix } },
    dispose: () => {
      exec.dispose();
      m.model.dispose();
    },
  };
}

/** `robustbench:<name>`: the table entry, its file from the cache or a download, the model with its normalisation. */
async function loadRobustBenchSubject(ref: string, opts: { arch?: string; dataset?: string | null; norm?: string; logger?: Logger }): Promise<EvalSubject> {
  const { loadRobustBench } = await import('../interop/robustbench.js');
  const threat = opts.norm === undefined ? undefined : opts.norm === 'l2' ? 'L2' : 'Linf';
  const m = await loadRobustBench(ref, { dataset: opts.dataset, threat, source: '--model', logger: opts.logger });
  if (opts.arch !== undefined && opts.arch !== m.arch) {
    m.model.dispose();
    throw new InputError(`--arch ${opts.arch}: ${ref} is a ${m.arch}`);
  }
  const { sha256, format, container, prefix } = m.source;
  const exec = inferenceModel(m.model);
  return {
    model: m.model,
    synthetic: {},
    modelFn: exec.fn,
    arch: m.arch,
    numClasses: m.numClasses,
    dataset: m.entry.dataset,
    weightsSha256: sha256,
    source: { checkpoint_sha256: sha256, weights_source: { format, container, prefix, file: m.source.file } },
    robustbench: m.entry,
    dispose: () => {
      exec.dispose();
      m.model.dispose();
    },
  };
}

export async function loadEvalSubject(
  dir: string,
  opts: { arch?: string; dataset?: string | null; norm?: string; logger?: Logger } = {},
): Promise<EvalSubject> {
  if (dir.startsWith('robustbench:')) return loadRobustBenchSubject(dir, opts);
  if ((await stat(dir).catch(() => null))?.isFile()) return loadWeightFileSubject(dir, opts.arch);
  const ckpt = await readCheckpoint(dir);
  if (opts.arch !== undefined && opts.arch !== ckpt.meta.arch) {
    ckpt.model.dispose();
    throw new InputError(`--arch ${opts.arch}: checkpoint ${dir} is a ${ckpt.meta.arch}`);
  }
  const model = ckpt.model;
  const meta = ckpt.meta;
  const numClasses = meta.numClasses;
  const outDim = model.outputs[0]?.shape.at(-1);
  if (outDim !== numClasses) {
    model.dispose();
    throw new InputError(`--checkpoint ${dir}: checkpoint.json says numClasses ${numClasses} but the model outputs ${String(outDim)} logits`);
  }
  const dataset = (DATASETS as readonly string[]).includes(meta.dataset) ? (meta.dataset as DatasetName) : null;
  // A synthetic test set is only "the" test set with the generator settings used in training.
  const data = (meta.config as { data?: { dataDir?: unknown; synthetic?: { nTest?: number; seed?: number } } } | undefined)?.data;
  const syn = data?.synthetic;
  // Attacks run on the inference executor (BN folded into the convolutions), compiled once per checkpoint.
  const exec = inferenceModel(model);
  return {
    model,
    synthetic: { nTest: syn?.nTest, seed: syn?.seed },
    ...(typeof data?.dataDir === 'string' ? { dataDir: data.dataDir } : {}),
    ...(typeof meta.epoch === 'number' ? { epoch: meta.epoch } : {}),
    modelFn: exec.fn,
    arch: meta.arch,
    weightsSha256: ckpt.weightsSha256,
    numClasses,
    dataset,
    dispose: () => {
      exec.dispose();
      model.dispose();
    },
  };
}
