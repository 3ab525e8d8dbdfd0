/**
 * The cost of one APGD iteration as the rows of a run grow: the evidence for running APGD-T's units in big blocks
 * (src/attacks/block-rows.ts). Few rows pay tfjs's per-op overhead; on the 2-core CPU the cost per row keeps falling
 * up to 864 rows.
 *
 *   node dist/bench/apgd-rows.js --checkpoint DIR [--data CIFAR10_DIR] [--rows 8,24,48,96,192,384,864] [--steps 10]
 *
 * Prints ms per iteration and µs per (row × iteration) of apgdRun (CE loss, eps 8/255) on the checkpoint's
 * inference executor; the first CIFAR-10 test images when --data is given, else uniform noise.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { apgdRun } from '../src/attacks/apgd.js';
import type { ModelFn } from '../src/attacks/types.js';
import { initBackend } from '../src/backend.js';
import { readCifar10Test } from '../src/data/cifar.js';
import { InputError } from '../src/errors.js';
import { loadEvalSubject } from '../src/eval/model.js';
import { crossEntropy } from '../src/losses/index.js';
import { inferenceModel } from '../src/models/inference.js';
import { flags } from './flags.js';

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), ['checkpoint', 'data', 'rows', 'steps']);
  const ckpt = f.get('checkpoint');
  if (!ckpt) throw new InputError('--checkpoint: required (a directory ikl-train wrote)');
  const rowsList = (f.get('rows') ?? '8,24,48,96,192,384,864').split(',').map(Number);
  const steps = Number(f.get('steps') ?? '10');
  if (!rowsList.every((r) => Number.isInteger(r) && r > 0)) throw new InputError(`--rows: expected positive integers, got '${f.get('rows')}'`);
  if (!(Number.isInteger(steps) && steps > 0)) throw new InputError(`--steps: expected a positive integer, got '${f.get('steps')}'`);
  await initBackend();
  const subject = await loadEvalSubject(ckpt);
  const exec = inferenceModel(subject.model);
  const model: ModelFn = exec.fn;
  const most = Math.max(...rowsList);
  const dataDir = f.get('data');
  const test = dataDir ? await readCifar10Test(dataDir) : undefined;
  console.log('| rows | ms / iteration | µs / (row × iteration) |');
  console.log('|---:|---:|---:|');
  for (const rows of rowsList) {
    // Rows beyond the data repeat it (as APGD-T's blocks repeat points).
    const x = tf.tidy(() => {
      const base = test
        ? tf.div(tf.tensor4d(test.images.subarray(0, Math.min(most, test.n) * 3072), [Math.min(most, test.n), 32, 32, 3], 'int32').toFloat(), 255)
        : tf.randomUniform([most, 32, 32, 3], 0, 1, 'float32', 1);
      return tf.gather(
        base,
        tf.tensor1d(
          Int32Array.from({ length: rows }, (_, i) => i % base.shape[0]!),
          'int32',
        ),
      ) as tf.Tensor4D;
    });
    const y = tf.tidy(() => tf.argMax(model(x), 1).toInt() as tf.Tensor1D);
    const lossFn = (z: tf.Tensor2D): tf.Tensor1D => crossEntropy(z, y, { reduction: 'none' }) as tf.Tensor1D;
    const once = async (): Promise<void> => {
      const r = apgdRun(model, x, y, lossFn, { eps: 8 / 255, norm: 'linf', steps, seed: 1 });
      await r.xAdv.data();
      tf.dispose([r.xAdv, r.fooled, r.lossBest]);
    };
    await once(); // warm-up at this shape
    const t0 = performance.now();
    await once();
    await once();
    const sec = (performance.now() - t0) / 1000 / 2;
    console.log(`| ${rows} | ${((sec / steps) * 1000).toFixed(1)} | ${((sec / steps / rows) * 1e6).toFixed(0)} |`);
    tf.dispose([x, y]);
  }
  exec.dispose();
  subject.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(e instanceof InputError ? 2 : 1);
});
