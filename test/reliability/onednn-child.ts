/**
 * Child of onednn.test.ts: loads the native backend through initBackend (so onednn.ts decides oneDNN on or off
 * from the environment the test gives) and prints, as JSON, that decision, the TF_ENABLE_ONEDNN_OPTS it set, and
 * the outputs and gradients of the convolutions the oneDNN fault hits (1×1 256→1024 on 8×8, a bottleneck's 1×1
 * and a 3×3) on fixed inputs.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';

const info = await initBackend('tensorflow');
const fixed = (shape: number[], seed: number): tf.Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  let a = seed;
  // Values k/64 - 0.5 from a small LCG: exact in float32, the same in every process.
  return tf.tensor(
    Float32Array.from({ length: n }, () => ((a = (a * 1103515245 + 12345) % 2 ** 31) % 64) / 64 - 0.5),
    shape,
  );
};
const results: Record<string, number[]> = {};
for (const [n, s, ci, co, k] of [
  [1, 8, 256, 1024, 1],
  [2, 8, 1024, 256, 1],
  [2, 8, 16, 16, 3],
] as const) {
  tf.tidy(() => {
    const x = fixed([n, s, s, ci], 1) as tf.Tensor4D;
    const w = fixed([k, k, ci, co], 2).mul(0.1) as tf.Tensor4D;
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf
        .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')
        .square()
        .sum(),
    )([x, w]);
    const key = `${n}x${s}x${s}x${ci}->${co} k${k}`;
    results[`${key} y`] = [...tf.conv2d(x, w, 1, 'same').dataSync()];
    results[`${key} dx`] = [...dx!.dataSync()];
    results[`${key} dw`] = [...dw!.dataSync()];
  });
}
console.log(JSON.stringify({ env: process.env.TF_ENABLE_ONEDNN_OPTS, decision: info.oneDnn, results }));
