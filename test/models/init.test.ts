import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { heavy } from '../helpers.js';
import { createModel, modelWeights, type ModelArch } from '../../src/models/index.js';
import { normalArray, uniformArray, uniformSource } from '../../src/models/rng.js';

const bits = (t: tf.Tensor): Uint32Array => new Uint32Array(Float32Array.from(t.dataSync()).buffer);
const sameBits = (a: Uint32Array, b: Uint32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

function moments(a: ArrayLike<number>): { mean: number; std: number; maxAbs: number } {
  let s = 0,
    s2 = 0,
    maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i]!;
    s2 += a[i]! ** 2;
    maxAbs = Math.max(maxAbs, Math.abs(a[i]!));
  }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(s2 / a.length - mean ** 2), maxAbs };
}

test('normalArray and uniformArray have the requested moments (sample of 200k)', () => {
  const n = 200_000;
  const g = moments(normalArray(n, 0.5, uniformSource(1)));
  assert.ok(Math.abs(g.mean) < 0.01 && Math.abs(g.std - 0.5) < 0.005, `normal: ${JSON.stringify(g)}`);
  const u = moments(uniformArray(n, 0.3, uniformSource(2)));
  // U(-b, b): mean 0, std b/sqrt(3), |x| < b.
  assert.ok(Math.abs(u.mean) < 0.01 && Math.abs(u.std - 0.3 / Math.sqrt(3)) < 0.002 && u.maxAbs < 0.3, `uniform: ${JSON.stringify(u)}`);
  assert.ok(sameBits(new Uint32Array(normalArray(9, 1, uniformSource(5)).buffer), new Uint32Array(normalArray(9, 1, uniformSource(5)).buffer)));
});

function assertSeeded(arch: ModelArch): void {
  const a = createModel({ arch, numClasses: 10, seed: 42 });
  const b = createModel({ arch, numClasses: 10, seed: 42 });
  const c = createModel({ arch, numClasses: 10, seed: 43 });
  const wa = modelWeights(a),
    wb = modelWeights(b),
    wc = modelWeights(c);
  wa.forEach((w, i) => {
    assert.ok(sameBits(bits(w.variable.read()), bits(wb[i]!.variable.read())), `${arch} ${w.name}: same seed, different values`);
    // Random weights must change with the seed; constants (BN, zero biases, normalisation) must not.
    const random = w.name.endsWith('/kernel') || (w.name === 'fc/bias' && !arch.startsWith('wrn'));
    const same = sameBits(bits(w.variable.read()), bits(wc[i]!.variable.read()));
    assert.equal(same, !random, `${arch} ${w.name}: seed 42 vs 43 ${same ? 'identical' : 'different'}`);
  });
  // tfjs initialisers reuse a seed per layer; ours must not: two same-shaped kernels differ.
  const kernels = wa.filter((w) => w.name.endsWith('/kernel'));
  for (let i = 1; i < kernels.length; i++) {
    const p = kernels[i - 1]!,
      q = kernels[i]!;
    if (p.variable.shape.join() === q.variable.shape.join()) {
      assert.ok(!sameBits(bits(p.variable.read()), bits(q.variable.read())), `${p.name} == ${q.name}`);
    }
  }
  [a, b, c].forEach((m) => m.dispose());
}

test('same seed gives bit-identical weights, another seed different random weights (small CNN, PreActResNet-18)', () => {
  const before = tf.memory().numTensors;
  assertSeeded('small-cnn');
  assertSeeded('preact-resnet-18');
  assert.equal(tf.memory().numTensors, before);
});

test('seeded init of the WRN-28-10 reproduces the reference distributions', heavy, () => {
  const model = createModel({ arch: 'wrn-28-10', numClasses: 10, seed: 7 });
  const byName = new Map(modelWeights(model).map((w) => [w.name, w.variable.read()]));
  // Kaiming-normal fan-out on a 3×3×640×640 kernel: std = sqrt(2 / (9·640)).
  const k = moments(byName.get('block3_1_conv2/kernel')!.dataSync());
  const want = Math.sqrt(2 / (9 * 640));
  assert.ok(Math.abs(k.mean) < 1e-4 && Math.abs(k.std / want - 1) < 0.005, `conv: ${JSON.stringify(k)} vs std ${want}`);
  // Linear: PyTorch default weight U(±1/sqrt(640)), zero bias.
  const fc = moments(byName.get('fc/kernel')!.dataSync());
  assert.ok(fc.maxAbs <= 1 / Math.sqrt(640) && Math.abs(fc.std / (1 / Math.sqrt(640 * 3)) - 1) < 0.05, `fc: ${JSON.stringify(fc)}`);
  assert.ok(
    byName
      .get('fc/bias')!
      .dataSync()
      .every((v) => v === 0),
  );
  assert.ok(
    byName
      .get('bn_final/gamma')!
      .dataSync()
      .every((v) => v === 1),
  );
  assert.ok(
    byName
      .get('bn_final/moving_variance')!
      .dataSync()
      .every((v) => v === 1),
  );
  model.dispose();
});

test('seeded init of the PreActResNet-18 uses PyTorch defaults U(±1/sqrt(fanIn))', () => {
  const model = createModel({ arch: 'preact-resnet-18', numClasses: 10, seed: 8 });
  const byName = new Map(modelWeights(model).map((w) => [w.name, w.variable.read()]));
  const bound = 1 / Math.sqrt(9 * 256); // layer4_0_conv1: 3×3×256→512
  const k = moments(byName.get('layer4_0_conv1/kernel')!.dataSync());
  assert.ok(k.maxAbs <= bound && Math.abs(k.std / (bound / Math.sqrt(3)) - 1) < 0.005, `conv: ${JSON.stringify(k)}`);
  const bias = byName.get('fc/bias')!.dataSync();
  assert.ok(bias.every((v) => Math.abs(v) <= 1 / Math.sqrt(512)) && bias.some((v) => v !== 0));
  model.dispose();
});
