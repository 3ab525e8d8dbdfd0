/**
 * Time of one knowledge-distillation training step (teacher forward in inference mode, student forward and
 * backward, SGD update) and the CIFAR-100 epoch it implies (50,000 images), from a CIFAR-100 preset.
 *   node dist/bench/kd-step.js [--config configs/kd/res32x4-res8x4.yaml] [--batch 64] [--steps 5]
 *                              [--objectives ikl-kd,kd,dkd]
 * Random CIFAR-100-shaped data and freshly initialised teacher weights (speed does not depend on them); the
 * per-epoch figure excludes the end-of-epoch evaluation. One warm-up step per setting is not timed.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { resolveConfig } from '../src/config/index.js';
import { createModel } from '../src/models/index.js';
import { createTrainer, disposeTrainer, trainStep } from '../src/train/step.js';
import { teacherLogits } from '../src/train/teacher.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const file = flag('config', 'configs/kd/res32x4-res8x4.yaml');
const batch = Number(flag('batch', '64'));
const steps = Number(flag('steps', '5'));
const objectives = flag('objectives', 'ikl-kd').split(',');
const TRAIN_IMAGES = 50_000;

const info = await initBackend();
console.log(`backend ${info.name} (${info.package}, TF ${info.tfVersion}), devices ${info.devices.join(', ')}`);

for (const type of objectives) {
  const config = resolveConfig({ file, sets: [`objective.type=${type}`, `data.batchSize=${batch}`] });
  const teacherArch = config.teacher.arch ?? 'resnet32x4';
  const t = createTrainer(config);
  const teacher = createModel({ arch: teacherArch, numClasses: config.model.numClasses, seed: 1 });
  teacher.trainable = false;
  t.teacher = { model: teacher, arch: teacherArch, source: 'random weights', weightsSha256: '' };
  const x = tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % config.model.numClasses),
    'int32',
  );
  const params = { lr: 0.05, epsilon: 0, stepSize: 0, awp: false, seed: 0, kdWarmup: 1 };
  trainStep(t, x, y, params);
  const before = tf.memory().numTensors;
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) trainStep(t, x, y, { ...params, seed: s + 1 });
  const sec = (performance.now() - t0) / 1000 / steps;
  const leak = tf.memory().numTensors - before;
  const t1 = performance.now();
  for (let s = 0; s < steps; s++) teacherLogits(teacher, x).dispose();
  const teacherSec = (performance.now() - t1) / 1000 / steps;
  const epochSteps = Math.ceil(TRAIN_IMAGES / batch);
  console.log(
    `${teacherArch} -> ${config.model.arch} ${type} batch ${batch}: ${sec.toFixed(3)} s/step, ${(batch / sec).toPrecision(3)} images/s, ` +
      `CIFAR-100 epoch (${epochSteps} steps) ≈ ${((epochSteps * sec) / 60).toFixed(1)} min; teacher forward alone ${teacherSec.toFixed(3)} s${leak !== 0 ? `, TENSOR LEAK ${leak}` : ''}`,
  );
  tf.dispose([x, y]);
  disposeTrainer(t);
}
