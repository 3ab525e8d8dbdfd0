import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak } from '../helpers.js';
import { batches } from '../../src/data/batches.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import { loadDataset } from '../../src/data/load.js';
import { InputError } from '../../src/errors.js';

describe('synthetic dataset', () => {
  it('is CIFAR-shaped and deterministic from the seed', async () => {
    const a = makeSynthetic({ nTrain: 200, nTest: 50, seed: 4 });
    assert.deepEqual([a.train.n, a.train.height, a.train.width, a.train.channels, a.train.numClasses], [200, 32, 32, 3, 10]);
    assert.equal(a.train.images.length, 200 * 3072);
    assert.equal(a.test.n, 50);
    const b = makeSynthetic({ nTrain: 200, nTest: 50, seed: 4 });
    assert.deepEqual(a.train.images, b.train.images);
    assert.deepEqual(a.test.labels, b.test.labels);
    const c = makeSynthetic({ nTrain: 200, nTest: 50, seed: 5 });
    assert.notDeepEqual(c.train.images, a.train.images);
    // the same through loadDataset
    const viaLoad = await loadDataset('synthetic', { synthetic: { nTrain: 200, nTest: 50, seed: 4 } });
    assert.deepEqual(viaLoad.train.images, a.train.images);
  });

  it('is class-balanced, prefix-stable, and train differs from test', () => {
    const { train, test } = makeSynthetic({ nTrain: 1000, nTest: 95, seed: 0 });
    const counts = new Array<number>(10).fill(0);
    for (const l of train.labels) counts[l]!++;
    assert.deepEqual(counts, new Array(10).fill(100));
    const tc = new Array<number>(10).fill(0);
    for (const l of test.labels) tc[l]!++;
    assert.ok(Math.max(...tc) - Math.min(...tc) <= 1, `test counts ${tc}`);
    const small = makeSynthetic({ nTrain: 300, nTest: 0, seed: 0 });
    assert.deepEqual(small.train.images, train.images.subarray(0, 300 * 3072));
    assert.deepEqual(small.train.labels, train.labels.subarray(0, 300));
    assert.notDeepEqual(test.images.subarray(0, 3072), train.images.subarray(0, 3072));
  });

  it('images carry class structure: a nearest-class-mean rule on edge statistics beats chance, yet pixels vary', (t) => {
    // A very weak, independent learner: per-image horizontal and vertical gradient energy profiles. If the classes
    // were indistinguishable (e.g. a labelling bug), this would stay at chance (10%).
    const { train, test } = makeSynthetic({ nTrain: 2000, nTest: 500, seed: 1 });
    const feat = (imgs: Uint8Array, i: number) => {
      const f = new Float64Array(4);
      for (let y = 0; y < 31; y++) {
        for (let x = 0; x < 31; x++) {
          let gx = 0,
            gy = 0,
            gxx = 0;
          for (let c = 0; c < 3; c++) {
            const o = i * 3072 + (y * 32 + x) * 3 + c;
            gx += Math.abs(imgs[o]! - imgs[o + 3]!);
            gy += Math.abs(imgs[o]! - imgs[o + 96]!);
            gxx += x < 30 ? Math.abs(imgs[o]! - imgs[o + 6]!) : 0;
          }
          f[0]! += gx;
          f[1]! += gy;
          f[2]! += gxx;
          f[3]! += Math.abs(gx - gy);
        }
      }
      const s = f[0]! + f[1]! + 1e-9;
      return [f[0]! / s, f[2]! / (f[0]! + 1e-9), f[3]! / s];
    };
    const means = Array.from({ length: 10 }, () => [0, 0, 0]);
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < train.n; i++) {
      const f = feat(train.images, i);
      const m = means[train.labels[i]!]!;
      f.forEach((v, k) => (m[k]! += v));
      counts[train.labels[i]!]!++;
    }
    means.forEach((m, c) => m.forEach((_, k) => (m[k]! /= counts[c]!)));
    let correct = 0;
    for (let i = 0; i < test.n; i++) {
      const f = feat(test.images, i);
      let best = 0,
        bestD = Infinity;
      means.forEach((m, c) => {
        const d = m.reduce((a, v, k) => a + (v - f[k]!) ** 2, 0);
        if (d < bestD) {
          bestD = d;
          best = c;
        }
      });
      if (best === test.labels[i]) correct++;
    }
    const acc = correct / test.n;
    t.diagnostic(`nearest-class-mean accuracy on edge statistics: ${acc}`);
    assert.ok(acc > 0.2, `nearest-mean accuracy ${acc} is at chance`);
    assert.ok(acc < 0.95, `nearest-mean accuracy ${acc}: the set is trivially separable`);
    // pixel statistics are not degenerate
    let min = 255,
      max = 0;
    for (const v of train.images) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    assert.equal(min, 0);
    assert.equal(max, 255);
  });

  it('a small CNN learns it well above chance within a few hundred steps, but not perfectly', heavy, async (t) => {
    const { train, test } = makeSynthetic({ nTrain: 2000, nTest: 400, seed: 2 });
    const steps = 200;
    const correct = await noLeak(() => {
      const model = tf.sequential();
      [16, 32, 64].forEach((filters, i) => {
        model.add(
          tf.layers.conv2d({
            ...(i === 0 ? { inputShape: [32, 32, 3] } : {}),
            filters,
            kernelSize: 3,
            strides: i === 0 ? 1 : 2,
            padding: 'same',
            useBias: false,
            kernelInitializer: tf.initializers.heNormal({ seed: 10 + i }),
          }),
        );
        model.add(tf.layers.batchNormalization({ momentum: 0.9 }));
        model.add(tf.layers.reLU());
      });
      model.add(tf.layers.globalAveragePooling2d({}));
      model.add(tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 20 }) }));
      const optimizer = tf.train.adam(3e-3);
      let step = 0;
      for (let epoch = 0; step < steps; epoch++) {
        for (const b of batches(train, { batchSize: 64, shuffle: true, augment: true, seed: 0, epoch })) {
          optimizer.minimize(() => tf.losses.softmaxCrossEntropy(tf.oneHot(b.y, 10), model.apply(b.x, { training: true }) as tf.Tensor2D) as tf.Scalar);
          tf.dispose([b.x, b.y]);
          if (++step === steps) break;
        }
      }
      let n = 0;
      for (const b of batches(test, { batchSize: 200, shuffle: false, augment: false })) {
        n += tf.tidy(() => (model.predict(b.x) as tf.Tensor2D).argMax(1).equal(b.y).sum().arraySync() as number);
        tf.dispose([b.x, b.y]);
      }
      optimizer.dispose();
      model.dispose();
      return n;
    });
    const acc = correct / test.n;
    t.diagnostic(`small CNN, ${steps} Adam steps: synthetic test accuracy ${acc}`);
    assert.ok(acc > 0.5, `test accuracy ${acc} after ${steps} steps: the classes are not learnable`);
    assert.ok(acc < 0.995, `test accuracy ${acc}: the set is trivially separable`);
  });

  it('rejects bad sizes with InputError naming the field', () => {
    assert.throws(
      () => makeSynthetic({ nTrain: 0, nTest: 1, seed: 0 }),
      (e: Error) => e instanceof InputError && /synthetic\.nTrain/.test(e.message),
    );
    assert.throws(() => makeSynthetic({ nTrain: 10, nTest: 1.5, seed: 0 }), /synthetic\.nTest/);
  });
});
