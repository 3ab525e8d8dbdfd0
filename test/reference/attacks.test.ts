/**
 * Replays fra31/auto-attack itself (fixtures written by scripts/fixtures/reference_replay.py from the reference
 * code, on a tiny tanh MLP whose weights are in the fixture) through our APGD-CE, APGD-T, FAB-T and Square:
 * same inputs, same starts, and for Square the same uniform numbers; per iteration the figures must agree.
 * Each test prints the largest difference it saw (the issue's closing note quotes them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { apgdRun } from '../../src/attacks/apgd.js';
import { fabT } from '../../src/attacks/fab.js';
import { square } from '../../src/attacks/square.js';
import { crossEntropy, dlrTargetedLoss } from '../../src/losses/index.js';
import { SeededRng } from '../../src/rng.js';
import type { ModelFn } from '../../src/attacks/types.js';

interface ApgdRecord {
  loss: number[][];
  stepSize: number[][];
  lossBest: number[];
  xBest: number[];
}
interface SquareRecord {
  eps: number;
  seed: number;
  queries: number;
  uniformsUsed: number;
  firstUniforms: number[];
  p: number[];
  side: number[];
  proposedMargin: number[];
  marginMin: number[];
  accepted: string;
  window1Norm?: Array<number | null>;
  nQueries: number;
  xBest: number[];
}
interface Fixture {
  shape: [number, number, number];
  weights: { w1: number[]; b1: number[]; w2: number[]; b2: number[] };
  x: number[];
  y: number[];
  apgd: { eps: number; steps: number; x0: number[]; target: number[]; ce: ApgdRecord; t: ApgdRecord };
  fab: { eps: number; steps: number; x1: number[][]; bestNorm: Array<Array<number | null>>; xAdv: number[] };
  square: { linf: SquareRecord; l2: SquareRecord };
}

const fx = JSON.parse(readFileSync(new URL('../../../test/fixtures/reference/attacks.json', import.meta.url), 'utf8')) as Fixture;
const [H, W, C] = fx.shape;
const D = H * W * C;
const n = fx.y.length;
const hidden = fx.weights.b1.length;
const classes = fx.weights.b2.length;

/** The fixture's MLP: NHWC flattened → tanh(x·W1 + b1)·W2 + b2 (the same weights the reference ran). */
function mlp(): { model: ModelFn; dispose: () => void } {
  const w1 = tf.tensor2d(fx.weights.w1, [D, hidden]);
  const b1 = tf.tensor1d(fx.weights.b1);
  const w2 = tf.tensor2d(fx.weights.w2, [hidden, classes]);
  const b2 = tf.tensor1d(fx.weights.b2);
  const model: ModelFn = (x) => tf.tidy(() => tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x.reshape([x.shape[0], D]), w1), b1)), w2), b2) as tf.Tensor2D);
  return { model, dispose: () => tf.dispose([w1, b1, w2, b2]) };
}

/** Largest |a − b| / max(1, |b|), and where. */
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

for (const kind of ['ce', 't'] as const) {
  test(`APGD-${kind === 'ce' ? 'CE' : 'T'} replays the reference: loss and step size at every iteration, halvings, final x_best`, async () => {
    const { model, dispose } = mlp();
    const rec = fx.apgd[kind];
    try {
      await noLeak(() => {
        const x = tf.tensor4d(fx.x, [n, H, W, C]);
        const x0 = tf.tensor4d(fx.apgd.x0, [n, H, W, C]);
        const y = tf.tensor1d(fx.y, 'int32');
        const target = tf.tensor1d(fx.apgd.target, 'int32');
        const lossFn = (z: tf.Tensor2D): tf.Tensor1D =>
          (kind === 'ce' ? crossEntropy(z, y, { reduction: 'none' }) : dlrTargetedLoss(z, y, target, { reduction: 'none' })) as tf.Tensor1D;
        const loss: Float32Array[] = [];
        const step: Float32Array[] = [];
        let xBest: Float32Array = new Float32Array(0);
        const run = apgdRun(model, x, y, lossFn, {
          eps: fx.apgd.eps,
          norm: 'linf',
          steps: fx.apgd.steps,
          seed: 0,
          x0,
          onIteration: (it) => {
            loss.push(it.loss);
            step.push(it.stepSize);
            xBest = it.xBest;
          },
        });
        const lossBest = run.lossBest.dataSync().slice();
        tf.dispose([x, x0, y, target, run.xAdv, run.fooled, run.lossBest]);

        // The step size is a power-of-two fraction of 2·eps: equal exactly means the same halvings at the same iterations.
        for (let i = 0; i < fx.apgd.steps; i++) {
          for (let b = 0; b < n; b++) {
            const ratio = step[i]![b]! / rec.stepSize[i]![b]!;
            assert.ok(Math.abs(ratio - 1) < 1e-6, `iteration ${i}, point ${b}: step size ${step[i]![b]} vs reference ${rec.stepSize[i]![b]}`);
          }
        }
        const lossErr = worst(
          loss.flatMap((r) => Array.from(r)),
          rec.loss.flat(),
        );
        const bestErr = worst(lossBest, rec.lossBest);
        // x_best: L-inf steps follow sign(∇); a gradient coordinate within float32 noise of 0 can take the other
        // sign in the other framework and move that pixel differently (the loss hardly notices). Count them.
        const off: number[] = [];
        let xWorst = 0;
        xBest.forEach((v, j) => {
          const d = Math.abs(v - rec.xBest[j]!);
          if (d > 1e-5) off.push(d);
          else xWorst = Math.max(xWorst, d);
        });
        const xErr = { err: xWorst, at: -1 };
        const halvings = rec.stepSize.map((r, i) => (i > 0 ? r.filter((v, b) => v < rec.stepSize[i - 1]![b]!).length : 0)).reduce((a, v) => a + v, 0);
        console.log(
          `APGD-${kind}: ${halvings} halvings matched; largest difference: loss ${lossErr.err.toExponential(2)}, best loss ${bestErr.err.toExponential(2)}, ` +
            `x_best ${xErr.err.toExponential(2)} on ${xBest.length - off.length} of ${xBest.length} coordinates (${off.length} moved otherwise, by at most ${Math.max(0, ...off).toExponential(2)})`,
        );
        assert.ok(halvings >= 4, 'the fixture should exercise several halvings');
        assert.ok(lossErr.err < 1e-4, `loss differs by ${lossErr.err} at ${lossErr.at}`);
        assert.ok(bestErr.err < 1e-4, `best loss differs by ${bestErr.err}`);
        assert.ok(off.length <= xBest.length / 200, `x_best: ${off.length} coordinates differ`);
        assert.ok(
          off.every((d) => d <= 2 * fx.apgd.eps),
          'a coordinate left the ball',
        );
      });
    } finally {
      dispose();
    }
  });
}

test('FAB-T replays the reference: iterates and best norms after every step (target: the 2nd most likely class)', async () => {
  const { model, dispose } = mlp();
  try {
    await noLeak(async () => {
      const x = tf.tensor4d(fx.x, [n, H, W, C]);
      const y = tf.tensor1d(fx.y, 'int32');
      const iterates: Float32Array[] = [];
      const norms: Float64Array[] = [];
      const res = await fabT(model, x, y, {
        eps: fx.fab.eps,
        norm: 'linf',
        steps: fx.fab.steps,
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
      assert.equal(iterates.length, fx.fab.steps, 'every point is attacked for every step');
      let xWorst = 0;
      let nWorst = 0;
      for (let k = 0; k < fx.fab.steps; k++) {
        const e = worst(iterates[k]!, fx.fab.x1[k]!);
        xWorst = Math.max(xWorst, e.err);
        assert.ok(e.err < 1e-4, `step ${k + 1}: iterate differs by ${e.err} at ${e.at}`);
        fx.fab.bestNorm[k]!.forEach((ref, b) => {
          const got = norms[k]![b]!;
          if (ref === null) assert.equal(got, Infinity, `step ${k + 1}, point ${b}: found an adversarial the reference did not`);
          else {
            nWorst = Math.max(nWorst, Math.abs(got - ref));
            assert.ok(Math.abs(got - ref) < 1e-5, `step ${k + 1}, point ${b}: best norm ${got} vs ${ref}`);
          }
        });
      }
      const advErr = worst(xAdv, fx.fab.xAdv);
      console.log(`FAB-T: largest difference: iterate ${xWorst.toExponential(2)}, best norm ${nWorst.toExponential(2)}, output ${advErr.err.toExponential(2)}`);
      assert.ok(advErr.err < 1e-5, `output differs by ${advErr.err}`);
    });
  } finally {
    dispose();
  }
});

for (const norm of ['linf', 'l2'] as const) {
  test(`Square ${norm} replays the reference on the same uniform numbers: p, side, margin and acceptance at all 5,000 iterations`, async () => {
    const { model, dispose } = mlp();
    const rec = fx.square[norm];
    try {
      await noLeak(async () => {
        // The stream both ran on: mulberry32 (our SeededRng) quantised to the 2^-20 grid (see the script).
        const rng = new SeededRng(rec.seed);
        let used = 0;
        const quantise = (u: number): number => (Math.floor(u * 2 ** 20) + 0.5) / 2 ** 20;
        const random = { next: () => (used++, quantise(rng.next())) };
        const first = new SeededRng(rec.seed);
        assert.deepEqual(
          rec.firstUniforms,
          rec.firstUniforms.map(() => quantise(first.next())),
          'the two generators disagree',
        );

        const x = tf.tensor4d(fx.x.slice(0, D), [1, H, W, C]);
        const y = tf.tensor1d(fx.y.slice(0, 1), 'int32');
        const sides: number[] = [];
        const margins: number[] = [];
        const accepted: number[] = [];
        const res = await square(model, x, y, {
          eps: rec.eps,
          norm,
          steps: rec.queries,
          seed: rec.seed,
          random,
          onIteration: (it) => {
            sides.push(it.side);
            margins.push(it.margin[0]!);
            accepted.push(it.accepted[0]!);
          },
        });
        const xAdv = res.xAdv.dataSync().slice();
        tf.dispose([x, y, res.xAdv]);

        assert.equal(sides.length, rec.queries, 'proposals');
        assert.equal(res.queries[0], rec.nQueries, 'model evaluations (start + proposals)');
        assert.equal(used, rec.uniformsUsed, 'uniform numbers consumed');
        assert.deepEqual(sides, rec.side, 'window side per iteration (p schedule without rescaling)');
        // L-inf proposals are signs: both must agree at all 5,000 iterations. An L2 proposal reuses the direction of
        // δ in its first window; once that window is nearly empty (norm below 1e-4, but not 0) the direction is
        // float32 rounding noise of the reference (we compute in float64), and the runs may part: compare up to there.
        const exactUpTo = norm === 'linf' ? rec.queries : rec.window1Norm!.findIndex((v) => v !== null && v > 0 && v < 1e-4);
        assert.ok(exactUpTo >= 200, `only ${exactUpTo} comparable iterations`);
        const refAccepted = Array.from(rec.accepted, Number);
        const diffs = accepted.slice(0, exactUpTo).filter((a, i) => a !== refAccepted[i]).length;
        const mErr = worst(margins.slice(0, exactUpTo), rec.proposedMargin.slice(0, exactUpTo));
        const parted = margins.findIndex((m, i) => Math.abs(m - rec.proposedMargin[i]!) > 1e-4 || accepted[i] !== refAccepted[i]);
        console.log(
          `Square ${norm}: ${refAccepted.slice(0, exactUpTo).reduce((a, v) => a + v, 0)} accepted proposals in ${exactUpTo} iterations compared, ` +
            `${diffs} disagreements; largest margin difference ${mErr.err.toExponential(2)}; first parting ${parted < 0 ? 'never' : `at iteration ${parted}`}`,
        );
        assert.equal(diffs, 0, 'accepted proposals differ');
        assert.ok(mErr.err < 1e-4, `proposal margin differs by ${mErr.err} at iteration ${mErr.at}`);
        // Not fooled (eps chosen so): AutoAttack then keeps x, and so do we.
        assert.equal(res.success[0], 0);
        assert.deepEqual(Array.from(xAdv), Array.from(Float32Array.from(fx.x.slice(0, D))));
      });
    } finally {
      dispose();
    }
  });
}
