import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak, rng } from '../helpers.js';
import { addTrain, batchNormTrain, conv2dTrain } from '../../src/models/trainOps.js';

const EPS = 1e-5;

function randomTensor(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => lo + (hi - lo) * r()),
    shape,
  );
}

/** tfjs-layers' composed training BN (moments + batchNorm kernel) followed by an optional ReLU. */
function composedBn(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, relu: boolean): tf.Tensor4D {
  const m = tf.moments(x, [0, 1, 2]);
  const y = tf.batchNorm4d(x, m.mean as tf.Tensor1D, m.variance as tf.Tensor1D, beta, gamma, EPS);
  return relu ? tf.relu(y) : y;
}

/** batchNormTrain runs TensorFlow's fused kernel on the native backend, tfjs' ops elsewhere. */
const fusedBn = tf.getBackend() === 'tensorflow';

/** Gradients of sum(w ⊙ f(inputs)) with respect to every input. */
function gradsOf(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], w: tf.Tensor): tf.Tensor[] {
  return tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), w)))(inputs);
}

for (const relu of [false, true]) {
  test(`BN${relu ? '+ReLU' : ''} with batch statistics: values, mean/variance and gradients equal tfjs' composed ops`, async () => {
    const x = randomTensor([3, 4, 4, 5], 1, -2, 3) as tf.Tensor4D;
    const gamma = randomTensor([5], 2, 0.5, 1.5) as tf.Tensor1D;
    const beta = randomTensor([5], 3) as tf.Tensor1D;
    const w = randomTensor([3, 4, 4, 5], 4);
    await noLeak(() => {
      const ours = batchNormTrain(x, gamma, beta, EPS, relu);
      const ref = tf.tidy(() => composedBn(x, gamma, beta, relu));
      const m = tf.moments(x, [0, 1, 2]);
      assertClose(ours.y.dataSync(), ref.dataSync(), 1e-6, 'values');
      if (fusedBn) {
        // TensorFlow's fused kernel sums in another order: equal to rounding. The unbiased variance TensorFlow
        // reports would be off by 1/(n − 1) = 2%.
        assertClose(ours.mean.dataSync(), m.mean.dataSync(), 1e-6, 'batch mean');
        assertClose(ours.variance.dataSync(), m.variance.dataSync(), 1e-6, 'batch variance');
      } else {
        // tfjs' own ops: bit for bit (the running statistics then match tfjs-layers exactly).
        assert.deepEqual(Array.from(ours.mean.dataSync()), Array.from(m.mean.dataSync()), 'batch mean');
        assert.deepEqual(Array.from(ours.variance.dataSync()), Array.from(m.variance.dataSync()), 'batch variance');
      }
      tf.dispose([ours.y, ours.mean, ours.variance, ref, m.mean, m.variance]);
      const g1 = gradsOf(
        (a, b, c) => {
          const r = batchNormTrain(a as tf.Tensor4D, b as tf.Tensor1D, c as tf.Tensor1D, EPS, relu);
          tf.dispose([r.mean, r.variance]);
          return r.y;
        },
        [x, gamma, beta],
        w,
      );
      const g2 = gradsOf((a, b, c) => composedBn(a as tf.Tensor4D, b as tf.Tensor1D, c as tf.Tensor1D, relu), [x, gamma, beta], w);
      ['dx', 'dgamma', 'dbeta'].forEach((name, i) => assertClose(g1[i]!.dataSync(), g2[i]!.dataSync(), 2e-5, name));
      tf.dispose([...g1, ...g2]);
    });
    tf.dispose([x, gamma, beta, w]);
  });
}

test('BN+ReLU gradient matches central finite differences of the loss (float64 on the host)', async () => {
  const shape = [2, 3, 3, 2];
  const x = randomTensor(shape, 5, -2, 3) as tf.Tensor4D;
  const gamma = randomTensor([2], 6, 0.5, 1.5) as tf.Tensor1D;
  const beta = randomTensor([2], 7, -0.2, 0.2) as tf.Tensor1D;
  const w = randomTensor(shape, 8);
  const xs = Array.from(x.dataSync(), Number);
  const ws = Array.from(w.dataSync(), Number);
  const gs = Array.from(gamma.dataSync(), Number);
  const bs = Array.from(beta.dataSync(), Number);
  // The loss sum(w · relu(BN(x))) in float64, straight from the definition.
  const loss = (v: number[]): number => {
    const C = 2;
    const n = v.length / C;
    let total = 0;
    for (let c = 0; c < C; c++) {
      let mean = 0;
      for (let i = c; i < v.length; i += C) mean += v[i]! / n;
      let variance = 0;
      for (let i = c; i < v.length; i += C) variance += (v[i]! - mean) ** 2 / n;
      for (let i = c; i < v.length; i += C) total += ws[i]! * Math.max(0, gs[c]! * ((v[i]! - mean) / Math.sqrt(variance + EPS)) + bs[c]!);
    }
    return total;
  };
  await noLeak(() => {
    const [dx] = gradsOf(
      (a) => {
        const r = batchNormTrain(a as tf.Tensor4D, gamma, beta, EPS, true);
        tf.dispose([r.mean, r.variance]);
        return r.y;
      },
      [x],
      w,
    );
    const h = 1e-6;
    const fd = xs.map((_, i) => {
      const plus = xs.slice();
      const minus = xs.slice();
      plus[i]! += h;
      minus[i]! -= h;
      return (loss(plus) - loss(minus)) / (2 * h);
    });
    assertClose(dx!.dataSync(), fd, 1e-4, 'dx vs finite differences');
    dx!.dispose();
  });
  tf.dispose([x, gamma, beta, w]);
});

for (const [strides, pad] of [
  [1, 'same'],
  [2, 'valid'],
  [2, 'same'],
] as const) {
  test(`conv2d (stride ${strides}, ${pad}): values and gradients equal tf.conv2d's`, async () => {
    const x = randomTensor([2, 7, 7, 3], 9) as tf.Tensor4D;
    const f = randomTensor([3, 3, 3, 4], 10) as tf.Tensor4D;
    const outSize = tf.conv2d(x, f, strides, pad);
    const w = randomTensor(outSize.shape, 11);
    outSize.dispose();
    await noLeak(() => {
      const s: [number, number] = [strides, strides];
      const g1 = gradsOf((a, b) => conv2dTrain(a as tf.Tensor4D, b as tf.Tensor4D, s, pad), [x, f], w);
      const g2 = gradsOf((a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad), [x, f], w);
      assertClose(g1[0]!.dataSync(), g2[0]!.dataSync(), 1e-6, 'dx');
      assertClose(g1[1]!.dataSync(), g2[1]!.dataSync(), 1e-6, 'dfilter');
      // x as a constant (the network's input): the same filter gradient, and no gradient path to x at all.
      const [gf] = gradsOf((b) => conv2dTrain(x, b as tf.Tensor4D, s, pad, false), [f], w);
      assertClose(gf!.dataSync(), g2[1]!.dataSync(), 1e-6, 'dfilter (input constant)');
      tf.dispose([...g1, ...g2, gf!]);
    });
    // (Outside noLeak: a refused gradient leaves the tensors the op saved for its backward on tfjs' tape.)
    const s: [number, number] = [strides, strides];
    assert.throws(() => tf.tidy(() => gradsOf((a) => conv2dTrain(a as tf.Tensor4D, f, s, pad, false), [x], w)), /Cannot compute gradient/);
    tf.dispose([x, f, w]);
  });
}

for (const relu of [false, true]) {
  test(`add${relu ? '+ReLU' : ''}: values and gradients equal tf.add${relu ? ' + tf.relu' : ''}`, async () => {
    const a = randomTensor([2, 3, 3, 4], 12);
    const b = randomTensor([2, 3, 3, 4], 13);
    const w = randomTensor([2, 3, 3, 4], 14);
    await noLeak(() => {
      const g1 = gradsOf((p, q) => addTrain(p!, q!, relu), [a, b], w);
      const g2 = gradsOf((p, q) => (relu ? tf.relu(tf.add(p!, q!)) : tf.add(p!, q!)), [a, b], w);
      g1.forEach((g, i) => assertClose(g.dataSync(), g2[i]!.dataSync(), 0, `d${'ab'[i]}`));
      tf.dispose([...g1, ...g2]);
    });
    tf.dispose([a, b, w]);
  });
}
