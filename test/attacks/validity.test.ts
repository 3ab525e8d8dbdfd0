import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { InvalidAdversarialError, validityLine } from '../../src/attacks/validity.js';
import { perturbationStats, uniformInputs } from './fixtures.js';

test('validity line reports the perturbation, NaN count and range of a valid adversarial', async () => {
  const { data, x } = uniformInputs(1, 5, [4, 4, 3], 0.1, 0.9);
  for (const norm of ['linf', 'l2'] as const) {
    const eps = norm === 'linf' ? 0.05 : 0.3;
    // A perturbation of norm exactly 0.8·eps for example 2 and smaller ones elsewhere.
    const { data: noise } = uniformInputs(2, 5, [4, 4, 3], -1, 1);
    const adv = new Float32Array(data.length);
    const d = 48;
    for (let i = 0; i < 5; i++) {
      let n = 0;
      for (let j = 0; j < d; j++) n = norm === 'linf' ? Math.max(n, Math.abs(noise[i * d + j]!)) : n + noise[i * d + j]! ** 2;
      if (norm === 'l2') n = Math.sqrt(n);
      const scale = ((i === 2 ? 0.8 : 0.3) * eps) / n;
      for (let j = 0; j < d; j++) adv[i * d + j] = data[i * d + j]! + scale * noise[i * d + j]!;
    }
    const xAdv = tf.tensor4d(adv, x.shape);
    await noLeak(async () => {
      const line = await validityLine(x, xAdv, { eps, norm });
      const ref = perturbationStats(data, adv, 5, norm);
      assert.ok(Math.abs(line.maxPerturbation - ref.maxPert) < 1e-6, `${norm}: ${line.maxPerturbation} vs ${ref.maxPert}`);
      assert.ok(Math.abs(line.maxPerturbation - 0.8 * eps) < 1e-5);
      assert.equal(line.nanCount, 0);
      assert.equal(line.min, ref.min);
      assert.equal(line.max, ref.max);
    });
    xAdv.dispose();
  }
  x.dispose();
});

test('validity check throws on crafted invalid adversarials, never returns them as numbers', async () => {
  const { data, x } = uniformInputs(3, 4, [4, 4, 1], 0.2, 0.8);
  const eps = 0.03;
  const cases: Array<[string, (v: Float32Array) => void, 'linf' | 'l2', RegExp]> = [
    ['one pixel eps + 1e-5 away (L-inf)', (v) => (v[17] = data[17]! + eps + 1e-5), 'linf', /perturbation/],
    [
      'L2 norm 1.01·eps',
      (v) => {
        for (let j = 16; j < 32; j++) v[j] = data[j]! + (1.01 * eps) / 4;
      },
      'l2',
      /perturbation/,
    ],
    ['a value above 1', (v) => (v[3] = 1.0001), 'linf', /outside \[0, 1\]/],
    ['a value below 0', (v) => (v[40] = -0.0001), 'l2', /outside \[0, 1\]/],
    ['a NaN', (v) => (v[5] = Number.NaN), 'linf', /non-finite/],
  ];
  for (const [what, corrupt, norm, pattern] of cases) {
    const v = Float32Array.from(data);
    if (what.startsWith('a value')) {
      // Box violations only: the clean point sits 5e-5 inside the edge, the adversarial 1e-4 beyond it (inside the ball).
      const base = Float32Array.from(data);
      base[3] = 0.99995;
      base[40] = 0.00005;
      const adv = Float32Array.from(base);
      corrupt(adv);
      await noLeak(async () => {
        const [xb, bad] = [tf.tensor4d(base, x.shape), tf.tensor4d(adv, x.shape)];
        await assert.rejects(
          validityLine(xb, bad, { eps, norm }),
          (e: unknown) => e instanceof InvalidAdversarialError && pattern.test(e.message) && !/perturbation/.test(e.message),
          what,
        );
        tf.dispose([xb, bad]);
      });
      continue;
    }
    corrupt(v);
    const bad = tf.tensor4d(v, x.shape);
    await noLeak(() =>
      assert.rejects(validityLine(x, bad, { eps, norm }), (e: unknown) => e instanceof InvalidAdversarialError && pattern.test(e.message), what),
    );
    bad.dispose();
  }
  // Inside the tolerance: eps + 5e-7 is float32 rounding, accepted.
  const v = Float32Array.from(data);
  v[17] = data[17]! + eps + 5e-7;
  const ok = tf.tensor4d(v, x.shape);
  const line = await validityLine(x, ok, { eps, norm: 'linf' });
  assert.ok(line.maxPerturbation > eps);
  const wrongShape = tf.zeros([4, 4, 4, 2]) as tf.Tensor4D;
  await assert.rejects(validityLine(x, wrongShape, { eps, norm: 'linf' }), InvalidAdversarialError);
  tf.dispose([ok, wrongShape, x]);
});
