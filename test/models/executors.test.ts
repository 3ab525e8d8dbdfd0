import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, heavy, noLeak, randomImages, rng } from '../helpers.js';
import { MODEL_ARCHS, createModel, modelWeights, restoreWeights, snapshotWeights, type ModelArch } from '../../src/models/index.js';
import { trainingForward } from '../../src/models/forward.js';
import { inferenceModel } from '../../src/models/inference.js';

/** Non-trivial running statistics and BN affine parameters, so folding them is actually exercised. */
function scramble(model: tf.LayersModel, seed: number): void {
  const r = rng(seed);
  for (const w of modelWeights(model)) {
    const name = w.name.split('/').at(-1)!;
    if (!['moving_mean', 'moving_variance', 'gamma', 'beta'].includes(name)) continue;
    const n = w.variable.shape[0]!;
    const positive = name === 'moving_variance' || name === 'gamma';
    // Mild (±20%) so 30+ layers deep the activations stay O(1), as in a trained network.
    const values = Float32Array.from({ length: n }, () => (positive ? 0.8 + 0.4 * r() : 0.2 * (r() - 0.5)));
    tf.tidy(() => {
      w.variable.write(tf.tensor1d(values));
    });
  }
}

/**
 * ‖a − b‖ / ‖b‖ (Euclidean, float64): one scale per tensor, so near-zero entries (and the rare ReLU whose input
 * rounds to the other side of 0 after folding) do not dominate.
 */
function relErr(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  let diff = 0;
  let norm = 1e-300;
  for (let i = 0; i < y.length; i++) {
    diff += (x[i]! - y[i]!) ** 2;
    norm += y[i]! ** 2;
  }
  return Math.sqrt(diff / norm);
}

const LIGHT: ModelArch[] = ['small-cnn'];
/** The training forward's BN is TensorFlow's fused kernel on the native backend, tfjs' ops elsewhere (trainOps.ts). */
const fusedBn = tf.getBackend() === 'tensorflow';

for (const arch of MODEL_ARCHS) {
  const opts = LIGHT.includes(arch) ? {} : heavy;

  test(`${arch}: training forward equals model.apply (logits, gradients of every weight, running statistics)`, opts, async () => {
    const model = createModel({ arch, numClasses: 10, seed: 21 });
    scramble(model, 1);
    const x = randomImages(2, 3);
    const labels = tf.oneHot(tf.tensor1d([3, 8], 'int32'), 10);
    const params = model.trainableWeights.map((w) => w.read() as tf.Variable);
    await noLeak(() => {
      const s0 = snapshotWeights(model);
      const run = (f: () => tf.Tensor2D) => tf.variableGrads(() => tf.losses.softmaxCrossEntropy(labels, f()) as tf.Scalar, params);
      const ref = run(() => model.apply(x, { training: true }) as tf.Tensor2D);
      const refStats = snapshotWeights(model);
      restoreWeights(model, s0);
      // model.apply itself at x + noise: the float32 conditioning of each weight's gradient. Some are zero in
      // exact arithmetic and pure rounding here (a conv bias read by training-mode BN; the beta of a BN whose
      // output only reaches another BN through a conv, as in MobileNetV2's projections and VGG's biased convs).
      // Noise 1e-6 where our BN is tfjs' own ops; 1e-5 where it is TensorFlow's fused kernel (native backend), whose
      // float32 sums in another order are off by up to ~4e-6 relative per layer (against float64, kernels.test.ts).
      const noise = fusedBn ? 1e-5 : 1e-6;
      const xNear = tf.tidy(() => tf.add(x, tf.randomUniform(x.shape, -noise, noise, 'float32', 5)));
      const near = run(() => model.apply(xNear, { training: true }) as tf.Tensor2D);
      restoreWeights(model, s0);
      const ours = run(() => trainingForward(model, x));
      const ourStats = snapshotWeights(model);
      assertClose(ours.value.dataSync(), ref.value.dataSync(), fusedBn ? 1e-5 : 1e-6, 'loss');
      for (const v of params) {
        const tol = Math.max(1e-4, 4 * relErr(near.grads[v.name]!, ref.grads[v.name]!));
        const err = relErr(ours.grads[v.name]!, ref.grads[v.name]!);
        assert.ok(err <= tol, `${v.name}: gradient differs (relative error ${err} > ${tol})`);
      }
      tf.dispose([xNear, near.value, ...Object.values(near.grads)]);
      // tfjs' ops on the same values: the running statistics are updated bit for bit as tfjs-layers does. The fused
      // kernel: to the rounding of the activations that reach each BN (up to 1.7e-5 measured, 100 layers deep); its
      // variance convention is checked exactly in trainOps.test.ts.
      refStats.forEach((t, i) => {
        const what = `${model.weights[i]!.originalName}`;
        if (fusedBn) assertClose(ourStats[i]!.dataSync(), t.dataSync(), 1e-4, what);
        else assert.deepEqual(Array.from(ourStats[i]!.dataSync()), Array.from(t.dataSync()), what);
      });
      restoreWeights(model, s0);
      tf.dispose([...s0, ...refStats, ...ourStats, ref.value, ours.value, ...Object.values(ref.grads), ...Object.values(ours.grads)]);
    });
    tf.dispose([x, labels]);
    model.dispose();
  });

  test(`${arch}: inference executor equals model.apply in inference mode (logits and input gradient), changes no weight`, opts, async () => {
    const model = createModel({ arch, numClasses: 10, seed: 22 });
    scramble(model, 2);
    const x = randomImages(3, 4);
    const labels = tf.oneHot(tf.tensor1d([1, 5, 9], 'int32'), 10);
    await noLeak(() => {
      const before = snapshotWeights(model);
      const exec = inferenceModel(model);
      const lossOf = (f: (v: tf.Tensor4D) => tf.Tensor2D) => (v: tf.Tensor) => tf.losses.softmaxCrossEntropy(labels, f(v as tf.Tensor4D));
      const apply = (v: tf.Tensor4D) => model.apply(v, { training: false }) as tf.Tensor2D;
      const [ref, ours] = [apply(x), exec.fn(x)];
      assert.ok(relErr(ours, ref) < 1e-5, `logits: relative error ${relErr(ours, ref)}`);
      const [gRef, gOurs] = [tf.grad(lossOf(apply))(x), tf.grad(lossOf(exec.fn))(x)];
      // The input gradient of a deep ReLU network is ill-conditioned in float32 (a ReLU whose input rounds to the
      // other side of 0 moves it): what model.apply itself gives for x + 1e-5 noise sets the scale of the tolerance
      // (measured ~0.7% on the WRNs, below 1e-5 on the small CNN). 1e-6 flips no ReLU in resnet32x4, resnet110 or
      // wrn_40_1 with scrambled BN, whose folded input gradient is then off by 0.1-0.2%; with unscrambled BN the
      // same networks agree to 2e-6, so the difference is rounding amplified, not a wrong gradient.
      const xNear = tf.tidy(() => tf.add(x, tf.randomUniform(x.shape, -1e-5, 1e-5, 'float32', 5)));
      const gNear = tf.grad(lossOf(apply))(xNear);
      const tol = Math.max(1e-4, 4 * relErr(gNear, gRef));
      assert.ok(relErr(gOurs, gRef) <= tol, `input gradient: relative error ${relErr(gOurs, gRef)} > ${tol}`);
      tf.dispose([xNear, gNear]);
      model.weights.forEach((v, i) => assert.deepEqual(Array.from(v.read().dataSync()), Array.from(before[i]!.dataSync()), v.originalName));
      // Fewer steps than layers: BN (and the ReLU after it) folded into the convolution it reads.
      const layers = model.layers.length - 1;
      assert.ok(exec.steps < layers, `${exec.steps} steps for ${layers} layers`);
      // Its activation size per row (what sizes the attacks' blocks): at least the logits and at most every layer's
      // output, float32.
      const perRow = (shape: (number | null)[]) => 4 * shape.slice(1).reduce<number>((a, d) => a * (d ?? 1), 1);
      const all = model.layers.reduce((sum, l) => sum + perRow(l.outputShape as (number | null)[]), 0);
      const bytes = exec.fn.activationBytesPerRow;
      assert.ok(bytes >= 4 * 10 && bytes <= all, `activationBytesPerRow ${bytes} outside [40, ${all}]`);
      exec.dispose();
      tf.dispose([...before, ref, ours, gRef, gOurs]);
    });
    tf.dispose([x, labels]);
    model.dispose();
  });

  test(`${arch}: the executor's tape-free input gradient equals tf.grad of the executor`, opts, async () => {
    const model = createModel({ arch, numClasses: 10, seed: 23 });
    scramble(model, 3);
    const x = randomImages(3, 5);
    const labels = tf.oneHot(tf.tensor1d([2, 0, 7], 'int32'), 10);
    await noLeak(() => {
      const exec = inferenceModel(model);
      const loss = (z: tf.Tensor2D) => tf.losses.softmaxCrossEntropy(labels, z);
      const gTape = tf.grad((v: tf.Tensor) => loss(exec.fn(v as tf.Tensor4D)))(x);
      const { logits, grad } = exec.fn.forwardBackward(x, (z) => tf.grad((v: tf.Tensor) => loss(v as tf.Tensor2D))(z) as tf.Tensor2D);
      const plain = exec.fn(x);
      // The same forward kernels (so the same ReLU masks) and the same backward kernels: logits identical; the
      // gradients differ only where a tensor read by three or more steps sums its gradients in another order
      // (float32 addition is not associative), a few roundings of 6e-8 relative: 1e-6 leaves room, 1e-4 is an error.
      assert.deepEqual(Array.from(logits.dataSync()), Array.from(plain.dataSync()), 'logits');
      assert.deepEqual(grad.shape, x.shape);
      assert.ok(relErr(grad, gTape) <= 1e-6, `input gradient: relative error ${relErr(grad, gTape)} > 1e-6`);
      exec.dispose();
      tf.dispose([gTape, logits, grad, plain]);
    });
    tf.dispose([x, labels]);
    model.dispose();
  });
}
