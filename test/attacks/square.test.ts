import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak, rng } from '../helpers.js';
import { square, squareP, squareSide } from '../../src/attacks/square.js';
import { centreSurround, l2ProposalDelta, nestedRectangles, squareSideL2 } from '../../src/attacks/square-l2.js';
import { SeededRng } from '../../src/rng.js';
import { InputError } from '../../src/errors.js';
import { boundaryLinearFixture, perExampleDistances, smallConvNet } from './fixtures.js';

const SHAPE = [8, 8, 3] as const;
const D = SHAPE[0] * SHAPE[1] * SHAPE[2];

const linearFixture = (n: number, seed: number) => boundaryLinearFixture(n, seed, SHAPE);

test('square schedule: fixed paper iterations by default (AutoAttack), rescaled to the budget only on request', () => {
  // Reference schedule: p_init up to it 10, /2 to 50, /4 to 200, /8 to 500, /16 to 1000, /32 to 2000, /64 to 4000,
  // /128 to 6000, /256 to 8000, /512 after; AutoAttack (resc_schedule=False) uses it whatever the budget.
  const expected: Array<[number, number]> = [
    [0, 1],
    [10, 1],
    [11, 2],
    [50, 2],
    [51, 4],
    [200, 4],
    [201, 8],
    [500, 8],
    [501, 16],
    [1000, 16],
    [1001, 32],
    [2001, 64],
    [4001, 128],
    [4999, 128],
    [6001, 256],
    [8000, 256],
    [8001, 512],
    [9999, 512],
  ];
  for (const [it, div] of expected) {
    assert.equal(squareP(it, 10000, 0.8), 0.8 / div, `it ${it}`);
    assert.equal(squareP(it, 5000, 0.8), 0.8 / div, `it ${it}: the budget must not change the default schedule`);
  }
  // rescale: iteration k of 1,000 steps behaves like iteration ⌊10k⌋ of the 10,000-step schedule.
  assert.equal(squareP(1, 1000, 0.8, true), 0.8);
  assert.equal(squareP(2, 1000, 0.8, true), 0.4);
  assert.equal(squareP(801, 1000, 0.8, true), 0.8 / 512);
  assert.equal(squareP(2001, 5000, 0.8, true), 0.8 / 128);
  // Side of the square: √(p·h·w) rounded (halves to even, as Python's round), clamped to [1, side].
  assert.equal(squareSide(0.8, 32, 32), 29);
  assert.equal(squareSide(0.8 / 512, 32, 32), 1);
  assert.equal(squareSide(0.8, 8, 8), 7);
  assert.equal(squareSide(1, 8, 8), 8);
  assert.equal(squareSide(6.25 / 16, 4, 4), 2, 'round(2.5) is 2 in the reference');
  assert.equal(squareSide(12.25 / 16, 4, 4), 4, 'round(3.5) is 4');
});

test('square makes `steps` proposals after the start (AutoAttack: 5,000), with the fixed schedule', async () => {
  const f = linearFixture(2, 9);
  try {
    await noLeak(async () => {
      const tiny = Math.min(...f.closedForm.linf) / 10;
      const sides: number[] = [];
      const res = await square(f.model, f.x, f.y, { eps: tiny, norm: 'linf', steps: 60, seed: 1, onIteration: (it) => sides.push(it.side) });
      res.xAdv.dispose();
      assert.deepEqual(Array.from(res.queries), [61, 61], 'start + 60 proposals per robust point');
      assert.equal(sides.length, 60);
      // 8×8 image: p 0.8 → side 7 up to iteration 10, 0.4 → 5 up to 50, 0.2 → 4 after; no rescaling to 60.
      assert.deepEqual([sides[0], sides[10], sides[11], sides[50], sides[51], sides[59]], [7, 7, 5, 5, 4, 4]);
    });
  } finally {
    f.dispose();
  }
});

test('square L2 proposal: each channel of the new window carries its own mass plus an equal share of the free budget', () => {
  // 4×4×2, delta only in channel 0, norm below eps. With s = 4 both windows are the whole image.
  const [H, W, C, s, eps] = [4, 4, 2, 4, 5];
  const delta = new Float64Array(H * W * C);
  for (let j = 0; j < H * W; j++) delta[j * C] = 0.1 * (j + 1);
  const mass0 = delta.reduce((a, v) => a + v * v, 0);
  assert.ok(mass0 < eps * eps, 'the fixture needs free budget');
  // vh, vw, vh2, vw2 (all 0 since H − s = 0), transposition, one sign per channel.
  const draws = [0.3, 0.3, 0.3, 0.3, 0.2, 0.7, 0.7];
  let k = 0;
  l2ProposalDelta(delta, eps, H, W, C, s, { next: () => draws[k++]! });
  assert.equal(k, draws.length, 'numbers drawn');
  const channelMass = (c: number) => Array.from({ length: H * W }, (_, j) => delta[j * C + c]! ** 2).reduce((a, v) => a + v, 0);
  const free = (eps * eps - mass0) / C;
  assert.ok(Math.abs(channelMass(0) - (free + mass0)) < 1e-9, `channel 0: ${channelMass(0)} vs ${free + mass0}`);
  // Channel 1 had no mass: it only gets its share of the free budget (the sum over channels would give it mass0 too).
  assert.ok(Math.abs(channelMass(1) - free) < 1e-9, `channel 1: ${channelMass(1)} vs ${free}`);
});

test('square fools a linear model with a generous eps and never below the minimal distance, both norms', async () => {
  const f = linearFixture(6, 1);
  try {
    for (const norm of ['linf', 'l2'] as const) {
      const exact = f.closedForm[norm];
      await noLeak(async () => {
        const generous = 3 * Math.max(...exact);
        // 1,000 queries: the fixed schedule reaches 2×2 (L-inf) windows after iteration 500; 300 were enough only
        // when the schedule was stretched to the budget.
        const res = await square(f.model, f.x, f.y, { eps: generous, norm, steps: 1000, seed: 1 });
        const d = perExampleDistances(res.xAdv, f.x, norm);
        const adv = res.xAdv.dataSync();
        res.xAdv.dispose();
        assert.deepEqual(Array.from(res.success), [1, 1, 1, 1, 1, 1], `${norm}: not every point fooled with eps = 3·max distance`);
        assert.ok(
          adv.every((v) => v >= 0 && v <= 1),
          `${norm}: outside [0, 1]`,
        );
        // Any adversarial point is at least the closed-form distance away; all are inside the eps-ball.
        d.forEach((di, i) => assert.ok(di >= exact[i]! * (1 - 1e-5) && di <= generous, `${norm}: example ${i}: ${di}`));
        // L2 proposals keep ‖δ‖₂ = eps (Alg. 3); these inputs are far from the box faces, so nothing is clipped.
        if (norm === 'l2') d.forEach((di) => assert.ok(Math.abs(di - generous) < 1e-5 * generous, `l2: ‖δ‖ = ${di} ≠ eps`));

        const tiny = Math.min(...exact) / 10;
        const none = await square(f.model, f.x, f.y, { eps: tiny, norm, steps: 100, seed: 1 });
        const dn = perExampleDistances(none.xAdv, f.x, norm);
        none.xAdv.dispose();
        assert.deepEqual(Array.from(none.success), [0, 0, 0, 0, 0, 0], `${norm}: fooled far below the minimal distance`);
        assert.deepEqual(dn, [0, 0, 0, 0, 0, 0], `${norm}: failed points must come back clean`);
        assert.deepEqual(Array.from(none.queries), [101, 101, 101, 101, 101, 101], `${norm}: robust points use the start and every proposal`);
      });
    }
  } finally {
    f.dispose();
  }
});

test('square is reproducible from the seed and depends on it, both norms', async () => {
  const f = linearFixture(4, 2);
  try {
    for (const norm of ['linf', 'l2'] as const)
      await noLeak(async () => {
        const eps = 1.5 * Math.max(...f.closedForm[norm]);
        const run = async (seed: number) => {
          const res = await square(f.model, f.x, f.y, { eps, norm, steps: 200, seed, restarts: 2 });
          const out = { adv: Array.from(res.xAdv.dataSync()), queries: Array.from(res.queries), success: Array.from(res.success) };
          res.xAdv.dispose();
          return out;
        };
        const a = await run(7);
        const b = await run(7);
        const c = await run(8);
        assert.deepEqual(a, b, `${norm}: same seed, different result`);
        assert.notDeepEqual(a.adv, c.adv, `${norm}: the seed has no effect`);
      });
  } finally {
    f.dispose();
  }
});

test('square query accounting: only points not yet fooled are queried, one batched forward per iteration', async () => {
  const f = linearFixture(8, 3);
  try {
    await noLeak(async () => {
      // Mislabel one point: it is misclassified from the start and must never be attacked.
      const labels = [...f.labels];
      labels[0] = 1 - labels[0]!;
      const y = tf.tensor1d(labels, 'int32');
      // eps between the smallest and largest distances: some points fall early, some late, some never.
      const sorted = [...f.closedForm.linf].sort((p, q) => p - q);
      const eps = 1.3 * sorted[4]!;
      const budget = 150;
      f.calls.length = 0;
      const res = await square(f.model, f.x, y, { eps, norm: 'linf', steps: budget, seed: 4 });
      res.xAdv.dispose();
      y.dispose();
      const q = Array.from(res.queries);
      assert.equal(q[0], 0, 'a point misclassified from the start was queried');
      // The start plus `budget` proposals for a point never fooled.
      const full = budget + 1;
      assert.ok(
        q.some((v) => v > 1 && v < full),
        `no point fooled mid-run: ${q}`,
      );
      assert.ok(
        q.some((v) => v === full),
        `every point fooled: ${q}`,
      );
      for (let i = 1; i < q.length; i++) {
        assert.ok(q[i]! >= 1 && q[i]! <= full);
        // A point that stopped before the budget stopped because it was fooled, and fooled points stop.
        if (q[i]! < full) assert.equal(res.success[i], 1, `example ${i} stopped early unfooled`);
        else assert.equal(res.success[i], 0, `example ${i} fooled only at the last query: unlikely, check the fixture`);
      }
      // calls = [clean forward, init, iterations..., final check]; evaluation k of the run holds exactly the
      // points whose query count exceeds k, i.e. a point fooled at evaluation k is never queried again.
      assert.equal(f.calls[0], 8);
      assert.equal(f.calls[f.calls.length - 1], 8);
      const during = f.calls.slice(1, -1);
      assert.equal(during.length, Math.max(...q), 'one forward per iteration');
      during.forEach((size, k) => assert.equal(size, q.filter((v) => v > k).length, `evaluation ${k}`));
    });
  } finally {
    f.dispose();
  }
});

test('square on a small net keeps the model state, stays in the ball near the box edges, and matches the model', async () => {
  const r = rng(5);
  const { net, model } = smallConvNet(SHAPE, 'relu');
  const n = 6;
  const xs = Float32Array.from({ length: n * D }, () => (r() < 0.3 ? Math.round(r()) : r()));
  const x = tf.tensor4d(xs, [n, ...SHAPE]);
  const y = tf.tidy(() => tf.argMax(model(x), 1).cast('int32') as tf.Tensor1D);
  const before = net.getWeights().map((t) => Array.from(t.dataSync()));
  try {
    for (const [norm, eps] of [
      ['linf', 0.1],
      ['l2', 1.5],
    ] as const)
      await noLeak(async () => {
        const res = await square(model, x, y, { eps, norm, steps: 100, seed: 3 });
        const adv = res.xAdv.dataSync();
        const pred = tf.tidy(() => tf.argMax(model(res.xAdv), 1).dataSync());
        const d = perExampleDistances(res.xAdv, x, norm);
        res.xAdv.dispose();
        const yv = y.dataSync();
        assert.ok(
          adv.every((v) => v >= 0 && v <= 1),
          `${norm}: outside [0, 1]`,
        );
        d.forEach((di, i) => assert.ok(di <= eps, `${norm}: example ${i}: ${di} > ${eps}`));
        for (let i = 0; i < n; i++) assert.equal(res.success[i], pred[i] !== yv[i] ? 1 : 0, `${norm}: success disagrees with the model`);
        // eps chosen so that several points are fooled: otherwise the ball check above would be vacuous.
        assert.ok(res.success.filter((v) => v === 1).length >= 2, `${norm}: too few successes to test anything`);
      });
    assert.deepEqual(
      net.getWeights().map((t) => Array.from(t.dataSync())),
      before,
      'model weights or BN statistics changed',
    );
  } finally {
    tf.dispose([x, y]);
    net.dispose();
  }
});

test('square rejects bad options with InputError', async () => {
  const f = linearFixture(2, 6);
  try {
    for (const opts of [
      { eps: 0.1, norm: 'l0', seed: 0 },
      { eps: -1, norm: 'linf', seed: 0 },
      { eps: 0.1, norm: 'linf', steps: 0, seed: 0 },
      { eps: 0.1, norm: 'linf', pInit: 2, seed: 0 },
      { eps: 0.1, norm: 'linf', seed: 1.5 },
    ]) {
      await assert.rejects(square(f.model, f.x, f.y, opts as never), InputError, JSON.stringify(opts));
    }
  } finally {
    f.dispose();
  }
});

test('square L2 window patterns: hand-computed nested rectangles, unit-norm centre-surround, odd sides', () => {
  // 1×3: the centre gets rings 0 and 1 (1 + 1/4), its neighbours ring 1 only (1/4); then unit norm.
  const m = nestedRectangles(1, 3);
  const z = Math.sqrt(0.25 ** 2 * 2 + 1.25 ** 2);
  assert.deepEqual(
    Array.from(m).map((v) => +v.toFixed(12)),
    [0.25 / z, 1.25 / z, 0.25 / z].map((v) => +v.toFixed(12)),
  );
  const r = new SeededRng(1);
  for (const side of [3, 4, 5]) {
    for (let k = 0; k < 4; k++) {
      const p = centreSurround(side, r);
      const norm = Math.sqrt(p.reduce((a, v) => a + v * v, 0));
      assert.ok(Math.abs(norm - 1) < 1e-12, `side ${side}: norm ${norm}`);
      // One half positive, the other negative: by rows (top/bottom) or, transposed, by columns (left/right).
      const half = Math.floor(side / 2);
      const byRows = Array.from(p).every((v, j) => (Math.floor(j / side) < half ? v > 0 : v < 0));
      const byCols = Array.from(p).every((v, j) => (j % side < half ? v > 0 : v < 0));
      assert.ok(byRows || byCols, `side ${side}: not a centre-surround pattern ${Array.from(p)}`);
    }
  }
  assert.equal(squareSideL2(0.8, 32, 32), 29);
  assert.equal(squareSideL2(0.1, 32, 32), 11);
  assert.equal(squareSideL2(0.001, 32, 32), 3);
  assert.equal(squareSideL2(0.8, 8, 8), 7);
});
