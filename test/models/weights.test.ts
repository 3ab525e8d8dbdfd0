import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak, rng, randomImages } from '../helpers.js';
import {
  NORMALIZATION_LAYER,
  addToWeights,
  cloneModel,
  copyWeights,
  countParams,
  createModel,
  forward,
  modelWeights,
  perturbableKernels,
  restoreWeights,
  snapshotWeights,
} from '../../src/models/index.js';

const bits = (t: tf.Tensor): Uint32Array => new Uint32Array(Float32Array.from(t.dataSync()).buffer);
const sameBits = (a: Uint32Array, b: Uint32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

test('modelWeights: every weight once, stable unique names, running statistics included and non-trainable', () => {
  const a = createModel({ arch: 'small-cnn', numClasses: 10, seed: 1 });
  const b = createModel({ arch: 'small-cnn', numClasses: 10, seed: 2 });
  const wa = modelWeights(a);
  assert.deepEqual(
    wa.map((w) => w.name),
    modelWeights(b).map((w) => w.name),
    'names must not depend on build order',
  );
  assert.equal(new Set(wa.map((w) => w.name)).size, wa.length);
  assert.equal(wa.length, a.weights.length);
  assert.ok(wa.every((w, i) => w.variable === a.weights[i]));
  const stats = wa.filter((w) => /moving_(mean|variance)$/.test(w.name));
  assert.equal(stats.length, 6);
  assert.ok(stats.every((w) => !w.trainable));
  const trainable = wa.filter((w) => w.trainable).reduce((s, w) => s + w.variable.shape.reduce<number>((p, d) => p * (d ?? 1), 1), 0);
  assert.equal(trainable, countParams(a));
  a.dispose();
  b.dispose();
});

test('perturbableKernels: exactly the conv and dense kernels', () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 1 });
  assert.deepEqual(
    perturbableKernels(model).map((w) => w.name),
    ['conv1/kernel', 'conv2/kernel', 'conv3/kernel', 'fc/kernel'],
  );
  model.dispose();
});

test('perturbableKernels of the Swish WRN skips the frozen input normalisation', heavy, () => {
  const model = createModel({ arch: 'wrn-28-10-swish', numClasses: 10, seed: 1 });
  const kernels = perturbableKernels(model);
  assert.ok(!kernels.some((w) => w.name.startsWith(NORMALIZATION_LAYER)));
  const convAndDense = model.layers.filter((l) => l.getClassName() === 'Conv2D' || l.getClassName() === 'Dense').length;
  assert.equal(kernels.length, convAndDense);
  model.dispose();
});

test('snapshot → perturb → train-mode forward → restore gives bit-identical weights and logits', async () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 21 });
  const x = randomImages(4, 1);
  await noLeak(() => {
    const logits0 = forward(model, x, { training: false });
    const snapshot = snapshotWeights(model);
    const original = model.weights.map((v) => bits(v.read()));
    assert.equal(snapshot.length, model.weights.length);

    // Perturb the kernels: w ← w + 0.5·delta, checked against float32 arithmetic done here.
    const kernels = perturbableKernels(model);
    const r = rng(3);
    const deltas = kernels.map((k) =>
      tf.tensor(
        Float32Array.from({ length: k.variable.read().size }, () => r() - 0.5),
        k.variable.shape as number[],
      ),
    );
    const kernelValues = kernels.map((k) => Float32Array.from(k.variable.read().dataSync()));
    addToWeights(kernels, deltas, 0.5);
    kernels.forEach((k, i) => {
      const d = deltas[i]!.dataSync();
      const want = kernelValues[i]!.map((w, j) => Math.fround(w + Math.fround(0.5 * d[j]!)));
      assert.ok(sameBits(bits(k.variable.read()), new Uint32Array(want.buffer)), `${k.name} perturbation`);
    });
    // BN parameters are not kernels: untouched.
    model.weights.forEach((v, i) => {
      if (v.shape.length < 2) assert.ok(sameBits(bits(v.read()), original[i]!), `${v.originalName} should not move`);
    });
    // Undoing by subtraction is not what AWP should rely on; the snapshot restore is exact.
    tf.dispose(forward(model, x, { training: true })); // also moves the running statistics
    restoreWeights(model, snapshot);
    model.weights.forEach((v, i) => assert.ok(sameBits(bits(v.read()), original[i]!), `${v.originalName} not restored`));
    const logits1 = forward(model, x, { training: false });
    assert.ok(sameBits(bits(logits1), bits(logits0)));

    // The snapshot survives being restored from: perturb again and restore a second time.
    addToWeights(
      kernels.map((k) => k.variable),
      deltas,
      -2,
    );
    restoreWeights(model, snapshot);
    model.weights.forEach((v, i) => assert.ok(sameBits(bits(v.read()), original[i]!), `${v.originalName} second restore`));
    tf.dispose([...snapshot, ...deltas, logits0, logits1]);
  });
  // Weights must stay valid after the snapshot tensors were disposed.
  assert.ok(Array.from(model.weights[0]!.read().dataSync()).every(Number.isFinite));
  x.dispose();
  model.dispose();
});

test('snapshotWeights is a copy: changing the model does not change the snapshot', async () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 22 });
  await noLeak(() => {
    const snapshot = snapshotWeights(model);
    const before = snapshot.map(bits);
    const kernels = perturbableKernels(model);
    const ones = kernels.map((k) => tf.onesLike(k.variable.read()));
    addToWeights(kernels, ones, 1);
    snapshot.forEach((s, i) => assert.ok(sameBits(bits(s), before[i]!)));
    restoreWeights(model, snapshot);
    tf.dispose([...snapshot, ...ones]);
  });
  model.dispose();
});

test('restoreWeights and addToWeights reject mismatched lists', () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 23 });
  const snapshot = snapshotWeights(model);
  assert.throws(() => restoreWeights(model, snapshot.slice(1)), /snapshot has/);
  assert.throws(() => addToWeights(perturbableKernels(model), snapshot.slice(0, 1)), /deltas/);
  tf.dispose(snapshot);
  model.dispose();
});

test('cloneModel is an independent copy; copyWeights makes two models equal', async () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 24 });
  const x = randomImages(2, 4);
  tf.dispose(forward(model, x, { training: true })); // non-trivial running statistics
  await noLeak(async () => {
    const original = model.weights.map((v) => bits(v.read()));
    const clone = await cloneModel(model);
    const names = modelWeights(model).map((w) => w.name);
    assert.deepEqual(
      modelWeights(clone).map((w) => w.name),
      names,
    );
    clone.weights.forEach((v, i) => assert.ok(sameBits(bits(v.read()), original[i]!), `clone ${names[i]}`));
    // Train-mode pass and perturbation of the clone (an AWP proxy) must not reach the original.
    const kernels = perturbableKernels(clone);
    const ones = kernels.map((k) => tf.onesLike(k.variable.read()));
    addToWeights(kernels, ones, 0.1);
    tf.dispose(forward(clone, x, { training: true }));
    model.weights.forEach((v, i) => assert.ok(sameBits(bits(v.read()), original[i]!), `original ${names[i]} changed`));
    // copyWeights brings the clone's state into the original, then both evolve independently again.
    copyWeights(clone, model);
    const cloned = clone.weights.map((v) => bits(v.read()));
    model.weights.forEach((v, i) => assert.ok(sameBits(bits(v.read()), cloned[i]!), `copy ${names[i]}`));
    addToWeights(perturbableKernels(model), ones, 1);
    clone.weights.forEach((v, i) => assert.ok(sameBits(bits(v.read()), cloned[i]!), `clone ${names[i]} moved with the original`));
    tf.dispose(ones);
    clone.dispose();
  });
  x.dispose();
  model.dispose();
});
