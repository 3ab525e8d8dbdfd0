/**
 * BatchNorm settings of a training run that the architecture does not fix: the running-statistics momentum, the
 * first step that sets the running statistics to its batch's (PyTorch momentum 1, DM-Improves-AT's
 * set_bn_momentum at global step 0, "same as Haiku"), and a train-mode forward that leaves them untouched (the
 * training attack of DM-Improves-AT runs the model in train mode with track_running_stats off).
 *
 * Momenta here are in the Keras convention of the layers: running ← momentum·running + (1 − momentum)·batch, so
 * PyTorch's momentum m is Keras' 1 − m. Both training forwards (trainingForward and tfjs-layers' own) read the
 * layer's momentum at every call, so changing it on the layer changes the next update.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelFn } from '../attacks/types.js';

type BnLayer = tf.layers.Layer & { momentum: number };

function bnLayers(model: tf.LayersModel): BnLayer[] {
  return model.layers.filter((l) => l.getClassName() === 'BatchNormalization') as BnLayer[];
}

/** Sets every BN layer's momentum (Keras convention); returns the previous values, for restoreBnMomentum. */
export function setBnMomentum(model: tf.LayersModel, kerasMomentum: number): number[] {
  return bnLayers(model).map((l) => {
    const old = l.momentum;
    l.momentum = kerasMomentum;
    return old;
  });
}

export function restoreBnMomentum(model: tf.LayersModel, previous: number[]): void {
  bnLayers(model).forEach((l, i) => (l.momentum = previous[i]!));
}

/** Whether each of model.trainableWeights belongs to a BN layer (γ, β). */
export function bnParameterMask(model: tf.LayersModel): boolean[] {
  const bn = new Set(bnLayers(model).flatMap((l) => l.trainableWeights));
  return model.trainableWeights.map((w) => bn.has(w));
}

/**
 * The model in train mode (BN normalises with the batch's statistics) whose running statistics stay as they are,
 * while the returned function is in use (momentum 1: running − (running − batch)·0 = running); dispose() puts the
 * momenta back. Differentiable with respect to x (tfjs-layers' own forward), so attacks can use it.
 */
export function batchStatisticsModel(model: tf.LayersModel): { fn: ModelFn; dispose: () => void } {
  const previous = setBnMomentum(model, 1);
  return {
    fn: (x) => model.apply(x, { training: true }) as tf.Tensor2D,
    dispose: () => restoreBnMomentum(model, previous),
  };
}
