/**
 * Replays the optimisation recipe of DM-Improves-AT (train-wa.py; scripts/fixtures/recipe_replay.py ran the
 * reference's own init_scheduler, init_optimizer, ema_update and update_bn on a dense-BN-dense network):
 * the 'cosinew' OneCycle lr and momentum per epoch, SGD with Nesterov, a scheduled momentum and no weight decay
 * on the BN parameters, and the per-step EMA with burn-in and dynamic decay whose BN buffers come from the model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak } from '../helpers.js';
import { learningRate, momentumAt, type LrSchedule } from '../../src/train/schedules.js';
import { Sgd } from '../../src/train/sgd.js';
import { emaDecay } from '../../src/train/ema.js';
import { WeightAverage } from '../../src/train/weightAverage.js';
import { bnParameterMask } from '../../src/train/batchNorm.js';

type Params = Record<string, number[]>;
interface Fixture {
  source: string;
  schedules: { lr: number; epochs: number; lrs: number[]; momenta: number[] }[];
  names: string[];
  decay: Record<string, boolean>;
  weightDecay: number;
  nesterov: boolean;
  initial: Params;
  steps: { lr: number; momentum: number; grads: Params; params: Params; wa: Params }[];
  ema: { tau: number; warmupSteps: number; waBuffers: Record<string, number[]>; modelBuffers: Record<string, number[]> };
}

const fx = JSON.parse(readFileSync(new URL('../../../test/fixtures/reference/recipe.json', import.meta.url), 'utf8')) as Fixture;
const shapes: Record<string, number[]> = {
  'fc.weight': [6, 5],
  'fc.bias': [5],
  'batchnorm.weight': [5],
  'batchnorm.bias': [5],
  'logits.weight': [5, 3],
  'logits.bias': [3],
};
const tensor = (name: string, values: number[]): tf.Tensor => tf.tensor(values, shapes[name]);

test("onecycle lr and momentum per epoch equal torch's OneCycleLR as train-wa.py steps it ('cosinew')", () => {
  for (const s of fx.schedules) {
    const schedule: LrSchedule = { kind: 'onecycle', lr: s.lr, epochs: s.epochs };
    for (let e = 1; e <= s.epochs; e++) {
      // Same double-precision operations as torch: agreement to the last bits (libm's cos may differ by an ulp).
      assertClose([learningRate(schedule, e)], [s.lrs[e - 1]!], 1e-12, `lr ${s.lr}, E ${s.epochs}, epoch ${e}`);
      assertClose([momentumAt(schedule, e, 0.9)], [s.momenta[e - 1]!], 1e-12, `momentum, E ${s.epochs}, epoch ${e}`);
    }
  }
});

test("the decay mask of our BN layers is the reference's parameter groups ('batchnorm' in the name: no weight decay)", () => {
  const m = tf.sequential({
    layers: [
      tf.layers.dense({ units: 5, inputShape: [6] }),
      tf.layers.batchNormalization({ momentum: 0.99, epsilon: 1e-5 }),
      tf.layers.activation({ activation: 'swish' }),
      tf.layers.dense({ units: 3 }),
    ],
  });
  assert.deepEqual(
    bnParameterMask(m).map((bn) => !bn),
    fx.names.map((n) => fx.decay[n]),
  );
  m.dispose();
});

test('SGD (Nesterov, scheduled momentum, no weight decay on BN) and the per-step EMA replay the reference step by step', async () => {
  await noLeak(() => {
    const params = fx.names.map((n) => tf.tidy(() => tf.variable(tensor(n, fx.initial[n]!), false, `recipe/${n}`)));
    const sgd = new Sgd(params, {
      momentum: 0.9,
      nesterov: fx.nesterov,
      weightDecay: fx.weightDecay,
      decay: fx.names.map((n) => fx.decay[n]!),
    });
    // The reference's wa_model starts as a copy of the model (deepcopy), then ema_update after every step.
    const wa = new WeightAverage(fx.ema.tau);
    wa.update(params);
    fx.steps.forEach((s, k) => {
      const grads = fx.names.map((n) => tensor(n, s.grads[n]!));
      sgd.step(grads, s.lr, s.momentum);
      tf.dispose(grads);
      fx.names.forEach((n, i) => assertClose(params[i]!.dataSync(), s.params[n]!, 2e-6, `step ${k + 1}: ${n}`));
      const decay = emaDecay(k + 1, { tau: fx.ema.tau, warmupSteps: fx.ema.warmupSteps, dynamic: true });
      wa.update(params, decay);
      fx.names.forEach((n, i) => assertClose(wa.weights()[i]!.dataSync(), s.wa[n]!, 2e-6, `step ${k + 1}: EMA of ${n}`));
    });
    sgd.dispose();
    wa.dispose();
    tf.dispose(params);
  });
});

test("the EMA's BN statistics follow the live model (update_bn), its parameters are averaged", async () => {
  await noLeak(() => {
    const names = ['running_mean', 'running_var'];
    // Positions: one parameter (averaged) and the two BN buffers (copied).
    const wa = new WeightAverage(fx.ema.tau, [false, true, true]);
    const stale = names.map((n) => tf.fill([5], n === 'running_var' ? 1 : 0));
    const p0 = tf.tensor1d([1, 2, 3, 4, 5]);
    wa.update([p0, ...stale]);
    const p1 = tf.tensor1d([2, 2, 2, 2, 2]);
    const live = names.map((n) => tf.tensor1d(fx.ema.modelBuffers[n]!));
    wa.update([p1, ...live], 0.5);
    names.forEach((n, i) => assertClose(wa.weights()[i + 1]!.dataSync(), fx.ema.waBuffers[n]!, 1e-7, `EMA ${n}`));
    assertClose(wa.weights()[0]!.dataSync(), [1.5, 2, 2.5, 3, 3.5], 1e-7, 'averaged parameter');
    tf.dispose([p0, p1, ...stale, ...live]);
    wa.dispose();
  });
});
