/**
 * The model zoo: tfjs-layers models (built-in layers only, so model.json loads in a browser without this
 * package; see archs.ts), seeded PyTorch-equivalent initialisation, train/inference forward, exact weight
 * snapshot/perturb/restore, and save/load in the tfjs layers format.
 */
import type * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { archDef } from './archs.js';
import { initializeWeights } from './init.js';
import { MODEL_ARCHS_HELP, isModelArch, type ModelArch, type ModelSpec } from './types.js';

export * from './types.js';
export { forward, trainingForward } from './forward.js';
export { inferenceModel, type InferenceModel } from './inference.js';
export { saveModel, loadModel, cloneModel, MODEL_JSON, WEIGHTS_BIN, DTYPE_BYTES } from './io.js';
export { modelWeights, perturbableKernels, countParams, snapshotWeights, restoreWeights, addToWeights, copyWeights, type ModelWeight } from './weights.js';
export { archDef } from './archs.js';
export { CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, INPUT_SHAPE, NORMALIZATION_LAYER } from './archs.js';
export { MDISTILLER_CIFAR100_MEAN, MDISTILLER_CIFAR100_STD } from './mdistiller.js';

/** An architecture name from the command line or a config; `source` names the flag or field in errors. */
export function parseArch(name: string, source = '--arch'): ModelArch {
  if (isModelArch(name)) return name;
  throw new InputError(`${source}: unknown architecture '${name}', expected one of ${MODEL_ARCHS_HELP}`);
}

/**
 * Builds an architecture for 32×32×3 inputs in [0, 1] with a numClasses-way linear head and initialises every
 * weight from `seed` (same seed, bit-identical weights). The Swish WRN normalises inputs with CIFAR-100 statistics
 * when numClasses is 100 and CIFAR-10 statistics otherwise.
 */
export function createModel(spec: ModelSpec): tf.LayersModel {
  const arch = parseArch(spec.arch, 'model.arch');
  if (!Number.isInteger(spec.numClasses) || spec.numClasses < 2) {
    throw new InputError(`model.numClasses: expected an integer >= 2, got ${spec.numClasses}`);
  }
  if (!Number.isInteger(spec.seed) || spec.seed < 0 || spec.seed > 0xffffffff) {
    throw new InputError(`model.seed: expected an integer in [0, 2^32), got ${spec.seed}`);
  }
  const def = archDef(arch);
  const model = def.build(spec.numClasses);
  initializeWeights(model, def.init, spec.numClasses, spec.seed);
  return model;
}
