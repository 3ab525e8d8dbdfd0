import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak } from '../helpers.js';
import { parseConfig } from '../../src/config/index.js';
import { readEvents } from '../../src/tensorboard.js';
import { readCheckpoint } from '../../src/checkpoint/index.js';
import { train, DivergenceError, RUN_FILES } from '../../src/train/index.js';

/** A run that takes seconds: small CNN, 48 synthetic training images in 3 batches, 2-step attack, AWP from epoch 1. */
function tinyConfig(overrides: Record<string, unknown> = {}) {
  return parseConfig(
    {
      run: { seed: 7, progress: false },
      data: { dataset: 'synthetic', synthetic: { nTrain: 64, nTest: 16 }, valSize: 16, batchSize: 16 },
      model: { arch: 'small-cnn', numClasses: 10 },
      objective: { type: 'ikl-at' },
      attack: { steps: 2 },
      awp: { enabled: true, warmupEpoch: 1 },
      optimizer: { lr: 0.05 },
      schedule: { epochs: 2 },
      eval: { nExamples: 16, pgdSteps: 2 },
      ...overrides,
    },
    'test config',
  );
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'ikl-train-'));

async function lastWeights(runDir: string): Promise<Float32Array[]> {
  const ck = await readCheckpoint(join(runDir, RUN_FILES.last));
  const w = ck.model.weights.map((v) => v.read().dataSync() as Float32Array);
  ck.model.dispose();
  return w;
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  a.forEach((x, i) => x.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i]![j]!)))));
  return worst;
}

test('a 2-epoch run writes its files, keeps tensors constant across steps, updates class weights only at epoch ends', heavy, async () => {
  const dir = tmp();
  try {
    const counts: number[] = [];
    let nWeights = 0;
    const matrices: Array<{ epoch: number; m: Float32Array }> = [];
    const res = await noLeak(() =>
      train(tinyConfig({ log: { tensorboard: true } }), {
        runDir: dir,
        onStep: (info, t) => {
          counts.push(tf.memory().numTensors);
          nWeights = t.model.weights.length;
          matrices.push({ epoch: info.epoch, m: t.classWeights!.matrix() });
        },
      }),
    );
    assert.equal(res.metrics.length, 2);
    assert.equal(res.steps, 6);
    // The first step creates the momentum buffers and the end of epoch 1 the weight average (one tensor per
    // model weight); apart from those, a step must not leave tensors behind.
    const msg = `numTensors across steps: ${counts.join(', ')}`;
    assert.ok(counts[1] === counts[2] && counts.slice(3).every((c) => c === counts[3]), msg);
    assert.equal(counts[3]! - counts[2]!, nWeights, msg);
    // Epoch 1 runs on P = 1/C; P changes once, at the end of epoch 1, and then stays fixed during epoch 2.
    for (const { epoch, m } of matrices) {
      if (epoch === 1)
        assert.ok(
          m.every((v) => Math.abs(v - 0.1) < 1e-7),
          'epoch 1 uses uniform class weights',
        );
    }
    const e2 = matrices.filter((r) => r.epoch === 2);
    assert.ok(e2.length === 3 && e2.every((r) => r.m.every((v, i) => v === e2[0]!.m[i])), 'constant within epoch 2');
    assert.ok(
      e2[0]!.m.some((v) => Math.abs(v - 0.1) > 1e-4),
      'finalised from epoch 1 predictions',
    );
    for (let c = 0; c < 10; c++) {
      const rowSum = e2[0]!.m.slice(c * 10, c * 10 + 10).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(rowSum - 1) < 1e-5, `row ${c} sums to 1`);
    }
    for (const f of [RUN_FILES.config, RUN_FILES.metrics, RUN_FILES.curves]) assert.ok(existsSync(join(dir, f)), f);
    for (const c of [RUN_FILES.last, RUN_FILES.wa, RUN_FILES.best]) assert.ok(existsSync(join(dir, c, 'checkpoint.json')), `${c}/`);
    const lines = readFileSync(join(dir, RUN_FILES.metrics), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    for (const r of lines) {
      for (const k of [
        'lr',
        'lossTotal',
        'lossNatural',
        'lossRobust',
        'trainCleanAcc',
        'trainAdvAcc',
        'valCleanAcc',
        'valRobustAcc',
        'waCleanAcc',
        'valWorstClassRobustAcc',
        'imagesPerSecond',
        'dataWaitSeconds',
      ]) {
        assert.equal(typeof r[k], 'number', `${k} in metrics.jsonl`);
      }
      // The worst class is no better than the average over classes' examples.
      assert.ok(r.valWorstClassRobustAcc <= r.valRobustAcc + 1e-12, 'worst class <= overall');
      assert.ok(Number.isInteger(r.valWorstClass) && r.valWorstClass >= 0 && r.valWorstClass < 10);
      assert.ok(Math.abs(r.lossTotal - (r.lossNatural + r.lossRobust)) < 1e-4, 'total = natural + robust');
      // The wall clock at the epoch's end, and whether best/ took this epoch's model.
      assert.ok(Math.abs(Date.parse(r.time) - Date.now()) < 3_600_000, `time ${r.time}`);
      assert.equal(typeof r.best, 'boolean');
    }
    assert.equal(lines[0].best, true, 'the first evaluated epoch is the best so far');
    const bestEpoch = (JSON.parse(readFileSync(join(dir, RUN_FILES.best, 'checkpoint.json'), 'utf8')) as { epoch: number }).epoch;
    assert.equal([...lines].reverse().find((r: { best: boolean }) => r.best).epoch, bestEpoch, 'the last epoch flagged best is the one best/ holds');
    // Cosine per epoch with E + 1 in the denominator, ε_t = ε·e/E.
    assert.ok(Math.abs(lines[0].lr - 0.05 * 0.5 * (1 + Math.cos(Math.PI / 3))) < 1e-12);
    assert.ok(Math.abs(lines[0].epsilon - 4 / 255) < 1e-12);
    assert.match(readFileSync(join(dir, RUN_FILES.curves), 'utf8'), /^<svg[^]*<path[^]*<\/svg>/);
    // log.tensorboard: one event file beside metrics.jsonl; per step the loss parts, lr, eps, images/s; per
    // epoch the validation accuracies (and the weight average's), at the epoch's last step, equal to metrics.jsonl.
    const tbFiles = readdirSync(dir).filter((f) => f.startsWith('events.out.tfevents.'));
    assert.equal(tbFiles.length, 1);
    const events = readEvents(readFileSync(join(dir, tbFiles[0]!)));
    const series = (tag: string) => events.flatMap((e) => e.scalars.filter((v) => v.tag === tag).map((v) => [e.step, v.value]));
    for (const tag of ['train/loss', 'train/loss_natural', 'train/loss_robust', 'train/lr', 'train/epsilon', 'train/images_per_second']) {
      assert.deepEqual(
        series(tag).map((p) => p[0]),
        [1, 2, 3, 4, 5, 6],
        tag,
      );
    }
    assert.ok(series('train/images_per_second').every((p) => p[1]! > 0));
    assert.deepEqual(
      series('val/robust_acc'),
      lines.map((r, i) => [3 * (i + 1), Math.fround(r.valRobustAcc)]),
    );
    assert.deepEqual(
      series('val/worst_class_robust_acc'),
      lines.map((r, i) => [3 * (i + 1), Math.fround(r.valWorstClassRobustAcc)]),
    );
    assert.equal(series('wa/clean_acc').length, lines.filter((r) => typeof r.waCleanAcc === 'number').length);
    assert.ok(Math.abs(series('train/lr')[0]![1]! - lines[0].lr) < 1e-7);
    const ck = await readCheckpoint(join(dir, RUN_FILES.last), { withTensors: true });
    assert.equal(ck.meta.epoch, 2);
    assert.equal(ck.meta.step, 6);
    assert.equal(ck.meta.best?.metric, 'valRobustAcc');
    assert.ok(
      Object.keys(ck.tensors).some((n) => n.startsWith('sgd/momentum/')),
      'optimizer state saved',
    );
    assert.ok(
      Object.keys(ck.tensors).some((n) => n.startsWith('wa/')),
      'weight average saved',
    );
    assert.ok((ck.state as { classWeights?: unknown }).classWeights, 'class weights saved');
    ck.model.dispose();
    tf.dispose(Object.values(ck.tensors));
    // A fresh run never overwrites an existing one.
    await assert.rejects(train(tinyConfig(), { runDir: dir }), /already holds a checkpoint/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resume: 2 epochs straight equal 1 epoch + resume, and a mid-epoch stop + resume', heavy, async () => {
  const straight = tmp();
  const split = tmp();
  const mid = tmp();
  try {
    await noLeak(async () => {
      const a = await train(tinyConfig(), { runDir: straight });
      // A stop requested during the last step of epoch 1 stops before the epoch end (its evaluation may be long):
      // last/ at position (1, 3), and the resume runs that epoch end, then epoch 2.
      const signal = { stopRequested: false };
      const b1 = await train(tinyConfig(), { runDir: split, signal, onStep: (i) => (signal.stopRequested = i.epoch === 1 && i.batch === 2) });
      assert.equal(b1.stopped, 'signal');
      assert.equal(b1.epochs, 0);
      assert.equal(b1.steps, 3);
      const b2 = await train(tinyConfig(), { runDir: split, resume: true });
      assert.equal(b2.steps, 6);
      assert.ok(maxDiff(await lastWeights(straight), await lastWeights(split)) <= 1e-6, 'epoch-boundary resume');
      const timeless = (m: (typeof a.metrics)[number]) => ({
        ...m,
        time: null,
        epochSeconds: null,
        imagesPerSecond: null,
        evalSeconds: null,
        dataWaitSeconds: null,
      });
      assert.deepEqual(b2.metrics.map(timeless), a.metrics.map(timeless), 'the replayed epoch end and epoch 2 report the same figures');
      // Stop after the first batch of epoch 2 (mid-epoch checkpoint), then resume.
      const s2 = { stopRequested: false };
      const c1 = await train(tinyConfig(), { runDir: mid, signal: s2, onStep: (i) => (s2.stopRequested = i.epoch === 2 && i.batch === 0) });
      assert.equal(c1.stopped, 'signal');
      assert.equal(c1.steps, 4);
      const c2 = await train(tinyConfig(), { runDir: mid, resume: true });
      assert.equal(c2.steps, 6);
      assert.ok(maxDiff(await lastWeights(straight), await lastWeights(mid)) <= 1e-6, 'mid-epoch resume');
      assert.ok(Math.abs((c2.metrics[1]!.lossTotal as number) - (a.metrics[1]!.lossTotal as number)) < 1e-6, 'epoch 2 loss after mid-epoch resume');
      // The same weights do differ from an untrained model: the comparison is not vacuous.
      assert.ok((a.metrics[1]!.lossTotal as number) !== (a.metrics[0]!.lossTotal as number));
    });
    await assert.rejects(train(tinyConfig({ optimizer: { lr: 0.1 } }), { runDir: split, resume: true }), /another config/);
  } finally {
    for (const d of [straight, split, mid]) rmSync(d, { recursive: true, force: true });
  }
});

test('a NaN loss stops the run with a clear error and leaves the last good checkpoint intact', heavy, async () => {
  const dir = tmp();
  try {
    await noLeak(async () => {
      let poisoned = false;
      await assert.rejects(
        train(tinyConfig(), {
          runDir: dir,
          onStep: (i, t) => {
            // Simulate a divergence during epoch 2: a kernel full of NaN makes the next loss NaN.
            if (i.epoch === 2 && i.batch === 0 && !poisoned) {
              poisoned = true;
              const k = t.model.trainableWeights.find((w) => w.shape.length === 2)!;
              tf.tidy(() => {
                k.write(tf.fill(k.shape as number[], Number.NaN));
              });
            }
          },
        }),
        (e: unknown) =>
          e instanceof DivergenceError && /epoch 2, batch 1 \(step 5\): training loss is NaN/.test(e.message) && /last good checkpoint/.test(e.message),
      );
    });
    const ck = await readCheckpoint(join(dir, RUN_FILES.last));
    assert.equal(ck.meta.epoch, 1, 'last/ still holds epoch 1');
    assert.ok(
      ck.model.weights.every((w) => w.read().dataSync().every(Number.isFinite)),
      'no NaN was written',
    );
    ck.model.dispose();
    assert.equal(readFileSync(join(dir, RUN_FILES.metrics), 'utf8').trim().split('\n').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('valSize 0 evaluates on test images and keeps no best/; per-step weight average; trades objective', heavy, async () => {
  const dir = tmp();
  try {
    const res = await noLeak(() =>
      train(
        tinyConfig({
          data: { dataset: 'synthetic', synthetic: { nTrain: 32, nTest: 16 }, valSize: 0, batchSize: 16 },
          objective: { type: 'trades' },
          schedule: { epochs: 1 },
          weightAverage: { perStep: true, stepTau: 0.5 },
        }),
        { runDir: dir },
      ),
    );
    assert.equal(typeof res.metrics[0]!.valRobustAcc, 'number', 'evaluated (on test images)');
    assert.equal(typeof res.metrics[0]!.waCleanAcc, 'number');
    assert.ok(existsSync(join(dir, RUN_FILES.wa, 'checkpoint.json')));
    assert.equal(existsSync(join(dir, RUN_FILES.best)), false, 'never select a model on the test set');
    const ck = await readCheckpoint(join(dir, RUN_FILES.wa));
    assert.equal((ck.state as { weightAverageCount: number }).weightAverageCount, 2, 'one average update per step');
    assert.equal((ck.meta.info as { evalOnTest: boolean }).evalOnTest, true);
    ck.model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
