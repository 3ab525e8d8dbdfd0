/** Running an attack on the examples still robust: pick rows, attack them, write the results back. */
import * as tf from '@tensorflow/tfjs';
import { correctMask } from './grad.js';
import type { ModelFn } from './types.js';

/** Positions i where flags[i] equals value. */
export function indicesWhere(flags: ArrayLike<number>, value: 0 | 1): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < flags.length; i++) if ((flags[i] ? 1 : 0) === value) out.push(i);
  return Int32Array.from(out);
}

/** Rows idx of t (the caller owns the result). */
export function gatherRows<T extends tf.Tensor>(t: T, idx: Int32Array): T {
  return tf.tidy(() => tf.gather(t, tf.tensor1d(idx, 'int32')) as T);
}

/** A copy of full with full[idx[k]] = rows[k] (only gather and where, which every backend has). */
export function scatterRows<T extends tf.Tensor>(full: T, idx: Int32Array, rows: T): T {
  return tf.tidy(() => {
    const n = full.shape[0]!;
    if (idx.length === 0) return tf.clone(full);
    const pos = new Int32Array(n);
    const write = new Uint8Array(n);
    idx.forEach((row, k) => {
      pos[row] = k;
      write[row] = 1;
    });
    const spread = tf.gather(rows, tf.tensor1d(pos, 'int32'));
    const mask = tf.tensor1d(write, 'bool').reshape([n, ...new Array<number>(full.rank - 1).fill(1)]);
    return tf.where(mask, spread, full) as T;
  });
}

/** 1 where argmax(model(x)) = y: the one re-evaluation every sequencer decision rests on. */
export async function predictCorrect(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D): Promise<Uint8Array> {
  const t = tf.tidy(() => tf.cast(correctMask(model(x), y), 'int32'));
  const out = Uint8Array.from(await t.data());
  t.dispose();
  return out;
}
