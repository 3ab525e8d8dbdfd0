import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak } from '../helpers.js';
import { autoAttack, standardStages, type AutoAttackStage, type StageResult } from '../../src/attacks/autoattack.js';
import { InvalidAdversarialError } from '../../src/attacks/validity.js';
import { InputError } from '../../src/errors.js';
import { accuracy, linearModel, randomMatrix, trainedTask, uniformInputs, worstMargins } from './fixtures.js';

const SHAPE: [number, number, number] = [4, 4, 1];
const D = 16;

/** A 4-class linear model and inputs whose exact L-inf robustness is known in closed form. */
async function linearFixture(eps: number) {
  const C = 4;
  const lin = linearModel(randomMatrix(13, C, D, 0.6), [0, 0.1, -0.1, 0.05]);
  const { data, x } = uniformInputs(9, 32, SHAPE, 0.3, 0.7);
  const z0 = lin.model(x);
  // Labels: clean predictions, except every 8th point (misclassified clean, never attacked).
  const labels = Array.from(await tf.argMax(z0, 1).data()).map((p, i) => (i % 8 === 7 ? (p + 1) % C : p));
  z0.dispose();
  const y = tf.tensor1d(labels, 'int32');
  // A correctly classified x is robust iff for every k ≠ y: m_k − eps·‖w_y − w_k‖₁ ≥ 0 (box not binding).
  const margins = worstMargins(lin.W, lin.b, data, labels, eps, 'linf');
  const exactRobust = labels.map((_, i) => i % 8 !== 7 && margins[i]! >= 0);
  return { lin, x, y, labels, exactRobust, dispose: () => (tf.dispose([x, y]), lin.dispose()) };
}

test('autoAttack (all four standard stages, small budgets) reaches the exact robust accuracy of a linear model', async () => {
  const eps = 0.04;
  const f = await linearFixture(eps);
  const nRobust = f.exactRobust.filter(Boolean).length;
  assert.ok(nRobust > 0 && nRobust < 28, `fixture should mix robust and non-robust points (${nRobust})`);
  const seen: StageResult[] = [];
  await noLeak(async () => {
    const res = await autoAttack(f.lin.model, f.x, f.y, {
      eps,
      norm: 'linf',
      seed: 1,
      steps: 20,
      squareQueries: 100,
      onStage: (s) => seen.push(s),
    });
    assert.deepEqual(
      Array.from(res.robust, (r) => r === 1),
      f.exactRobust,
    );
    assert.equal(res.cleanAccuracy, 28 / 32);
    assert.equal(res.robustAccuracy, nRobust / 32);
    // Robust points remain after APGD, so every stage ran, in the standard order, each on what was left.
    assert.deepEqual(
      res.stages.map((s) => s.name),
      ['apgd-ce', 'apgd-t', 'fab-t', 'square'],
    );
    assert.deepEqual(seen, res.stages);
    let before = 28;
    for (const s of res.stages) {
      assert.equal(s.attacked, before, `${s.name} attacked ${s.attacked}, robust before it ${before}`);
      before -= s.fooled;
      assert.equal(s.robustAccuracy, before / 32);
      assert.ok(s.validity && s.validity.maxPerturbation <= eps + 1e-6 && s.validity.nanCount === 0, `${s.name}: ${JSON.stringify(s.validity)}`);
    }
    assert.equal(res.fooledBy.filter((b) => b === 'clean').length, 4);
    assert.equal(res.fooledBy.filter((b) => b === null).length, nRobust);
    // xAdv is what the flags say: re-evaluated accuracy equals the robust accuracy.
    assert.equal(await accuracy(f.lin.model, res.xAdv, f.y), res.robustAccuracy);
    res.xAdv.dispose();
  });
  f.dispose();
});

test('autoAttack only attacks robust points, exits early, ignores false success claims, rejects invalid stages', async () => {
  const eps = 0.04;
  const f = await linearFixture(eps);
  const calls: Array<{ name: string; size: number }> = [];
  const spy = (name: string, inner: AutoAttackStage): AutoAttackStage => ({
    name,
    run: (m, x, y, o) => {
      calls.push({ name, size: x.shape[0] });
      return inner.run(m, x, y, o);
    },
  });
  const liar: AutoAttackStage = { name: 'liar', run: async (_m, x) => ({ xAdv: tf.clone(x), success: new Uint8Array(x.shape[0]).fill(1) }) };
  const std = standardStages({ steps: 10, nTargetClasses: 3 });
  await noLeak(async () => {
    // The liar claims every point; re-evaluation shows it fooled none.
    const r1 = await autoAttack(f.lin.model, f.x, f.y, { eps, norm: 'linf', seed: 2, attacks: [liar, spy('apgd-t', std['apgd-t'])], batchSize: 5 });
    assert.equal(r1.stages[0]!.fooled, 0);
    assert.equal(r1.stages[0]!.robustAccuracy, 28 / 32);
    assert.ok(
      calls.every((c) => c.size <= 5),
      `batchSize 5 not respected: ${JSON.stringify(calls)}`,
    );
    assert.equal(
      calls.reduce((a, c) => a + c.size, 0),
      28,
      'apgd-t should see exactly the 28 clean-correct points',
    );
    assert.deepEqual(
      Array.from(r1.robust, (r) => r === 1),
      f.exactRobust,
    );
    r1.xAdv.dispose();

    // eps = 1 fools every point in the first stage; the second is never called.
    calls.length = 0;
    const r2 = await autoAttack(f.lin.model, f.x, f.y, {
      eps: 1,
      norm: 'linf',
      seed: 2,
      attacks: [spy('apgd-ce', std['apgd-ce']), spy('apgd-t', std['apgd-t'])],
    });
    assert.equal(r2.robustAccuracy, 0);
    assert.deepEqual(
      r2.stages.map((s) => s.name),
      ['apgd-ce'],
    );
    assert.deepEqual(
      calls.map((c) => c.name),
      ['apgd-ce'],
    );
    r2.xAdv.dispose();

    // A stage returning points outside the ball is an error, not a number.
    const cheat: AutoAttackStage = {
      name: 'cheat',
      run: async (_m, x) => ({ xAdv: tf.tidy(() => tf.clipByValue(tf.add(x, 2 * eps), 0, 1) as tf.Tensor4D), success: new Uint8Array(x.shape[0]) }),
    };
    await assert.rejects(autoAttack(f.lin.model, f.x, f.y, { eps, norm: 'linf', seed: 2, attacks: [cheat] }), InvalidAdversarialError);
  });
  await assert.rejects(autoAttack(f.lin.model, f.x, f.y, { eps, norm: 'linf', seed: 2, attacks: ['pgd' as never] }), InputError);
  await assert.rejects(autoAttack(f.lin.model, f.x, f.y, { eps, norm: 'linf', seed: -1 }), InputError);
  f.dispose();
});

test('autoAttack on a trained model is at least as strong as each of its parts, and robust <= clean', heavy, async () => {
  const task = trainedTask({ seed: 1 });
  const { model, x, y } = task;
  const n = y.shape[0];
  const eps = 0.08;
  const budget = { steps: 10, nTargetClasses: 3, squareQueries: 200 };
  const std = standardStages(budget);
  const names = ['apgd-ce', 'apgd-t', 'square'] as const;
  await noLeak(async () => {
    const aa = await autoAttack(model, x, y, { eps, norm: 'linf', seed: 3, ...budget, attacks: [...names] });
    const clean = await accuracy(model, x, y);
    assert.equal(aa.cleanAccuracy, clean);
    assert.ok(aa.robustAccuracy < clean, `AutoAttack ${aa.robustAccuracy} did not lower clean accuracy ${clean}`);
    let prev = clean;
    for (const s of aa.stages) {
      assert.ok(s.robustAccuracy <= prev, `${s.name}: accuracy went up`);
      prev = s.robustAccuracy;
    }
    for (const name of names) {
      const part = await std[name].run(model, x, y, { eps, norm: 'linf', seed: 3 });
      const partRobust = 1 - part.success.reduce((a, v) => a + v, 0) / n;
      assert.ok(aa.robustAccuracy <= partRobust, `AutoAttack ${aa.robustAccuracy} weaker than ${name} alone (${partRobust})`);
      part.xAdv.dispose();
    }
    assert.equal(await accuracy(model, aa.xAdv, y), aa.robustAccuracy);
    aa.xAdv.dispose();
  });
  task.dispose();
});

test('an empty batch is handled by every attack and by autoAttack', async () => {
  const lin = linearModel(randomMatrix(1, 4, D, 1), [0, 0, 0, 0]);
  const x = tf.zeros([0, ...SHAPE]) as tf.Tensor4D;
  const y = tf.zeros([0], 'int32') as tf.Tensor1D;
  const { fgsm } = await import('../../src/attacks/fgsm.js');
  const { pgd, pgdPerturb } = await import('../../src/attacks/pgd.js');
  const { apgdCe, apgdT } = await import('../../src/attacks/apgd.js');
  const base = { eps: 0.1, norm: 'linf' as const, steps: 3, restarts: 2, seed: 0 };
  await noLeak(async () => {
    for (const r of [
      await fgsm(lin.model, x, y, base),
      await pgd(lin.model, x, y, base),
      await apgdCe(lin.model, x, y, base),
      await apgdT(lin.model, x, y, base),
    ]) {
      assert.deepEqual(r.xAdv.shape, [0, ...SHAPE]);
      assert.equal(r.success.length, 0);
      r.xAdv.dispose();
    }
    pgdPerturb(lin.model, x, y, base).dispose();
    const aa = await autoAttack(lin.model, x, y, { eps: 0.1, norm: 'linf', seed: 0 });
    assert.equal(aa.robust.length, 0);
    assert.equal(aa.stages.length, 0);
    aa.xAdv.dispose();
  });
  tf.dispose([x, y]);
  lin.dispose();
});
