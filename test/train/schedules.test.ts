import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRate, epsilonAt, stepSizeFor } from '../../src/train/schedules.js';
import { InputError } from '../../src/errors.js';

test('cosine lr: lr·½(1+cos(π·e/(E+1))), e = 1..E', () => {
  const s = { kind: 'cosine' as const, lr: 0.2, epochs: 3 };
  // E + 1 = 4: cos(π/4), cos(π/2), cos(3π/4).
  assert.ok(Math.abs(learningRate(s, 1) - 0.1 * (1 + Math.SQRT1_2)) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 2) - 0.1) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 3) - 0.1 * (1 - Math.SQRT1_2)) < 1e-15);
  const s200 = { kind: 'cosine' as const, lr: 0.2, epochs: 200 };
  assert.ok(learningRate(s200, 200) > 0, 'never reaches zero at the last epoch');
});

test('piecewise lr decays after each milestone epoch (PyTorch MultiStepLR counting)', () => {
  const s = { kind: 'piecewise' as const, lr: 0.1, epochs: 200, milestones: [100, 150], gamma: 0.1 };
  assert.equal(learningRate(s, 100), 0.1);
  assert.ok(Math.abs(learningRate(s, 101) - 0.01) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 150) - 0.01) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 151) - 0.001) < 1e-15);
  assert.equal(learningRate({ kind: 'constant', lr: 0.05, epochs: 3 }, 3), 0.05);
});

test('warm-up as the reference: lr·e/W for e < W, then the cosine shifted by W over E − W + 1', () => {
  const s = { kind: 'constant' as const, lr: 0.3, epochs: 10, warmupEpochs: 3 };
  assert.ok(Math.abs(learningRate(s, 1) - 0.1) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 2) - 0.2) < 1e-15);
  assert.equal(learningRate(s, 3), 0.3);
  // train_dkl_cifar10.py, lr 0.2, W 5, E 20: e < 5 → 0.2·e/5; e ≥ 5 → 0.1·(1 + cos(π(e − 5)/16)).
  const c = { kind: 'cosine' as const, lr: 0.2, epochs: 20, warmupEpochs: 5 };
  const reference = (e: number) => (e < 5 ? (0.2 / 5) * e : 0.2 * 0.5 * (1 + Math.cos((Math.PI * (e - 5)) / 16)));
  for (let e = 1; e <= 20; e++) assert.ok(Math.abs(learningRate(c, e) - reference(e)) < 1e-15, `epoch ${e}`);
  assert.equal(learningRate(c, 5), 0.2, 'the cosine restarts at the full rate');
  // W = 1 shifts the cosine by one epoch and warms nothing up, as in the reference.
  assert.equal(learningRate({ ...c, warmupEpochs: 1 }, 1), 0.2);
});

test('epsilon ramp ε·e/E and step size absolute or relative', () => {
  const eps = 8 / 255;
  assert.equal(epsilonAt({ kind: 'linear', epsilon: eps, epochs: 4 }, 1), eps / 4);
  assert.equal(epsilonAt({ kind: 'linear', epsilon: eps, epochs: 4 }, 4), eps);
  assert.equal(epsilonAt({ kind: 'constant', epsilon: eps, epochs: 4 }, 1), eps);
  assert.equal(stepSizeFor({ stepSize: 0.5, relative: true }, eps / 4), eps / 8);
  assert.equal(stepSizeFor({ stepSize: 0.007, relative: false }, eps / 4), 0.007);
});

test('out-of-range epochs are input errors', () => {
  assert.throws(() => learningRate({ kind: 'cosine', lr: 0.1, epochs: 3 }, 0), InputError);
  assert.throws(() => epsilonAt({ kind: 'linear', epsilon: 0.1, epochs: 3 }, 4), InputError);
});
