import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noLeak, randomImages } from '../helpers.js';
import { InputError } from '../../src/errors.js';
import { MODEL_ARCHS, countParams, createModel, forward, parseArch, type ModelArch } from '../../src/models/index.js';
import { assertLayerConfigs, testReferenceCounts } from './zoo-fixtures.js';

test('parseArch accepts every zoo name and rejects others with an InputError naming the source', () => {
  for (const a of MODEL_ARCHS) assert.equal(parseArch(a), a);
  assert.throws(
    () => parseArch('wrn-34-20', 'config.model.arch'),
    (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /^config\.model\.arch: unknown architecture 'wrn-34-20'/);
      return true;
    },
  );
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

testReferenceCounts(REFERENCE_COUNTS);
