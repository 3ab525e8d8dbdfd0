import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak } from '../helpers.js';
import { ClassWeights, iklLoss, type ClassWeightsJSON } from '../../src/losses/index.js';
import { InputError } from '../../src/errors.js';
import { asFloat32, data, randomMatrix, softmax, type Matrix } from './reference.js';

const C = 5;

/** Per-class mean of softmax(z/T) over all given batches (float64); null for a class with no example. */
function classMeans(batches: Array<[Matrix, number[]]>, temperature: number): Array<number[] | null> {
  const sums = Array.from({ length: C }, () => Array(C).fill(0) as number[]);
  const counts = Array(C).fill(0) as number[];
  for (const [z, y] of batches) {
    z.forEach((row, b) => {
      const p = softmax(row.map((v) => v / temperature));
      p.forEach((v, j) => (sums[y[b]!]![j]! += v));
      counts[y[b]!]! += 1;
    });
  }
  return sums.map((row, c) => (counts[c]! > 0 ? row.map((v) => v / counts[c]!) : null));
}

function accumulateAll(weights: ClassWeights, batches: Array<[Matrix, number[]]>): void {
  for (const [z, y] of batches) {
    tf.tidy(() => weights.accumulate(tf.tensor2d(z), tf.tensor1d(y, 'int32')));
  }
}

// Class 3 never appears: it must keep its row.
const epoch1: Array<[Matrix, number[]]> = [
  [asFloat32(randomMatrix(6, C, 1, 3)), [0, 1, 2, 0, 4, 1]],
  [asFloat32(randomMatrix(4, C, 2, 3)), [2, 2, 0, 4]],
];
const epoch2: Array<[Matrix, number[]]> = [[asFloat32(randomMatrix(5, C, 3, 3)), [1, 0, 3, 3, 2]]];

test('ClassWeights starts uniform 1/C and gather returns rows of P', async () => {
  await noLeak(() => {
    const w = new ClassWeights(C);
    assertClose(w.matrix(), Array(C * C).fill(1 / C), 1e-7, 'initial P');
    tf.tidy(() => {
      const rows = w.gather(tf.tensor1d([4, 0, 4], 'int32'));
      assert.deepEqual(rows.shape, [3, C]);
      assertClose(data(rows), Array(3 * C).fill(1 / C), 1e-7, 'gathered rows');
    });
    assert.equal(w.temperature, 4);
    assert.equal(w.momentum, 1);
    w.dispose();
  });
});

test('ClassWeights.finalize gives the per-class mean of softmax(z/T); an unseen class keeps its row', async () => {
  await noLeak(() => {
    const w = new ClassWeights(C, { temperature: 2 });
    accumulateAll(w, epoch1);
    assertClose(w.matrix(), Array(C * C).fill(1 / C), 1e-7, 'P is unchanged before finalize');
    w.finalize();
    const means = classMeans(epoch1, 2);
    const expected = means.flatMap((row) => row ?? (Array(C).fill(1 / C) as number[]));
    assertClose(w.matrix(), expected, 1e-6, 'P after epoch 1');
    // The accumulator was reset: epoch 2 sees only its own batches; class 4 is unseen now and keeps its epoch-1 row.
    accumulateAll(w, epoch2);
    w.finalize();
    const means2 = classMeans(epoch2, 2);
    const expected2 = means2.flatMap((row, c) => row ?? expected.slice(c * C, (c + 1) * C));
    assertClose(w.matrix(), expected2, 1e-6, 'P after epoch 2');
    tf.tidy(() => {
      const rows = w.gather(tf.tensor1d([3, 1], 'int32'));
      const p = Array.from(w.matrix());
      assert.deepEqual(Array.from(data(rows)), [...p.slice(3 * C, 4 * C), ...p.slice(C, 2 * C)], 'gather after finalize');
    });
    w.dispose();
  });
});

test('ClassWeights momentum mixes m·P_new + (1 − m)·P_old; m = 0 never changes P', async () => {
  await noLeak(() => {
    const m = 0.3;
    const w = new ClassWeights(C, { temperature: 4, momentum: m });
    accumulateAll(w, epoch1);
    w.finalize();
    const means = classMeans(epoch1, 4);
    const p1 = means.flatMap((row) => (row ?? (Array(C).fill(1 / C) as number[])).map((v) => m * v + (1 - m) / C));
    // Unseen class 3: P_new row = old row, so the mixture is the old row.
    assertClose(w.matrix(), p1, 1e-6, 'P after one mixed epoch');
    accumulateAll(w, epoch2);
    w.finalize();
    const means2 = classMeans(epoch2, 4);
    const p2 = means2.flatMap((row, c) => {
      const old = p1.slice(c * C, (c + 1) * C);
      return row ? row.map((v, j) => m * v + (1 - m) * old[j]!) : old;
    });
    assertClose(w.matrix(), p2, 1e-6, 'P after two mixed epochs');
    w.dispose();

    const frozen = new ClassWeights(C, { momentum: 0 });
    accumulateAll(frozen, epoch1);
    frozen.finalize();
    assertClose(frozen.matrix(), Array(C * C).fill(1 / C), 1e-7, 'momentum 0');
    frozen.dispose();
  });
});

test('ClassWeights round-trips through JSON, also mid-epoch, and the resumed run continues identically', async () => {
  await noLeak(() => {
    const original = new ClassWeights(C, { temperature: 3, momentum: 0.8 });
    accumulateAll(original, epoch1);
    original.finalize();
    accumulateAll(
      original,
      epoch2.slice(0, 1).map(([z, y]) => [z.slice(0, 2), y.slice(0, 2)] as [Matrix, number[]]),
    );
    // Mid-epoch: P from epoch 1 plus a partial accumulator.
    const json = JSON.parse(JSON.stringify(original.toJSON())) as ClassWeightsJSON;
    assert.equal(
      json.counts.reduce((a, b) => a + b),
      2,
      'the partial accumulator is serialised',
    );
    const resumed = ClassWeights.fromJSON(json);
    assert.equal(resumed.temperature, 3);
    assert.equal(resumed.momentum, 0.8);
    assert.deepEqual(Array.from(resumed.matrix()), Array.from(original.matrix()));
    const rest: Array<[Matrix, number[]]> = [[epoch2[0]![0].slice(2), epoch2[0]![1].slice(2)]];
    for (const w of [original, resumed]) {
      accumulateAll(w, rest);
      w.finalize();
    }
    assert.deepEqual(Array.from(resumed.matrix()), Array.from(original.matrix()), 'same P after finishing the epoch');
    assert.deepEqual(resumed.toJSON(), original.toJSON());
    original.dispose();
    resumed.dispose();
  });
});

test('ClassWeights.fromJSON and the constructor reject malformed input with InputError', async () => {
  await noLeak(() => {
    const w = new ClassWeights(3);
    const good = w.toJSON();
    w.dispose();
    const src = 'checkpoint.json: classWeights';
    assert.throws(() => ClassWeights.fromJSON(null, src), /checkpoint\.json: classWeights: expected an object/);
    assert.throws(() => ClassWeights.fromJSON({ ...good, kind: 'x' }, src), /'kind'/);
    assert.throws(() => ClassWeights.fromJSON({ ...good, matrix: good.matrix.slice(1) }, src), /'matrix' must be an array of 9/);
    assert.throws(() => ClassWeights.fromJSON({ ...good, counts: [1, -1, 0] }, src), /'counts'/);
    assert.throws(() => ClassWeights.fromJSON({ ...good, temperature: 0 }, src), /field 'temperature'/);
    assert.throws(() => new ClassWeights(0), InputError);
    assert.throws(() => new ClassWeights(3, { momentum: 1.5 }), /momentum/);
    const live = new ClassWeights(3);
    assert.throws(() => tf.tidy(() => live.accumulate(tf.zeros([2, 4]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32'))), /3 columns/);
    assert.throws(() => tf.tidy(() => live.accumulate(tf.zeros([2, 3]) as tf.Tensor2D, tf.tensor1d([0, 1], 'float32'))), /int32/);
    live.dispose();
  });
});

test('ClassWeights.accumulate inside a gradient computation neither breaks nor changes the gradient', async () => {
  await noLeak(() => {
    const w = new ClassWeights(C);
    tf.tidy(() => {
      const nat = tf.tensor2d(randomMatrix(4, C, 7, 1));
      const adv = tf.tensor2d(randomMatrix(4, C, 8, 1));
      const labels = tf.tensor1d([0, 1, 1, 3], 'int32');
      const prior = w.gather(labels);
      const loss = (x: tf.Tensor) => iklLoss(x as tf.Tensor2D, adv, { alpha: 1, beta: 6, classPrior: prior });
      const plain = data(tf.grad(loss)(nat));
      const withAccumulate = data(
        tf.grad((x) => {
          w.accumulate(x as tf.Tensor2D, labels);
          return loss(x);
        })(nat),
      );
      assertClose(withAccumulate, plain, 0, 'gradient');
    });
    w.finalize();
    const m = w.matrix();
    assert.ok(Math.abs(m[C]! - 1 / C) > 1e-4, 'class 1 row was updated by the accumulation');
    w.dispose();
  });
});
