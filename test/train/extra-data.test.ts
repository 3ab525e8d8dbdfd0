/** Training with generated data in npz parts: resumes and worker threads do not change the trajectory. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { heavy, noLeak } from '../helpers.js';
import { parseConfig } from '../../src/config/index.js';
import { readCheckpoint } from '../../src/checkpoint/index.js';
import { writeNpz } from '../../src/data/npz-write.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import { train, RUN_FILES } from '../../src/train/index.js';

const SIZE = 32 * 32 * 3;

function part(file: string, n: number, seed: number): string {
  const gen = makeSynthetic({ nTrain: n, nTest: 0, seed }).train;
  writeNpz(file, {
    n,
    fill: (from, count, images, labels) => {
      images.set(gen.images.subarray(from * SIZE, (from + count) * SIZE));
      for (let k = 0; k < count; k++) labels[k] = BigInt(gen.labels[from + k]!);
    },
  });
  return file;
}

/** 64 synthetic images, the first 16 validate; with extra data an epoch is ceil(64/16) = 4 batches (3 without). */
function config(files: string[], workers: number) {
  return parseConfig(
    {
      run: { seed: 3, progress: false },
      data: {
        dataset: 'synthetic',
        synthetic: { nTrain: 64, nTest: 16 },
        valSize: 16,
        valSplit: 'first',
        batchSize: 16,
        workers,
        extra: { files, ratio: 0.5 },
      },
      model: { arch: 'small-cnn', numClasses: 10 },
      objective: { type: 'ikl-at' },
      attack: { steps: 1 },
      schedule: { epochs: 2 },
      eval: { nExamples: 16, pgdSteps: 1 },
    },
    'test config',
  );
}

async function lastWeights(runDir: string): Promise<Float32Array[]> {
  const ck = await readCheckpoint(join(runDir, RUN_FILES.last));
  const w = ck.model.weights.map((v) => v.read().dataSync() as Float32Array);
  ck.model.dispose();
  return w;
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0;
  a.forEach((w, i) => w.forEach((v, k) => (m = Math.max(m, Math.abs(v - b[i]![k]!)))));
  return m;
}

test('generated data: 4 = ceil(64/16) steps per epoch; a mid-epoch stop + resume and workers 0 or 2 give the same weights', heavy, async () => {
  const root = mkdtempSync(join(tmpdir(), 'ikl-train-extra-'));
  try {
    const files = [part(join(root, 'a.npz'), 40, 11), part(join(root, 'b.npz'), 30, 12)];
    await noLeak(async () => {
      const straight = await train(config(files, 2), { runDir: join(root, 'straight') });
      assert.equal(straight.steps, 8, 'ceil(N/B) = 4 batches per epoch, N = 64 before the validation split');
      const signal = { stopRequested: false };
      const stopped = await train(config(files, 2), {
        runDir: join(root, 'mid'),
        signal,
        onStep: (i) => (signal.stopRequested = i.epoch === 2 && i.batch === 1),
      });
      assert.equal(stopped.stopped, 'signal');
      assert.equal(stopped.steps, 6);
      const resumed = await train(config(files, 2), { runDir: join(root, 'mid'), resume: true });
      assert.equal(resumed.steps, 8);
      const inline = await train(config(files, 0), { runDir: join(root, 'inline') });
      const w = await lastWeights(join(root, 'straight'));
      assert.ok(maxDiff(w, await lastWeights(join(root, 'mid'))) <= 1e-6, 'mid-epoch resume');
      assert.ok(maxDiff(w, await lastWeights(join(root, 'inline'))) <= 1e-6, 'workers 0 = workers 2');
      assert.equal(inline.metrics[1]!.lossTotal, straight.metrics[1]!.lossTotal);
      // Other generated images give another trajectory: the comparison is not vacuous.
      const other = [part(join(root, 'c.npz'), 70, 13)];
      await train(config(other, 2), { runDir: join(root, 'other') });
      assert.ok(maxDiff(w, await lastWeights(join(root, 'other'))) > 1e-4, 'the generated images are used');
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
