import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak, rng } from '../helpers.js';
import { fab, fabT, pullBack } from '../../src/attacks/fab.js';
import { normOf, projectionWorkspace, projectOntoHyperplaneBox } from '../../src/attacks/fab-projection.js';
import { attackStateFromJson, attackStateToJson, type AttackState } from '../../src/attacks/progress.js';
import { InputError } from '../../src/errors.js';
import { boundaryLinearFixture, perExampleDistances, smallConvNet, trainedTask } from './fixtures.js';
import type { Norm } from '../../src/attacks/types.js';

const SHAPE = [8, 8, 3] as const;
const D = SHAPE[0] * SHAPE[1] * SHAPE[2];

const linearFixture = (n: number, seed: number) => boundaryLinearFixture(n, seed, SHAPE);

test('projection: hand-computed cases with an active box face, both norms', () => {
  // p = (0.5, 0.8), w = (1, 3), target ⟨w, p + d⟩ = 2.9 + 0.9: coordinate 2 hits the face 1 after 0.2, so
  // L-inf: 0.6 + δ = 0.9 ⇒ δ = 0.3, d = (0.3, 0.2); L2 (KKT): λ + 3·0.2 = 0.9 ⇒ λ = 0.3, d = (0.3, 0.2).
  const out = new Float64Array(2);
  for (const norm of ['linf', 'l2'] as const) {
    const size = projectOntoHyperplaneBox([0.5, 0.8], [1, 3], 3.8, norm, out);
    assert.ok(Math.abs(out[0]! - 0.3) < 1e-12 && Math.abs(out[1]! - 0.2) < 1e-12, `${norm}: d = ${Array.from(out)}`);
    assert.ok(Math.abs(size - (norm === 'linf' ? 0.3 : Math.sqrt(0.13))) < 1e-12);
  }
  // Without the box constraint binding, L2 is the textbook r·w/‖w‖² and L-inf moves every coordinate by r/‖w‖₁.
  projectOntoHyperplaneBox([0.5, 0.5], [1, -2], 0.5 - 1 - 0.3, 'l2', out);
  assert.ok(Math.abs(out[0]! + 0.3 / 5) < 1e-12 && Math.abs(out[1]! - 0.6 / 5) < 1e-12, `l2 free: ${Array.from(out)}`);
  projectOntoHyperplaneBox([0.5, 0.5], [1, -2], 0.5 - 1 - 0.3, 'linf', out);
  assert.ok(Math.abs(out[0]! + 0.1) < 1e-12 && Math.abs(out[1]! - 0.1) < 1e-12, `linf free: ${Array.from(out)}`);
  // Unreachable hyperplane: the best corner of the box.
  projectOntoHyperplaneBox([0.5, 0.5], [1, 1], 5, 'linf', out);
  assert.deepEqual(Array.from(out), [0.5, 0.5]);
});

test('projection: feasible and no random feasible point is closer (both norms)', () => {
  const r = rng(7);
  const n = 12;
  const out = new Float64Array(n);
  for (let trial = 0; trial < 200; trial++) {
    const norm: Norm = trial % 2 === 0 ? 'linf' : 'l2';
    // Some coordinates on the box faces and some zero weights, to exercise the edge cases.
    const p = Array.from({ length: n }, () => (r() < 0.2 ? Math.round(r()) : r()));
    const w = Array.from({ length: n }, () => (r() < 0.15 ? 0 : 2 * r() - 1));
    const wp = w.reduce((a, wi, i) => a + wi * p[i]!, 0);
    const b = wp + (r() - 0.5) * 0.8;
    const size = projectOntoHyperplaneBox(p, w, b, norm, out);
    const z = p.map((pi, i) => pi + out[i]!);
    const reached = w.reduce((a, wi, i) => a + wi * z[i]!, 0);
    let capacity = 0;
    for (let i = 0; i < n; i++) capacity += Math.abs(w[i]!) * (Math.sign(w[i]! * (b - wp)) > 0 ? 1 - p[i]! : p[i]!);
    const feasible = capacity > Math.abs(b - wp);
    if (feasible) assert.ok(Math.abs(reached - b) < 1e-9, `trial ${trial}: ⟨w, p + d⟩ = ${reached}, expected ${b}`);
    assert.ok(
      z.every((v) => v >= -1e-12 && v <= 1 + 1e-12),
      `trial ${trial}: left the box`,
    );
    assert.ok(Math.abs(size - normOf(out, norm)) < 1e-12);
    if (!feasible) continue;
    // Independent check: points of the hyperplane reached along random directions, inside the box, are never closer.
    for (let k = 0; k < 300; k++) {
      const v = Array.from({ length: n }, () => 2 * r() - 1);
      const wv = w.reduce((a, wi, i) => a + wi * v[i]!, 0);
      const d = v.map((vi) => (vi * (b - wp)) / wv);
      if (!d.every((di, i) => p[i]! + di >= 0 && p[i]! + di <= 1)) continue;
      assert.ok(normOf(d, norm) >= size - 1e-9, `trial ${trial}: found a closer point ${normOf(d, norm)} < ${size}`);
    }
  }
});

test('fabT on a linear model approaches the closed-form minimal distance, both norms', async () => {
  const f = linearFixture(6, 1);
  try {
    for (const norm of ['linf', 'l2'] as const) {
      const exact = f.closedForm[norm];
      await noLeak(async () => {
        const res = await fabT(f.model, f.x, f.y, { eps: 10, norm, steps: 60, seed: 3 });
        const measured = perExampleDistances(res.xAdv, f.x, norm);
        res.xAdv.dispose();
        for (let i = 0; i < exact.length; i++) {
          assert.equal(res.success[i], 1, `${norm}: example ${i} not fooled`);
          assert.ok(Math.abs(measured[i]! - res.distance[i]!) < 1e-9, `${norm}: reported distance differs from xAdv's`);
          // Any adversarial point is at least the exact distance away; FAB should be within 3 % of it.
          assert.ok(measured[i]! >= exact[i]! * (1 - 1e-5), `${norm}: ${measured[i]} below the minimum ${exact[i]}`);
          assert.ok(measured[i]! <= exact[i]! * 1.03, `${norm}: example ${i}: ${measured[i]} vs closed form ${exact[i]}`);
        }
      });
    }
  } finally {
    f.dispose();
  }
});

test('fabT succeeds iff eps is above the closed-form L-inf distance; failures return x', async () => {
  const f = linearFixture(6, 2);
  try {
    const exact = f.closedForm.linf;
    await noLeak(async () => {
      for (const factor of [1.04, 0.97]) {
        // One eps per run: examples sorted so each run straddles nothing (all above or all below their distance).
        for (let i = 0; i < exact.length; i++) {
          const xi = tf.slice(f.x, [i, 0, 0, 0], [1, ...SHAPE]);
          const yi = tf.slice(f.y, [i], [1]);
          const res = await fabT(f.model, xi, yi, { eps: exact[i]! * factor, norm: 'linf', steps: 60, seed: 0 });
          const d = perExampleDistances(res.xAdv, xi, 'linf')[0]!;
          if (factor > 1) {
            assert.equal(res.success[0], 1, `eps = ${factor}·d*: example ${i} not fooled`);
            assert.ok(d <= exact[i]! * factor, `outside the eps-ball: ${d}`);
          } else {
            assert.equal(res.success[0], 0, `eps = ${factor}·d*: example ${i} fooled below the minimal distance`);
            assert.equal(d, 0, 'a failed point must come back clean');
          }
          tf.dispose([xi, yi, res.xAdv]);
        }
      }
    });
  } finally {
    f.dispose();
  }
});

test('fabT on a small non-linear net: inside the eps-ball and [0, 1], success matches the model, state untouched', async () => {
  const r = rng(11);
  const { net, model } = smallConvNet(SHAPE, 'tanh');
  const n = 6;
  // Pixels at 0 and 1 among the inputs exercise the box clipping.
  const xs = Float32Array.from({ length: n * D }, () => (r() < 0.2 ? Math.round(r()) : r()));
  const x = tf.tensor4d(xs, [n, ...SHAPE]);
  const y = tf.tidy(() => tf.argMax(model(x), 1).cast('int32') as tf.Tensor1D);
  const before = net.getWeights().map((t) => Array.from(t.dataSync()));
  try {
    for (const [norm, eps] of [
      ['linf', 0.05],
      ['l2', 0.5],
    ] as const) {
      await noLeak(async () => {
        const res = await fabT(model, x, y, { eps, norm, steps: 15, nTargetClasses: 3, restarts: 2, seed: 5 });
        const d = perExampleDistances(res.xAdv, x, norm);
        const adv = res.xAdv.dataSync();
        const pred = tf.tidy(() => tf.argMax(model(res.xAdv), 1).dataSync());
        const yv = y.dataSync();
        res.xAdv.dispose();
        // The eps were chosen so that most points are fooled: otherwise the ball check below would be vacuous.
        assert.ok(res.success.filter((v) => v === 1).length >= 3, `${norm}: too few successes to test anything`);
        assert.ok(
          adv.every((v) => v >= 0 && v <= 1),
          `${norm}: outside [0, 1]`,
        );
        for (let i = 0; i < n; i++) {
          assert.ok(d[i]! <= eps, `${norm}: example ${i} at ${d[i]} > eps ${eps}`);
          assert.equal(res.success[i], pred[i] !== yv[i] ? 1 : 0, `${norm}: success disagrees with the model`);
          if (res.success[i] === 0) assert.equal(d[i], 0, `${norm}: failed point not returned clean`);
        }
      });
    }
    const after = net.getWeights().map((t) => Array.from(t.dataSync()));
    assert.deepEqual(after, before, 'the attack changed model weights or BN statistics');
  } finally {
    tf.dispose([x, y]);
    net.dispose();
  }
});

test('fabT rejects bad options with InputError', async () => {
  const f = linearFixture(2, 3);
  try {
    const bad: Array<Record<string, unknown>> = [
      { eps: 0, norm: 'linf', seed: 0 },
      { eps: 0.1, norm: 'l0', seed: 0 },
      { eps: 0.1, norm: 'linf', steps: 0, seed: 0 },
      { eps: 0.1, norm: 'linf', beta: 1.5, seed: 0 },
      { eps: 0.1, norm: 'linf', alphaMax: -1, seed: 0 },
      { eps: 0.1, norm: 'linf', nTargetClasses: 0.5, seed: 0 },
    ];
    for (const opts of bad) {
      await assert.rejects(fabT(f.model, f.x, f.y, opts as never), InputError, JSON.stringify(opts));
    }
    const y3 = tf.tensor1d([0, 1, 0], 'int32');
    await assert.rejects(fabT(f.model, f.x, y3, { eps: 0.1, norm: 'linf', seed: 0 }), /fabT: y expected a label vector of length 2/);
    y3.dispose();
  } finally {
    f.dispose();
  }
});

/** The fields of a FAB result a batching change must leave identical, bit for bit. */
async function outcome(res: Awaited<ReturnType<typeof fabT>>): Promise<{ x: Float32Array; success: Uint8Array; distance: Float64Array }> {
  const x = (await res.xAdv.data()) as Float32Array;
  res.xAdv.dispose();
  return { x, success: res.success, distance: res.distance };
}

test('fabT and fab batched (one block of every unit) equal series (one unit, one point per run), both norms', async () => {
  const task = trainedTask({ seed: 6, test: 16 });
  try {
    for (const [norm, eps] of [
      ['linf', 0.1],
      ['l2', 0.6],
    ] as const) {
      for (const [name, attack] of [
        ['fabT', fabT],
        ['fab', fab],
      ] as const) {
        await noLeak(async () => {
          const opts = { eps, norm, steps: 6, restarts: 2, nTargetClasses: 3, seed: 9 };
          const batched = await outcome(await attack(task.model, task.x, task.y, { ...opts, maxRows: 100000 }));
          const series = await outcome(await attack(task.model, task.x, task.y, { ...opts, maxRows: 1 }));
          const fooled = batched.success.reduce((a, v) => a + v, 0);
          assert.ok(fooled > 0 && fooled < task.x.shape[0], `${name} ${norm}: ${fooled} fooled, so the comparison is not vacuous`);
          assert.deepEqual(batched.success, series.success, `${name} ${norm}: success`);
          assert.deepEqual(batched.distance, series.distance, `${name} ${norm}: distance`);
          assert.deepEqual(batched.x, series.x, `${name} ${norm}: xAdv`);
        });
      }
    }
  } finally {
    task.dispose();
  }
});

test("fabT: a point's result does not depend on the other points of the batch (random starts included)", async () => {
  const task = trainedTask({ seed: 6, test: 16 });
  const n = task.x.shape[0];
  // The same points at rows 0, 3, 6, ...; every other row replaced by another image (its reversed-row twin).
  const kept = Array.from({ length: n }, (_, i) => i % 3 === 0);
  const swap = Int32Array.from({ length: n }, (_, i) => (kept[i] ? i : n - 1 - i));
  const x2 = tf.gather(task.x, swap) as tf.Tensor4D;
  const y2 = tf.gather(task.y, swap) as tf.Tensor1D;
  try {
    await noLeak(async () => {
      const opts = { eps: 0.1, norm: 'linf' as const, steps: 6, restarts: 2, nTargetClasses: 3, seed: 2 };
      const a = await outcome(await fabT(task.model, task.x, task.y, opts));
      const b = await outcome(await fabT(task.model, x2, y2, opts));
      const D = a.x.length / n;
      let fooledKept = 0;
      for (let i = 0; i < n; i++) {
        if (!kept[i]) continue;
        fooledKept += a.success[i]!;
        assert.equal(b.success[i], a.success[i], `row ${i}: success`);
        assert.equal(b.distance[i], a.distance[i], `row ${i}: distance`);
        assert.deepEqual(b.x.subarray(i * D, (i + 1) * D), a.x.subarray(i * D, (i + 1) * D), `row ${i}: xAdv`);
      }
      assert.ok(fooledKept > 0, 'some kept point is fooled, so the comparison is not vacuous');
    });
  } finally {
    tf.dispose([x2, y2]);
    task.dispose();
  }
});

test('fabT resumed after a block of several units (through JSON) equals the uninterrupted call, no tensor leak', async () => {
  const task = trainedTask({ seed: 3, test: 24 });
  try {
    const opts = { eps: 0.1, norm: 'linf' as const, steps: 6, restarts: 2, nTargetClasses: 3, seed: 5 };
    // 24 points, 60 rows: blocks of 2 units at first, more once points are fooled.
    const maxRows = 60;
    const whole = await outcome(await fabT(task.model, task.x, task.y, { ...opts, maxRows }));
    const saved: AttackState[] = [];
    const recorded = await outcome(
      await fabT(task.model, task.x, task.y, {
        ...opts,
        maxRows,
        progress: { unitDone: async (_u, read) => void saved.push(attackStateFromJson(attackStateToJson(await read()))) },
      }),
    );
    assert.deepEqual(recorded.x, whole.x, 'recording changes nothing');
    const units = saved.map((s) => s.units);
    assert.equal(units.at(-1), 6, 'the last state counts all 6 units');
    assert.ok(units.length < 6 && units.every((u, i) => i === 0 || u > units[i - 1]!), `one state per block of units: ${units}`);
    for (const s of saved.slice(0, -1)) {
      const resumed = await noLeak(async () =>
        outcome(await fabT(task.model, task.x, task.y, { ...opts, maxRows, progress: { restored: s, unitDone: async () => undefined } })),
      );
      assert.deepEqual(resumed.x, whole.x, `resumed after unit ${s.units}: xAdv`);
      assert.deepEqual(resumed.distance, whole.distance, `resumed after unit ${s.units}: distance`);
      assert.deepEqual(resumed.success, whole.success, `resumed after unit ${s.units}: success`);
    }
  } finally {
    task.dispose();
  }
});

test('pullBack rounds like float32 tensor ops: x0 + (x1 − x0)·beta computed by tfjs', () => {
  const r = rng(4);
  const m = 5000;
  // Values spread over magnitudes (and some equal or at the box faces) to exercise the rounding.
  const pick = () => (r() < 0.1 ? Math.round(r()) : r() * 10 ** -Math.floor(r() * 6));
  const x0 = Float32Array.from({ length: m }, pick);
  const x1 = Float32Array.from({ length: m }, (_, i) => (r() < 0.05 ? x0[i]! : pick()));
  for (const beta of [0.9, 0.7, 1 / 3]) {
    const expected = tf.tidy(() => {
      const a = tf.tensor1d(x0);
      return tf.add(a, tf.mul(tf.sub(tf.tensor1d(x1), a), beta)).dataSync();
    });
    const got = Float32Array.from(x1);
    pullBack(got, x0, beta);
    assert.deepEqual(got, expected, `beta ${beta}`);
  }
});

test('projection: a workspace reused across calls (other lengths, zero weights) gives the fresh-workspace result', () => {
  const r = rng(12);
  const work = projectionWorkspace(40);
  for (let trial = 0; trial < 100; trial++) {
    const n = 5 + Math.floor(r() * 35);
    const norm: Norm = trial % 2 === 0 ? 'linf' : 'l2';
    const p = Array.from({ length: n }, () => (r() < 0.2 ? Math.round(r()) : r()));
    const w = Array.from({ length: n }, () => (r() < 0.3 ? 0 : 2 * r() - 1));
    const b = w.reduce((a, wi, i) => a + wi * p[i]!, 0) + (r() - 0.5) * 0.8;
    const fresh = new Float64Array(n);
    const reused = new Float64Array(n);
    const s1 = projectOntoHyperplaneBox(p, w, b, norm, fresh);
    const s2 = projectOntoHyperplaneBox(p, w, b, norm, reused, work);
    assert.equal(s2, s1, `trial ${trial}: norm`);
    assert.deepEqual(reused, fresh, `trial ${trial}: displacement`);
  }
});
