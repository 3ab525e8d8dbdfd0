/**
 * Data parallelism on one machine: throughput of N tasks × T/N threads (TensorFlow collective ops over 127.0.0.1)
 * against 1 process × T threads, same global batch, and the all-reduce's MB/s.
 *   node dist/bench/collective.js [--models small-cnn,preact-resnet-18] [--batch 32,128] [--steps 10,2]
 *                                 [--tasks 2] [--threads 2] [--mb 44]
 * The step is the quickstart's IKL-AT step (2 attack steps, AWP on, class weights) on random images; one warm-up
 * step is not timed (the first collective also resolves the group). Each setting runs in fresh processes (the
 * collective runtime is enabled once per process). Figures are images/s of the global batch.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { createCollective } from '../src/collective/index.js';
import { parseConfig } from '../src/config/index.js';
import { createTrainer, disposeTrainer, trainStep } from '../src/train/step.js';
import { freePorts } from '../src/cli/launch.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const SELF = fileURLToPath(import.meta.url);

/** One process of a measurement: prints a JSON line (rank 0, or the single process). */
async function child(mode: string): Promise<void> {
  await initBackend('tensorflow');
  const collective = createCollective({ timeoutSeconds: 600 });
  if (mode === 'allreduce') {
    const mb = Number(flag('mb', '44'));
    const x = tf.randomNormal([Math.round((mb * 1e6) / 4)]);
    const reps = 5;
    tf.dispose(collective.allReduce([x], 'sum'));
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const [y] = collective.allReduce([x], 'sum');
      y!.dataSync();
      y!.dispose();
    }
    const s = (performance.now() - t0) / 1000;
    if (collective.rank === 0) console.log(JSON.stringify({ mode, mb, seconds: s / reps, mbPerSecond: (mb * reps) / s }));
    process.exit(0);
  }
  const arch = flag('model', 'small-cnn');
  const batch = Number(flag('batch', '32'));
  const steps = Number(flag('steps', '10'));
  const config = parseConfig(
    {
      data: { dataset: 'synthetic', batchSize: batch },
      model: { arch, numClasses: 10 },
      objective: { type: 'ikl-at', alpha: 1, beta: 1 },
      attack: { steps: 2 },
      awp: { enabled: true, warmupEpoch: 1 },
    },
    'bench',
  );
  const t = createTrainer(config, collective);
  const local = batch / collective.size;
  const x = tf.randomUniform([local, 32, 32, 3]) as tf.Tensor4D;
  const y = tf.tensor1d(
    Array.from({ length: local }, (_, i) => (i + collective.rank) % 10),
    'int32',
  );
  const step = (i: number) => trainStep(t, x, y, { lr: 0.01, epsilon: 8 / 255, stepSize: 2 / 255, awp: true, seed: i, share: 1 / collective.size });
  step(0);
  const t0 = performance.now();
  for (let i = 1; i <= steps; i++) step(i);
  const s = (performance.now() - t0) / 1000;
  disposeTrainer(t);
  if (collective.rank === 0)
    console.log(JSON.stringify({ mode, arch, batch, tasks: collective.size, stepSeconds: s / steps, imagesPerSecond: (batch * steps) / s }));
  process.exit(0);
}

/** Runs `n` processes of this file (TF_CONFIG when n > 1) and returns rank 0's JSON line. */
async function run(n: number, threads: number, args: string[]): Promise<Record<string, number | string>> {
  const workers = (await freePorts(n)).map((p) => `127.0.0.1:${p}`);
  const outs = await Promise.all(
    workers.map(
      (_, rank) =>
        new Promise<string>((resolve, reject) => {
          const env: NodeJS.ProcessEnv = { ...process.env, TF_NUM_INTRAOP_THREADS: String(threads), TF_NUM_INTEROP_THREADS: '1', TF_CPP_MIN_LOG_LEVEL: '2' };
          if (n > 1) env.TF_CONFIG = JSON.stringify({ cluster: { worker: workers }, task: { type: 'worker', index: rank } });
          const c = spawn(process.execPath, [SELF, '--child', ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          c.stdout.on('data', (d: Buffer) => (out += d.toString()));
          c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`bench task ${rank} exited with ${code}`))));
        }),
    ),
  );
  const line = outs
    .join('\n')
    .split('\n')
    .find((l) => l.startsWith('{'));
  return JSON.parse(line!) as Record<string, number | string>;
}

if (process.argv.includes('--child')) {
  await child(flag('mode', 'train'));
} else {
  const models = flag('models', 'small-cnn,preact-resnet-18').split(',');
  const batches = flag('batch', '32,128').split(',');
  const stepsList = flag('steps', '10,2').split(',');
  const tasks = Number(flag('tasks', '2'));
  const threads = Number(flag('threads', '2'));
  console.log(`data-parallel bench: ${tasks} tasks × ${threads / tasks} thread(s) vs 1 process × ${threads} threads (same global batch)`);
  for (const [i, model] of models.entries()) {
    const args = ['--model', model, '--batch', batches[i] ?? batches[0]!, '--steps', stepsList[i] ?? stepsList[0]!];
    const one = await run(1, threads, ['--mode', 'single', ...args]);
    const many = await run(tasks, Math.max(1, threads / tasks), ['--mode', 'tasks', ...args]);
    const ratio = (many.imagesPerSecond as number) / (one.imagesPerSecond as number);
    console.log(
      `${model} batch ${one.batch}: 1×${threads} threads ${(one.imagesPerSecond as number).toFixed(1)} img/s (${(one.stepSeconds as number).toFixed(2)} s/step); ` +
        `${tasks}×${threads / tasks} ${(many.imagesPerSecond as number).toFixed(1)} img/s (${(many.stepSeconds as number).toFixed(2)} s/step); ratio ${ratio.toFixed(2)}x`,
    );
  }
  const ar = await run(tasks, Math.max(1, threads / tasks), ['--mode', 'allreduce', '--mb', flag('mb', '44')]);
  console.log(
    `all-reduce of ${ar.mb} MB over ${tasks} tasks on 127.0.0.1: ${(ar.seconds as number).toFixed(3)} s, ${(ar.mbPerSecond as number).toFixed(0)} MB/s`,
  );
}
