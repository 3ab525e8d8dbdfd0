import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak } from '../helpers.js';
import { dklLoss, iklLoss, type IklOptions } from '../../src/losses/index.js';
import { InputError } from '../../src/errors.js';
import { asFloat32, data, finiteDiff, flat, iklRef, mean, randomMatrix, softmax, type IklRefParams, type Matrix } from './reference.js';

/** A class prior like ClassWeights produces: positive rows summing to 1. */
function priorRows(rows: number, cols: number, seed: number): Matrix {
  return asFloat32(randomMatrix(rows, cols, seed, 1.2).map(softmax));
}

interface Case {
  name: string;
  batch: number;
  classes: number;
  alpha: number;
  beta: number;
  gamma?: number;
  temperature?: number;
  withPrior: boolean;
}

const cases: Case[] = [
  { name: 'IKL, per-sample weights (no prior)', batch: 4, classes: 10, alpha: 1, beta: 1, withPrior: false },
  { name: 'IKL, class prior, published α = 3, β = 20', batch: 4, classes: 10, alpha: 3, beta: 20, withPrior: true },
  { name: 'GKL, gamma = 0.5, temperature = 2, prior', batch: 3, classes: 7, alpha: 2, beta: 5, gamma: 0.5, temperature: 2, withPrior: true },
  { name: 'GKL, gamma = 2, temperature = 0.5, no prior', batch: 3, classes: 7, alpha: 1.5, beta: 3, gamma: 2, temperature: 0.5, withPrior: false },
  { name: 'GKL, gamma = 0 (plain MSE on logit differences)', batch: 2, classes: 5, alpha: 1, beta: 2, gamma: 0, withPrior: true },
  { name: 'IKL, C = 100', batch: 2, classes: 100, alpha: 2, beta: 4, withPrior: true },
];

for (const c of cases) {
  test(`iklLoss equals the O(C²) definition, value and both gradients: ${c.name}`, async () => {
    await noLeak(() => {
      const seed = c.batch * 1000 + c.classes;
      const nat = asFloat32(randomMatrix(c.batch, c.classes, seed, 1.5));
      const adv = asFloat32(randomMatrix(c.batch, c.classes, seed + 1, 1.5));
      const prior = c.withPrior ? priorRows(c.batch, c.classes, seed + 2) : undefined;
      const gamma = c.gamma ?? 1;
      const temperature = c.temperature ?? 1;
      // S(.) in the definition: weights and soft-CE target are fixed at the unperturbed natural logits.
      const ref: IklRefParams = {
        alpha: c.alpha,
        beta: c.beta,
        gamma,
        temperature,
        weights: prior ?? nat.map(softmax),
        target: nat.map((z) => softmax(z.map((x) => x / temperature))),
      };
      const expected = iklRef(nat, adv, ref);
      const expectedNat = flat(finiteDiff((z) => mean(iklRef(z, adv, ref)), nat));
      const expectedAdv = flat(finiteDiff((za) => mean(iklRef(nat, za, ref)), adv));

      tf.tidy(() => {
        const classPrior = prior ? tf.tensor2d(prior) : undefined;
        const opts: IklOptions = { alpha: c.alpha, beta: c.beta, classPrior, gamma: c.gamma, temperature: c.temperature };
        const a = tf.tensor2d(nat);
        const b = tf.tensor2d(adv);
        assertClose(data(iklLoss(a, b, { ...opts, reduction: 'none' })), expected, 1e-5, 'per-example value');
        assertClose(data(iklLoss(a, b, opts)), [mean(expected)], 1e-5, 'mean value');
        assertClose(data(iklLoss(a, b, { ...opts, reduction: 'sum' })), [mean(expected) * c.batch], 1e-5, 'sum value');
        const [gNat, gAdv] = tf.grads((x, y) => iklLoss(x as tf.Tensor2D, y as tf.Tensor2D, opts))([a, b]);
        assertClose(data(gNat!), expectedNat, 1e-5, 'gradient w.r.t. natural logits');
        assertClose(data(gAdv!), expectedAdv, 1e-5, 'gradient w.r.t. adversarial logits');
      });
    });
  });
}

test('iklLoss breaks the asymmetry: its wMSE trains the adversarial branch, DKL’s does not', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      const nat = tf.tensor2d(randomMatrix(4, 6, 50, 2));
      const adv = tf.tensor2d(randomMatrix(4, 6, 51, 2));
      const wmseOnly = { alpha: 0, beta: 1 };
      const [iNat, iAdv] = tf.grads((x, y) => iklLoss(x as tf.Tensor2D, y as tf.Tensor2D, wmseOnly))([nat, adv]);
      const [dNat, dAdv] = tf.grads((x, y) => dklLoss(x as tf.Tensor2D, y as tf.Tensor2D, wmseOnly))([nat, adv]);
      // The wMSE depends on z − z' only, so ∂/∂z' = −∂/∂z; without a prior and γ = 1 it is DKL's ∂/∂z.
      assertClose(data(iAdv!), Array.from(data(tf.neg(iNat!))), 1e-6, "IKL wMSE: dz' = -dz");
      assertClose(data(iNat!), data(dNat!), 1e-5, 'IKL wMSE dz = DKL wMSE dz');
      assert.ok(data(dAdv!).every((g) => g === 0));
      assert.ok(data(iAdv!).some((g) => Math.abs(g) > 1e-3));
    });
  });
});

test('iklLoss treats classPrior as a constant and ignores shifts of the logits', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      const nat = tf.tensor2d(randomMatrix(3, 5, 60, 1));
      const adv = tf.tensor2d(randomMatrix(3, 5, 61, 1));
      const prior = tf.tensor2d(priorRows(3, 5, 62));
      const gPrior = tf.grad((p) => iklLoss(nat, adv, { alpha: 1, beta: 2, classPrior: p as tf.Tensor2D }))(prior);
      assert.ok(
        data(gPrior).every((g) => g === 0),
        'no gradient into classPrior',
      );
      // Softmax and logit differences are shift invariant per row.
      const shifted = tf.add(adv, tf.tensor2d([[3], [-7], [100]])) as tf.Tensor2D;
      const opts = { alpha: 1, beta: 2, classPrior: prior, reduction: 'none' } as const;
      assertClose(data(iklLoss(nat, shifted, opts)), data(iklLoss(nat, adv, opts)), 1e-4, 'shift invariance');
    });
  });
});

test('iklLoss stays finite and accurate for logits of magnitude 1e4, near one-hot priors and B = 1', async () => {
  await noLeak(() => {
    // Large common offset with O(1) spread: the uncentred identity (Σw)(Σwd²) − (Σwd)² loses every digit here.
    const natShift = asFloat32(randomMatrix(4, 10, 70, 1, 1e4));
    const advSmall = asFloat32(randomMatrix(4, 10, 71, 1));
    const uniform = Array.from({ length: 4 }, () => Array(10).fill(0.1) as number[]);
    const ref: IklRefParams = { alpha: 1, beta: 1, gamma: 1, temperature: 1, weights: uniform, target: natShift.map(softmax) };
    const expected = iklRef(natShift, advSmall, { ...ref, weights: asFloat32(uniform) });
    const huge = asFloat32(randomMatrix(3, 10, 72, 1e4));
    const hugeAdv = asFloat32(randomMatrix(3, 10, 73, 1e4));
    const eps = 1e-7;
    const nearOneHot = [0, 3, 9].map((y) => Array.from({ length: 10 }, (_, j) => (j === y ? 1 - 9 * eps : eps)));
    const oneHot = [0, 3, 9].map((y) => Array.from({ length: 10 }, (_, j) => (j === y ? 1 : 0)));

    tf.tidy(() => {
      const value = iklLoss(tf.tensor2d(natShift), tf.tensor2d(advSmall), {
        alpha: 1,
        beta: 1,
        classPrior: tf.tensor2d(uniform),
        reduction: 'none',
      });
      assertClose(data(value), expected, 1e-2, 'offset 1e4, uniform prior');

      const settings: Array<IklOptions<'none'>> = [
        { alpha: 3, beta: 20 },
        { alpha: 3, beta: 20, classPrior: tf.tensor2d(nearOneHot) },
        { alpha: 3, beta: 20, classPrior: tf.tensor2d(oneHot), gamma: 0.5 },
        { alpha: 3, beta: 20, classPrior: tf.tensor2d(oneHot), gamma: 0 },
        { alpha: 3, beta: 20, gamma: 2, temperature: 0.1 },
      ];
      for (const [i, s] of settings.entries()) {
        for (const [nat, adv] of [
          [huge, hugeAdv],
          [huge.slice(0, 1), hugeAdv.slice(0, 1)],
        ] as const) {
          const prior = s.classPrior && nat.length === 1 ? tf.slice(s.classPrior, [0, 0], [1, -1]) : s.classPrior;
          const opts = { ...s, classPrior: prior };
          const a = tf.tensor2d(nat);
          const b = tf.tensor2d(adv);
          const out = data(iklLoss(a, b, { ...opts, reduction: 'none' }));
          assert.ok(out.every(Number.isFinite), `setting ${i}, B = ${nat.length}: value not finite: ${out}`);
          const [gNat, gAdv] = tf.grads((x, y) => iklLoss(x as tf.Tensor2D, y as tf.Tensor2D, opts))([a, b]);
          assert.ok(data(gNat!).every(Number.isFinite) && data(gAdv!).every(Number.isFinite), `setting ${i}, B = ${nat.length}: gradient not finite`);
        }
      }
    });
  });
});

test('iklLoss with an all-zero prior row contributes no wMSE for that row and stays finite', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      const nat = tf.tensor2d(randomMatrix(2, 4, 80, 1));
      const adv = tf.tensor2d(randomMatrix(2, 4, 81, 1));
      const zeros = tf.zeros([2, 4]) as tf.Tensor2D;
      const out = data(iklLoss(nat, adv, { alpha: 0, beta: 1, classPrior: zeros, reduction: 'none' }));
      assert.deepEqual(Array.from(out), [0, 0]);
    });
  });
});

test('iklLoss rejects bad options and shapes with InputError naming the field', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      const a = tf.zeros([2, 3]) as tf.Tensor2D;
      assert.throws(() => iklLoss(a, a, undefined as unknown as IklOptions), InputError);
      assert.throws(() => iklLoss(a, a, { alpha: 1 } as IklOptions), /'beta'/);
      assert.throws(() => iklLoss(a, a, { alpha: -1, beta: 1 }), /'alpha'/);
      assert.throws(() => iklLoss(a, a, { alpha: 1, beta: 1, gamma: -0.5 }), /'gamma'/);
      assert.throws(() => iklLoss(a, a, { alpha: 1, beta: 1, temperature: 0 }), /'temperature'/);
      assert.throws(() => iklLoss(a, a, { alpha: 1, beta: 1, classPrior: tf.zeros([2, 4]) as tf.Tensor2D }), /classPrior/);
      assert.throws(() => iklLoss(a, tf.zeros([3, 3]) as tf.Tensor2D, { alpha: 1, beta: 1 }), /logitsAdv/);
    });
  });
});
