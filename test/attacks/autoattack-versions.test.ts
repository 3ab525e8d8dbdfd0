/**
 * AutoAttack's versions as data (standard, plus, rand, custom lists) against the settings the reference's
 * autoattack.py gives them, EOT gradient averaging against a hand computation on a randomised model, untargeted
 * FAB against the closed-form distance of a multi-class linear model, and plus at least as strong as standard.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak } from '../helpers.js';
import { AUTOATTACK_VERSIONS, autoAttack, customSpecs, stageBudget, versionSpecs } from '../../src/attacks/autoattack.js';
import { apgdCe } from '../../src/attacks/apgd.js';
import { fab } from '../../src/attacks/fab.js';
import { eotLossAndGrad } from '../../src/attacks/grad.js';
import { crossEntropy } from '../../src/losses/index.js';
import { InputError } from '../../src/errors.js';
import type { ModelFn } from '../../src/attacks/types.js';
import { linearModel, randomMatrix, trainedTask, uniformInputs } from './fixtures.js';

/**
 * The reference's settings, read from fra31/auto-attack a392200, autoattack.py (constructor, then set_version for
 * L-inf/L2) and written out here by hand: stage order (attacks_to_run), then per stage n_iter / n_queries,
 * n_restarts, n_target_classes, eot_iter (1 unless set), p_init. In 'plus' APGD-CE and APGD-DLR share one APGD
 * object (n_restarts 5) and FAB and FAB-T one FAB object (n_restarts 5); APGD-T keeps n_restarts 1.
 */
const REFERENCE: Record<string, Array<[string, Record<string, number>]>> = {
  standard: [
    ['apgd-ce', { steps: 100, restarts: 1 }],
    ['apgd-t', { steps: 100, restarts: 1, n_target_classes: 9 }],
    ['fab-t', { steps: 100, restarts: 1, n_target_classes: 9 }],
    ['square', { queries: 5000, restarts: 1, p_init: 0.8 }],
  ],
  plus: [
    ['apgd-ce', { steps: 100, restarts: 5 }],
    ['apgd-dlr', { steps: 100, restarts: 5 }],
    ['fab', { steps: 100, restarts: 5 }],
    ['square', { queries: 5000, restarts: 1, p_init: 0.8 }],
    ['apgd-t', { steps: 100, restarts: 1, n_target_classes: 9 }],
    ['fab-t', { steps: 100, restarts: 5, n_target_classes: 9 }],
  ],
  rand: [
    ['apgd-ce', { steps: 100, restarts: 1, eot_iter: 20 }],
    ['apgd-dlr', { steps: 100, restarts: 1, eot_iter: 20 }],
  ],
};

test('each AutoAttack version: stage list, attacks and budgets as the reference sets them', () => {
  assert.deepEqual(Object.keys(AUTOATTACK_VERSIONS).sort(), Object.keys(REFERENCE).sort());
  for (const [version, stages] of Object.entries(REFERENCE)) {
    const specs = versionSpecs(version as keyof typeof AUTOATTACK_VERSIONS);
    assert.deepEqual(
      specs.map((s) => [s.name, stageBudget(s)]),
      stages,
      version,
    );
    // The report's stage name is the attack that runs: fab is untargeted, apgd-dlr the untargeted DLR loss.
    for (const s of specs) assert.equal(s.attack, s.name, `${version}: ${s.name}`);
  }
  // Square in every version: the fixed p schedule (no rescaling option set: default off).
  for (const s of Object.values(AUTOATTACK_VERSIONS).flat()) if (s.attack === 'square') assert.equal('rescaleSchedule' in s.options, false);
});

test("custom lists take the reference's custom-version settings (those of plus), in the order given; bad lists refused", () => {
  const specs = customSpecs(['square', 'fab-t', 'apgd-dlr']);
  assert.deepEqual(
    specs.map((s) => [s.name, stageBudget(s)]),
    [
      ['square', { queries: 5000, restarts: 1, p_init: 0.8 }],
      ['fab-t', { steps: 100, restarts: 5, n_target_classes: 9 }],
      ['apgd-dlr', { steps: 100, restarts: 5 }],
    ],
  );
  assert.throws(
    () => customSpecs(['apgd-ce', 'pgd']),
    (e: unknown) => e instanceof InputError && /got 'pgd'/.test(e.message),
  );
  assert.throws(
    () => customSpecs(['fab', 'fab']),
    (e: unknown) => e instanceof InputError && /'fab' twice/.test(e.message),
  );
  assert.throws(() => customSpecs([]), InputError);
});

/** z = s_k·(W·flatten(x) + b) with s_k the k-th number of `scales`, cycling: a model that differs at every call. */
function randomisedLinear(W: number[][], b: number[], scales: number[]): { model: ModelFn; calls: () => number; dispose: () => void } {
  const lin = linearModel(W, b);
  let k = 0;
  const model: ModelFn = (x) => {
    const s = scales[k++ % scales.length]!;
    return tf.tidy(() => tf.mul(lin.model(x), s) as tf.Tensor2D);
  };
  return { model, calls: () => k, dispose: lin.dispose };
}

test('EOT: the gradient is the mean over the draws (hand computation), loss and logits are the last draw, as the reference', async () => {
  const [C, shape] = [4, [2, 2, 3] as [number, number, number]];
  const D = shape[0] * shape[1] * shape[2];
  const W = randomMatrix(5, C, D, 1);
  const b = [0.1, -0.2, 0.05, 0];
  const scales = [0.5, 1.5, 3, -1];
  const { data, x } = uniformInputs(6, 2, shape);
  const labels = [1, 3];
  const y = tf.tensor1d(labels, 'int32');
  const r = randomisedLinear(W, b, scales);
  try {
    await noLeak(() => {
      const out = eotLossAndGrad(r.model, (z) => crossEntropy(z, y, { reduction: 'none' }) as tf.Tensor1D, x, scales.length);
      const [grad, loss, logits] = [out.grad.dataSync(), out.loss.dataSync(), out.logits.dataSync()];
      tf.dispose([out.grad, out.loss, out.logits]);
      assert.equal(r.calls(), scales.length, 'one forward per draw');
      for (let i = 0; i < labels.length; i++) {
        const xi = Array.from(data.subarray(i * D, (i + 1) * D));
        const z = W.map((row, c) => row.reduce((a, w, j) => a + w * xi[j]!, b[c]!));
        // CE of s·z: ∇ₓ = s·Wᵀ(softmax(s·z) − e_y); averaged over the draws.
        const mean = new Array<number>(D).fill(0);
        for (const s of scales) {
          const e = z.map((v) => Math.exp(s * v));
          const p = e.map((v) => v / e.reduce((a, u) => a + u, 0));
          for (let c = 0; c < C; c++) {
            const coef = (s * (p[c]! - (c === labels[i] ? 1 : 0))) / scales.length;
            for (let j = 0; j < D; j++) mean[j]! += coef * W[c]![j]!;
          }
        }
        for (let j = 0; j < D; j++) assert.ok(Math.abs(grad[i * D + j]! - mean[j]!) < 1e-5, `point ${i}, coordinate ${j}: ${grad[i * D + j]} vs ${mean[j]}`);
        // Loss and logits of the last draw (s = −1).
        const last = scales[scales.length - 1]!;
        for (let c = 0; c < C; c++) assert.ok(Math.abs(logits[i * C + c]! - last * z[c]!) < 1e-5);
        const lse = Math.log(z.reduce((a, v) => a + Math.exp(last * v), 0));
        assert.ok(Math.abs(loss[i]! - (lse - last * z[labels[i]!]!)) < 1e-5);
      }
    });
  } finally {
    tf.dispose([x, y]);
    r.dispose();
  }
});

test('APGD with eotIter: every gradient costs eotIter forward/backward passes (start and each step), bad values refused', async () => {
  const [C, shape] = [4, [2, 2, 3] as [number, number, number]];
  const D = shape[0] * shape[1] * shape[2];
  const W = randomMatrix(8, C, D, 1);
  const b = [0, 0, 0, 0];
  const r = randomisedLinear(W, b, [1, 1.2, 0.8]);
  const { x } = uniformInputs(9, 3, shape, 0.3, 0.7);
  const y = tf.tidy(() => tf.argMax(r.model(x), 1) as tf.Tensor1D);
  try {
    await noLeak(async () => {
      const before = r.calls();
      const res = await apgdCe(r.model, x, y, { eps: 1e-4, norm: 'linf', steps: 5, restarts: 1, seed: 1, eotIter: 3 });
      res.xAdv.dispose();
      // One clean check, then (1 start + 5 steps) × 3 draws.
      assert.equal(r.calls() - before, 1 + 6 * 3);
    });
    await assert.rejects(apgdCe(r.model, x, y, { eps: 0.1, norm: 'linf', steps: 5, restarts: 1, seed: 1, eotIter: 0 }), InputError);
  } finally {
    tf.dispose([x, y]);
    r.dispose();
  }
});

test('untargeted FAB on a 4-class linear model reaches the closed-form distance to the closest boundary, both norms', async () => {
  const [C, shape] = [4, [3, 3, 2] as [number, number, number]];
  const D = shape[0] * shape[1] * shape[2];
  const W = randomMatrix(11, C, D, 1);
  const b = [0, 0.05, -0.05, 0.02];
  const lin = linearModel(W, b);
  const { data, x } = uniformInputs(12, 6, shape, 0.4, 0.6);
  const y = tf.tidy(() => tf.argMax(lin.model(x), 1) as tf.Tensor1D);
  const labels = Array.from(y.dataSync());
  try {
    for (const norm of ['linf', 'l2'] as const) {
      // Closed form (box not binding: points in [0.4, 0.6], distances small): min over k ≠ y of
      // (z_y − z_k) / ‖w_y − w_k‖_dual, reached towards class argmin.
      const exact = labels.map((yi, i) => {
        const xi = data.subarray(i * D, (i + 1) * D);
        const z = W.map((row, c) => row.reduce((a, w, j) => a + w * xi[j]!, b[c]!));
        let best = { d: Infinity, k: -1 };
        for (let k = 0; k < C; k++) {
          if (k === yi) continue;
          const diff = W[yi]!.map((w, j) => w - W[k]![j]!);
          const dual = norm === 'linf' ? diff.reduce((a, v) => a + Math.abs(v), 0) : Math.sqrt(diff.reduce((a, v) => a + v * v, 0));
          const d = (z[yi]! - z[k]!) / dual;
          if (d < best.d) best = { d, k };
        }
        return best;
      });
      await noLeak(async () => {
        const res = await fab(lin.model, x, y, { eps: 1, norm, steps: 20, restarts: 1, seed: 0 });
        const adv = res.xAdv.dataSync();
        const predT = tf.tidy(() => tf.argMax(lin.model(res.xAdv), 1));
        const pred = Array.from(predT.dataSync());
        tf.dispose([predT, res.xAdv]);
        exact.forEach((e, i) => {
          assert.equal(res.success[i], 1, `${norm}, point ${i}`);
          assert.ok(res.distance[i]! >= e.d * (1 - 1e-4), `${norm}, point ${i}: ${res.distance[i]} below the minimal distance ${e.d}`);
          assert.ok(res.distance[i]! <= e.d * 1.05, `${norm}, point ${i}: ${res.distance[i]} vs minimal ${e.d}`);
          assert.equal(pred[i], e.k, `${norm}, point ${i}: crossed into class ${pred[i]}, the closest boundary is ${e.k}`);
          for (let j = 0; j < D; j++) assert.ok(adv[i * D + j]! >= 0 && adv[i * D + j]! <= 1);
        });
      });
    }
  } finally {
    tf.dispose([x, y]);
    lin.dispose();
  }
});

test('AutoAttack plus is at least as strong as standard on a trained toy net; rand runs APGD-CE and APGD-DLR', heavy, async () => {
  const task = trainedTask({ seed: 2, test: 24 });
  const { model, x, y } = task;
  try {
    // APGD-CE alone fools about half of the 24 points at this radius.
    const eps = 0.08;
    const std = await autoAttack(model, x, y, { eps, norm: 'linf', seed: 1, version: 'standard' });
    const plus = await autoAttack(model, x, y, { eps, norm: 'linf', seed: 1, version: 'plus' });
    const rand = await autoAttack(model, x, y, { eps, norm: 'linf', seed: 1, version: 'rand' });
    tf.dispose([std.xAdv, plus.xAdv, rand.xAdv]);
    console.log(`toy net, eps ${eps}: clean ${std.cleanAccuracy}, standard ${std.robustAccuracy}, plus ${plus.robustAccuracy}, rand ${rand.robustAccuracy}`);
    assert.ok(std.cleanAccuracy > 0.5, `clean accuracy ${std.cleanAccuracy}: the toy net did not train`);
    assert.ok(std.robustAccuracy < std.cleanAccuracy, 'eps too small for the test to mean anything');
    assert.ok(plus.robustAccuracy <= std.robustAccuracy, `plus ${plus.robustAccuracy} > standard ${std.robustAccuracy}`);
    assert.deepEqual(
      rand.stages.map((s) => s.name),
      ['apgd-ce', 'apgd-dlr'].slice(0, rand.stages.length),
    );
    assert.deepEqual(
      plus.stages.map((s) => s.name),
      ['apgd-ce', 'apgd-dlr', 'fab', 'square', 'apgd-t', 'fab-t'].slice(0, plus.stages.length),
    );
  } finally {
    task.dispose();
  }
});
