import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import {
  checkBlackBoxStronger,
  checkDeterminism,
  checkNumClasses,
  checkProbabilityOutputs,
  checkZeroGradients,
  sanityChecks,
} from '../../src/attacks/checks.js';
import type { StageResult } from '../../src/attacks/autoattack.js';
import type { ModelFn } from '../../src/attacks/types.js';
import { linearModel, randomMatrix, uniformInputs } from './fixtures.js';

const SHAPE: [number, number, number] = [4, 4, 1];

test('a constant (zero-gradient) model triggers the zero-gradient warning; a linear model does not', async () => {
  const { x } = uniformInputs(1, 8, SHAPE);
  const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32');
  // Output wired to x (so the tape connects) but constant: the gradient is exactly zero.
  const constant: ModelFn = (t) => tf.tidy(() => tf.add(tf.mul(t.reshape([t.shape[0], -1]).slice([0, 0], [-1, 3]), 0), tf.tensor1d([1, 2, 3])) as tf.Tensor2D);
  const lin = linearModel(randomMatrix(2, 3, 16, 1), [0, 0, 0]);
  await noLeak(async () => {
    const w = await checkZeroGradients(constant, x, y);
    assert.match(w ?? '', /8 of 8 points/);
    // Not even connected to x: still a zero gradient, not an exception.
    const unplugged: ModelFn = (t) => tf.tidy(() => tf.tile(tf.tensor2d([[1, 2, 3]]), [t.shape[0], 1]) as tf.Tensor2D);
    assert.match((await checkZeroGradients(unplugged, x, y)) ?? '', /8 of 8 points/);
    assert.equal(await checkZeroGradients(lin.model, x, y), null);
  });
  // Half the points on a flat region: the threshold decides.
  const data = new Float32Array(8 * 16).map((_, i) => (Math.floor(i / 16) % 2 === 0 ? 0.2 : 0.8));
  const xh = tf.tensor4d(data, [8, ...SHAPE]);
  const halfFlat: ModelFn = (t) =>
    tf.tidy(() => {
      const p = tf.relu(tf.sub(t.reshape([t.shape[0], -1]).slice([0, 0], [-1, 1]), 0.5));
      return tf.concat([tf.zerosLike(p), tf.mul(p, 3), tf.mul(p, -2)], 1) as tf.Tensor2D;
    });
  await noLeak(async () => {
    assert.match((await checkZeroGradients(halfFlat, xh, y, 0.3)) ?? '', /4 of 8 points \(50\.0%\)/);
    assert.equal(await checkZeroGradients(halfFlat, xh, y, 0.6), null);
  });
  tf.dispose([x, xh, y]);
  lin.dispose();
});

test('a model returning softmax triggers the probabilities warning; logits do not', async () => {
  const { x } = uniformInputs(2, 6, SHAPE);
  const lin = linearModel(randomMatrix(3, 4, 16, 1), [0, 0, 0, 0]);
  const probs: ModelFn = (t) => tf.tidy(() => tf.softmax(lin.model(t)));
  // Positive rows that do not sum to 1 are not probabilities either.
  const positive: ModelFn = (t) => tf.tidy(() => tf.exp(lin.model(t)));
  await noLeak(async () => {
    assert.match((await checkProbabilityOutputs(probs, x)) ?? '', /probabilities/);
    assert.equal(await checkProbabilityOutputs(lin.model, x), null);
    assert.equal(await checkProbabilityOutputs(positive, x), null);
  });
  const y = tf.tensor1d([0, 1, 2, 3, 0, 1], 'int32');
  const all = await noLeak(() => sanityChecks(probs, x, y, { nTargetClasses: 3 }));
  assert.equal(all.filter((w) => /probabilities/.test(w)).length, 1, all.join('\n'));
  tf.dispose([x, y]);
  lin.dispose();
});

test('a model with random outputs triggers the determinism warning', async () => {
  const { x } = uniformInputs(3, 4, SHAPE);
  const lin = linearModel(randomMatrix(4, 3, 16, 1), [0, 0, 0]);
  const noisy: ModelFn = (t) => tf.tidy(() => tf.add(lin.model(t), tf.randomNormal([t.shape[0], 3], 0, 0.1)));
  await noLeak(async () => {
    assert.match((await checkDeterminism(noisy, x)) ?? '', /not deterministic/);
    assert.equal(await checkDeterminism(lin.model, x), null);
  });
  x.dispose();
  lin.dispose();
});

test('Square fooling points the white-box stages missed triggers a warning; class counts are checked', () => {
  const stage = (name: string, fooled: number, blackBox = false): StageResult => ({
    name,
    blackBox,
    attacked: 10,
    fooled,
    robustAccuracy: 0.5,
    timeMs: 1,
    validity: null,
  });
  assert.match(checkBlackBoxStronger([stage('apgd-ce', 3), stage('apgd-t', 1), stage('square', 2, true)]) ?? '', /square \(black-box\) fooled 2 points/);
  assert.equal(checkBlackBoxStronger([stage('apgd-ce', 3), stage('square', 0, true)]), null);
  // Square alone has no white-box attack to beat.
  assert.equal(checkBlackBoxStronger([stage('square', 4, true)]), null);
  assert.match(checkNumClasses(3, 9) ?? '', /2 target classes instead of 9.*at least 4 classes/);
  assert.equal(checkNumClasses(10, 9), null);
});
