/**
 * The cost of the oneDNN workaround (src/onednn.ts): ms per forward + backward (trainingForward and its weight
 * gradients: a training step without the attack) and per inference forward + input gradient (one attack
 * iteration) with oneDNN on (the fast path) and off (the safe path of CPUs where oneDNN faults), each setting in
 * its own process (TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads).
 *   node dist/bench/onednn.js [--models preact-resnet-18,ResNet50] [--batch 32] [--steps 3]
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { createModel, inferenceModel, trainingForward, type ModelArch } from '../src/models/index.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const models = flag('models', 'preact-resnet-18,ResNet50').split(',') as ModelArch[];
const batch = Number(flag('batch', '32'));
const steps = Number(flag('steps', '3'));

if (process.argv.includes('--child')) {
  const info = await initBackend('tensorflow');
  const out: Record<string, { train: number; attack: number }> = {};
  for (const arch of models) {
    const model = createModel({ arch, numClasses: 10, seed: 1 });
    const inf = inferenceModel(model);
    const x = tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const train = (): void => {
      const { value, grads } = tf.variableGrads(() => trainingForward(model, x).square().mean() as tf.Scalar);
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    };
    const attack = (): void =>
      tf.tidy(
        () =>
          void tf
            .grad((v: tf.Tensor) => inf.fn(v as tf.Tensor4D).sum())(x)
            .dataSync(),
      );
    const time = (f: () => void): number => {
      f(); // warm-up: kernel selection, allocation
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) f();
      return (performance.now() - t0) / steps;
    };
    out[arch] = { train: time(train), attack: time(attack) };
    x.dispose();
    inf.dispose();
    model.dispose();
  }
  console.log(JSON.stringify({ env: process.env.TF_ENABLE_ONEDNN_OPTS, tf: info.tfVersion, out }));
} else {
  const run = (setting: 'on' | 'off') => {
    const env: NodeJS.ProcessEnv = { ...process.env, IKL_ONEDNN: setting };
    delete env.TF_ENABLE_ONEDNN_OPTS;
    const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--child', ...process.argv.slice(2)], {
      env,
      encoding: 'utf8',
      maxBuffer: 2 ** 24,
    });
    if (r.status !== 0) throw new Error(`${setting}: child failed (${r.signal ?? r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { env: string; tf: string; out: Record<string, { train: number; attack: number }> };
  };
  const on = run('on');
  const off = run('off');
  console.log(`TensorFlow ${on.tf}, batch ${batch}, ${steps} timed steps after one warm-up; TF_ENABLE_ONEDNN_OPTS=${on.env} vs ${off.env}`);
  console.log('model               | fwd+bwd oneDNN | fwd+bwd safe | ratio | attack iter oneDNN | attack iter safe | ratio');
  for (const arch of models) {
    const a = on.out[arch]!;
    const b = off.out[arch]!;
    console.log(
      `${arch.padEnd(19)} | ${a.train.toFixed(0).padStart(11)} ms | ${b.train.toFixed(0).padStart(9)} ms | ${(b.train / a.train).toFixed(2)}x | ${a.attack.toFixed(0).padStart(15)} ms | ${b.attack.toFixed(0).padStart(13)} ms | ${(b.attack / a.attack).toFixed(2)}x`,
    );
  }
}
