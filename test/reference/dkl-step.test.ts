/**
 * Replays one IKL-AT training step of the reference (jiequancui/DKL, train_dkl_cifar10.py: perturb_input and
 * dkl_loss run by scripts/fixtures/reference_replay.py on a dense-BN-ReLU-dense network whose weights are in the
 * fixture): the training attack from the same noise, the loss and its three parts, the gradient of every weight,
 * and the BN running means after the two train-mode passes (adversarial first, as the reference).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { attackObjective } from '../../src/attacks/objective.js';
import { pgdStep } from '../../src/attacks/pgd.js';
import { objective } from '../../src/train/objective.js';
import { inferenceFn, trainForward } from '../../src/train/step.js';

interface Fixture {
  shape: [number, number, number];
  weights: Record<string, number[]>;
  x: number[];
  y: number[];
  classPrior: number[];
  alpha: number;
  beta: number;
  eps: number;
  stepSize: number;
  steps: number;
  noise: number[];
  xAdv: number[];
  loss: number;
  lossNatural: number;
  lossRobust: number;
  grads: Record<string, number[]>;
  bnRunningMean: number[];
}

const fx = JSON.parse(readFileSync(new URL('../../../test/fixtures/reference/dkl-step.json', import.meta.url), 'utf8')) as Fixture;
const [H, W, C] = fx.shape;
const B = fx.y.length;
const classes = Math.round(Math.sqrt(fx.classPrior.length));
const hidden = fx.weights['bn/gamma']!.length;

/** The fixture's network in tfjs layers: flatten (NHWC order) → dense → BN (Keras momentum 0.9 = torch 0.1) → ReLU → dense. */
function network(): tf.LayersModel {
  const m = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [H, W, C] }),
      tf.layers.dense({ units: hidden }),
      tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({ units: classes }),
    ],
  });
  const w = fx.weights;
  const D = H * W * C;
  // model.weights lists the trainable weights first, then BN's running statistics (PyTorch's start: 0 and 1).
  const values = [
    tf.tensor2d(w['dense1/kernel']!, [D, hidden]),
    tf.tensor1d(w['dense1/bias']!),
    tf.tensor1d(w['bn/gamma']!),
    tf.tensor1d(w['bn/beta']!),
    tf.tensor2d(w['dense2/kernel']!, [hidden, classes]),
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

test('the training attack replays perturb_input: 5 steps of eps/2 from x + 0.001·N(0, I), model in inference mode', async () => {
  const model = network();
  try {
    await noLeak(() => {
      const x = tf.tensor4d(fx.x, [B, H, W, C]);
      const y = tf.tensor1d(fx.y, 'int32');
      // dkl_loss(z, z', ·, alpha = 1, beta = 0) is the soft cross-entropy to the detached clean prediction, whose
      // input gradient is KL's: our CIFAR-10 training attack ('kl').
      const obj = attackObjective(inferenceFn(model), x, y, { loss: 'kl' });
      let xAdv = tf.tidy(() => tf.add(x, tf.tensor4d(fx.noise, [B, H, W, C])) as tf.Tensor4D);
      for (let k = 0; k < fx.steps; k++) {
        const next = pgdStep(inferenceFn(model), x, y, xAdv, obj.fn, { eps: fx.eps, norm: 'linf', stepSize: fx.stepSize });
        xAdv.dispose();
        xAdv = next;
      }
      const got = xAdv.dataSync();
      tf.dispose([x, y, xAdv]);
      obj.dispose();
      // Sign steps: a gradient coordinate within float32 noise of 0 may take the other sign (see attacks.test.ts).
      let off = 0;
      let close = 0;
      got.forEach((v, j) => {
        const d = Math.abs(v - fx.xAdv[j]!);
        if (d > 1e-5) off++;
        else close = Math.max(close, d);
      });
      console.log(`training attack: x_adv within ${close.toExponential(2)} on ${got.length - off} of ${got.length} coordinates`);
      assert.ok(off <= got.length / 200, `${off} coordinates differ`);
    });
  } finally {
    model.dispose();
  }
});

test('the IKL-AT step replays train_dkl_cifar10.py: loss, its parts, every gradient, BN running means (adversarial pass first)', async () => {
  const model = network();
  try {
    await noLeak(() => {
      const x = tf.tensor4d(fx.x, [B, H, W, C]);
      const xAdv = tf.tensor4d(fx.xAdv, [B, H, W, C]);
      const y = tf.tensor1d(fx.y, 'int32');
      const prior = tf.tidy(() => tf.gather(tf.tensor2d(fx.classPrior, [classes, classes]), y) as tf.Tensor2D);
      const opts = { type: 'ikl-at' as const, alpha: fx.alpha, beta: fx.beta, gamma: 1, temperature: 1, tradesBeta: 6, labelSmoothing: 0 };
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      let parts: number[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const q = objective(trainForward(model), x, y, xAdv, prior, opts);
        parts = [q.natural!.dataSync()[0]!, q.robust!.dataSync()[0]!];
        return q.total;
      }, vars);
      const loss = value.dataSync()[0]!;
      const names = ['dense1/kernel', 'dense1/bias', 'bn/gamma', 'bn/beta', 'dense2/kernel', 'dense2/bias'];
      const gradErr = names.map((name, i) => maxRel(grads[vars[i]!.name]!.dataSync(), fx.grads[name]!));
      const bn = model.layers[2]!.getWeights()[2]!.dataSync();
      const bnErr = maxRel(bn, fx.bnRunningMean);
      tf.dispose([x, xAdv, y, prior, value, ...Object.values(grads)]);

      const lossErr = maxRel([loss, ...parts], [fx.loss, fx.lossNatural, fx.lossRobust]);
      console.log(
        `IKL-AT step: largest difference: loss ${lossErr.toExponential(2)}, gradients ${Math.max(...gradErr).toExponential(2)}, BN running mean ${bnErr.toExponential(2)}`,
      );
      assert.ok(lossErr < 1e-5, `loss ${loss} (${parts}) vs ${fx.loss} (${fx.lossNatural}, ${fx.lossRobust})`);
      gradErr.forEach((e, i) => assert.ok(e < 1e-4, `${names[i]}: gradient differs by ${e}`));
      // 0.9·(0.9·0 + 0.1·μ_adv) + 0.1·μ_nat: the clean batch must be the last train-mode pass (the other order
      // gives 0.09·μ_nat + 0.1·μ_adv).
      assert.ok(bnErr < 1e-5, `BN running mean differs by ${bnErr}`);
    });
  } finally {
    model.dispose();
  }
});
