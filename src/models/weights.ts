/**
 * Exact weight bookkeeping for AWP and weight averaging: named access to every variable, snapshots that include the
 * BN running statistics, restore, and in-place perturbation. Restoring from a snapshot is bit-exact; undoing a
 * perturbation by subtracting it again ((w + a) - a) is not, in floating point, which is why AWP should restore.
 */
import * as tf from '@tensorflow/tfjs';

export interface ModelWeight {
  /** Stable name `<layer>/<weight>`, as stored in model.json (e.g. `block1_0_conv1/kernel`). */
  name: string;
  /** The layer variable; `variable.read()` is the tf.Variable to pass to tf.variableGrads. */
  variable: tf.LayerVariable;
  /** false for BN running statistics and the frozen input normalisation. */
  trainable: boolean;
}

/** Every weight of the model in a stable order (model.weights: trainable ones first, then the others). */
export function modelWeights(model: tf.LayersModel): ModelWeight[] {
  // LayerVariable.trainable stays true for the weights of a layer built with `trainable: false`; the layer's
  // (and so the model's) trainableWeights list is what the optimiser and the parameter count use.
  const trainable = new Set(model.trainableWeights);
  return model.weights.map((variable) => ({ name: variable.originalName, variable, trainable: trainable.has(variable) }));
}

/**
 * Trainable convolution and dense kernels (rank ≥ 2): the weights AWP perturbs (the reference skips every
 * parameter with `len(w.size()) <= 1`, i.e. biases and BN affine parameters).
 */
export function perturbableKernels(model: tf.LayersModel): ModelWeight[] {
  return modelWeights(model).filter((w) => w.trainable && w.variable.shape.length >= 2);
}

/** Number of trainable parameters (BN running statistics and frozen layers excluded, as in PyTorch). */
export function countParams(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((sum, v) => sum + v.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
}

/** Copies of ALL weights (including BN running statistics), in modelWeights order. The caller disposes them. */
export function snapshotWeights(model: tf.LayersModel): tf.Tensor[] {
  // clone() is safe: assigning a variable gives it new storage, it never writes into the snapshot's.
  return model.weights.map((v) => tf.clone(v.read()));
}

/** Writes a snapshot back into the model. The snapshot stays valid (and owned by the caller). */
export function restoreWeights(model: tf.LayersModel, snapshot: readonly tf.Tensor[]): void {
  const vars = model.weights;
  if (snapshot.length !== vars.length) {
    throw new Error(`restoreWeights: snapshot has ${snapshot.length} tensors, the model has ${vars.length} weights`);
  }
  vars.forEach((v, i) => v.write(snapshot[i]!));
}

/** In place: w ← w + scale·delta for each (weight, delta) pair. */
export function addToWeights(weights: readonly (ModelWeight | tf.LayerVariable)[], deltas: readonly tf.Tensor[], scale = 1): void {
  if (weights.length !== deltas.length) {
    throw new Error(`addToWeights: ${weights.length} weights but ${deltas.length} deltas`);
  }
  tf.tidy(() => {
    weights.forEach((w, i) => {
      const v = w instanceof tf.LayerVariable ? w : w.variable;
      v.write(tf.add(v.read(), scale === 1 ? deltas[i]! : tf.mul(deltas[i]!, scale)));
    });
  });
}

/**
 * Makes target's weights (including running statistics) equal to source's, e.g. to load an AWP proxy or a
 * weight-average model. Both models must have the same architecture. The variables then share storage until either
 * is assigned again, which gives the other no view of the change: tfjs assignment replaces storage, never writes in it.
 */
export function copyWeights(source: tf.LayersModel, target: tf.LayersModel): void {
  const from = modelWeights(source);
  const to = modelWeights(target);
  if (from.length !== to.length || from.some((w, i) => w.name !== to[i]!.name)) {
    throw new Error('copyWeights: source and target models have different weights');
  }
  to.forEach((w, i) => w.variable.write(from[i]!.variable.read()));
}
