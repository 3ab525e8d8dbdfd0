/**
 * Throughput and memory of the model zoo: training step (training-mode forward + backward of mean CE over all
 * trainable weights, via tf.variableGrads) and inference forward (the attacks' executor, and `model.apply` for
 * comparison), with tfjs kernel dispatches and host syncs per call and the peak RSS of the process.
 *
 *   node dist/bench/models.js [--models small-cnn,preact-resnet-18] [--batch 32] [--iters 2]
 *                             [--train-forward ours|apply] [--json]
 *
 * Each model runs in a fresh child process, so its peak RSS is its own (`--json`: run one model in this process
 * and print one JSON line; used by the parent and by bench/compare.ts). The default batch (32) keeps every model,
 * WRN-34-10 included, within a few GB on a 24 GB machine shared with other work; batch 128 is the published
 * recipe's (`--models wrn-34-10 --batch 128`, about 2.5x the batch-32 memory).
 * `--train-forward apply` measures the training step through `model.apply` (tfjs-layers' composed ops) instead of
 * our executor (src/models/forward.ts), to show what it gains.
 * Backend from $IKL_BACKEND (default auto → native). One warm-up call per model and mode, then `iters` timed ones.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { InputError } from '../src/errors.js';
import { MODEL_ARCHS, countParams, createModel, parseArch, type ModelArch } from '../src/models/index.js';
import { trainingForward } from '../src/models/forward.js';
import { inferenceModel } from '../src/models/inference.js';
import { countOf, installCounters, peakRssGb } from './counters.js';

interface Options {
  models: ModelArch[];
  batch: number;
  iters: number;
  trainForward: 'ours' | 'apply';
  json: boolean;
}

export interface ModelRow {
  arch: string;
  params: number;
  batch: number;
  trainForward: string;
  trainSec: number;
  trainKernels: number;
  trainSyncs: number;
  inferSec: number;
  inferKernels: number;
  applyInferSec: number;
  applyInferKernels: number;
  peakRssGb: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { models: [...MODEL_ARCHS], batch: 32, iters: 2, trainForward: 'ours', json: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--json') {
      opts.json = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new InputError(`${flag}: missing value`);
    if (flag === '--models') opts.models = value.split(',').map((s) => parseArch(s.trim(), '--models'));
    else if (flag === '--train-forward') {
      if (value !== 'ours' && value !== 'apply') throw new InputError(`--train-forward: expected ours|apply, got '${value}'`);
      opts.trainForward = value;
    } else if (flag === '--batch' || flag === '--iters') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new InputError(`${flag}: expected a positive integer, got '${value}'`);
      if (flag === '--batch') opts.batch = n;
      else opts.iters = n;
    } else throw new InputError(`${flag}: unknown flag (expected --models, --batch, --iters, --train-forward, --json)`);
  }
  return opts;
}

/** Seconds per call of fn (which must block until its result is computed) and its kernels/syncs, after a warm-up. */
function timeIt(fn: () => void, iters: number): { sec: number; kernels: number; syncs: number } {
  fn();
  const c = countOf(fn);
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) fn();
  return { sec: (performance.now() - t0) / 1000 / iters, kernels: c.kernels, syncs: c.syncs };
}

/** Measures one model in this process. */
export function measureModel(arch: ModelArch, batch: number, iters: number, trainForward: 'ours' | 'apply'): ModelRow {
  installCounters();
  const model = createModel({ arch, numClasses: 10, seed: 0 });
  const x = tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2) as tf.Tensor1D, 10);
  const params = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const fwd = trainForward === 'ours' ? (v: tf.Tensor4D) => trainingForward(model, v) : (v: tf.Tensor4D) => model.apply(v, { training: true }) as tf.Tensor2D;
  const trainStep = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(labels, fwd(x)) as tf.Scalar, params);
      // Reading one value of every gradient forces the whole backward pass to finish.
      tf.addN([value, ...Object.values(grads).map((g) => tf.sum(g))]).dataSync();
    });
  const train = timeIt(trainStep, iters);
  const exec = inferenceModel(model);
  const infer = timeIt(() => tf.tidy(() => void exec.fn(x).dataSync()), iters);
  exec.dispose();
  const apply = timeIt(() => tf.tidy(() => void (model.apply(x, { training: false }) as tf.Tensor).dataSync()), iters);
  const row: ModelRow = {
    arch,
    params: countParams(model),
    batch,
    trainForward,
    trainSec: train.sec,
    trainKernels: train.kernels,
    trainSyncs: train.syncs,
    inferSec: infer.sec,
    inferKernels: infer.kernels,
    applyInferSec: apply.sec,
    applyInferKernels: apply.kernels,
    peakRssGb: peakRssGb(),
  };
  tf.dispose([x, labels]);
  model.dispose();
  return row;
}

/** Runs `node dist/bench/models.js --json ...` for one model in a child process and parses its row. */
export function measureModelInChild(arch: ModelArch, batch: number, iters: number, trainForward: 'ours' | 'apply'): ModelRow {
  const script = fileURLToPath(import.meta.url);
  const args = [script, '--json', '--models', arch, '--batch', String(batch), '--iters', String(iters), '--train-forward', trainForward];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{')) {
    throw new Error(`bench/models ${arch} batch ${batch}: child exited with ${r.status ?? r.signal} (killed for memory?)`);
  }
  return JSON.parse(line) as ModelRow;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const info = await initBackend();
  if (opts.json) {
    if (opts.models.length !== 1) throw new InputError('--json: expects exactly one model in --models');
    console.log(JSON.stringify(measureModel(opts.models[0]!, opts.batch, opts.iters, opts.trainForward)));
    return;
  }
  for (const w of info.warnings) console.error(`warning: ${w}`);
  console.log(
    `backend ${info.name} (${info.package}, TF ${info.tfVersion}), batch ${opts.batch}, ${opts.iters} timed iterations, ` +
      `training forward: ${opts.trainForward === 'ours' ? 'ours (src/models/forward.ts)' : 'model.apply'}; one process per model`,
  );
  console.log(
    '| model | params | train fwd+bwd img/s | s/step | kernels/step | syncs/step | inference img/s (executor) | kernels/fwd | inference img/s (model.apply) | kernels/fwd | peak RSS GB |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const arch of opts.models) {
    const r = measureModelInChild(arch, opts.batch, opts.iters, opts.trainForward);
    console.log(
      `| ${arch} | ${r.params.toLocaleString('en-US')} | ${(r.batch / r.trainSec).toFixed(1)} | ${r.trainSec.toFixed(2)} | ${r.trainKernels} | ` +
        `${r.trainSyncs} | ${(r.batch / r.inferSec).toFixed(1)} | ${r.inferKernels} | ${(r.batch / r.applyInferSec).toFixed(1)} | ` +
        `${r.applyInferKernels} | ${r.peakRssGb.toFixed(2)} |`,
    );
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e instanceof InputError ? e.message : e);
    process.exit(e instanceof InputError ? 2 : 1);
  });
}
