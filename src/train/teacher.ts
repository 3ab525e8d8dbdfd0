/**
 * The teacher of knowledge distillation: read once from a checkpoint, checked against the run's config, frozen.
 * It only ever runs in inference mode (BN uses its running statistics and never updates them, as mdistiller's
 * Distiller.train() keeps the teacher in eval()), outside every gradient tape, and its weights are marked
 * non-trainable, so no optimiser can reach them.
 */
import * as tf from '@tensorflow/tfjs';
import { CHECKPOINT_FILES, readCheckpoint, verifyCheckpoint } from '../checkpoint/index.js';
import type { TrainConfig } from '../config/index.js';
import { InputError } from '../errors.js';
import { forward } from '../models/index.js';

export interface Teacher {
  model: tf.LayersModel;
  arch: string;
  /** Where it was read from (errors, logs). */
  source: string;
  /** sha256 of its weight file: recorded in the student's checkpoints, so a resume with another teacher is refused. */
  weightsSha256: string;
}

/** Loads `config.teacher.checkpoint` and checks it fits the run (classes, dataset, architecture). */
export async function loadTeacher(config: TrainConfig): Promise<Teacher> {
  const dir = config.teacher.checkpoint;
  if (dir === undefined) throw new InputError(`teacher.checkpoint: expected the teacher's checkpoint directory for objective.type ${config.objective.type}`);
  const verified = await verifyCheckpoint(dir);
  const ck = await readCheckpoint(dir);
  const { meta } = ck;
  const fail = (message: string): never => {
    ck.model.dispose();
    throw new InputError(`${dir}: ${message}`);
  };
  if (config.teacher.arch !== undefined && meta.arch !== config.teacher.arch) {
    fail(`the teacher checkpoint is a ${meta.arch}, the config's teacher.arch says ${config.teacher.arch}`);
  }
  if (meta.numClasses !== config.model.numClasses) {
    fail(`the teacher has ${meta.numClasses} classes, the student (model.numClasses) ${config.model.numClasses}`);
  }
  if (meta.dataset !== config.data.dataset) {
    fail(`the teacher was trained on ${meta.dataset}, this run trains on ${config.data.dataset} (data.dataset)`);
  }
  ck.model.trainable = false;
  const digest = verified.files[CHECKPOINT_FILES.weights];
  return { model: ck.model, arch: meta.arch, source: dir, weightsSha256: digest?.sha256 ?? '' };
}

/** The teacher's logits on a batch: inference mode, no gradient. Caller disposes. */
export function teacherLogits(teacher: tf.LayersModel, x: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => forward(teacher, x, { training: false }));
}
