/** Shared by the model-zoo tests (split in two files so each stays fast). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak, randomImages } from '../helpers.js';
import { countParams, createModel, forward, type ModelArch } from '../../src/models/index.js';

/** BN layers PyTorch-equivalent (epsilon 1e-5, Keras momentum 0.9, 0.99 for the Swish WRN), activations and bias-free convs. */
export function assertLayerConfigs(arch: ModelArch, model: tf.LayersModel): void {
  const swish = arch === 'wrn-28-10-swish' || arch === 'dm-preact-resnet-18';
  let bns = 0;
  for (const layer of model.layers) {
    const config = layer.getConfig();
    if (layer.getClassName() === 'BatchNormalization') {
      bns++;
      assert.equal(config.epsilon, 1e-5, `${arch}/${layer.name}`);
      assert.equal(config.momentum, swish ? 0.99 : 0.9, `${arch}/${layer.name}`);
    }
    if (layer.getClassName() === 'Activation') assert.equal(config.activation, swish ? 'swish' : 'relu', `${arch}/${layer.name}`);
    if (layer.getClassName() === 'Conv2D') assert.equal(config.useBias, false, `${arch}/${layer.name}`);
  }
  assert.ok(bns > 0);
}

/**
 * One test per (arch, classes, count): the trainable parameter count equals the PyTorch reference (BN running
 * statistics excluded), BN/activation configs match PyTorch, and logits have the right shape in both modes.
 */
export function testReferenceCounts(counts: [ModelArch, number, number][]): void {
  for (const [arch, numClasses, count] of counts) {
    test(`${arch} (${numClasses} classes): ${count} trainable parameters, logits [2, ${numClasses}], PyTorch-equivalent BN`, heavy, async () => {
      await noLeak(() => {
        const model = createModel({ arch, numClasses, seed: 0 });
        assert.equal(countParams(model), count);
        assertLayerConfigs(arch, model);
        // The count must come from the trainable weights only: BN running statistics are in model.weights too.
        const all = model.weights.reduce((s, v) => s + v.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
        assert.ok(all > count, 'model.weights should also hold the BN running statistics');
        const x = randomImages(2, 7);
        // The 100-class variants differ only in the head: one (inference) pass checks it and keeps the file fast.
        for (const training of numClasses === 10 ? [false, true] : [false]) {
          const y = forward(model, x, { training });
          assert.deepEqual(y.shape, [2, numClasses]);
          assert.ok(Array.from(y.dataSync()).every(Number.isFinite), `${arch}: non-finite logits`);
          y.dispose();
        }
        x.dispose();
        model.dispose();
      });
    });
  }
}
