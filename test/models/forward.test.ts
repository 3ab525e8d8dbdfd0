import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, heavy, noLeak, rng, randomImages } from '../helpers.js';
import {
  CIFAR100_MEAN,
  CIFAR100_STD,
  NORMALIZATION_LAYER,
  createModel,
  forward,
  modelWeights,
  restoreWeights,
  snapshotWeights,
} from '../../src/models/index.js';

/** Gives every BN running statistic a non-trivial value, so "unchanged" and the momentum formula can fail. */
function scrambleRunningStats(model: tf.LayersModel, seed: number): void {
  const r = rng(seed);
  for (const w of modelWeights(model)) {
    if (!w.name.endsWith('/moving_mean') && !w.name.endsWith('/moving_variance')) continue;
    const n = w.variable.shape[0]!;
    const isVar = w.name.endsWith('/moving_variance');
    const values = Float32Array.from({ length: n }, () => (isVar ? 0.5 + r() : r() - 0.5));
    tf.tidy(() => {
      w.variable.write(tf.tensor1d(values));
    });
  }
}

function bitsEqual(a: tf.Tensor, b: tf.Tensor): boolean {
  const x = new Uint32Array(a.dataSync().buffer.slice(0));
  const y = new Uint32Array(b.dataSync().buffer.slice(0));
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Per-channel mean and biased variance over N, H, W, in float64. */
function channelMoments(t: tf.Tensor): { mean: number[]; variance: number[] } {
  const c = t.shape[t.rank - 1]!;
  const data = t.dataSync();
  const n = data.length / c;
  const mean = new Array<number>(c).fill(0);
  const variance = new Array<number>(c).fill(0);
  for (let i = 0; i < data.length; i++) mean[i % c]! += data[i]! / n;
  for (let i = 0; i < data.length; i++) variance[i % c]! += (data[i]! - mean[i % c]!) ** 2 / n;
  return { mean, variance };
}

test('inference forward leaves every weight and running statistic bit-identical and uses running statistics', async () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 11 });
  scrambleRunningStats(model, 1);
  const x = randomImages(4, 2);
  await noLeak(() => {
    const before = snapshotWeights(model);
    const y1 = forward(model, x, { training: false });
    const y2 = forward(model, x, { training: false });
    assert.ok(bitsEqual(y1, y2), 'two inference calls gave different logits');
    model.weights.forEach((v, i) => assert.ok(bitsEqual(v.read(), before[i]!), `${v.originalName} changed in inference`));
    // Inference must depend on the running statistics: change one and the logits move.
    const mm = model.getLayer('bn1').weights.find((v) => v.originalName === 'bn1/moving_mean')!;
    tf.tidy(() => {
      mm.write(tf.add(mm.read(), 0.3));
    });
    const y3 = forward(model, x, { training: false });
    assert.ok(!bitsEqual(y1, y3), 'inference logits ignore the running mean');
    restoreWeights(model, before);
    tf.dispose([...before, y1, y2, y3]);
  });
  x.dispose();
  model.dispose();
});

test('training forward uses batch statistics: logits do not depend on the running statistics', async () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 12 });
  const x = randomImages(4, 3);
  await noLeak(() => {
    const s0 = snapshotWeights(model);
    const yTrain1 = forward(model, x, { training: true });
    restoreWeights(model, s0);
    scrambleRunningStats(model, 5);
    const yTrain2 = forward(model, x, { training: true });
    assertClose(yTrain2.dataSync(), yTrain1.dataSync(), 1e-6, 'training logits with different running stats');
    const yInfer = forward(model, x, { training: false });
    assert.ok(!bitsEqual(yInfer, yTrain2), 'inference and training logits should differ with scrambled stats');
    restoreWeights(model, s0);
    tf.dispose([...s0, yTrain1, yTrain2, yInfer]);
  });
  x.dispose();
  model.dispose();
});

test('training forward moves each running statistic by running = 0.9·running + 0.1·batch_stat (biased variance)', async () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 13 });
  scrambleRunningStats(model, 9);
  const x = randomImages(4, 4);
  await noLeak(() => {
    const s0 = snapshotWeights(model);
    const bnLayers = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
    assert.equal(bnLayers.length, 3);
    // The batch statistics each BN sees, from sub-models ending at its input (run in training mode like the full
    // pass, since upstream BNs normalise with batch statistics), computed here in float64.
    const expected = bnLayers.map((layer) => {
      restoreWeights(model, s0);
      const sub = tf.model({ inputs: model.inputs, outputs: layer.input as tf.SymbolicTensor });
      const bnInput = sub.apply(x, { training: true }) as tf.Tensor;
      const moments = channelMoments(bnInput);
      bnInput.dispose();
      const [, , oldMean, oldVar] = layer.getWeights().map((t) => Array.from(t.dataSync()));
      return {
        name: layer.name,
        mean: oldMean!.map((m, c) => 0.9 * m + 0.1 * moments.mean[c]!),
        variance: oldVar!.map((v, c) => 0.9 * v + 0.1 * moments.variance[c]!),
      };
    });
    restoreWeights(model, s0);
    const y = forward(model, x, { training: true });
    y.dispose();
    for (const e of expected) {
      const [, , mean, variance] = model.getLayer(e.name).getWeights();
      assertClose(mean!.dataSync(), e.mean, 2e-6, `${e.name} moving_mean`);
      assertClose(variance!.dataSync(), e.variance, 2e-6, `${e.name} moving_variance`);
    }
    // And nothing but the running statistics changed.
    model.weights.forEach((v, i) => {
      if (v.trainable) assert.ok(bitsEqual(v.read(), s0[i]!), `${v.originalName} changed in a forward pass`);
    });
    restoreWeights(model, s0);
    tf.dispose(s0);
  });
  x.dispose();
  model.dispose();
});

test('no tensor leaks across repeated forward calls in both modes, also under tf.variableGrads', async () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 14 });
  const x = randomImages(2, 5);
  const labels = tf.oneHot(tf.tensor1d([1, 7], 'int32'), 10);
  await noLeak(() => {
    for (let i = 0; i < 3; i++) {
      tf.dispose([forward(model, x, { training: false }), forward(model, x, { training: true })]);
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(labels, forward(model, x, { training: true })));
      assert.equal(Object.keys(grads).length, model.trainableWeights.length);
      tf.dispose([value, ...Object.values(grads)]);
    }
  });
  tf.dispose([x, labels]);
  model.dispose();
});

test('strided 3×3 convolutions pad like PyTorch (1 on every side), checked against a direct convolution', async () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 15 });
  await noLeak(() => {
    // conv2 is 3×3 stride 2, 16→32 channels, on 32×32 maps.
    const inputOf = tf.model({ inputs: model.inputs, outputs: model.getLayer('conv2_pad').input as tf.SymbolicTensor });
    const outputOf = tf.model({ inputs: model.inputs, outputs: model.getLayer('conv2').output as tf.SymbolicTensor });
    const x = randomImages(1, 6);
    const inp = inputOf.apply(x, { training: false }) as tf.Tensor;
    const out = outputOf.apply(x, { training: false }) as tf.Tensor;
    const kernel = model.getLayer('conv2').getWeights()[0]!.dataSync(); // [3, 3, 16, 32]
    const a = inp.dataSync(); // [1, 32, 32, 16]
    const H = 32,
      Cin = 16,
      Cout = 32,
      Ho = 16;
    assert.deepEqual(out.shape, [1, Ho, Ho, Cout]);
    const direct = new Float64Array(Ho * Ho * Cout);
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Ho; ox++)
        for (let ky = 0; ky < 3; ky++)
          for (let kx = 0; kx < 3; kx++) {
            // PyTorch padding=1: input row = 2·oy + ky - 1.
            const iy = 2 * oy + ky - 1,
              ix = 2 * ox + kx - 1;
            if (iy < 0 || iy >= H || ix < 0 || ix >= H) continue;
            for (let ci = 0; ci < Cin; ci++) {
              const v = a[(iy * H + ix) * Cin + ci]!;
              for (let co = 0; co < Cout; co++) direct[(oy * Ho + ox) * Cout + co]! += v * kernel[((ky * 3 + kx) * Cin + ci) * Cout + co]!;
            }
          }
    assertClose(out.dataSync(), direct, 1e-5, 'conv2 output');
    tf.dispose([x, inp, out]);
  });
  model.dispose();
});

test('Swish WRN normalises inputs inside the model with the CIFAR-100 statistics for a 100-class head', heavy, async () => {
  const model = createModel({ arch: 'wrn-28-10-swish', numClasses: 100, seed: 16 });
  await noLeak(() => {
    const norm = tf.model({ inputs: model.inputs, outputs: model.getLayer(NORMALIZATION_LAYER).output as tf.SymbolicTensor });
    const x = randomImages(2, 8);
    const before = snapshotWeights(model);
    const y = norm.apply(x, { training: true }) as tf.Tensor; // frozen even in training mode
    const xs = x.dataSync();
    const expected = Array.from(xs, (v, i) => (v - CIFAR100_MEAN[i % 3]!) / CIFAR100_STD[i % 3]!);
    assertClose(y.dataSync(), expected, 1e-6, 'normalised input');
    model.weights.forEach((v, i) => assert.ok(bitsEqual(v.read(), before[i]!), `${v.originalName} changed`));
    assert.equal(model.getLayer(NORMALIZATION_LAYER).trainable, false);
    tf.dispose([x, y, ...before]);
  });
  model.dispose();
});
