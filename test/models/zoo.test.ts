import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noLeak, randomImages } from '../helpers.js';
import { InputError } from '../../src/errors.js';
import { MODEL_ARCHS, countParams, createModel, forward, parseArch, type ModelArch } from '../../src/models/index.js';
import { assertLayerConfigs, testReferenceCounts } from './zoo-fixtures.js';

test('parseArch accepts every zoo name and rejects others with an InputError naming the source', () => {
  for (const a of MODEL_ARCHS) assert.equal(parseArch(a), a);
  assert.throws(
    () => parseArch('wrn-35-20', 'config.model.arch'),
    (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /^config\.model\.arch: unknown architecture 'wrn-35-20'/);
      return true;
    },
  );
});

test('parametric WRNs: any depth 6n+4 and width, both families; trainable parameters as counted by hand', async () => {
  for (const bad of ['wrn-12-2', 'wrn-0-1', 'wrn-10-0', 'wrn-10-2-relu', 'wrn-010-2']) assert.throws(() => parseArch(bad), InputError, bad);
  // TRADES WRN: conv 3→16; per group the first block (BN in, conv in→out, BN out, conv out→out, 1×1 shortcut when
  // in ≠ out) and n − 1 blocks out→out; final BN; linear. Swish WRN: the same trainable weights (its normalisation is frozen).
  const count = (depth: number, k: number, c: number): number => {
    const n = (depth - 4) / 6;
    const w = [16, 16 * k, 32 * k, 64 * k];
    let p = 27 * 16;
    for (let g = 0; g < 3; g++) {
      const [i, o] = [w[g]!, w[g + 1]!];
      p += 2 * i + 9 * i * o + 2 * o + 9 * o * o + (i !== o ? i * o : 0);
      p += (n - 1) * (4 * o + 18 * o * o);
    }
    return p + 2 * w[3]! + w[3]! * c + c;
  };
  await noLeak(() => {
    for (const [arch, depth, k] of [
      ['wrn-10-1', 10, 1],
      ['wrn-16-2-swish', 16, 2],
      ['wrn-22-1', 22, 1],
    ] as const) {
      const model = createModel({ arch: parseArch(arch), numClasses: 7, seed: 1 });
      assert.equal(countParams(model), count(depth, k, 7), arch);
      assert.equal(
        model.layers.some((l) => l.name === 'input_normalization'),
        arch.endsWith('-swish'),
        arch,
      );
      model.dispose();
    }
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
  // RobustBench's DMPreActResNet(depth=18) (3×3 shortcut convolutions), counted with its own module.
  ['dm-preact-resnet-18', 10, 12_548_426],
  ['dm-preact-resnet-18', 100, 12_594_596],
];

testReferenceCounts(REFERENCE_COUNTS);
