/** A small trained checkpoint for the evaluation tests: small-cnn, a few SGD steps on the synthetic dataset. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeCheckpoint } from '../../src/checkpoint/index.js';
import { loadDataset } from '../../src/data/index.js';
import { createModel, forward } from '../../src/models/index.js';
import { imageBatch } from '../../src/eval/run.js';

export function tempDir(prefix = 'ikl-eval-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Trains small-cnn for `steps` Adam steps on synthetic training images and writes it as a checkpoint.
 * Training (rather than saving an initialised net) makes clean accuracy well above chance, so "robust <= clean"
 * and the per-stage counts are tested on numbers that are not all zero.
 */
export async function makeCheckpoint(dir: string, opts: { steps?: number; seed?: number; lr?: number } = {}): Promise<string> {
  const { train } = await loadDataset('synthetic', { synthetic: { nTrain: 512, nTest: 1 } });
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: opts.seed ?? 0 });
  const optimizer = tf.train.adam(opts.lr ?? 5e-3);
  const batch = 64;
  for (let s = 0; s < (opts.steps ?? 40); s++) {
    const start = (s * batch) % train.n;
    const { x, y } = imageBatch(train, start, Math.min(train.n, start + batch));
    optimizer.minimize(() => tf.losses.softmaxCrossEntropy(tf.oneHot(y, 10), forward(model, x, { training: true })) as tf.Scalar);
    tf.dispose([x, y]);
  }
  optimizer.dispose();
  const ckpt = join(dir, 'ckpt');
  await writeCheckpoint(ckpt, { model, meta: { arch: 'small-cnn', numClasses: 10, dataset: 'synthetic', epoch: 1, step: opts.steps ?? 40 } });
  model.dispose();
  return ckpt;
}
