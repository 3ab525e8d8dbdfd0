import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak } from '../helpers.js';
import { crossEntropy, cwMarginLoss, dlrLoss, dlrTargetedLoss } from '../../src/losses/index.js';
import { InputError } from '../../src/errors.js';
import { data, flat, randomMatrix, softmax, tfFiniteDiff } from './reference.js';

const lse = (z: number[]) => Math.log(z.reduce((acc, v) => acc + Math.exp(v), 0));

test('crossEntropy with and without label smoothing equals the hand-computed value and gradient', async () => {
  await noLeak(() => {
    const z = [
      [1, 2, 3],
      [0.5, -1, 2],
    ];
    const y = [0, 2];
    const eps = 0.1;
    // PyTorch: (1 − ε)·(−log p_y) + (ε/C)·Σ_j (−log p_j).
    const plain = z.map((row, b) => lse(row) - row[y[b]!]!);
    const smooth = z.map((row, b) => (1 - eps) * plain[b]! + (eps / 3) * row.reduce((acc, v) => acc + lse(row) - v, 0));
    tf.tidy(() => {
      const logits = tf.tensor2d(z);
      const labels = tf.tensor1d(y, 'int32');
      assertClose(data(crossEntropy(logits, labels, { reduction: 'none' })), plain, 1e-6, 'CE');
      assertClose(data(crossEntropy(logits, labels, { labelSmoothing: eps, reduction: 'none' })), smooth, 1e-6, 'CE, smoothing');
      assertClose(data(crossEntropy(logits, labels)), [(plain[0]! + plain[1]!) / 2], 1e-6, 'CE, mean');
      // ∂/∂z of the mean = (softmax(z) − target)/B.
      const g = tf.grad((x) => crossEntropy(x as tf.Tensor2D, labels, { labelSmoothing: eps }))(logits);
      const expected = z.flatMap((row, b) => softmax(row).map((p, j) => (p - ((j === y[b] ? 1 - eps : 0) + eps / 3)) / 2));
      assertClose(data(g), expected, 1e-6, 'CE gradient');
    });
  });
});

test('cwMarginLoss is max_{j≠y} z_j − z_y, with gradient +1 at the runner-up and −1 at the label', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      const logits = tf.tensor2d([
        [1, 5, 3],
        [4, 2, 7],
      ]);
      const labels = tf.tensor1d([1, 0], 'int32');
      assert.deepEqual(Array.from(data(cwMarginLoss(logits, labels, { reduction: 'none' }))), [-2, 3]);
      assert.deepEqual(Array.from(data(cwMarginLoss(logits, labels, { reduction: 'sum' }))), [1]);
      const g = tf.grad((x) => cwMarginLoss(x as tf.Tensor2D, labels, { reduction: 'sum' }))(logits);
      assert.deepEqual(Array.from(data(g)), [0, -1, 1, -1, 0, 1]);
    });
  });
});

test('dlrLoss and dlrTargetedLoss equal hand-computed values', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      const logits = tf.tensor2d([
        [2, 1, 0.5, -1],
        [2, 1, 0.5, -1],
        [-1, 0.5, 2, 1],
      ]);
      const labels = tf.tensor1d([0, 2, 2], 'int32');
      // Row 0: −(2 − 1)/(2 − 0.5); row 1: −(0.5 − 2)/(2 − 0.5); row 2 is row 0 permuted.
      assertClose(data(dlrLoss(logits, labels, { reduction: 'none' })), [-1 / 1.5, 1.5 / 1.5, -1 / 1.5], 1e-6, 'DLR');
      const targets = tf.tensor1d([3, 0, 0], 'int32');
      // −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2): row 0 −(2 + 1)/(2 + 0.25); row 1 −(0.5 − 2)/2.25; row 2 −(2 + 1)/2.25.
      assertClose(data(dlrTargetedLoss(logits, labels, targets, { reduction: 'none' })), [-3 / 2.25, 1.5 / 2.25, -3 / 2.25], 1e-6, 'DLR-T');
    });
  });
});

test('DLR, DLR-T, CW and CE gradients match finite differences of the tf losses', async () => {
  await noLeak(() => {
    // Distinct, well-separated logits: the losses are smooth there (no ties in the ranking within ±h).
    const z = [
      [3.1, -0.4, 1.7, 0.2, -2.3],
      [-1.2, 2.4, 0.9, 4.0, -0.1],
      [0.3, -2.9, 1.1, -0.6, 2.2],
    ];
    tf.tidy(() => {
      const logits = tf.tensor2d(z);
      const labels = tf.tensor1d([0, 1, 4], 'int32');
      const targets = tf.tensor1d([2, 3, 0], 'int32');
      const losses: Array<[string, (x: tf.Tensor2D) => tf.Scalar]> = [
        ['dlr', (x) => dlrLoss(x, labels)],
        ['dlr-t', (x) => dlrTargetedLoss(x, labels, targets)],
        ['cw', (x) => cwMarginLoss(x, labels)],
        ['ce', (x) => crossEntropy(x, labels, { labelSmoothing: 0.2 })],
      ];
      for (const [name, f] of losses) {
        const g = data(tf.grad((x) => f(x as tf.Tensor2D))(logits));
        assertClose(g, flat(tfFiniteDiff(f, z, 1e-2)), 2e-3, `${name} gradient`);
        assert.ok(
          g.some((v) => Math.abs(v) > 1e-2),
          `${name} gradient is not trivially zero`,
        );
      }
    });
  });
});

test('margin losses stay finite for logits of magnitude 1e4 and B = 1', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      for (const rows of [4, 1]) {
        const logits = tf.tensor2d(randomMatrix(rows, 10, 90 + rows, 1e4));
        const labels = tf.tensor1d(
          Array.from({ length: rows }, (_, i) => (i * 3) % 10),
          'int32',
        );
        const targets = tf.tensor1d(
          Array.from({ length: rows }, (_, i) => (i * 3 + 1) % 10),
          'int32',
        );
        for (const f of [
          (x: tf.Tensor2D) => crossEntropy(x, labels, { labelSmoothing: 0.1 }),
          (x: tf.Tensor2D) => cwMarginLoss(x, labels),
          (x: tf.Tensor2D) => dlrLoss(x, labels),
          (x: tf.Tensor2D) => dlrTargetedLoss(x, labels, targets),
        ]) {
          assert.ok(data(f(logits)).every(Number.isFinite));
          assert.ok(data(tf.grad((x) => f(x as tf.Tensor2D))(logits)).every(Number.isFinite));
        }
      }
    });
  });
});

test('margin and CE losses reject bad labels and too few classes with InputError', async () => {
  await noLeak(() => {
    tf.tidy(() => {
      const logits = tf.zeros([2, 3]) as tf.Tensor2D;
      assert.throws(() => crossEntropy(logits, tf.tensor1d([0, 1], 'float32')), /int32/);
      assert.throws(() => crossEntropy(logits, tf.tensor1d([0, 1, 2], 'int32')), /3 entries/);
      assert.throws(() => crossEntropy(logits, tf.tensor1d([0, 1], 'int32'), { labelSmoothing: 1.5 }), /labelSmoothing/);
      assert.throws(() => dlrTargetedLoss(logits, tf.tensor1d([0, 1], 'int32'), tf.tensor1d([1, 2], 'int32')), /at least 4 classes/);
      assert.throws(() => dlrLoss(tf.zeros([2, 2]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32')), InputError);
    });
  });
});
