import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as tf from '@tensorflow/tfjs';
import { BLOCK_ACTIVATION_BYTES, blockRows } from '../../src/attacks/block-rows.js';
import type { ModelFn } from '../../src/attacks/types.js';

const sized = (bytes?: number): ModelFn => Object.assign((x: tf.Tensor4D) => x as unknown as tf.Tensor2D, { activationBytesPerRow: bytes });

test('blockRows: as many rows as the activation budget holds, never fewer than the points, the fallback when unsized', () => {
  // 112 KB per row (the quickstart CNN): 2,340 rows in 256 MB.
  assert.equal(blockRows(sized(114_688), 94, 128), Math.floor(BLOCK_ACTIVATION_BYTES / 114_688));
  // 23 MB per row (WRN-34-10): the budget holds 11 rows; the 94 points the caller batched still run together.
  assert.equal(blockRows(sized(23 * 2 ** 20), 94, 128), 94);
  assert.equal(blockRows(sized(undefined), 94, 128), 128);
  assert.equal(blockRows(sized(0), 94, 1024), 1024);
});
