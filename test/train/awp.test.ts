import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak, assertClose, rng } from '../helpers.js';
import { Awp, awpDirection, kernelVariables } from '../../src/train/awp.js';
import type { TrainForward } from '../../src/train/objective.js';

/** A small conv + BN + dense net, built from a seed (two calls give the same weights). */
function tinyNet(seed: number): tf.LayersModel {
  const init = (s: number) => tf.initializers.glorotUniform({ seed: s });
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 4, kernelSize: 3, kernelInitializer: init(seed), biasInitializer: 'ones' }));
  m.add(tf.layers.batchNormalization({ momentum: 0.9 }));
  m.add(tf.layers.activation({ activation: 'relu' }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 3, kernelInitializer: init(seed + 1) }));
  return m;
}

const forwardOf =
  (m: tf.LayersModel): TrainForward =>
  (x) =>
    m.apply(x, { training: true }) as tf.Tensor2D;

function batch(seed: number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const r = rng(seed);
  const n = 8;
  return {
    x: tf.tensor4d(
      Array.from({ length: n * 6 * 6 * 2 }, () => r()),
      [n, 6, 6, 2],
    ),
    y: tf.tensor1d(
      Array.from({ length: n }, (_, i) => i % 3),
      'int32',
    ),
  };
}

const values = (m: tf.LayersModel): Float32Array[] => m.weights.map((w) => w.read().dataSync() as Float32Array);

test('AWP: ‖γ·v‖ = γ‖W‖ per kernel, v along the ascent gradient; only rank ≥ 2 kernels move; restore is exact', async () => {
  const model = tinyNet(1);
  const proxy = tinyNet(99);
  const reference = tinyNet(1);
  const { x, y } = batch(5);
  await noLeak(() => {
    const gamma = 0.005;
    const awp = new Awp(model, proxy, { gamma, proxyLr: 0.01 });
    const loss = (f: TrainForward): tf.Scalar => tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), f(x)) as tf.Scalar;
    const before = values(model);
    awp.computeDirections(loss, forwardOf);
    // BN running statistics of the real model are untouched by the proxy's train-mode pass.
    values(model).forEach((v, i) => assert.deepEqual(v, before[i], `weight ${model.weights[i]!.name} changed by the proxy step`));
    awp.perturb();
    const after = values(model);
    const kernelIdx = model.weights.map((w, i) => (w.shape.length >= 2 ? i : -1)).filter((i) => i >= 0);
    assert.equal(kernelIdx.length, 2, 'conv and dense kernels');
    model.weights.forEach((w, i) => {
      if (kernelIdx.includes(i)) assert.notDeepEqual(after[i], before[i], `${w.name} should move`);
      else assert.deepEqual(after[i], before[i], `${w.name} (rank ${w.shape.length}) must not move`);
    });
    // Independent check of the direction: v = ‖W‖·g/‖g‖ with g = ∂loss/∂W on an identical model.
    const refKernels = kernelVariables(reference);
    const { grads, value } = tf.variableGrads(() => loss(forwardOf(reference)), refKernels);
    kernelIdx.forEach((wi, k) => {
      const w = before[wi]!;
      const g = grads[refKernels[k]!.name]!.dataSync();
      const normW = Math.hypot(...w);
      const normG = Math.hypot(...g);
      const delta = after[wi]!.map((a, j) => a - w[j]!);
      const normDelta = Math.hypot(...delta);
      assert.ok(Math.abs(normDelta - gamma * normW) <= 1e-3 * gamma * normW, `‖γv‖ ${normDelta} vs γ‖W‖ ${gamma * normW}`);
      assertClose(
        delta,
        Array.from(g, (gj) => (gamma * normW * gj) / normG),
        1e-3,
        'γ·v direction',
      );
    });
    tf.dispose([value, ...Object.values(grads)]);
    awp.restore();
    values(model).forEach((v, i) => assert.deepEqual(v, before[i], `restore must give back ${model.weights[i]!.name} exactly`));
    awp.dispose();
  });
  tf.dispose([x, y]);
  [model, proxy, reference].forEach((m) => m.dispose());
});

test('AWP restore keeps the optimiser step taken on the perturbed model', async () => {
  const model = tinyNet(3);
  const proxy = tinyNet(4);
  const { x, y } = batch(6);
  await noLeak(() => {
    const awp = new Awp(model, proxy, { gamma: 0.01, proxyLr: 0.01 });
    const loss = (f: TrainForward): tf.Scalar => tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), f(x)) as tf.Scalar;
    awp.computeDirections(loss, forwardOf);
    const kernels = kernelVariables(model);
    const before = kernels.map((k) => Array.from(k.dataSync()));
    awp.perturb();
    const perturbed = kernels.map((k) => Array.from(k.dataSync()));
    // A fake optimiser step: subtract 0.1 everywhere.
    tf.tidy(() => kernels.forEach((k) => k.assign(tf.sub(k, 0.1))));
    awp.restore();
    // Reference: W'' = (W + γv − 0.1) − γv = W − 0.1.
    kernels.forEach((k, i) => {
      assertClose(
        k.dataSync(),
        before[i]!.map((w) => w - 0.1),
        1e-5,
        'restored after step',
      );
      assert.notDeepEqual(perturbed[i], before[i]);
    });
    awp.dispose();
  });
  tf.dispose([x, y]);
  model.dispose();
  proxy.dispose();
});

test('awpDirection: zero difference gives a zero direction (1e-20 guard), no NaN', async () => {
  await noLeak(() => {
    const w = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const v = awpDirection(w, w);
    assert.deepEqual(Array.from(v.dataSync()), [0, 0, 0, 0]);
    const moved = tf.tidy(() =>
      tf.add(
        w,
        tf.tensor2d([
          [0, 0],
          [0, 1e-3],
        ]),
      ),
    );
    const u = awpDirection(w, moved);
    assertClose(u.dataSync(), [0, 0, 0, Math.hypot(1, 2, 3, 4)], 1e-5, 'scaled to ‖W‖');
    tf.dispose([w, v, u, moved]);
  });
});
