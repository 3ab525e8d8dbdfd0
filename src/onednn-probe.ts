/**
 * Child process of onednn.ts: loads the native backend named by argv[2] with oneDNN on and runs the convolutions
 * known to kill oneDNN on some AVX-512 CPUs (1×1, 256→1024 on 8×8, ResNet-50's bottleneck shapes), forward and
 * both gradients, plus a 3×3 one. Prints the TensorFlow version and exits 0 if it survives; a fault kills it with
 * a signal, which the parent reads. IKL_ONEDNN_PROBE_SIMULATE=signal makes it die of SIGFPE once the backend is
 * loaded (the tests' stand-in for such a CPU).
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';

const require = createRequire(import.meta.url);
require(process.argv[2] ?? '@tensorflow/tfjs-node');
await tf.setBackend('tensorflow');
if (process.env.IKL_ONEDNN_PROBE_SIMULATE === 'signal') process.kill(process.pid, 'SIGFPE');

// [batch, size, in, out, kernel]
const SHAPES: [number, number, number, number, number][] = [
  [1, 8, 256, 1024, 1],
  [32, 8, 256, 512, 1],
  [32, 8, 128, 1024, 1],
  [2, 8, 1024, 256, 1],
  [2, 16, 64, 256, 1],
  [2, 4, 2048, 512, 1],
  [2, 8, 64, 64, 3],
];
for (const [n, s, ci, co, k] of SHAPES) {
  tf.tidy(() => {
    const x = tf.randomUniform([n, s, s, ci]) as tf.Tensor4D;
    const w = tf.randomUniform([k, k, ci, co]) as tf.Tensor4D;
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'valid').sum();
    const [dx, dw] = tf.grads(f)([x, w]);
    tf.conv2d(x, w, 1, 'valid').dataSync();
    dx!.dataSync();
    dw!.dataSync();
  });
}
const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
console.log(`tensorflow ${binding?.TF_Version ?? 'unknown'}`);
