import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak } from '../helpers.js';
import { pgd, pgdPerturb, restartSeed, type PgdOptions } from '../../src/attacks/pgd.js';
import { InputError } from '../../src/errors.js';
import { accuracy, linearModel, margins, perturbationStats, randomMatrix, trainedTask, uniformInputs, worstMargins } from './fixtures.js';

const SHAPE: [number, number, number] = [4, 4, 1];
const D = 16;

for (const norm of ['linf', 'l2'] as const) {
  for (const start of ['uniform', 'trades', 'none'] as const) {
    for (const loss of ['ce', 'cw'] as const) {
      test(`pgd ${norm} start=${start} loss=${loss} reaches the closed-form worst case of a linear model`, async () => {
        const lin = linearModel(randomMatrix(11, 2, D, 0.5), [0.1, -0.2]);
        // Inputs in [0.3, 0.7] and eps ≤ 0.2 per coordinate: the [0, 1] clamp never binds, so the closed form holds.
        const { data, x } = uniformInputs(3, 16, SHAPE, 0.3, 0.7);
        const labels = Array.from({ length: 16 }, (_, i) => i % 2);
        const y = tf.tensor1d(labels, 'int32');
        const eps = norm === 'linf' ? 0.1 : 0.2;
        const opts: PgdOptions = {
          eps,
          norm,
          steps: norm === 'linf' ? 20 : 60,
          stepSize: norm === 'linf' ? eps / 4 : eps / 2,
          restarts: 1,
          seed: 5,
          start,
          loss,
        };
        await noLeak(async () => {
          const { xAdv, success } = await pgd(lin.model, x, y, opts);
          const logits = lin.model(xAdv);
          const got = margins((await logits.data()) as Float32Array, labels, 2);
          const want = worstMargins(lin.W, lin.b, data, labels, eps, norm);
          for (let i = 0; i < 16; i++) {
            assert.ok(Math.abs(got[i]! - want[i]!) < 2e-4, `example ${i}: margin ${got[i]} != closed form ${want[i]}`);
            assert.equal(success[i], want[i]! < 0 ? 1 : 0, `example ${i}: success flag`);
          }
          tf.dispose([xAdv, logits]);
        });
        tf.dispose([x, y]);
        lin.dispose();
      });
    }
  }
}

test('pgd: every start, norm and loss stays inside the eps-ball and [0, 1], and raises the loss', async () => {
  const C = 3;
  const lin = linearModel(randomMatrix(21, C, 8 * 8 * 3, 0.3), [0, 0.1, -0.1]);
  // Inputs spread over the whole box, some at the edges, so the clamp binds.
  const { data, x } = uniformInputs(4, 8, [8, 8, 3], -0.2, 1.2);
  const xc = x.clipByValue(0, 1) as tf.Tensor4D;
  const xData = (await xc.data()) as Float32Array;
  void data;
  const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32');
  const classPrior = tf.fill([8, C], 1 / C) as tf.Tensor2D;
  for (const norm of ['linf', 'l2'] as const) {
    const eps = norm === 'linf' ? 8 / 255 : 0.5;
    for (const start of ['uniform', 'trades', 'none'] as const) {
      for (const loss of ['ce', 'cw', 'kl', 'ikl'] as const) {
        await noLeak(async () => {
          const { xAdv } = await pgd(lin.model, xc, y, {
            eps,
            norm,
            steps: 3,
            stepSize: eps / 2,
            restarts: 2,
            seed: 1,
            start,
            loss,
            alpha: 1,
            beta: 1,
            classPrior,
          });
          const adv = (await xAdv.data()) as Float32Array;
          assert.ok(adv.every(Number.isFinite), `${norm}/${start}/${loss}: non-finite values`);
          const s = perturbationStats(xData, adv, 8, norm);
          assert.ok(s.maxPert <= eps + 1e-6, `${norm}/${start}/${loss}: perturbation ${s.maxPert} > eps ${eps}`);
          assert.ok(s.min >= 0 && s.max <= 1, `${norm}/${start}/${loss}: values outside [0, 1]: ${s.min}..${s.max}`);
          if (loss === 'kl' || loss === 'ce') {
            // A convex loss of a linear model: every ascent step from x raises it.
            const ceOf = (t: tf.Tensor4D): tf.Tensor => tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(y, C), lin.model(t)));
            if (loss === 'ce' && start === 'none') {
              const [before, after] = [ceOf(xc), ceOf(xAdv)];
              assert.ok((await after.data())[0]! > (await before.data())[0]!, `${norm}: CE did not increase`);
              tf.dispose([before, after]);
            }
          }
          xAdv.dispose();
        });
      }
    }
  }
  tf.dispose([x, xc, y, classPrior]);
  lin.dispose();
});

test('pgd kl (TRADES inner maximisation: trades start, 5 steps of eps/2) moves the prediction away from the clean one', async () => {
  const lin = linearModel(randomMatrix(31, 3, D, 1), [0, 0, 0]);
  const { x } = uniformInputs(6, 8, SHAPE, 0.2, 0.8);
  const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32');
  await noLeak(async () => {
    const eps = 8 / 255;
    const xAdv = pgdPerturb(lin.model, x, y, { eps, norm: 'linf', steps: 5, stepSize: eps / 2, restarts: 1, seed: 9, start: 'trades', loss: 'kl' });
    const kl = tf.tidy(() => {
      const s = tf.softmax(lin.model(x));
      return tf.sum(tf.mul(s, tf.sub(tf.log(s), tf.logSoftmax(lin.model(xAdv)))), 1);
    });
    const v = await kl.data();
    // Five sign steps of eps/2 on a linear model move every coordinate to the ball's edge: KL is clearly positive.
    assert.ok(
      v.every((k) => k > 1e-4),
      `KL after the attack: ${Array.from(v)}`,
    );
    tf.dispose([xAdv, kl]);
  });
  tf.dispose([x, y]);
  lin.dispose();
});

test('pgd: trades start with 0 steps is within 0.001·N of x and clamped; seeds are deterministic', async () => {
  const lin = linearModel(randomMatrix(1, 2, D, 1), [0, 0]);
  const { x } = uniformInputs(7, 4, SHAPE, 0, 1);
  const y = tf.tensor1d([0, 1, 0, 1], 'int32');
  await noLeak(async () => {
    const base = { eps: 0.1, norm: 'linf' as const, steps: 0, restarts: 1, seed: 42 };
    const a = pgdPerturb(lin.model, x, y, { ...base, start: 'trades' });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(a, x))));
    const dmax = (await diff.data())[0]!;
    assert.ok(dmax > 0 && dmax < 0.006, `trades start moved by ${dmax}`);
    const range = tf.tidy(() => tf.stack([a.min(), a.max()]));
    const [lo, hi] = await range.data();
    range.dispose();
    assert.ok(lo! >= 0 && hi! <= 1, `trades start with 0 steps outside [0, 1]: ${lo}..${hi}`);
    const u1 = pgdPerturb(lin.model, x, y, { ...base, start: 'uniform' });
    const u2 = pgdPerturb(lin.model, x, y, { ...base, start: 'uniform' });
    const u3 = pgdPerturb(lin.model, x, y, { ...base, start: 'uniform', seed: 43 });
    assert.deepEqual(await u1.data(), await u2.data(), 'same seed, different start');
    assert.notDeepEqual(await u1.data(), await u3.data(), 'different seeds, same start');
    tf.dispose([a, diff, u1, u2, u3]);
  });
  tf.dispose([x, y]);
  lin.dispose();
});

test('pgd rejects bad options with InputError', () => {
  const lin = linearModel(randomMatrix(1, 2, D, 1), [0, 0]);
  const { x } = uniformInputs(7, 2, SHAPE);
  const y = tf.tensor1d([0, 1], 'int32');
  const ok: PgdOptions = { eps: 0.1, norm: 'linf', steps: 2, restarts: 1, seed: 0 };
  const bad: Array<[string, Partial<PgdOptions> & Record<string, unknown>]> = [
    ['eps', { eps: -1 }],
    ['norm', { norm: 'l3' as never }],
    ['steps', { steps: 1.5 }],
    ['restarts', { restarts: 0 }],
    ['start', { start: 'gauss' as never }],
    ['classPrior', { loss: 'ikl', alpha: 1, beta: 1 }],
    ['loss', { loss: 'mse' as never }],
  ];
  for (const [field, patch] of bad) {
    assert.throws(
      () => pgdPerturb(lin.model, x, y, { ...ok, ...patch }),
      (e: unknown) => e instanceof InputError && e.message.includes(field),
      field,
    );
  }
  const y3 = tf.tensor1d([0, 1, 1], 'int32');
  assert.throws(() => pgdPerturb(lin.model, x, y3, ok), InputError);
  tf.dispose([x, y, y3]);
  lin.dispose();
});

test('pgd on a trained model: lowers accuracy; restarts keep the worst case; earlyStop never loses a success', heavy, async () => {
  const task = trainedTask({ seed: 1 });
  const { model, x, y } = task;
  const yArr = Array.from(await y.data());
  const clean = await accuracy(model, x, y);
  assert.ok(clean > 0.8, `the fixture model should be accurate, clean accuracy ${clean}`);
  const eps = 0.06;
  const base: PgdOptions = { eps, norm: 'linf', steps: 10, stepSize: eps / 4, restarts: 1, seed: 3 };
  await noLeak(async () => {
    const r10 = await pgd(model, x, y, base);
    const robust = 1 - r10.success.reduce((a, v) => a + v, 0) / yArr.length;
    assert.ok(robust < clean - 0.1, `PGD-10 accuracy ${robust} not below clean ${clean}`);
    // The success flags agree with an independent evaluation of xAdv.
    const acc = await accuracy(model, r10.xAdv, y);
    assert.ok(Math.abs(acc - robust) < 1e-9, `success flags say ${robust}, re-evaluation ${acc}`);
    r10.xAdv.dispose();

    // Restarts: weak single runs (2 steps) so the runs disagree.
    const weak: PgdOptions = { ...base, steps: 2, stepSize: eps / 2 };
    const R = 3;
    const runs: Array<{ xAdv: tf.Tensor4D; success: Uint8Array }> = [];
    for (let r = 0; r < R; r++) runs.push(await pgd(model, x, y, { ...weak, seed: restartSeed(weak.seed, r) }));
    const all = await pgd(model, x, y, { ...weak, restarts: R });
    const ceRows = async (t: tf.Tensor4D): Promise<number[]> => {
      const z = model(t);
      const data = await z.data();
      z.dispose();
      const c = task.numClasses;
      return yArr.map((yi, i) => {
        const row = Array.from(data.slice(i * c, (i + 1) * c));
        const m = Math.max(...row);
        return m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[yi]!;
      });
    };
    const runLoss = await Promise.all(runs.map((r) => ceRows(r.xAdv)));
    const allLoss = await ceRows(all.xAdv);
    const allData = await all.xAdv.data();
    const runData = await Promise.all(runs.map((r) => r.xAdv.data()));
    const d = allData.length / yArr.length;
    let disagreements = 0;
    for (let i = 0; i < yArr.length; i++) {
      const first = runs.findIndex((r) => r.success[i] === 1);
      if (runs.some((r) => r.success[i] !== runs[0]!.success[i])) disagreements++;
      assert.equal(all.success[i], first >= 0 ? 1 : 0, `example ${i}: success must be the OR over restarts`);
      const pick = first >= 0 ? first : runLoss.map((l) => l[i]!).indexOf(Math.max(...runLoss.map((l) => l[i]!)));
      assert.deepEqual(allData.slice(i * d, (i + 1) * d), runData[pick]!.slice(i * d, (i + 1) * d), `example ${i}: expected restart ${pick}`);
      if (first < 0) assert.ok(Math.abs(allLoss[i]! - Math.max(...runLoss.map((l) => l[i]!))) < 1e-5);
    }
    assert.ok(disagreements > 0, 'fixture too easy: every restart agreed, the test would prove nothing');
    tf.dispose([all.xAdv, ...runs.map((r) => r.xAdv)]);

    // earlyStop: the trajectories agree until the first misclassified iterate, which is then kept.
    const plain = await pgd(model, x, y, weak);
    const stop = await pgd(model, x, y, { ...weak, earlyStop: true });
    for (let i = 0; i < yArr.length; i++) assert.ok(stop.success[i]! >= plain.success[i]!, `example ${i} lost by earlyStop`);
    tf.dispose([plain.xAdv, stop.xAdv]);
  });
  task.dispose();
});
