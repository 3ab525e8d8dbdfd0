/**
 * Data parallelism with the reference's semantics: two tasks, each with half of every global batch, give step for
 * step the weights of one process that averages the gradients of the two half-batches, each computed with its own
 * batch-norm statistics, and keeps the first half's BN running statistics (DataParallel keeps device 0's buffers).
 * The reference below is written out in this process with tfjs' own gradient (no collective, no sharding code).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { assertClose, heavy, noLeak } from '../helpers.js';
import { batches, loadDataset } from '../../src/data/index.js';
import { epochSettings, evaluateAccuracy, objective } from '../../src/train/index.js';
import { createTrainer, disposeTrainer, trainForward } from '../../src/train/step.js';
import { dataParallelConfig } from './dpConfig.js';
import { runTasks } from './spawn.js';

const TASK = fileURLToPath(new URL('./trainTask.js', import.meta.url));

/** Weights after every step of the one-process reference, and its end-of-epoch evaluation on the 10 test images. */
async function reference(): Promise<{ steps: number[][][]; val: { cleanAcc: number; robustAcc: number } }> {
  const config = dataParallelConfig();
  const { train: set, test } = await loadDataset('synthetic', { synthetic: { nTrain: 32, nTest: 10, seed: config.data.synthetic.seed } });
  const t = createTrainer(config);
  const lr = epochSettings(config, 1).lr;
  const out: number[][][] = [];
  try {
    for (const b of batches(set, { batchSize: 8, shuffle: true, augment: true, seed: config.run.seed, epoch: 1 })) {
      const w0 = t.model.weights.map((w) => w.read().clone());
      const grads: tf.Tensor[][] = [];
      const buffers: tf.Tensor[][] = [];
      for (const h of [0, 1]) {
        t.model.weights.forEach((w, i) => w.write(w0[i]!));
        const x = b.x.slice([4 * h], [4]);
        const y = b.y.slice([4 * h], [4]);
        const { value, grads: g } = tf.variableGrads(() => objective(trainForward(t.model), x, y, undefined, undefined, config.objective).total, t.params);
        grads.push(t.params.map((p) => g[p.name]!));
        buffers.push(t.model.nonTrainableWeights.map((v) => v.read().clone()));
        tf.dispose([value, x, y]);
      }
      t.model.weights.forEach((w, i) => w.write(w0[i]!));
      t.model.nonTrainableWeights.forEach((v, i) => v.write(buffers[0]![i]!));
      const mean = grads[0]!.map((g, i) => tf.tidy(() => tf.div(tf.add(g, grads[1]![i]!), 2)));
      t.optimizer.step(mean, lr);
      out.push(t.model.weights.map((w) => Array.from(w.read().dataSync())));
      tf.dispose([...w0, ...grads.flat(), ...buffers.flat(), ...mean, b.x, b.y]);
    }
    return { steps: out, val: evaluateAccuracy(t.model, test, config) };
  } finally {
    disposeTrainer(t);
  }
}

/** Weights after one step on the whole first batch (the control). */
async function wholeBatchStep(): Promise<number[][]> {
  const config = dataParallelConfig();
  const { train: set } = await loadDataset('synthetic', { synthetic: { nTrain: 32, nTest: 10, seed: config.data.synthetic.seed } });
  const t = createTrainer(config);
  try {
    const b = batches(set, { batchSize: 8, shuffle: true, augment: true, seed: config.run.seed, epoch: 1 }).next().value!;
    const { value, grads } = tf.variableGrads(() => objective(trainForward(t.model), b.x, b.y, undefined, undefined, config.objective).total, t.params);
    t.optimizer.step(
      t.params.map((p) => grads[p.name]!),
      epochSettings(config, 1).lr,
    );
    tf.dispose([value, ...Object.values(grads), b.x, b.y]);
    return t.model.weights.map((w) => Array.from(w.read().dataSync()));
  } finally {
    disposeTrainer(t);
  }
}

test('2 tasks × B/2 = one process averaging the half-batch gradients, each half with its own BN statistics', heavy, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ikl-dp-'));
  try {
    const results = await runTasks(2, TASK, [join(dir, 'run'), join(dir, 'weights')], 240_000);
    results.forEach((r, rank) => assert.equal(r.code, 0, `task ${rank} exit ${r.code}: ${r.stderr.slice(-3000)}`));
    const tasks = [0, 1].map(
      (r) =>
        JSON.parse(readFileSync(join(dir, `weights.${r}.json`), 'utf8')) as { steps: number[][][]; metrics: { valCleanAcc: number; valRobustAcc: number }[] },
    );
    const { steps: expected, val } = await noLeak(reference);
    assert.equal(expected.length, 4);
    for (const [rank, task] of tasks.entries()) {
      assert.equal(task.steps.length, expected.length, `task ${rank}: steps`);
      task.steps.forEach((weights, s) => weights.forEach((w, i) => assertClose(w, expected[s]![i]!, 1e-5, `task ${rank}, step ${s + 1}, weight ${i}`)));
    }
    // The two tasks hold the same weights and report the same epoch figures (summed over the tasks).
    assert.deepEqual(tasks[1]!.steps.at(-1), tasks[0]!.steps.at(-1));
    const figures = (m: Record<string, unknown>) => Object.fromEntries(Object.entries(m).filter(([k]) => !/Seconds|PerSecond|^time$/.test(k)));
    assert.deepEqual(tasks[1]!.metrics.map(figures), tasks[0]!.metrics.map(figures));
    // The validation, batches split over the tasks and counts summed, is one process's evaluation of those weights.
    assert.deepEqual([tasks[0]!.metrics[0]!.valCleanAcc, tasks[0]!.metrics[0]!.valRobustAcc], [val.cleanAcc, val.robustAcc]);
    // A control: one step on the whole batch (one set of BN statistics) lands elsewhere.
    const whole = await noLeak(wholeBatchStep);
    const gap = Math.max(...whole.map((w, i) => Math.max(...w.map((v, j) => Math.abs(v - tasks[0]!.steps[0]![i]![j]!)))));
    assert.ok(gap > 1e-4, `whole-batch step differs by only ${gap}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
