import * as tf from '@tensorflow/tfjs';
import { activationOf, kind, layerGraph, type GraphNode } from './graph.js';
import { addTrain, batchNormTrain, conv2dTrain } from './trainOps.js';
import { explicitPadOf, type ConvPad } from '../kernels.js';
import type { Forward } from './types.js';

/**
 * Logits of NHWC inputs in [0, 1] (models normalise internally when their architecture says so).
 *
 * training = true: BN uses batch statistics and updates its running statistics in place, also outside `fit`
 * (running = momentum·running + (1 - momentum)·batch_stat, tfjs-layers' formula and ops; tests check it). The
 * batch variance in that update is the biased one (divide by n = B·H·W), whereas PyTorch stores the unbiased
 * n/(n - 1) estimate; the relative difference 1/(n - 1) is 1.2e-4 at batch 128 on the smallest (8×8) maps, far
 * below batch-to-batch noise, so we keep tfjs' behaviour. Normalisation itself uses the biased variance in both
 * frameworks. The pass is our own walk of the layer graph (`trainingForward`), not `model.apply`: same values,
 * a fraction of the memory (see trainOps.ts). It differentiates with respect to the weights only: x is a constant
 * of the pass (a gradient with respect to x through it is refused by tfjs, never wrong).
 * training = false: running statistics, no state changes (attacks, evaluation; `inferenceModel` is the fast path).
 */
export const forward: Forward = (model, x, { training }) => {
  if (x.rank !== 4) throw new Error(`forward: expected NHWC input of rank 4, got shape [${x.shape.join(', ')}]`);
  return training ? trainingForward(model, x) : (model.apply(x, { training: false }) as tf.Tensor2D);
};

/** The layer's weight named `<layer>/<name>` as the tf.Variable that tf.variableGrads differentiates. */
export function weightOf(layer: tf.layers.Layer, name: string): tf.Tensor {
  const w = layer.weights.find((v) => v.originalName === `${layer.name}/${name}`);
  if (!w) throw new Error(`layer ${layer.name} has no weight '${name}'`);
  return w.read();
}

/** running ← running − (running − batch)·(1 − momentum): tfjs-layers' BatchNormalization update, op for op. */
function updateRunning(layer: tf.layers.Layer, name: string, batch: tf.Tensor, momentum: number): void {
  const v = layer.weights.find((w) => w.originalName === `${layer.name}/${name}`)!;
  tf.tidy(() => {
    const orig = v.read();
    v.write(tf.sub(orig, tf.mul(tf.sub(orig, batch), 1 - momentum)));
  });
}

/** The single reader of node i when it is an Activation('relu'), which the op before it can absorb. */
function fusedRelu(nodes: GraphNode[], i: number): number | undefined {
  const readers = nodes[i]!.readers;
  if (readers.length !== 1) return undefined;
  const r = nodes[readers[0]!]!;
  return kind(r) === 'Activation' && activationOf(r.layer) === 'relu' ? readers[0] : undefined;
}

/** A BN over the channels of an NHWC tensor (the case batchNormTrain and the executor's folding handle). */
export function channelsLastBn(x: { shape: readonly (number | null)[] }, cfg: Record<string, unknown>): boolean {
  const axis = cfg.axis as number | number[];
  const a = Array.isArray(axis) ? (axis.length === 1 ? axis[0]! : NaN) : axis;
  return x.shape.length === 4 && (a === -1 || a === 3);
}

/**
 * The ZeroPadding2D layers that a convolution can take as its explicit padding (PyTorch's symmetric padding of
 * strided convolutions): read only by a dilation-1, 'valid' Conv2D without activation (and without bias unless
 * `withBias`: the training forward runs biased convolutions through tfjs-layers). Keyed by the convolution; `inputs`
 * are the padding's inputs, `node` the padding itself. Saves a padded copy of the activation and a Slice backward.
 */
export function absorbedPadding(nodes: GraphNode[], withBias: boolean): Map<number, { node: number; pad: ConvPad; inputs: number[] }> {
  const found = new Map<number, { node: number; pad: ConvPad; inputs: number[] }>();
  nodes.forEach((node, i) => {
    const j = node.inputs[0]!;
    if (kind(node) !== 'Conv2D' || node.inputs.length !== 1 || j < 0) return;
    const cfg = node.layer.getConfig() as Record<string, unknown>;
    const dil = cfg.dilationRate as number | number[];
    if ((cfg.useBias && !withBias) || cfg.padding !== 'valid' || cfg.activation !== 'linear' || (Array.isArray(dil) ? dil.some((d) => d !== 1) : dil !== 1))
      return;
    const padNode = nodes[j]!;
    if (kind(padNode) !== 'ZeroPadding2D' || padNode.readers.length !== 1) return;
    const pad = explicitPadOf(padNode.layer.getConfig() as Record<string, unknown>);
    if (pad) found.set(i, { node: j, pad, inputs: padNode.inputs });
  });
  return found;
}

/**
 * Training-mode forward of a zoo model: Conv2D (no bias), BatchNormalization (+ a following ReLU) and Add
 * (+ ReLU) run as the custom-gradient ops of trainOps.ts; every other layer through its own `apply`. Each
 * activation is disposed after its last reader (the tape keeps what a backward needs), so the forward holds only
 * what the backward will read, instead of every intermediate until the end of the pass.
 */
export function trainingForward(model: tf.LayersModel, x: tf.Tensor4D): tf.Tensor2D {
  const { nodes, output } = layerGraph(model);
  const out: (tf.Tensor | undefined)[] = new Array(nodes.length);
  const pending = nodes.map((n) => n.readers.length);
  const done = new Set<number>();
  const padOf = absorbedPadding(nodes, false);
  // Nodes whose value does not depend on any trainable weight (x and weight-free layers of it, e.g. the input
  // normalisation): a convolution reading one needs no input gradient.
  const constant = new Set<number>([-1]); // -1: the model input (graph.ts)
  nodes.forEach((node, i) => {
    if (node.layer.trainableWeights.length === 0 && node.inputs.every((j) => constant.has(j))) constant.add(i);
  });
  for (const [, p] of padOf) done.add(p.node);
  for (let i = 0; i < nodes.length; i++) {
    if (done.has(i)) continue;
    const node = nodes[i]!;
    const layer = node.layer;
    const padded = padOf.get(i);
    const inputs = padded?.inputs ?? node.inputs;
    const ins = inputs.map((j) => (j < 0 ? x : out[j]!));
    const cfg = layer.getConfig() as Record<string, unknown>;
    let at = i;
    switch (kind(node)) {
      case 'BatchNormalization': {
        // Our op normalises NHWC over N, H, W; a BN on features (rank 2) or on another axis goes through tfjs-layers.
        if (!channelsLastBn(ins[0]!, cfg)) {
          out[i] = layer.apply(ins[0]!, { training: true }) as tf.Tensor;
          break;
        }
        const relu = fusedRelu(nodes, i);
        const r = batchNormTrain(
          ins[0] as tf.Tensor4D,
          weightOf(layer, 'gamma') as tf.Tensor1D,
          weightOf(layer, 'beta') as tf.Tensor1D,
          cfg.epsilon as number,
          relu !== undefined,
        );
        updateRunning(layer, 'moving_mean', r.mean, cfg.momentum as number);
        updateRunning(layer, 'moving_variance', r.variance, cfg.momentum as number);
        tf.dispose([r.mean, r.variance]);
        if (relu !== undefined) at = relu;
        out[at] = r.y;
        break;
      }
      case 'Conv2D': {
        const s = cfg.strides as [number, number];
        const dil = cfg.dilationRate as number | number[];
        if (cfg.useBias || (Array.isArray(dil) ? dil.some((d) => d !== 1) : dil !== 1)) {
          out[i] = layer.apply(ins[0]!, { training: true }) as tf.Tensor;
        } else {
          const fromConstant = inputs.every((j) => constant.has(j));
          out[i] = conv2dTrain(
            ins[0] as tf.Tensor4D,
            weightOf(layer, 'kernel') as tf.Tensor4D,
            s,
            padded?.pad ?? (cfg.padding as 'same' | 'valid'),
            !fromConstant,
          );
        }
        break;
      }
      case 'Add': {
        if (ins.length !== 2) {
          out[i] = layer.apply(ins, { training: true }) as tf.Tensor;
          break;
        }
        const relu = fusedRelu(nodes, i);
        if (relu !== undefined) at = relu;
        out[at] = addTrain(ins[0]!, ins[1]!, relu !== undefined);
        break;
      }
      default:
        out[i] = layer.apply(ins.length === 1 ? ins[0]! : ins, { training: true }) as tf.Tensor;
    }
    if (at !== i) done.add(at);
    for (const j of inputs) {
      if (j >= 0 && --pending[j]! === 0 && j !== output) out[j]!.dispose();
    }
  }
  return out[output] as tf.Tensor2D;
}
