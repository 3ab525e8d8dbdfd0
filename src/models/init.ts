/**
 * Seeded initialisation reproducing the PyTorch references. Values are drawn in JS (rng.ts) and written into the
 * layer variables, so the same seed gives bit-identical weights whatever tfjs initialisers do with seeds.
 *
 * - Kaiming-normal fan-out (WRN references): std = sqrt(2 / (k·k·outChannels)).
 * - PyTorch default for Conv2d/Linear weights: kaiming_uniform(a = sqrt(5)) = U(±1/sqrt(fanIn));
 *   Linear bias U(±1/sqrt(fanIn)), which the WRN references replace by zeros.
 * - BatchNorm: gamma 1, beta 0, running mean 0, running variance 1.
 */
import * as tf from '@tensorflow/tfjs';
import { NORMALIZATION_LAYER, normalizationStats, type InitScheme } from './archs.js';
import { normalArray, uniformArray, uniformSource, weightSeed } from './rng.js';

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function initialValues(layer: tf.layers.Layer, v: tf.LayerVariable, scheme: InitScheme, numClasses: number, seed: number): Float32Array {
  const role = v.originalName.slice(v.originalName.lastIndexOf('/') + 1);
  const shape = v.shape as number[];
  const n = size(shape);
  const random = () => uniformSource(weightSeed(seed, v.originalName));
  const cls = layer.getClassName();

  if (cls === 'Conv2D' && role === 'kernel') {
    const [kh, kw, inC, outC] = shape as [number, number, number, number];
    return scheme.conv === 'kaiming-normal-fan-out'
      ? normalArray(n, Math.sqrt(2 / (kh * kw * outC)), random())
      : uniformArray(n, 1 / Math.sqrt(kh * kw * inC), random());
  }
  if (cls === 'Conv2D' && role === 'bias') {
    // mdistiller's VGG zeroes the bias of its kaiming-initialised convolutions; PyTorch's default is U(±1/sqrt(fanIn)).
    const [kh, kw, inC] = layer.getWeights()[0]!.shape as [number, number, number];
    return scheme.conv === 'kaiming-normal-fan-out' ? new Float32Array(n) : uniformArray(n, 1 / Math.sqrt(kh * kw * inC), random());
  }
  if (cls === 'DepthwiseConv2D' && layer.name !== NORMALIZATION_LAYER && role === 'depthwise_kernel') {
    // PyTorch's depthwise weight is [C·m, 1, kh, kw]: fan-out kh·kw·C·m, fan-in kh·kw.
    const [kh, kw, c, m] = shape as [number, number, number, number];
    return scheme.conv === 'kaiming-normal-fan-out'
      ? normalArray(n, Math.sqrt(2 / (kh * kw * c * m)), random())
      : uniformArray(n, 1 / Math.sqrt(kh * kw), random());
  }
  if (cls === 'Dense') {
    const fanIn = layer.getWeights()[0]!.shape[0]!;
    if (role === 'kernel') return scheme.linearKernel === 'normal-0.01' ? normalArray(n, 0.01, random()) : uniformArray(n, 1 / Math.sqrt(fanIn), random());
    if (role === 'bias') return scheme.linearBias === 'zeros' ? new Float32Array(n) : uniformArray(n, 1 / Math.sqrt(fanIn), random());
  }
  if (cls === 'BatchNormalization') {
    if (role === 'gamma' || role === 'moving_variance') return new Float32Array(n).fill(1);
    if (role === 'beta' || role === 'moving_mean') return new Float32Array(n);
  }
  if (cls === 'DepthwiseConv2D' && layer.name === NORMALIZATION_LAYER) {
    const { mean, std } = scheme.normalization ?? normalizationStats(numClasses);
    if (role === 'depthwise_kernel') return Float32Array.from(std, (s) => 1 / s);
    if (role === 'bias') return Float32Array.from(mean, (m, i) => -m / std[i]!);
  }
  throw new Error(`models/init: no initialisation rule for weight '${v.originalName}' of a ${cls} layer`);
}

/** Overwrites every weight of the model (trainable or not) with its seeded initial value. */
export function initializeWeights(model: tf.LayersModel, scheme: InitScheme, numClasses: number, seed: number): void {
  for (const layer of model.layers) {
    for (const v of layer.weights) {
      const values = initialValues(layer, v, scheme, numClasses, seed);
      // One weight at a time keeps peak memory at one extra copy of the largest kernel.
      tf.tidy(() => {
        v.write(tf.tensor(values, v.shape as number[], 'float32'));
      });
    }
  }
}
