import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak, rng } from '../helpers.js';
import { fabT } from '../../src/attacks/fab.js';
import { normOf, projectOntoHyperplaneBox } from '../../src/attacks/fab-projection.js';
import { InputError } from '../../src/errors.js';
import { boundaryLinearFixture, perExampleDistances, smallConvNet } from './fixtures.js';
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
      { eps: 0.1, norm: 'l1', seed: 0 },
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
