/**
 * The L1 threat model replayed against fra31/auto-attack itself (scripts/fixtures/reference_replay.py, key `l1` of
 * attacks.json, on the same tiny tanh MLP as test/reference/attacks.test.ts): the L1 projection, APGD-CE and
 * APGD-T with use_largereps (three phases at 3·eps, 2·eps, eps, the sparse step, its step-size and sparsity
 * schedule), FAB-T's L1 iterates, and Square-L1 on the same uniform numbers. Each test prints the largest
 * difference it saw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { apgdL1Schedule, largeRepsSchedule } from '../../src/attacks/apgd.js';
import { fabT } from '../../src/attacks/fab.js';
import { l1Projection } from '../../src/attacks/project.js';
import { square } from '../../src/attacks/square.js';
import { L1_RELATIVE_TOLERANCE } from '../../src/attacks/validity.js';
import { crossEntropy, dlrTargetedLoss } from '../../src/losses/index.js';
import { SeededRng } from '../../src/rng.js';
import type { ModelFn } from '../../src/attacks/types.js';

interface L1Fixture {
  projection: { eps: number; delta: number[]; r: number[] };
  apgd: {
    eps: number;
    steps: number;
    target: number[];
    ce: ApgdL1Record;
    t: ApgdL1Record;
  };
  fab: { eps: number; steps: number; x1: number[][]; bestNorm: Array<Array<number | null>>; xAdv: number[] };
  square: {
    eps: number;
    seed: number;
    queries: number;
    uniformsUsed: number;
    start: number[];
    side: number[];
    proposedMargin: number[];
    marginMin: number[];
    accepted: string;
    window1Norm: Array<number | null>;
    nQueries: number;
  };
}
interface ApgdL1Record {
  x0: number[];
  phases: Array<[number, number]>;
  loss: number[][];
  stepSize: number[][];
  topk: number[][];
  lossBest: number[];
  fooled: number[];
  l1OfBest: number[];
}
interface Fixture {
  shape: [number, number, number];
  weights: { w1: number[]; b1: number[]; w2: number[]; b2: number[] };
  x: number[];
  y: number[];
  l1: L1Fixture;
}

const fx = JSON.parse(readFileSync(new URL('../../../test/fixtures/reference/attacks.json', import.meta.url), 'utf8')) as Fixture;
const l1 = fx.l1;
const [H, W, C] = fx.shape;
const D = H * W * C;
const n = fx.y.length;
const hidden = fx.weights.b1.length;
const classes = fx.weights.b2.length;

function mlp(): { model: ModelFn; dispose: () => void } {
  const w1 = tf.tensor2d(fx.weights.w1, [D, hidden]);
  const b1 = tf.tensor1d(fx.weights.b1);
  const w2 = tf.tensor2d(fx.weights.w2, [hidden, classes]);
  const b2 = tf.tensor1d(fx.weights.b2);
  const model: ModelFn = (x) => tf.tidy(() => tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x.reshape([x.shape[0], D]), w1), b1)), w2), b2) as tf.Tensor2D);
  return { model, dispose: () => tf.dispose([w1, b1, w2, b2]) };
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>): { err: number; at: number } {
  assert.equal(a.length, b.length);
  let err = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!));
    if (!(e <= err)) [err, at] = [e, i];
  }
  return { err, at };
}

test('L1 projection equals the reference on moves inside, across the box and beyond the ball', async () => {
  await noLeak(() => {
    const x = tf.tensor4d(fx.x, [n, H, W, C]);
    const delta = tf.tensor4d(l1.projection.delta, [n, H, W, C]);
    const r = l1Projection(x, delta, l1.projection.eps);
    const got = r.dataSync().slice();
    const moved = tf.tidy(() => tf.add(tf.add(x, delta), r));
    const stats = tf.tidy(() => tf.concat([tf.sum(tf.abs(tf.sub(moved, x).reshape([n, D])), 1), tf.stack([tf.min(moved), tf.max(moved)])]));
    const all = stats.dataSync().slice();
    const norms = all.slice(0, n);
    const range = [all[n]!, all[n + 1]!];
    tf.dispose([x, delta, r, moved, stats]);
    const e = worst(got, l1.projection.r);
    console.log(
      `L1 projection: largest difference ${e.err.toExponential(2)}; ‖δ + r‖₁ = ${Array.from(norms, (v) => v.toFixed(4)).join(', ')} (eps ${l1.projection.eps})`,
    );
    assert.ok(e.err < 1e-5, `projection differs by ${e.err} at ${e.at}`);
    // Independent of the reference: inside the ball (float32 sums) and the box.
    for (const v of norms) assert.ok(v <= l1.projection.eps * (1 + L1_RELATIVE_TOLERANCE), `‖δ + r‖₁ = ${v}`);
    assert.ok(range[0]! >= 0 && range[1]! <= 1, `range ${range.join(', ')}`);
  });
});

test('largeReps splits the budget as the reference: 30, 30, 40 steps at 3·eps, 2·eps, eps', () => {
  const phases = largeRepsSchedule(l1.apgd.eps, l1.apgd.steps);
  assert.deepEqual(
    phases.map((p) => [p.eps, p.steps]),
    l1.apgd.ce.phases,
  );
  assert.deepEqual(
    largeRepsSchedule(12, 10).map((p) => p.steps),
    [3, 3, 4],
  );
});

for (const kind of ['ce', 't'] as const) {
  test(`APGD-${kind === 'ce' ? 'CE' : 'T'} L1 with largeReps replays the reference: loss, step size and sparsity at every iteration of the 3 phases`, async () => {
    const { model, dispose } = mlp();
    const rec = l1.apgd[kind];
    try {
      await noLeak(() => {
        const x = tf.tensor4d(fx.x, [n, H, W, C]);
        const x0 = tf.tensor4d(rec.x0, [n, H, W, C]);
        const y = tf.tensor1d(fx.y, 'int32');
        const target = tf.tensor1d(l1.apgd.target, 'int32');
        const lossFn = (z: tf.Tensor2D): tf.Tensor1D =>
          (kind === 'ce' ? crossEntropy(z, y, { reduction: 'none' }) : dlrTargetedLoss(z, y, target, { reduction: 'none' })) as tf.Tensor1D;
        const loss: Float32Array[] = [];
        const step: Float32Array[] = [];
        const run = apgdL1Schedule(model, x, y, lossFn, {
          eps: l1.apgd.eps,
          steps: l1.apgd.steps,
          seed: 0,
          x0,
          onIteration: (it) => {
            assert.equal(it.i, loss.length, 'iterations count on across phases');
            loss.push(it.loss);
            step.push(it.stepSize);
          },
        });
        const lossBest = run.lossBest.dataSync().slice();
        const fooled = Array.from(run.fooled.dataSync(), Number);
        const pertT = tf.tidy(() => tf.sum(tf.abs(tf.sub(run.xAdv, x).reshape([n, D])), 1));
        const pert = pertT.dataSync().slice();
        tf.dispose([x, x0, y, target, run.xAdv, run.fooled, run.lossBest, pertT]);

        assert.equal(loss.length, l1.apgd.steps);
        // Step sizes are eps_phase·{1, 1/1.5, 1/1.5², …} clamped: equal means the same resets at the same checks.
        let stepDiffs = 0;
        for (let i = 0; i < l1.apgd.steps; i++) {
          for (let b = 0; b < n; b++) if (Math.abs(step[i]![b]! / rec.stepSize[i]![b]! - 1) > 1e-6) stepDiffs++;
        }
        const lossErr = worst(
          loss.flatMap((r) => Array.from(r)),
          rec.loss.flat(),
        );
        const bestErr = worst(lossBest, rec.lossBest);
        const resets = rec.stepSize.filter((r, i) => i > 0 && r.some((v, b) => v > rec.stepSize[i - 1]![b]!)).length;
        console.log(
          `APGD-${kind} L1: ${resets} iterations with a step-size reset, ${stepDiffs} step sizes differ; largest difference: loss ${lossErr.err.toExponential(2)}, best loss ${bestErr.err.toExponential(2)}; ` +
            `fooled ${fooled.join('')} (reference ${rec.fooled.join('')}); ‖δ‖₁ ${Array.from(pert, (v) => v.toFixed(5)).join(', ')}`,
        );
        assert.ok(resets >= 3, 'the fixture should exercise the sparsity resets');
        assert.equal(stepDiffs, 0, 'step sizes differ');
        assert.ok(lossErr.err < 1e-3, `loss differs by ${lossErr.err} at ${lossErr.at}`);
        assert.ok(bestErr.err < 1e-3, `best loss differs by ${bestErr.err}`);
        assert.deepEqual(fooled, rec.fooled, 'points fooled at eps (the last phase)');
        for (const v of pert) assert.ok(v <= l1.apgd.eps * (1 + L1_RELATIVE_TOLERANCE), `‖δ‖₁ ${v} > eps`);
      });
    } finally {
      dispose();
    }
  });
}

test('FAB-T L1 replays the reference: iterates and best L1 norms after every step', async () => {
  const { model, dispose } = mlp();
  try {
    await noLeak(async () => {
      const x = tf.tensor4d(fx.x, [n, H, W, C]);
      const y = tf.tensor1d(fx.y, 'int32');
      const iterates: Float32Array[] = [];
      const norms: Float64Array[] = [];
      const res = await fabT(model, x, y, {
        eps: l1.fab.eps,
        norm: 'l1',
        steps: l1.fab.steps,
        restarts: 1,
        nTargetClasses: 1,
        seed: 0,
        onIteration: (it) => {
          iterates.push(Float32Array.from(it.x1));
          norms.push(Float64Array.from(it.bestNorm));
        },
      });
      const xAdv = res.xAdv.dataSync().slice();
      tf.dispose([x, y, res.xAdv]);
      let xWorst = 0;
      let nWorst = 0;
      for (let k = 0; k < l1.fab.steps; k++) {
        const e = worst(iterates[k]!, l1.fab.x1[k]!);
        xWorst = Math.max(xWorst, e.err);
        assert.ok(e.err < 1e-4, `step ${k + 1}: iterate differs by ${e.err} at ${e.at}`);
        l1.fab.bestNorm[k]!.forEach((ref, b) => {
          const got = norms[k]![b]!;
          if (ref === null) assert.equal(got, Infinity, `step ${k + 1}, point ${b}: found an adversarial the reference did not`);
          else {
            nWorst = Math.max(nWorst, Math.abs(got - ref) / Math.max(1, ref));
            assert.ok(Math.abs(got - ref) / Math.max(1, ref) < 1e-4, `step ${k + 1}, point ${b}: best norm ${got} vs ${ref}`);
          }
        });
      }
      const advErr = worst(xAdv, l1.fab.xAdv);
      console.log(
        `FAB-T L1: largest difference: iterate ${xWorst.toExponential(2)}, best norm ${nWorst.toExponential(2)}, output ${advErr.err.toExponential(2)}`,
      );
      assert.ok(advErr.err < 1e-4, `output differs by ${advErr.err}`);
    });
  } finally {
    dispose();
  }
});

test('Square L1 replays the reference on the same uniform numbers: start, side, margin and acceptance', async () => {
  const { model, dispose } = mlp();
  const rec = l1.square;
  try {
    await noLeak(async () => {
      const rng = new SeededRng(rec.seed);
      let used = 0;
      const quantise = (u: number): number => (Math.floor(u * 2 ** 20) + 0.5) / 2 ** 20;
      const random = { next: () => (used++, quantise(rng.next())) };
      const x = tf.tensor4d(fx.x.slice(0, D), [1, H, W, C]);
      const y = tf.tensor1d(fx.y.slice(0, 1), 'int32');
      const sides: number[] = [];
      const margins: number[] = [];
      const accepted: number[] = [];
      let start: Float32Array | null = null;
      const res = await square(model, x, y, {
        eps: rec.eps,
        norm: 'l1',
        steps: rec.queries,
        seed: rec.seed,
        random,
        onIteration: (it) => {
          // Before the first proposal is accepted, xBest is still the start.
          if (it.it === 0) start = Float32Array.from(it.accepted[0] ? [] : it.xBest);
          sides.push(it.side);
          margins.push(it.margin[0]!);
          accepted.push(it.accepted[0]!);
        },
      });
      tf.dispose([x, y, res.xAdv]);
      assert.equal(sides.length, rec.queries, 'proposals');
      assert.equal(res.queries[0], rec.nQueries, 'model evaluations (start + proposals)');
      assert.equal(used, rec.uniformsUsed, 'uniform numbers consumed');
      assert.deepEqual(sides, rec.side, 'window side per iteration');
      if (start && (start as Float32Array).length === D) {
        const e = worst(start, rec.start);
        assert.ok(e.err < 1e-5, `start differs by ${e.err} at ${e.at}`);
      }
      // As for L2, the runs can only be compared step by step until float32 noise decides something: a first
      // window nearly empty but not exactly (its direction is the reference's rounding noise), or a proposal whose
      // margin ties the best so far to 1e-5 (the same point again: accepted or not by rounding).
      const refAccepted = Array.from(rec.accepted, Number);
      const noisy = (i: number) =>
        (rec.window1Norm[i] !== null && rec.window1Norm[i]! > 0 && rec.window1Norm[i]! < 1e-4) ||
        (i > 0 && Math.abs(rec.proposedMargin[i]! - rec.marginMin[i - 1]!) < 1e-5);
      let exactUpTo = Array.from({ length: rec.queries }, (_, i) => i).findIndex(noisy);
      if (exactUpTo < 0) exactUpTo = rec.queries;
      assert.ok(exactUpTo >= 50, `only ${exactUpTo} comparable iterations`);
      const diffs = accepted.slice(0, exactUpTo).filter((a, i) => a !== refAccepted[i]).length;
      const mErr = worst(margins.slice(0, exactUpTo), rec.proposedMargin.slice(0, exactUpTo));
      // Past that point, only near-ties may disagree.
      const hard = accepted.filter((a, i) => a !== refAccepted[i] && !noisy(i)).length;
      console.log(
        `Square L1: ${refAccepted.slice(0, exactUpTo).reduce((a, v) => a + v, 0)} accepted proposals in ${exactUpTo} iterations compared, ` +
          `${diffs} disagreements; largest margin difference ${mErr.err.toExponential(2)}; ${hard} disagreements outside near-ties over all ${rec.queries}`,
      );
      assert.equal(diffs, 0, 'accepted proposals differ');
      assert.ok(mErr.err < 1e-4, `proposal margin differs by ${mErr.err} at iteration ${mErr.at}`);
      assert.ok(hard <= rec.queries / 100, `${hard} acceptances differ outside near-ties`);
      assert.equal(res.success[0], 0, 'not fooled (eps chosen so), as the reference');
    });
  } finally {
    dispose();
  }
});
