import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak } from '../helpers.js';
import { dklLoss, klLoss } from '../../src/losses/index.js';
import { InputError } from '../../src/errors.js';
import { asFloat32, data, finiteDiff, flat, klRef, logSoftmax, mean, randomMatrix, softmax, type Matrix } from './reference.js';

function gradsOf(f: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Scalar, nat: Matrix, adv: Matrix): [Float32Array, Float32Array] {
  return tf.tidy(() => {
    const [gNat, gAdv] = tf.grads((a, b) => f(a as tf.Tensor2D, b as tf.Tensor2D))([tf.tensor2d(nat), tf.tensor2d(adv)]);
    return [data(gNat!).slice(), data(gAdv!).slice()];
  });
}

test('klLoss equals the float64 definition, per example and batch mean', async () => {
  await noLeak(() => {
    const nat = asFloat32(randomMatrix(5, 7, 1, 2));
    const adv = asFloat32(randomMatrix(5, 7, 2, 2));
    const expected = klRef(nat, adv);
    tf.tidy(() => {
      const a = tf.tensor2d(nat);
      const b = tf.tensor2d(adv);
      assertClose(data(klLoss(a, b, { reduction: 'none' })), expected, 1e-5, 'per example');
      assertClose(data(klLoss(a, b)), [mean(expected)], 1e-5, 'mean');
      assertClose(data(klLoss(a, b, { reduction: 'sum' })), [expected.reduce((x, y) => x + y)], 1e-5, 'sum');
      assertClose(data(klLoss(a, a, { reduction: 'none' })), [0, 0, 0, 0, 0], 1e-6, 'KL(s||s) = 0');
      // The return type follows the reduction (checked by tsc), and so does the rank.
      const perExample: tf.Tensor1D = klLoss(a, b, { reduction: 'none' });
      const batchMean: tf.Scalar = klLoss(a, b);
      assert.deepEqual([perExample.shape, batchMean.shape], [[5], []]);
    });
  });
});

test('klLoss gradients match float64 finite differences in both inputs', async () => {
  await noLeak(() => {
    const nat = asFloat32(randomMatrix(3, 6, 3, 1.5));
    const adv = asFloat32(randomMatrix(3, 6, 4, 1.5));
    const [gNat, gAdv] = gradsOf((a, b) => klLoss(a, b), nat, adv);
    assertClose(gNat, flat(finiteDiff((z) => mean(klRef(z, adv)), nat)), 1e-5, 'dKL/dz');
    assertClose(gAdv, flat(finiteDiff((za) => mean(klRef(nat, za)), adv)), 1e-5, "dKL/dz'");
  });
});

for (const numClasses of [2, 10, 100]) {
  test(`Theorem 1: dklLoss(alpha = beta = 1) has klLoss's gradients, C = ${numClasses}`, async () => {
    await noLeak(() => {
      const nat = randomMatrix(8, numClasses, 10 + numClasses, 1.5);
      const adv = randomMatrix(8, numClasses, 20 + numClasses, 1.5);
      const [kNat, kAdv] = gradsOf((a, b) => klLoss(a, b), nat, adv);
      const [dNat, dAdv] = gradsOf((a, b) => dklLoss(a, b, { alpha: 1, beta: 1 }), nat, adv);
      assertClose(dNat, kNat, 1e-5, 'gradient w.r.t. natural logits');
      assertClose(dAdv, kAdv, 1e-5, 'gradient w.r.t. adversarial logits');
      // Not vacuous: the gradients are far from zero.
      assert.ok(Math.max(...kNat.map(Math.abs)) > 1e-3 && Math.max(...kAdv.map(Math.abs)) > 1e-3);
    });
  });
}

test("dklLoss: the wMSE only trains z, the soft CE only trains z' (the asymmetry IKL removes)", async () => {
  await noLeak(() => {
    const nat = randomMatrix(4, 5, 30, 2);
    const adv = randomMatrix(4, 5, 31, 2);
    const [wNat, wAdv] = gradsOf((a, b) => dklLoss(a, b, { alpha: 0, beta: 1 }), nat, adv);
    const [cNat, cAdv] = gradsOf((a, b) => dklLoss(a, b, { alpha: 1, beta: 0 }), nat, adv);
    assert.ok(
      wAdv.every((g) => g === 0),
      "wMSE must give no gradient to z'",
    );
    assert.ok(
      cNat.every((g) => g === 0),
      'soft CE must give no gradient to z',
    );
    assert.ok(wNat.some((g) => Math.abs(g) > 1e-3) && cAdv.some((g) => Math.abs(g) > 1e-3));
    // ∂softCE/∂z' = (s' − s)/B.
    const expected = adv.flatMap((za, b) => softmax(za).map((p, j) => (p - softmax(nat[b]!)[j]!) / 4));
    assertClose(cAdv, expected, 1e-6, "soft CE gradient = (s' − s)/B");
  });
});

test('dklLoss value equals its definition with alpha, beta != 1', async () => {
  await noLeak(() => {
    const nat = asFloat32(randomMatrix(3, 4, 40, 1));
    const adv = asFloat32(randomMatrix(3, 4, 41, 1));
    const alpha = 2.5;
    const beta = 0.7;
    const expected = nat.map((z, b) => {
      const s = softmax(z);
      const la = logSoftmax(adv[b]!);
      let pairs = 0;
      for (let j = 0; j < 4; j++) for (let k = 0; k < 4; k++) pairs += s[j]! * s[k]! * (z[j]! - z[k]! - (adv[b]![j]! - adv[b]![k]!)) ** 2;
      return (beta / 4) * pairs - alpha * s.reduce((acc, p, j) => acc + p * la[j]!, 0);
    });
    tf.tidy(() => {
      const out = dklLoss(tf.tensor2d(nat), tf.tensor2d(adv), { alpha, beta, reduction: 'none' });
      assertClose(data(out), expected, 1e-5, 'dkl per example');
    });
  });
});

test('klLoss and dklLoss reject mismatched shapes and bad options with InputError', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      const a = tf.zeros([2, 3]) as tf.Tensor2D;
      const b = tf.zeros([2, 4]) as tf.Tensor2D;
      assert.throws(() => klLoss(a, b), InputError);
      assert.throws(() => dklLoss(a, a, { beta: Number.NaN }), /beta/);
      assert.throws(() => klLoss(a, a, { reduction: 'avg' as 'mean' }), /reduction/);
      assert.throws(() => klLoss(tf.zeros([3]) as unknown as tf.Tensor2D, a), /rank 2/);
    });
  });
});
