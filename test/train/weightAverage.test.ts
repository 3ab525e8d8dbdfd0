import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak, assertClose } from '../helpers.js';
import { WeightAverage } from '../../src/train/weightAverage.js';

test('weight average follows θ_WA ← τ·θ_WA + (1−τ)·θ_e from θ_WA = θ_1', async () => {
  await noLeak(() => {
    const snapshots = [
      [1, 2, 3],
      [4, -2, 0],
      [10, 0, 1],
    ];
    const wa = new WeightAverage(0.9);
    const expected = snapshots[0]!.slice();
    snapshots.forEach((s, e) => {
      const w = tf.tensor1d(s);
      const bnStat = tf.scalar(e + 1); // a non-trainable statistic is averaged too
      wa.update([w, bnStat]);
      tf.dispose([w, bnStat]);
      if (e > 0) for (let i = 0; i < 3; i++) expected[i] = 0.9 * expected[i]! + 0.1 * s[i]!;
    });
    assertClose(wa.weights()[0]!.dataSync(), expected, 1e-6, 'θ_WA');
    assertClose(wa.weights()[1]!.dataSync(), [0.9 * (0.9 * 1 + 0.1 * 2) + 0.1 * 3], 1e-6, 'BN statistic');
    assert.equal(wa.count, 3);
    const state = wa.getState();
    const wb = new WeightAverage(0.9);
    wb.setState(state, wa.count);
    tf.dispose(state);
    const w = tf.tensor1d([0, 0, 0]);
    const s = tf.scalar(0);
    wa.update([w, s]);
    wb.update([w, s]);
    assert.deepEqual(Array.from(wb.weights()[0]!.dataSync()), Array.from(wa.weights()[0]!.dataSync()));
    tf.dispose([w, s]);
    wa.dispose();
    wb.dispose();
  });
});
