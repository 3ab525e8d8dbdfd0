import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak } from '../helpers.js';
import { apgd, apgdCe, apgdCheckpoints, apgdRun, apgdT } from '../../src/attacks/apgd.js';
import { crossEntropy } from '../../src/losses/index.js';
import { pgd } from '../../src/attacks/pgd.js';
import { InputError } from '../../src/errors.js';
import { accuracy, linearModel, margins, perturbationStats, randomMatrix, trainedTask, uniformInputs, worstMargins } from './fixtures.js';

const SHAPE: [number, number, number] = [4, 4, 1];
const D = 16;

test('apgd checkpoints follow p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) from p_1 = 0.22', () => {
  // The paper's recursion in exact hundredths (N = 100 makes every w_j = p_j·N an integer).
  const paper: number[] = [];
  let [prev, cur] = [0, 22];
  while (cur <= 100) {
    paper.push(cur);
    [prev, cur] = [cur, cur + Math.max(cur - prev - 3, 6)];
  }
  assert.deepEqual(apgdCheckpoints(100), paper);
  assert.deepEqual(paper.slice(0, 4), [22, 41, 57, 70]);
  for (const n of [1, 5, 10, 37, 250, 1000]) {
    const w = apgdCheckpoints(n);
    const gaps = w.map((v, i) => v - (i === 0 ? 0 : w[i - 1]!));
    assert.ok(
      w.every((v) => v >= 1 && v <= n),
      `N=${n}: checkpoints ${w}`,
    );
    assert.ok(
      gaps.every((g, i) => i === 0 || g <= gaps[i - 1]!),
      `N=${n}: intervals must not grow: ${gaps}`,
    );
    assert.ok(
      gaps.every((g) => g >= Math.max(Math.floor(0.06 * n), 1)),
      `N=${n}: interval below 6% of N: ${gaps}`,
    );
  }
});

for (const norm of ['linf', 'l2'] as const) {
  test(`apgd-ce ${norm} reaches the closed-form worst case of a 2-class linear model`, async () => {
    const lin = linearModel(randomMatrix(12, 2, D, 0.5), [0.05, -0.05]);
    const { data, x } = uniformInputs(8, 24, SHAPE, 0.3, 0.7);
    // Labels = clean predictions, so every point is attacked.
    const z0 = lin.model(x);
    const labels = Array.from(await tf.argMax(z0, 1).data());
    const y = tf.tensor1d(labels, 'int32');
    const eps = norm === 'linf' ? 0.05 : 0.15;
    await noLeak(async () => {
      const { xAdv, success } = await apgdCe(lin.model, x, y, { eps, norm, steps: 50, restarts: 1, seed: 2 });
      const logits = lin.model(xAdv);
      const got = margins((await logits.data()) as Float32Array, labels, 2);
      const want = worstMargins(lin.W, lin.b, data, labels, eps, norm);
      let fooled = 0;
      for (let i = 0; i < labels.length; i++) {
        assert.equal(success[i], want[i]! < 0 ? 1 : 0, `example ${i}: success flag vs closed-form margin ${want[i]}`);
        fooled += success[i]!;
        // Robust points return the highest-loss point: the closed-form minimiser.
        if (!success[i]) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-3, `example ${i}: margin ${got[i]} != closed form ${want[i]}`);
      }
      assert.ok(fooled > 0 && fooled < labels.length, `fixture should mix robust and non-robust points, fooled ${fooled}`);
      tf.dispose([xAdv, logits]);
    });
    tf.dispose([x, y, z0]);
    lin.dispose();
  });
}

test('apgd-t on a 4-class linear model finds exactly the points that can be fooled (closed form)', async () => {
  const C = 4;
  const lin = linearModel(randomMatrix(13, C, D, 0.6), [0, 0.1, -0.1, 0.05]);
  const { data, x } = uniformInputs(9, 32, SHAPE, 0.3, 0.7);
  const z0 = lin.model(x);
  const labels = Array.from(await tf.argMax(z0, 1).data());
  const y = tf.tensor1d(labels, 'int32');
  const eps = 0.04;
  // x can be fooled iff for some k ≠ y: min_δ (z_y − z_k)(x + δ) = m_k − eps·‖w_y − w_k‖₁ < 0.
  const foolable = worstMargins(lin.W, lin.b, data, labels, eps, 'linf').map((m) => m < 0);
  const nFoolable = foolable.filter(Boolean).length;
  assert.ok(nFoolable > 0 && nFoolable < labels.length, `fixture should mix robust and non-robust points (${nFoolable})`);
  await noLeak(async () => {
    const res = await apgdT(lin.model, x, y, { eps, norm: 'linf', steps: 20, restarts: 1, seed: 3 });
    assert.deepEqual(
      Array.from(res.success, (s) => s === 1),
      foolable,
    );
    const check = await accuracy(lin.model, res.xAdv, y);
    assert.ok(Math.abs(check - (1 - nFoolable / labels.length)) < 1e-9, 'success flags disagree with a re-evaluation');
    res.xAdv.dispose();
  });
  tf.dispose([x, y, z0]);
  lin.dispose();
});

test('apgd-ce, apgd-dlr and apgd-t stay inside the eps-ball and [0, 1]; seeds are deterministic; no leaks', async () => {
  const C = 5;
  const lin = linearModel(randomMatrix(14, C, 8 * 8 * 3, 0.3), [0, 0.1, -0.1, 0.2, 0]);
  const { x: raw } = uniformInputs(10, 8, [8, 8, 3], -0.2, 1.2);
  const x = raw.clipByValue(0, 1) as tf.Tensor4D;
  const xData = (await x.data()) as Float32Array;
  const y = tf.tensor1d([0, 1, 2, 3, 4, 0, 1, 2], 'int32');
  for (const norm of ['linf', 'l2'] as const) {
    const eps = norm === 'linf' ? 8 / 255 : 0.5;
    const opts = { eps, norm, steps: 12, restarts: 2, seed: 4 };
    for (const [name, run] of [
      ['apgd-ce', () => apgdCe(lin.model, x, y, opts)],
      ['apgd-dlr', () => apgd(lin.model, x, y, { ...opts, loss: 'dlr' })],
      ['apgd-t', () => apgdT(lin.model, x, y, { ...opts, nTargetClasses: 3 })],
    ] as const) {
      await noLeak(async () => {
        const a = await run();
        const b = await run();
        const adv = (await a.xAdv.data()) as Float32Array;
        const s = perturbationStats(xData, adv, 8, norm);
        assert.ok(adv.every(Number.isFinite), `${name} ${norm}: non-finite values`);
        assert.ok(s.maxPert <= eps + 1e-6, `${name} ${norm}: perturbation ${s.maxPert} > ${eps}`);
        assert.ok(s.min >= 0 && s.max <= 1, `${name} ${norm}: range ${s.min}..${s.max}`);
        assert.deepEqual(adv, await b.xAdv.data(), `${name} ${norm}: same seed, different result`);
        assert.deepEqual(a.success, b.success);
        tf.dispose([a.xAdv, b.xAdv]);
      });
    }
  }
  await assert.rejects(apgdCe(lin.model, x, y, { eps: 0.1, norm: 'linf', steps: 0, restarts: 1, seed: 0 }), InputError);
  await assert.rejects(apgdT(lin.model, x, y, { eps: 0.1, norm: 'linf', steps: 5, restarts: 1, seed: 0, nTargetClasses: 0 }), InputError);
  const lin3 = linearModel(randomMatrix(1, 3, 8 * 8 * 3, 0.3), [0, 0, 0]);
  await assert.rejects(
    apgdT(lin3.model, x, tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), { eps: 0.1, norm: 'linf', steps: 5, restarts: 1, seed: 0 }),
    /at least 4 classes/,
  );
  lin3.dispose();
  tf.dispose([raw, x, y]);
  lin.dispose();
});

test('apgd on a trained model: APGD-CE at least as strong as PGD with the same steps; already-wrong points stay wrong', heavy, async () => {
  const task = trainedTask({ seed: 1 });
  const { model, x, y } = task;
  const n = y.shape[0];
  const robust = (s: Uint8Array): number => 1 - s.reduce((a, v) => a + v, 0) / n;
  const eps = 0.08;
  await noLeak(async () => {
    for (const steps of [5, 10]) {
      const p = await pgd(model, x, y, { eps, norm: 'linf', steps, stepSize: eps / 4, restarts: 1, seed: 5 });
      const a = await apgdCe(model, x, y, { eps, norm: 'linf', steps, restarts: 1, seed: 5 });
      const clean = await accuracy(model, x, y);
      assert.ok(robust(a.success) <= robust(p.success), `${steps} steps: APGD-CE ${robust(a.success)} weaker than PGD ${robust(p.success)}`);
      assert.ok(robust(a.success) < clean, `${steps} steps: APGD-CE did not lower accuracy (${clean})`);
      assert.ok(Math.abs((await accuracy(model, a.xAdv, y)) - robust(a.success)) < 1e-9, 'success flags disagree with a re-evaluation');
      tf.dispose([p.xAdv, a.xAdv]);
    }
    // Points misclassified at x count as successes and are returned unchanged.
    const flipped = tf.tidy(() => tf.sub(task.numClasses - 1, y).toInt() as tf.Tensor1D);
    const wrong = await apgdCe(model, x, flipped, { eps, norm: 'linf', steps: 3, restarts: 1, seed: 5 });
    const z = tf.tidy(() => tf.argMax(model(x), 1));
    const pred = await z.data();
    const fl = await flipped.data();
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(wrong.xAdv, x)), [1, 2, 3]));
    const d = await diff.data();
    for (let i = 0; i < n; i++) {
      if (pred[i] !== fl[i]) {
        assert.equal(wrong.success[i], 1);
        assert.equal(d[i], 0, `example ${i}: already misclassified, should be left at x`);
      }
    }
    tf.dispose([flipped, wrong.xAdv, z, diff]);
  });
  task.dispose();
});

test('apgd halves the step size: it converges onto a loss peak inside the ball that a fixed step of 2·eps oscillates around', async () => {
  // Per example b a 1-pixel input and logits [0, −k(x − c_b)²]: CE to label 0 is maximal exactly at x = c_b,
  // which lies strictly inside the ball. Sign steps of a fixed size keep jumping over c_b; only halving converges.
  const B = 6;
  const eps = 0.1;
  const x0 = [0.3, 0.4, 0.5, 0.6, 0.7, 0.45];
  const offsets = [0.037, -0.061, 0.012, -0.083, 0.0, 0.071];
  const c = tf.tensor1d(x0.map((v, i) => v + offsets[i]!));
  const model = (x: tf.Tensor4D): tf.Tensor2D =>
    tf.tidy(() => {
      const bump = tf.mul(-50, tf.square(tf.sub(x.reshape([-1]), c)));
      return tf.stack([tf.zerosLike(bump), bump], 1) as tf.Tensor2D;
    });
  const x = tf.tensor4d(x0, [B, 1, 1, 1]);
  const y = tf.zeros([B], 'int32') as tf.Tensor1D;
  await noLeak(async () => {
    const res = await apgdCe(model, x, y, { eps, norm: 'linf', steps: 100, restarts: 1, seed: 6 });
    const got = await res.xAdv.data();
    for (let i = 0; i < B; i++) {
      assert.equal(res.success[i], 0);
      assert.ok(Math.abs(got[i]! - (x0[i]! + offsets[i]!)) < 2e-3, `example ${i}: ended at ${got[i]}, peak at ${x0[i]! + offsets[i]!}`);
    }
    res.xAdv.dispose();
    // Control: PGD with the same initial step (2·eps) and no halving stays far from some peak.
    const p = await pgd(model, x, y, { eps, norm: 'linf', steps: 100, stepSize: 2 * eps, restarts: 1, seed: 6, start: 'none' });
    const pg = await p.xAdv.data();
    const worst = Math.max(...x0.map((v, i) => Math.abs(pg[i]! - (v + offsets[i]!))));
    assert.ok(worst > 0.02, `control: fixed-step PGD also converged (${worst}), the test would prove nothing`);
    p.xAdv.dispose();
  });
  tf.dispose([c, x, y]);
});

/**
 * Plain-JS APGD (L-inf, one example, float64) on the bump model below, written from the algorithm's description:
 * a second formulation to replay the tensor implementation's momentum, projections, per-example step sizes,
 * both checkpoint conditions and restarts from the best point.
 */
function apgdReference(x: number[], start: number[], c: number[], k: number, eps: number, steps: number, rho: number): { xBest: number[]; lossBest: number } {
  const loss = (v: number[]): number => Math.log1p(Math.exp(-k * v.reduce((a, vj, j) => a + (vj - c[j]!) ** 2, 0)));
  // d loss / d v_j = −2k·σ(−k s)·(v_j − c_j): only its sign matters for L-inf steps.
  const gradSign = (v: number[]): number[] => v.map((vj, j) => -Math.sign(vj - c[j]!));
  const proj = (v: number[]): number[] => v.map((vj, j) => Math.min(1, Math.max(0, Math.min(x[j]! + eps, Math.max(x[j]! - eps, vj)))));
  const checkpoints = new Set(apgdCheckpoints(steps));
  let xAdv = proj(start);
  let xPrev = xAdv;
  let g = gradSign(xAdv);
  let xBest = xAdv;
  let gBest = g;
  let lossBest = loss(xAdv);
  // The released code compares the first step with a zero row of its loss table, and treats the start as if
  // the step size had just been halved (reduced_last_check = ones).
  let lossPrev = 0;
  let step = 2 * eps;
  let increases = 0;
  let lossBestLastCheck = lossBest;
  let reducedLastCheck = true;
  let lastCheck = 0;
  for (let i = 0; i < steps; i++) {
    const a = i === 0 ? 1 : 0.75;
    const z = proj(xAdv.map((v, j) => v + step * g[j]!));
    const xNew = proj(xAdv.map((v, j) => v + a * (z[j]! - v) + (1 - a) * (v - xPrev[j]!)));
    xPrev = xAdv;
    xAdv = xNew;
    g = gradSign(xNew);
    const l = loss(xNew);
    if (l > lossBest) [xBest, gBest, lossBest] = [xNew, g, l];
    if (l > lossPrev) increases++;
    lossPrev = l;
    if (checkpoints.has(i + 1)) {
      const interval = i + 1 - lastCheck;
      lastCheck = i + 1;
      const reduce: boolean = increases <= interval * rho || (!reducedLastCheck && lossBestLastCheck >= lossBest);
      reducedLastCheck = reduce;
      lossBestLastCheck = lossBest;
      if (reduce) [step, xAdv, g] = [step / 2, xBest, gBest];
      increases = 0;
    }
  }
  return { xBest, lossBest };
}

test('apgdRun replays a plain-JS APGD (momentum, both checkpoint conditions, restarts from the best point)', async () => {
  const k = 20;
  const eps = 0.1;
  const x = [
    [0.5, 0.5],
    [0.3, 0.6],
    [0.7, 0.4],
    [0.45, 0.55],
  ];
  const c = [
    [0.537, 0.441],
    [0.262, 0.683],
    [0.75, 0.4],
    [0.449, 0.6],
  ];
  const start = [
    [0.41, 0.59],
    [0.35, 0.52],
    [0.79, 0.31],
    [0.5, 0.5],
  ];
  const flat = (m: number[][]): number[] => m.flat();
  const xt = tf.tensor4d(flat(x), [4, 1, 1, 2]);
  const x0 = tf.tensor4d(flat(start), [4, 1, 1, 2]);
  const ct = tf.tensor2d(flat(c), [4, 2]);
  const model = (v: tf.Tensor4D): tf.Tensor2D =>
    tf.tidy(() => {
      const bump = tf.mul(-k, tf.sum(tf.square(tf.sub(v.reshape([-1, 2]), ct)), 1));
      return tf.stack([tf.zerosLike(bump), bump], 1) as tf.Tensor2D;
    });
  const y = tf.zeros([4], 'int32') as tf.Tensor1D;
  for (const steps of [10, 40]) {
    await noLeak(async () => {
      const run = apgdRun(model, xt, y, (z) => crossEntropy(z, y, { reduction: 'none' }) as tf.Tensor1D, { eps, norm: 'linf', steps, seed: 0, x0 });
      const got = await run.xAdv.data();
      const gotLoss = await run.lossBest.data();
      for (let i = 0; i < 4; i++) {
        const ref = apgdReference(x[i]!, start[i]!, c[i]!, k, eps, steps, 0.75);
        for (let j = 0; j < 2; j++) {
          assert.ok(
            Math.abs(got[i * 2 + j]! - ref.xBest[j]!) < 1e-5,
            `steps ${steps}, example ${i}, pixel ${j}: ${got[i * 2 + j]} vs reference ${ref.xBest[j]}`,
          );
        }
        assert.ok(Math.abs(gotLoss[i]! - ref.lossBest) < 1e-5, `steps ${steps}, example ${i}: loss ${gotLoss[i]} vs ${ref.lossBest}`);
      }
      tf.dispose([run.xAdv, run.fooled, run.lossBest]);
    });
  }
  tf.dispose([xt, x0, ct, y]);
});
