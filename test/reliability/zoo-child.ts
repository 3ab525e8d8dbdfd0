/**
 * Child of onednn.test.ts: every zoo architecture (or those in argv) forward and backward on the native backend,
 * through the executors training and evaluation use (trainingForward with its weight gradients, inferenceModel
 * with its input gradient: the attacks' path). Prints "ok <arch>" after each, so a signal death names the
 * architecture that died.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { createModel, inferenceModel, MODEL_ARCHS, trainingForward, type ModelArch } from '../../src/models/index.js';

await initBackend('tensorflow');
const archs = (process.argv.length > 2 ? process.argv.slice(2) : [...MODEL_ARCHS]) as ModelArch[];
for (const arch of archs) {
  console.log(`start ${arch}`);
  const model = createModel({ arch, numClasses: 10, seed: 1 });
  const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const { value, grads } = tf.variableGrads(() => trainingForward(model, x).square().mean() as tf.Scalar);
  const g = Object.values(grads);
  if (!Number.isFinite(value.dataSync()[0]!) || g.length === 0) throw new Error(`${arch}: no training loss or gradients`);
  tf.dispose([value, ...g]);
  const inf = inferenceModel(model);
  const dx = tf.grad((v: tf.Tensor) => inf.fn(v as tf.Tensor4D).sum())(x);
  dx.dataSync();
  tf.dispose([dx, x]);
  inf.dispose();
  model.dispose();
  console.log(`ok ${arch}`);
}
