/** The input normalisation every zoo model carries inside, so inputs stay in [0, 1] for attacks and users. */
import * as tf from '@tensorflow/tfjs';
import { NORMALIZATION_LAYER } from './types.js';

/**
 * (x − mean)/std per channel as a frozen 1×1 depthwise convolution (kernel 1/std, bias −mean/std, written by
 * init.ts): a built-in layer, so a browser loads the model with plain tfjs.
 */
export function normalizationLayer(): tf.layers.Layer {
  return tf.layers.depthwiseConv2d({
    kernelSize: 1,
    depthMultiplier: 1,
    useBias: true,
    trainable: false,
    depthwiseInitializer: 'zeros',
    biasInitializer: 'zeros',
    name: NORMALIZATION_LAYER,
  });
}
