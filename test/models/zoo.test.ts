import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak, rng } from '../helpers.js';
import { InputError } from '../../src/errors.js';
import { MODEL_ARCHS, countParams, createModel, forward, parseArch, type ModelArch } from '../../src/models/index.js';

function randomImages(batch: number, seed: number): tf.Tensor4D {
  const r = rng(seed);
  return tf.tensor4d(Float32Array.from({ length: batch * 32 * 32 * 3 }, r), [batch, 32, 32, 3]);
}

/** BN layers PyTorch-equivalent (epsilon 1e-5, Keras momentum 0.9, 0.99 for the Swish WRN), activations and bias-free convs. */
function assertLayerConfigs(arch: ModelArch, model: tf.LayersModel): void {
  const swish = arch === 'wrn-28-10-swish';
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

test('parseArch accepts every zoo name and rejects others with an InputError naming the source', () => {
  for (const a of MODEL_ARCHS) assert.equal(parseArch(a), a);
  assert.throws(() => parseArch('wrn-34-20', 'config.model.arch'), (e: unknown) => {
    assert.ok(e instanceof InputError);
    assert.match(e.message, /^config\.model\.arch: unknown architecture 'wrn-34-20'/);
    return true;
  });
});

test('createModel rejects a bad spec with an InputError', () => {
  assert.throws(() => createModel({ arch: 'small-cnn', numClasses: 1, seed: 0 }), InputError);
  assert.throws(() => createModel({ arch: 'small-cnn', numClasses: 10, seed: 1.5 }), InputError);
  assert.throws(() => createModel({ arch: 'vgg' as ModelArch, numClasses: 10, seed: 0 }), InputError);
});

test('small CNN: logits shape and trainable parameter count (hand-computed)', async () => {
  await noLeak(() => {
    const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 3 });
    // conv 3→16, 16→32, 32→64 (3×3, no bias), BN γ/β per channel, linear 64→10 with bias.
    const expected = 27 * 16 + 2 * 16 + 144 * 32 + 2 * 32 + 288 * 64 + 2 * 64 + 64 * 10 + 10;
    assert.equal(countParams(model), expected);
    assertLayerConfigs('small-cnn', model);
    const x = randomImages(3, 1);
    for (const training of [false, true]) {
      const y = forward(model, x, { training });
      assert.deepEqual(y.shape, [3, 10]);
      assert.ok(Array.from(y.dataSync()).every(Number.isFinite));
      y.dispose();
    }
    x.dispose();
    model.dispose();
  });
});

// Parameter counts of the PyTorch reference implementations (CIFAR heads), BN running statistics excluded.
const REFERENCE_COUNTS: [ModelArch, number, number][] = [
  ['preact-resnet-18', 10, 11_172_170],
  ['preact-resnet-18', 100, 11_218_340],
  ['resnet-18', 10, 11_173_962],
];

for (const [arch, numClasses, count] of REFERENCE_COUNTS) {
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
