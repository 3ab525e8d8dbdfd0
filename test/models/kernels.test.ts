import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak, rng } from '../helpers.js';
import { patchedBinding } from '../../src/collective/native.js';
import {
  conv2dBackpropFilter,
  batchNormReluInference,
  bnReluInUse,
  conv2dBiasAct,
  fusedConvInUse,
  conv2dBackpropInput,
  fusedBatchNormGrad,
  fusedBatchNormTrain,
  reluBackward,
  selectRows,
  type ConvPad,
} from '../../src/kernels.js';

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const r = rng(seed);
  return tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * r() - 1),
    shape,
  );
}

test('reluBackward is dy where the ReLU output is positive and 0 where it is 0 (exact zeros included)', async () => {
  await noLeak(() =>
    tf.tidy(() => {
      // Every third entry exactly 0 (a ReLU output at its kink): the gradient there is 0, as in tfjs' relu.
      const y = tf.relu(
        tf.mul(
          randomTensor([2, 5, 5, 3], 1),
          tf.tensor(
            Float32Array.from({ length: 150 }, (_, i) => (i % 3 === 0 ? 0 : 1)),
            [2, 5, 5, 3],
          ),
        ),
      );
      const dy = randomTensor([2, 5, 5, 3], 2);
      const expected = Float32Array.from(dy.dataSync(), (g, i) => ((y.dataSync()[i] as number) > 0 ? g : 0));
      assertClose(reluBackward(dy, y).dataSync(), expected, 0, 'dy·1[y > 0]');
    }),
  );
});

// Each backprop against tfjs' own gradient of the same convolution written as pad + 'valid' (the composition
// the models used before), for PyTorch's symmetric padding and an asymmetric one.
for (const [name, pad, strides] of [
  [
    'symmetric, stride 2',
    [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ],
    [2, 2],
  ],
  [
    'asymmetric, stride 1',
    [
      [0, 0],
      [0, 2],
      [1, 0],
      [0, 0],
    ],
    [1, 1],
  ],
  ['same, stride 2', 'same', [2, 2]],
] as [string, ConvPad, [number, number]][]) {
  test(`conv2d backprop (${name}) equals the gradient of tfjs' conv2d`, async () => {
    await noLeak(() =>
      tf.tidy(() => {
        const x = randomTensor([2, 7, 6, 3], 3) as tf.Tensor4D;
        const w = randomTensor([3, 3, 3, 4], 4) as tf.Tensor4D;
        const conv = (xx: tf.Tensor4D, ww: tf.Tensor4D) =>
          Array.isArray(pad) ? tf.conv2d(tf.pad(xx, pad), ww, strides, 'valid') : tf.conv2d(xx, ww, strides, pad);
        const y = conv(x, w);
        const dy = randomTensor(y.shape, 5) as tf.Tensor4D;
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), dy)))([x, w]);
        assertClose(conv2dBackpropInput(dy, w, x.shape, strides, pad).dataSync(), gx!.dataSync(), 1e-5, 'input gradient');
        assertClose(conv2dBackpropFilter(x, dy, w.shape, strides, pad).dataSync(), gw!.dataSync(), 1e-5, 'filter gradient');
      }),
    );
  });
}

// TensorFlow's fused batch norm (native backend only: elsewhere the function declines and trainOps.ts composes tfjs
// ops) against the definition in float64 on the host, at a per-channel count (n = 4,096) and an offset mean (3 ± 0.5)
// where float32 summation order shows. Measured relative error ~1e-6; 2e-5 leaves room and still fails a wrong term
// (the unbiased variance alone would be off by 2.4e-4).
test('fused batch norm (training): y, batch mean, biased variance, dx, dγ, dβ equal the float64 definition', async (t) => {
  const [N, H, W, C] = [4, 32, 32, 6];
  const eps = 1e-5;
  const x = tf.tidy(() => tf.add(tf.mul(randomTensor([N, H, W, C], 6), 0.5), 3)) as tf.Tensor4D;
  const gamma = tf.tidy(() => tf.add(randomTensor([C], 7), 1.5)) as tf.Tensor1D;
  const beta = randomTensor([C], 8) as tf.Tensor1D;
  const dy = randomTensor([N, H, W, C], 9) as tf.Tensor4D;
  const probe = fusedBatchNormTrain(x, gamma, beta, eps);
  if (!probe) {
    t.skip(`no fused kernel on the '${tf.getBackend()}' backend`);
    tf.dispose([x, gamma, beta, dy]);
    return;
  }
  tf.dispose([probe.y, probe.mean, probe.variance, ...probe.saved.reserve]);
  // The definition, float64.
  const xs = x.dataSync();
  const gs = gamma.dataSync();
  const bs = beta.dataSync();
  const ds = dy.dataSync();
  const n = N * H * W;
  const mean = new Float64Array(C);
  const variance = new Float64Array(C);
  xs.forEach((v, i) => (mean[i % C]! += v / n));
  xs.forEach((v, i) => (variance[i % C]! += (v - mean[i % C]!) ** 2 / n));
  const xHat = Float64Array.from(xs, (v, i) => (v - mean[i % C]!) / Math.sqrt(variance[i % C]! + eps));
  const y = Float64Array.from(xHat, (v, i) => gs[i % C]! * v + bs[i % C]!);
  const dBeta = new Float64Array(C);
  const dGamma = new Float64Array(C);
  ds.forEach((g, i) => {
    dBeta[i % C]! += g;
    dGamma[i % C]! += g * xHat[i]!;
  });
  const dx = Float64Array.from(ds, (g, i) => {
    const c = i % C;
    return (gs[c]! / Math.sqrt(variance[c]! + eps)) * (g - (dBeta[c]! + xHat[i]! * dGamma[c]!) / n);
  });
  /** ‖a − b‖ / ‖b‖. */
  const rel = (a: ArrayLike<number>, b: Float64Array) => {
    let d = 0;
    let s = 1e-300;
    b.forEach((v, i) => {
      d += (a[i]! - v) ** 2;
      s += v ** 2;
    });
    return Math.sqrt(d / s);
  };
  await noLeak(() => {
    const f = fusedBatchNormTrain(x, gamma, beta, eps)!;
    const [gx, gGamma, gBeta] = fusedBatchNormGrad(dy, x, gamma, f.saved, eps);
    const checks: [string, ArrayLike<number>, Float64Array][] = [
      ['y', f.y.dataSync(), y],
      ['mean', f.mean.dataSync(), mean],
      ['variance', f.variance.dataSync(), variance],
      ['dx', gx.dataSync(), dx],
      ['dgamma', gGamma.dataSync(), dGamma],
      ['dbeta', gBeta.dataSync(), dBeta],
    ];
    for (const [what, ours, exact] of checks) {
      const err = rel(ours, exact);
      if (!(err <= 2e-5)) throw new Error(`${what}: relative error ${err} > 2e-5`);
    }
    tf.dispose([f.y, f.mean, f.variance, ...f.saved.reserve, gx, gGamma, gBeta]);
  });
  tf.dispose([x, gamma, beta, dy]);
});

test('selectRows takes row i of a where mask[i], else of b (float32 rank 4, int32 rank 2)', async () => {
  await noLeak(() =>
    tf.tidy(() => {
      const maskValues = [true, false, false, true, true];
      const mask = tf.tensor1d(maskValues, 'bool');
      for (const [shape, dtype] of [
        [[5, 3, 2, 2], 'float32'],
        [[5, 4], 'int32'],
      ] as [number[], 'float32' | 'int32'][]) {
        const a = tf.cast(tf.mul(randomTensor(shape, 11), 100), dtype);
        const b = tf.cast(tf.mul(randomTensor(shape, 12), 100), dtype);
        const per = a.size / 5;
        const expected = Array.from(a.dataSync(), (v, i) => (maskValues[Math.floor(i / per)] ? v : b.dataSync()[i]!));
        const got = selectRows(mask, a, b);
        assert.equal(got.dtype, dtype);
        assert.deepEqual(got.shape, shape);
        assert.deepEqual(Array.from(got.dataSync()), expected);
      }
    }),
  );
});

// conv2dBiasAct against tfjs' conv2d + add + relu. On the patched native binding with oneDNN it is one fused kernel
// (asserted, so a silent fallback fails here); the sums run in another order than tfjs' conv2d, so the tolerance is
// float32 summation error over 3·3·C products of O(1) terms, relative to max(1, |y|): 1e-5 covers C = 16 with margin.
for (const [name, pad, strides, useBias, relu] of [
  ['same, bias, relu', 'same', [1, 1], true, true],
  [
    'explicit symmetric stride 2, bias',
    [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ],
    [2, 2],
    true,
    false,
  ],
  ['valid, no bias, relu', 'valid', [1, 1], false, true],
] as [string, ConvPad, [number, number], boolean, boolean][]) {
  test(`conv2dBiasAct (${name}) equals tfjs' conv2d + bias + relu`, async () => {
    await noLeak(() =>
      tf.tidy(() => {
        const r = rng(7);
        const x = tf.tensor4d(
          Array.from({ length: 2 * 9 * 9 * 16 }, () => r() * 2 - 1),
          [2, 9, 9, 16],
        );
        const w = tf.tensor4d(
          Array.from({ length: 3 * 3 * 16 * 8 }, () => r() - 0.5),
          [3, 3, 16, 8],
        );
        const bias = useBias ? tf.tensor1d(Array.from({ length: 8 }, () => r() - 0.5)) : undefined;
        const padded = Array.isArray(pad) ? tf.pad(x, pad) : x;
        let expected: tf.Tensor = tf.conv2d(padded, w, strides, Array.isArray(pad) ? 'valid' : pad);
        if (bias) expected = tf.add(expected, bias);
        if (relu) expected = tf.relu(expected);
        const y = conv2dBiasAct(x, w, bias, strides, pad, relu);
        assert.deepEqual(y.shape, expected.shape);
        assertClose(y.dataSync(), expected.dataSync(), 1e-5, 'conv + bias + act');
        if (useBias && patchedBinding() && process.env.TF_ENABLE_ONEDNN_OPTS !== '0')
          assert.ok(fusedConvInUse(), 'the patched binding runs the fused oneDNN convolution');
      }),
    );
  });
}

// Against the float64 definition: a handful of float32 roundings of O(1) values, so 1e-5 relative to max(1, |y|).
test('batchNormReluInference equals relu(γ·(x − μ)/√(σ² + ε) + β) with running statistics (float64 definition)', async () => {
  await noLeak(() =>
    tf.tidy(() => {
      const [n, h, w, c] = [3, 5, 4, 6];
      const x = randomTensor([n, h, w, c], 11) as tf.Tensor4D;
      const r = rng(12);
      const [mean, offset] = [0, 1].map(() => Float32Array.from({ length: c }, () => r() - 0.5));
      const [variance, scale] = [0, 1].map(() => Float32Array.from({ length: c }, () => 0.5 + r()));
      const eps = 1e-3;
      const y = batchNormReluInference(x, tf.tensor1d(mean!), tf.tensor1d(variance!), tf.tensor1d(offset!), tf.tensor1d(scale!), eps);
      const xs = x.dataSync();
      const expected = Array.from(xs, (v, i) => {
        const k = i % c;
        return Math.max(0, (scale![k]! * (v - mean![k]!)) / Math.sqrt(variance![k]! + eps) + offset![k]!);
      });
      assert.deepEqual(y.shape, x.shape);
      assertClose(y.dataSync(), expected, 1e-5, 'BN + ReLU');
      if (tf.getBackend() === 'tensorflow' && process.env.TF_ENABLE_ONEDNN_OPTS !== '0') assert.ok(bnReluInUse(), 'one oneDNN kernel on the native backend');
    }),
  );
});
