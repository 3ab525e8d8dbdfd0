import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { fgsm } from '../../src/attacks/fgsm.js';
import { InputError } from '../../src/errors.js';
import { linearModel, margins, perturbationStats, randomMatrix, uniformInputs } from './fixtures.js';

const D = 16;

for (const norm of ['linf', 'l2'] as const) {
  test(`fgsm ${norm} on a 2-class linear model takes the exact worst-case step`, async () => {
    // For a linear model the CE gradient is a positive multiple of w_o − w_y, so one step of size eps along the
    // steepest direction is already the minimiser of the margin: m − eps·‖w_y − w_o‖ (L1 for L-inf, L2 for L2).
    const lin = linearModel(randomMatrix(2, 2, D, 0.5), [0.2, -0.2]);
    const { data, x } = uniformInputs(5, 12, [4, 4, 1], 0.3, 0.7);
    const labels = Array.from({ length: 12 }, (_, i) => (i * 7) % 2);
    const y = tf.tensor1d(labels, 'int32');
    const eps = norm === 'linf' ? 0.05 : 0.2;
    await noLeak(async () => {
      const { xAdv, success } = await fgsm(lin.model, x, y, { eps, norm });
      const z = lin.model(xAdv);
      const got = margins((await z.data()) as Float32Array, labels, 2);
      for (let i = 0; i < labels.length; i++) {
        const yi = labels[i]!;
        let m = lin.b[yi]! - lin.b[1 - yi]!;
        let dual = 0;
        for (let j = 0; j < D; j++) {
          const dw = lin.W[yi]![j]! - lin.W[1 - yi]![j]!;
          m += dw * data[i * D + j]!;
          dual += norm === 'linf' ? Math.abs(dw) : dw * dw;
        }
        const want = m - eps * (norm === 'linf' ? dual : Math.sqrt(dual));
        assert.ok(Math.abs(got[i]! - want) < 1e-4, `example ${i}: margin ${got[i]} vs closed form ${want}`);
        assert.equal(success[i], want < 0 ? 1 : 0);
      }
      tf.dispose([xAdv, z]);
    });
    tf.dispose([x, y]);
    lin.dispose();
  });
}

test('fgsm stays inside the eps-ball and [0, 1] when the box binds; bad input is an InputError', async () => {
  const lin = linearModel(randomMatrix(3, 3, 8 * 8 * 3, 0.3), [0, 0, 0]);
  const { x: raw } = uniformInputs(6, 6, [8, 8, 3], -0.3, 1.3);
  const x = raw.clipByValue(0, 1) as tf.Tensor4D;
  const xData = (await x.data()) as Float32Array;
  const y = tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32');
  for (const norm of ['linf', 'l2'] as const) {
    const eps = norm === 'linf' ? 8 / 255 : 0.5;
    await noLeak(async () => {
      const { xAdv } = await fgsm(lin.model, x, y, { eps, norm });
      const s = perturbationStats(xData, (await xAdv.data()) as Float32Array, 6, norm);
      assert.ok(s.maxPert <= eps + 1e-6 && s.maxPert > eps / 2, `${norm}: perturbation ${s.maxPert}`);
      assert.ok(s.min >= 0 && s.max <= 1, `${norm}: range ${s.min}..${s.max}`);
      xAdv.dispose();
    });
  }
  await assert.rejects(fgsm(lin.model, x, y, { eps: Number.NaN }), InputError);
  await assert.rejects(fgsm(lin.model, x, y, { eps: 0.1, norm: 'l1' as never }), InputError);
  tf.dispose([raw, x, y]);
  lin.dispose();
});
