/**
 * Square's cost per iteration against the model's own cost, on a trained small-CNN checkpoint through the inference
 * executor (as AutoAttack runs it): one iteration is one batched forward of the points not yet fooled plus the
 * JavaScript around it (proposals, upload, download, margins, accepts). Prints ms per iteration of `square`, ms per
 * bare forward of the same batch (upload + forward + download), and the difference (what is not the model).
 *
 *   node dist/bench/square-iter.js --checkpoint DIR --data CIFAR10_DIR [--points 71] [--iters 500] [--eps 8]
 *
 * Points: the first --points test images that are classified correctly, with their true labels. Square fools some
 * of them on the way, so the mean batch size is printed too and the bare forward uses that many points.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { square } from '../src/attacks/square.js';
import type { ModelFn } from '../src/attacks/types.js';
import { initBackend } from '../src/backend.js';
import { InputError } from '../src/errors.js';
import { loadEvalSubject } from '../src/eval/model.js';
import { readCifar10Test } from '../src/data/cifar.js';
import { inferenceModel } from '../src/models/inference.js';
import { flags } from './flags.js';

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2));
  const ckpt = f.get('checkpoint');
  const dataDir = f.get('data');
  if (!ckpt || !dataDir) throw new InputError('expected --checkpoint DIR and --data CIFAR10_DIR');
  const points = Number(f.get('points') ?? 71);
  const iters = Number(f.get('iters') ?? 500);
  const eps = Number(f.get('eps') ?? 8) / 255;
  await initBackend('tensorflow');
  const subject = await loadEvalSubject(ckpt);
  const exec = inferenceModel(subject.model);
  const model: ModelFn = exec.fn;
  const test = await readCifar10Test(dataDir);
  const all = tf.tidy(() => tf.div(tf.tensor4d(test.images.subarray(0, 1000 * 3072), [1000, 32, 32, 3], 'int32').toFloat(), 255) as tf.Tensor4D);
  const labels = Int32Array.from(test.labels.subarray(0, 1000));
  const pred = tf.tidy(() => tf.argMax(model(all), 1).dataSync());
  const rows = [...labels.keys()].filter((i) => pred[i] === labels[i]).slice(0, points);
  const x = tf.tidy(() => tf.gather(all, rows) as tf.Tensor4D);
  const y = tf.tensor1d(
    Int32Array.from(rows, (i) => labels[i]!),
    'int32',
  );
  all.dispose();

  let active = 0;
  let counted = 0;
  const run = () => square(model, x, y, { eps, norm: 'linf', seed: 0, steps: iters, onIteration: (i) => void ((active += i.active.length), counted++) });
  (await run()).xAdv.dispose(); // warm-up
  active = 0;
  counted = 0;
  const t0 = performance.now();
  (await run()).xAdv.dispose();
  const perIter = (performance.now() - t0) / iters;
  const m = Math.round(active / Math.max(counted, 1));

  const data = new Float32Array(m * 3072);
  x.slice(0, m)
    .dataSync()
    .forEach((v, j) => (data[j] = v));
  const t1 = performance.now();
  for (let i = 0; i < iters; i++) {
    const t = tf.tidy(() => model(tf.tensor4d(data, [m, 32, 32, 3])));
    t.dataSync();
    t.dispose();
  }
  const perForward = (performance.now() - t1) / iters;

  // The same search around a model that costs (almost) nothing: reshape + slice, so what is timed is Square's
  // own host work plus one upload and one download per iteration. Class 0's logit is 10, the others pixels in
  // [0, 1], and every label is 0: every point stays active.
  const free: ModelFn = (xs) =>
    tf.pad(
      tf.slice(tf.reshape(xs, [xs.shape[0], -1]), [0, 0], [-1, 9]),
      [
        [0, 0],
        [1, 0],
      ],
      10,
    ) as tf.Tensor2D;
  const yFree = tf.zeros([rows.length], 'int32') as tf.Tensor1D;
  const freeRun = () => square(free, x, yFree, { eps, norm: 'linf', seed: 0, steps: iters });
  (await freeRun()).xAdv.dispose();
  const t2 = performance.now();
  (await freeRun()).xAdv.dispose();
  const perFree = (performance.now() - t2) / iters;
  yFree.dispose();
  console.log(
    `square, ${rows.length} points (${m} active on average over ${counted} iterations), eps ${(eps * 255).toFixed(1)}/255: ` +
      `${perIter.toFixed(3)} ms/iteration; bare forward of ${m} points ${perForward.toFixed(3)} ms; not the model ${(perIter - perForward).toFixed(3)} ms; ` +
      `around a free model (${rows.length} points, all active): ${perFree.toFixed(3)} ms/iteration`,
  );
  tf.dispose([x, y]);
  exec.dispose();
  subject.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(e instanceof InputError ? 2 : 1);
});
