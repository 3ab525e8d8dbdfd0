import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak } from '../helpers.js';
import { parseConfig } from '../../src/config/index.js';
import { createTrainer, disposeTrainer, trainStep } from '../../src/train/index.js';
import { InputError } from '../../src/errors.js';

const configFor = (type: string, extra: Record<string, unknown> = {}) =>
  parseConfig(
    {
      data: { dataset: 'synthetic', batchSize: 8 },
      model: { arch: 'small-cnn', numClasses: 10 },
      objective: { type },
      attack: { steps: 2 },
      awp: { enabled: true, warmupEpoch: 1 },
      ...extra,
    },
    'test config',
  );

for (const type of ['ikl-at', 'trades', 'pgd-at', 'standard']) {
  test(`trainStep ${type}: one step updates the weights, reports its parts, leaks nothing`, heavy, async () => {
    const t = createTrainer(configFor(type));
    const x = tf.randomUniform([8, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const y = tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32');
    const before = t.model.weights.map((w) => w.read().dataSync().slice());
    // Warm-up step (creates the momentum buffers), then a checked one.
    trainStep(t, x, y, { lr: 0.1, epsilon: 8 / 255, stepSize: 4 / 255, awp: true, seed: 1 });
    const s = await noLeak(() => trainStep(t, x, y, { lr: 0.1, epsilon: 8 / 255, stepSize: 4 / 255, awp: true, seed: 2 }));
    assert.ok(Number.isFinite(s.total));
    assert.equal(Number.isNaN(s.natural), type === 'pgd-at', 'natural CE exists unless pgd-at');
    assert.equal(Number.isNaN(s.robust), type === 'standard', 'robust term exists unless standard');
    if (type === 'ikl-at' || type === 'trades') assert.ok(Math.abs(s.total - s.natural - s.robust) < 1e-4);
    assert.ok(s.cleanCorrect >= 0 || type === 'pgd-at');
    const after = t.model.weights.map((w) => w.read().dataSync());
    const trainable = new Set(t.model.trainableWeights.map((w) => w.name));
    t.model.weights.forEach((w, i) => {
      // BN running statistics move in train mode too; every trainable weight gets weight decay at least.
      if (trainable.has(w.name)) assert.notDeepEqual(after[i], before[i], `${w.name} updated`);
    });
    // Class weights are only accumulated (never applied) within an epoch.
    if (t.classWeights) assert.ok(t.classWeights.matrix().every((v) => Math.abs(v - 0.1) < 1e-7));
    tf.dispose([x, y]);
    disposeTrainer(t);
  });
}

test('an ikl attack without class weights is an input error', () => {
  assert.throws(() => createTrainer(configFor('ikl-at', { attack: { objective: 'ikl' }, classWeights: { enabled: false } })), InputError);
});

test("AWP's proxy steps at the configured base learning rate, as the reference's proxy optimiser (lr=args.lr)", () => {
  for (const lr of [0.2, 0.03]) {
    const t = createTrainer(configFor('ikl-at', { optimizer: { lr } }));
    assert.equal(t.awp!.options.proxyLr, lr);
    disposeTrainer(t);
  }
});
