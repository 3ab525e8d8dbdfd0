import type * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.js';
import { MODEL_JSON, WEIGHTS_BIN } from '../models/io.js';

/** Version of the checkpoint.json layout; readers refuse newer versions instead of misreading them. */
export const CHECKPOINT_FORMAT = 'ikl-at-checkpoint';
export const CHECKPOINT_VERSION = 1;

/** Files of a checkpoint directory. checkpoint.json is written last: without it the directory is incomplete. */
export const CHECKPOINT_FILES = {
  meta: 'checkpoint.json',
  /** Written by src/models saveModel (tfjs layers format, loadable with tf.loadLayersModel). */
  modelJson: MODEL_JSON,
  weights: WEIGHTS_BIN,
  tensorsManifest: 'tensors.json',
  tensors: 'tensors.bin',
} as const;

/** How "best" is chosen, stored so a resumed run keeps the same rule. */
export interface BestRule {
  /** Metric name as the trainer logs it, e.g. 'val.robustAcc'. */
  metric: string;
  mode: 'max' | 'min';
  /** Best value so far and the epoch that reached it (undefined before the first evaluation). */
  value?: number;
  epoch?: number;
}

/** What a checkpoint says about itself (checkpoint.json, minus the integrity table). */
export interface CheckpointMeta {
  arch: string;
  numClasses: number;
  dataset: string;
  /** Completed epochs (1-based count; 0 before the first epoch ends). */
  epoch: number;
  /** Optimizer steps done in the whole run. */
  step: number;
  /** Which copy this is: last (resume point), best, wa (weight average)... Free text, for humans. */
  kind?: string;
  config?: TrainConfig;
  /** configHash(config); filled in by writeCheckpoint when a config is given without it. */
  configHash?: string;
  /** Metrics so far, one record per evaluation (or per epoch), oldest first. */
  metrics?: Array<Record<string, number | string | boolean | null>>;
  best?: BestRule;
  /** Free-form extra information (tool versions, backend...). */
  info?: Record<string, unknown>;
}

/** Named extra tensors: optimizer slots, weight average, class-weight matrix... */
export type NamedTensors = Record<string, tf.Tensor>;

/** JSON-serialisable training state (RNG positions, counters, schedules...). */
export type CheckpointState = Record<string, unknown>;

export interface CheckpointData {
  model: tf.LayersModel;
  meta: CheckpointMeta;
  state?: CheckpointState;
  tensors?: NamedTensors;
}

export interface LoadedCheckpoint {
  /** The model with its weights (BN running statistics included). Caller disposes. */
  model: tf.LayersModel;
  meta: CheckpointMeta;
  state: CheckpointState;
  /** Empty unless read with { withTensors: true }. Caller disposes. */
  tensors: NamedTensors;
  /** The directory actually read (a symlink such as run/last resolved to its generation directory). */
  dir: string;
  /** The model's identity: sha256 over its weights, independent of the path (src/checkpoint/identity.ts). */
  weightsSha256: string;
}

/** One entry of tensors.json: where a tensor's bytes are in tensors.bin. */
export interface TensorEntry {
  name: string;
  dtype: 'float32' | 'int32' | 'bool';
  shape: number[];
  offset: number;
  byteLength: number;
}

/** Size and sha256 (hex) of one file, as recorded in checkpoint.json. */
export interface FileDigest {
  bytes: number;
  sha256: string;
}

/** checkpoint.json on disk. */
export interface CheckpointJson extends CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  createdAt: string;
  state: CheckpointState;
  files: Record<string, FileDigest>;
}
