/**
 * Throughput of the model zoo: training step (forward in training mode + backward of mean CE over all trainable
 * weights, via tf.variableGrads) and inference forward, in images/s.
 *
 *   node dist/bench/models.js [--models small-cnn,preact-resnet-18] [--batch 128] [--iters 2]
 *
 * Backend from $IKL_BACKEND (default auto → native). One warm-up call per model and mode, then `iters` timed ones.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { InputError } from '../src/errors.js';
import { MODEL_ARCHS, countParams, createModel, forward, parseArch, type ModelArch } from '../src/models/index.js';

interface Options {
  models: ModelArch[];
  batch: number;
  iters: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { models: [...MODEL_ARCHS], batch: 128, iters: 2 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i];
    if (value === undefined) throw new InputError(`${flag}: missing value`);
    if (flag === '--models') opts.models = value.split(',').map((s) => parseArch(s.trim(), '--models'));
    else if (flag === '--batch' || flag === '--iters') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new InputError(`${flag}: expected a positive integer, got '${value}'`);
      if (flag === '--batch') opts.batch = n;
      else opts.iters = n;
    } else throw new InputError(`${flag}: unknown flag (expected --models, --batch, --iters)`);
  }
  return opts;
}

/** Seconds per call of fn (which must block until its result is computed), after one warm-up call. */
function timeIt(fn: () => void, iters: number): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) fn();
  return (performance.now() - t0) / 1000 / iters;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const info = await initBackend();
  for (const w of info.warnings) console.error(`warning: ${w}`);
  console.log(`backend ${info.name} (${info.package}, TF ${info.tfVersion}), batch ${opts.batch}, ${opts.iters} timed iterations`);
  console.log('| model | params | train fwd+bwd img/s | s/step | inference img/s |');
  console.log('|---|---:|---:|---:|---:|');
  for (const arch of opts.models) {
    const model = createModel({ arch, numClasses: 10, seed: 0 });
    const x = tf.randomUniform([opts.batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const labels = tf.oneHot(tf.randomUniform([opts.batch], 0, 10, 'int32', 2) as tf.Tensor1D, 10);
    const trainStep = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(labels, forward(model, x, { training: true })) as tf.Scalar);
        // Reading one value of every gradient forces the whole backward pass to finish.
        tf.addN(Object.values(grads).map((g) => tf.sum(g))).dataSync();
        value.dataSync();
      });
    const inferStep = () => tf.tidy(() => void forward(model, x, { training: false }).dataSync());
    const train = timeIt(trainStep, opts.iters);
    const infer = timeIt(inferStep, opts.iters);
    console.log(
      `| ${arch} | ${countParams(model).toLocaleString('en-US')} | ${(opts.batch / train).toFixed(1)} | ${train.toFixed(2)} | ${(opts.batch / infer).toFixed(1)} |`,
    );
    tf.dispose([x, labels]);
    model.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof InputError ? e.message : e);
  process.exit(e instanceof InputError ? 2 : 1);
});
