/**
 * Replays one step of DKL's AutoAugment pair (train_dkl_cifar100.py --aug autoaug, gamma 0.3): the reference's own
 * `train` run by scripts/fixtures/dkl_pair_replay.py on a dense-BN-ReLU-dense network, one batch of B images
 * given as view A and view B. Checked: the training attack on all 2B rows (IKL objective with the class-wise
 * weights), the loss CE(2B) + DKL(A) + γ·DKL(B) with its parts, every gradient, the BN running means after the
 * two 2B-row train-mode passes, and — through trainStep — the next epoch's class-wise weights, from view A only;
 * with AWP on, the perturbed kernels (utils_awp.py ascends CE + DKL over all 2B rows, unsplit) and the gradients
 * taken at them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { attackObjective } from '../../src/attacks/objective.js';
import { pgdStep } from '../../src/attacks/pgd.js';
import { resolveConfig } from '../../src/config/index.js';
import { ClassWeights } from '../../src/losses/index.js';
import { objective } from '../../src/train/objective.js';
import { Awp } from '../../src/train/awp.js';
import { Sgd } from '../../src/train/sgd.js';
import { inferenceFn, trainForward, trainStep, type Trainer } from '../../src/train/step.js';
import { SingleProcess } from '../../src/collective/index.js';

interface Fixture {
  shape: [number, number, number];
  classes: number;
  weights: Record<string, number[]>;
  xA: number[];
  xB: number[];
  y: number[];
  classPrior: number[];
  alpha: number;
  beta: number;
  temperature: number;
  gamma: number;
  eps: number;
  stepSize: number;
  steps: number;
  noise: number[];
  xAdv: number[];
  loss: number;
  lossNatural: number;
  dklA: number;
  dklB: number;
  grads: Record<string, number[]>;
  bnRunningMean: number[];
  classWeightsOut: number[];
  awp: { gamma: number; proxyLr: number; perturbedKernels: Record<string, number[]>; grads: Record<string, number[]>; xAdv: number[] };
}

const fx = JSON.parse(readFileSync(new URL('../../../test/fixtures/reference/dkl-pair-step.json', import.meta.url), 'utf8')) as Fixture;
const [H, W, C] = fx.shape;
const B = fx.y.length;
const K = fx.classes;
const hidden = fx.weights['bn/gamma']!.length;
const NAMES = ['dense1/kernel', 'dense1/bias', 'bn/gamma', 'bn/beta', 'dense2/kernel', 'dense2/bias'];

function network(): tf.LayersModel {
  const m = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [H, W, C] }),
      tf.layers.dense({ units: hidden }),
      tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({ units: K }),
    ],
  });
  const w = fx.weights;
  const values = [
    tf.tensor2d(w['dense1/kernel']!, [H * W * C, hidden]),
    tf.tensor1d(w['dense1/bias']!),
    tf.tensor1d(w['bn/gamma']!),
    tf.tensor1d(w['bn/beta']!),
    tf.tensor2d(w['dense2/kernel']!, [hidden, K]),
    tf.tensor1d(w['dense2/bias']!),
    tf.zeros([hidden]),
    tf.ones([hidden]),
  ];
  m.setWeights(values);
  tf.dispose(values);
  return m;
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return e;
}

/** Views A then B, and the labels twice: the layout batches({ pair }) produces. */
function pairBatch(): { x: tf.Tensor4D; y: tf.Tensor1D } {
  return {
    x: tf.tensor4d([...fx.xA, ...fx.xB], [2 * B, H, W, C]),
    y: tf.tensor1d([...fx.y, ...fx.y], 'int32'),
  };
}

test('the pair attack replays perturb_input on all 2B rows: IKL objective (α = β = 1) with the class-wise weights', async () => {
  const model = network();
  try {
    await noLeak(() => {
      const { x, y } = pairBatch();
      const prior = tf.tidy(() => tf.gather(tf.tensor2d(fx.classPrior, [K, K]), y) as tf.Tensor2D);
      const obj = attackObjective(inferenceFn(model), x, y, { loss: 'ikl', alpha: 1, beta: 1, classPrior: prior });
      let xAdv = tf.tidy(() => tf.add(x, tf.tensor4d(fx.noise, [2 * B, H, W, C])) as tf.Tensor4D);
      for (let k = 0; k < fx.steps; k++) {
        const next = pgdStep(inferenceFn(model), x, y, xAdv, obj.fn, { eps: fx.eps, norm: 'linf', stepSize: fx.stepSize });
        xAdv.dispose();
        xAdv = next;
      }
      const got = xAdv.dataSync();
      tf.dispose([x, y, xAdv, prior]);
      obj.dispose();
      let off = 0;
      got.forEach((v, j) => {
        if (Math.abs(v - fx.xAdv[j]!) > 1e-5) off++;
      });
      assert.ok(off <= got.length / 200, `${off} of ${got.length} coordinates differ`);
    });
  } finally {
    model.dispose();
  }
});

test('the pair loss replays train(): CE over 2B + DKL(A) + γ·DKL(B), every gradient, BN running means', async () => {
  const model = network();
  try {
    await noLeak(() => {
      const { x, y } = pairBatch();
      const xAdv = tf.tensor4d(fx.xAdv, [2 * B, H, W, C]);
      const prior = tf.tidy(() => tf.gather(tf.tensor2d(fx.classPrior, [K, K]), y) as tf.Tensor2D);
      const opts = { type: 'ikl-at' as const, alpha: fx.alpha, beta: fx.beta, gamma: 1, temperature: 1, tradesBeta: 6, labelSmoothing: 0 };
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      let parts: number[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const q = objective(trainForward(model), x, y, xAdv, prior, opts, undefined, { gamma: fx.gamma });
        parts = [q.natural!.dataSync()[0]!, q.robust!.dataSync()[0]!];
        return q.total;
      }, vars);
      const loss = value.dataSync()[0]!;
      const gradErr = NAMES.map((name, i) => maxRel(grads[vars[i]!.name]!.dataSync(), fx.grads[name]!));
      const bnErr = maxRel(model.layers[2]!.getWeights()[2]!.dataSync(), fx.bnRunningMean);
      tf.dispose([x, xAdv, y, prior, value, ...Object.values(grads)]);
      const lossErr = maxRel([loss, ...parts], [fx.loss, fx.lossNatural, fx.dklA + fx.gamma * fx.dklB]);
      console.log(
        `pair step: largest difference: loss ${lossErr.toExponential(2)}, gradients ${Math.max(...gradErr).toExponential(2)}, BN ${bnErr.toExponential(2)}`,
      );
      assert.ok(lossErr < 1e-5, `loss ${loss} (${parts}) vs ${fx.loss} (${fx.lossNatural}, ${fx.dklA} + ${fx.gamma}·${fx.dklB})`);
      gradErr.forEach((e, i) => assert.ok(e < 1e-4, `${NAMES[i]}: gradient differs by ${e}`));
      assert.ok(bnErr < 1e-5, `BN running mean differs by ${bnErr}`);
      // The two views give different robust terms, so the split (and γ) is what the comparison checks.
      assert.ok(Math.abs(fx.dklA - fx.dklB) > 1e-3);
    });
  } finally {
    model.dispose();
  }
});

test("trainStep with data.pair: the next epoch's class-wise weights come from view A only", async () => {
  const model = network();
  const params = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const base = resolveConfig({
    sets: [
      'data.dataset=synthetic',
      'data.pair.enabled=true',
      `data.pair.gamma=${fx.gamma}`,
      'objective.type=ikl-at',
      `objective.alpha=${fx.alpha}`,
      `objective.beta=${fx.beta}`,
      'classWeights.enabled=true',
      `classWeights.temperature=${fx.temperature}`,
      'attack.objective=ikl',
      'attack.steps=2',
      'awp.enabled=false',
    ],
  });
  const config = { ...base, model: { ...base.model, numClasses: K } };
  const t: Trainer = {
    config,
    model,
    params,
    // Momentum 0: no optimizer state is created, so the step must leave the tensor count unchanged.
    optimizer: new Sgd(params, { momentum: 0, nesterov: false, weightDecay: 0 }),
    classWeights: new ClassWeights(K, { temperature: fx.temperature, momentum: 1 }),
    collective: new SingleProcess(),
  };
  try {
    await noLeak(() => {
      const { x, y } = pairBatch();
      const stats = trainStep(t, x, y, { lr: 0, epsilon: fx.eps, stepSize: fx.stepSize, awp: false, seed: 1 });
      tf.dispose([x, y]);
      assert.equal(stats.batchSize, 2 * B);
      t.classWeights!.finalize();
      const got = t.classWeights!.matrix();
      const err = maxRel(got, fx.classWeightsOut);
      assert.ok(err < 1e-5, `class-wise weights differ by ${err}`);
    });
  } finally {
    t.optimizer.dispose();
    t.classWeights!.dispose();
    model.dispose();
  }
});

test("with AWP: the proxy ascends CE + IKL over all 2B rows unsplit (utils_awp.py), then the pair loss's gradients", async () => {
  const model = network();
  const proxy = network();
  const awp = new Awp(model, proxy, { gamma: fx.awp.gamma, proxyLr: fx.awp.proxyLr });
  try {
    await noLeak(() => {
      const { x, y } = pairBatch();
      const xAdv = tf.tensor4d(fx.awp.xAdv, [2 * B, H, W, C]);
      const prior = tf.tidy(() => tf.gather(tf.tensor2d(fx.classPrior, [K, K]), y) as tf.Tensor2D);
      const opts = { type: 'ikl-at' as const, alpha: fx.alpha, beta: fx.beta, gamma: 1, temperature: 1, tradesBeta: 6, labelSmoothing: 0 };
      // As trainStep: AWP's loss is the objective without the pair split.
      awp.computeDirections((fwd) => objective(fwd, x, y, xAdv, prior, opts).total, trainForward);
      awp.perturb();
      const kernels = [model.layers[1]!.getWeights()[0]!.dataSync(), model.layers[4]!.getWeights()[0]!.dataSync()];
      const kernelErr = Math.max(
        maxRel(kernels[0]!, fx.awp.perturbedKernels['dense1/kernel']!),
        maxRel(kernels[1]!, fx.awp.perturbedKernels['dense2/kernel']!),
      );
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(() => objective(trainForward(model), x, y, xAdv, prior, opts, undefined, { gamma: fx.gamma }).total, vars);
      const gradErr = NAMES.map((name, i) => maxRel(grads[vars[i]!.name]!.dataSync(), fx.awp.grads[name]!));
      awp.restore();
      tf.dispose([x, y, xAdv, prior, value, ...Object.values(grads)]);
      console.log(`pair step with AWP: perturbed kernels ${kernelErr.toExponential(2)}, gradients ${Math.max(...gradErr).toExponential(2)}`);
      assert.ok(kernelErr < 1e-5, `perturbed kernels differ by ${kernelErr}`);
      gradErr.forEach((e, i) => assert.ok(e < 1e-4, `${NAMES[i]}: gradient differs by ${e}`));
    });
  } finally {
    awp.dispose();
    model.dispose();
    proxy.dispose();
  }
});
