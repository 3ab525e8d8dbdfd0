/**
 * End-to-end evaluation on a small trained checkpoint: report consistency, resume after a stop, shards merged
 * equal to the unsharded run, no tensor leak across batches.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak } from '../helpers.js';
import { readCheckpoint } from '../../src/checkpoint/index.js';
import { loadDataset } from '../../src/data/index.js';
import { InputError } from '../../src/errors.js';
import { forward } from '../../src/models/index.js';
import { resolveEvalOptions, type RawEvalOptions } from '../../src/eval/options.js';
import { mergeReports } from '../../src/eval/report.js';
import { imageBatch, runEval } from '../../src/eval/run.js';
import { planAttack, planTargetClasses, type AttackPlan } from '../../src/eval/plan.js';
import { sanityChecks } from '../../src/attacks/checks.js';
import { validityLine } from '../../src/attacks/validity.js';
import type { EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from './fixture.js';
import { deriveSeed } from '../../src/rng.js';

const dir = tempDir();
let ckpt: Promise<string> | undefined;
/** One checkpoint for the whole file (training it is the slow part). */
function checkpoint(): Promise<string> {
  ckpt ??= makeCheckpoint(dir, { steps: 15 });
  return ckpt;
}

// 40 examples in batches of 16: 3 batches, the last one short.
const flags = (c: string, extra: RawEvalOptions = {}): RawEvalOptions => ({
  checkpoint: c,
  attack: 'pgd',
  nExamples: '40',
  batchSize: '16',
  steps: '4',
  dataset: 'synthetic',
  ...extra,
});

/** The report without wall-clock times (the only fields allowed to differ between equal runs). */
function timeless(r: EvalReport): unknown {
  return { ...r, created_at: null, time_s: null, stages: r.stages.map((s) => ({ ...s, time_s: null })) };
}

test('validityLine reports the attack-side numbers and refuses inputs outside the ball', async () => {
  await noLeak(async () => {
    const x = tf.tensor4d([0.5, 0.2, 0.9, 0.0], [2, 1, 2, 1]);
    const xAdv = tf.tensor4d([0.52, 0.19, 0.92, 0.02], [2, 1, 2, 1]);
    const v = await validityLine(x, xAdv, { eps: 0.03, norm: 'linf', attack: 't' });
    // Hand-computed: δ = (0.02, −0.01) and (0.02, 0.02): L∞ max 0.02, L2 max √0.0008; values in [0.02, 0.92].
    assert.ok(Math.abs(v.maxPerturbation - 0.02) < 1e-6, `linf ${v.maxPerturbation}`);
    assert.deepEqual([v.nanCount, Number(v.min.toFixed(6)), Number(v.max.toFixed(6))], [0, 0.02, 0.92]);
    const l2 = await validityLine(x, xAdv, { eps: 0.1, norm: 'l2', attack: 't' });
    assert.ok(Math.abs(l2.maxPerturbation - Math.hypot(0.02, 0.02)) < 1e-6, `l2 ${l2.maxPerturbation}`);
    await assert.rejects(validityLine(x, xAdv, { eps: 0.015, norm: 'linf', attack: 't' }), /invalid adversarial/);
    tf.dispose([x, xAdv]);
  });
});

test('sanity checks: class-count warning only for targeted attacks, probabilities flagged', async () => {
  await noLeak(async () => {
    const x = tf.randomUniform([4, 2, 2, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const y = tf.tensor1d([0, 1, 2, 0], 'int32');
    const w = tf.randomNormal([12, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
    const logits = (xi: tf.Tensor4D): tf.Tensor2D => tf.matMul(xi.reshape([xi.shape[0], 12]), w);
    const probs = (xi: tf.Tensor4D): tf.Tensor2D => tf.softmax(logits(xi));
    const targets = (attack: 'pgd' | 'autoattack'): number | null =>
      planTargetClasses(planAttack({ ...resolveEvalOptions({ checkpoint: 'c', attack }), dataDir: 'data', dataset: 'synthetic', nExamples: 4 }));
    assert.deepEqual(await sanityChecks(logits, x, y, { nTargetClasses: targets('pgd') }), []);
    const aa = await sanityChecks(logits, x, y, { nTargetClasses: targets('autoattack') });
    assert.equal(aa.length, 1);
    assert.match(aa[0]!, /3 classes/);
    const p = await sanityChecks(probs, x, y, { nTargetClasses: targets('pgd') });
    assert.ok(
      p.some((m) => /probabilities/.test(m)),
      p.join(' | '),
    );
    tf.dispose([x, y, w]);
  });
});

test('pgd end to end: clean accuracy matches a direct count, robust <= clean, fields consistent, no leak', heavy, async () => {
  const c = await checkpoint();
  const counts: number[] = [];
  const report = await noLeak(() => runEval(resolveEvalOptions(flags(c)), { onProgress: () => counts.push(tf.memory().numTensors) }));
  assert.ok(report);
  // Independent clean count: the checkpoint's model on the same 40 synthetic test images.
  const { test: testSet } = await loadDataset('synthetic', { synthetic: { nTrain: 1, nTest: 40 } });
  const { model } = await readCheckpoint(c);
  const { x, y } = imageBatch(testSet, 0, 40);
  const correct = tf.tidy(() => tf.cast(tf.equal(tf.argMax(forward(model, x, { training: false }), 1), y), 'int32').arraySync() as number[]);
  const direct = correct.reduce((a, v) => a + v, 0);
  tf.dispose([x, y]);
  model.dispose();

  // Per class: examples and clean counts from the labels and the direct pass; robust counts add up to the total.
  const labels = Array.from(testSet.labels.subarray(0, 40));
  const table = report.per_class!;
  assert.equal(table.length, report.num_classes);
  table.forEach((row, k) => {
    assert.equal(row.class, k);
    assert.equal(row.n, labels.filter((l) => l === k).length, `class ${k}: examples`);
    assert.equal(row.clean_correct, correct.filter((v, i) => v === 1 && labels[i] === k).length, `class ${k}: clean`);
    assert.ok(row.robust_correct <= row.clean_correct);
    assert.equal(row.robust_acc, row.n === 0 ? 0 : row.robust_correct / row.n);
  });
  assert.equal(
    table.reduce((a, r) => a + r.robust_correct, 0),
    report.robust_correct,
  );
  const present = table.filter((r) => r.n > 0);
  const worst = Math.min(...present.map((r) => r.robust_acc));
  const summary = report.per_class_summary!;
  assert.equal(summary.worst_robust_acc, worst);
  assert.equal(table[summary.worst_class]!.robust_acc, worst);
  assert.equal(summary.spread, Math.max(...present.map((r) => r.robust_acc)) - worst);

  assert.equal(report.clean_correct, direct);
  assert.ok(direct > 0, 'the trained fixture gets some examples right');
  assert.equal(report.n_examples, 40);
  assert.equal(report.clean_acc, direct / 40);
  assert.ok(report.robust_correct <= report.clean_correct);
  assert.equal(report.robust_acc, report.robust_correct / 40);
  assert.deepEqual(
    report.stages.map((s) => s.name),
    ['pgd-4'],
  );
  assert.equal(report.stages[0]!.robust_correct, report.robust_correct);
  assert.equal(report.arch, 'small-cnn');
  assert.equal(report.dataset, 'synthetic');
  assert.equal(report.eps, 8 / 255);
  assert.equal(report.eps_input, '8/255');
  assert.equal(report.attack_params.step_size, 2 / 255);
  assert.equal(report.attack_params.loss, 'ce');
  assert.deepEqual(report.slice, { start: 0, end: 40 });
  assert.ok(report.validity.max_perturbation <= 8 / 255 + 1e-6 && report.validity.max_perturbation > 0);
  assert.ok(report.validity.min >= 0 && report.validity.max <= 1);
  assert.equal(report.validity.nan_count, 0);
  assert.match(report.validity.line, /^valid/);
  assert.ok(Array.isArray(report.sanity_warnings));
  assert.deepEqual(counts, [counts[0], counts[0], counts[0], counts[0]], `tensors alive before and after each batch: ${counts}`);

  // FGSM: same clean pass, its own single stage.
  const fgsm = await runEval(resolveEvalOptions({ ...flags(c), attack: 'fgsm', steps: undefined }));
  assert.equal(fgsm!.clean_correct, report.clean_correct);
  assert.deepEqual(
    fgsm!.stages.map((s) => s.name),
    ['fgsm'],
  );
});

test('a stopped run resumed from --state gives the report of an uninterrupted run', heavy, async () => {
  const c = await checkpoint();
  const whole = await runEval(resolveEvalOptions(flags(c, { seed: '3' })));
  const state = join(dir, 'resume.state.json');
  // Stopped after one batch, as a killed run would be.
  const stop = new AbortController();
  const stopped = await noLeak(() =>
    runEval(resolveEvalOptions(flags(c, { seed: '3' })), { stateFile: state, signal: stop.signal, onProgress: (done) => done >= 1 && stop.abort() }),
  );
  assert.equal(stopped, null);
  const saved = JSON.parse(readFileSync(state, 'utf8')) as { batches: Record<string, { stagesDone: number }> };
  assert.deepEqual(Object.keys(saved.batches), ['0'], 'exactly the first batch is recorded');
  const resumed = await runEval(resolveEvalOptions(flags(c, { seed: '3' })), { stateFile: state });
  assert.deepEqual(timeless(resumed!), timeless(whole!));
  // Running again with the finished state only rebuilds the report.
  assert.deepEqual(timeless((await runEval(resolveEvalOptions(flags(c, { seed: '3' })), { stateFile: state }))!), timeless(whole!));
  // Another eps with the same state file is refused.
  await assert.rejects(
    runEval(resolveEvalOptions(flags(c, { seed: '3', eps: '4/255' })), { stateFile: state }),
    (e: unknown) => e instanceof InputError && /made with eps=/.test(e.message),
  );
});

test('shards merged equal the unsharded run', heavy, async () => {
  const c = await checkpoint();
  const whole = (await runEval(resolveEvalOptions(flags(c, { seed: '5' }))))!;
  const shards: EvalReport[] = [];
  for (const s of ['1/2', '0/2']) shards.push((await runEval(resolveEvalOptions(flags(c, { seed: '5', shard: s }))))!);
  assert.deepEqual(
    shards.map((r) => r.slice),
    [
      { start: 16, end: 40 },
      { start: 0, end: 16 },
    ],
  );
  assert.deepEqual(
    shards.map((r) => r.shard),
    [
      { index: 1, count: 2 },
      { index: 0, count: 2 },
    ],
  );
  const merged = mergeReports(shards);
  assert.deepEqual(timeless(merged), timeless(whole));
  // The per-class table is part of that equality; its counts are those of the shards added.
  assert.ok(merged.per_class && merged.per_class.length > 0);
  merged.per_class.forEach((row, k) =>
    assert.equal(
      row.robust_correct,
      shards.reduce((a, r) => a + r.per_class![k]!.robust_correct, 0),
    ),
  );
  assert.ok(existsSync(c));
});

test('a run stopped mid-batch between two stages resumes at the right stage and matches the uninterrupted run', heavy, async () => {
  const c = await checkpoint();
  const eps = 2 / 255;
  // Two cheap stages: CE-PGD then CW-PGD on what survives (the shape of AutoAttack, at a fraction of its cost).
  const plan: AttackPlan = {
    loss: null,
    details: {},
    stages: (['ce', 'cw'] as const).map((loss) => ({ name: `pgd-${loss}-2`, attack: 'pgd', options: { steps: 2, stepSize: eps / 2, restarts: 1, loss } })),
  };
  const opts = () => resolveEvalOptions(flags(c, { eps: '2/255', seed: '11' }));
  const whole = (await runEval(opts(), { plan }))!;
  assert.deepEqual(
    whole.stages.map((s) => s.name),
    ['pgd-ce-2', 'pgd-cw-2'],
  );
  assert.ok(whole.stages[1]!.robust_correct <= whole.stages[0]!.robust_correct && whole.stages[0]!.robust_correct <= whole.clean_correct);
  assert.equal(whole.robust_correct, whole.stages[1]!.robust_correct);

  const state = join(dir, 'stages.state.json');
  // Stopped after the third stage run: both stages of batch 0, the first of batch 1.
  const stop = new AbortController();
  let stagesRun = 0;
  const onStage = (): void => void (++stagesRun === 3 && stop.abort());
  assert.equal(await noLeak(() => runEval(opts(), { plan, stateFile: state, signal: stop.signal, onStage })), null);
  const saved = JSON.parse(readFileSync(state, 'utf8')) as { batches: Record<string, { stagesDone: number }> };
  assert.deepEqual(Object.fromEntries(Object.entries(saved.batches).map(([k, v]) => [k, v.stagesDone])), { 0: 2, 1: 1 }, 'stopped after stage 1 of batch 1');
  const resumed = (await runEval(opts(), { plan, stateFile: state }))!;
  assert.deepEqual(timeless(resumed), timeless(whole));
  // The same state with the standard pgd plan (other stages) is refused.
  await assert.rejects(runEval(opts(), { stateFile: state }), /made with stages pgd-ce-2,pgd-cw-2, this run has pgd-4;/);
});

test("--protocol trades replays TRADES' _pgd_whitebox (plain loop, same start noise) and its counting rule", heavy, async () => {
  const c = await checkpoint();
  const report = await runEval(resolveEvalOptions({ checkpoint: c, protocol: 'trades', nExamples: '40', batchSize: '16', dataset: 'synthetic' }));
  assert.ok(report);
  assert.deepEqual([report.eps, report.attack_params.step_size, report.attack_params.steps], [0.031, 0.003, 20]);
  assert.equal(report.attack_params.details.protocol, 'trades');
  const { test: testSet } = await loadDataset('synthetic', { synthetic: { nTrain: 1, nTest: 40 } });
  const { model } = await readCheckpoint(c);
  const f = (v: tf.Tensor4D) => forward(model, v, { training: false });
  let robust = 0;
  let fixed = 0;
  for (let b = 0; b < 3; b++) {
    const { x, y } = imageBatch(testSet, 16 * b, Math.min(40, 16 * (b + 1)));
    const [correctEnd, correctClean] = tf.tidy(() => {
      // pgd_attack_cifar10.py: X + U(−ε, ε) (not clamped); 20 × { X += 0.003·sign(∇CE); X = X0 + clip(X − X0, ±ε); clip to [0, 1] }.
      let xp = tf.add(x, tf.randomUniform(x.shape, -0.031, 0.031, 'float32', deriveSeed(0, b, 0))) as tf.Tensor4D;
      // Σ −log softmax(z)_y written out (tf.losses.softmaxCrossEntropy's input gradient is not this one in tfjs 4).
      const ceSum = (v: tf.Tensor) => tf.neg(tf.sum(tf.mul(tf.oneHot(y, 10), tf.logSoftmax(f(v as tf.Tensor4D))))) as tf.Scalar;
      for (let k = 0; k < 20; k++) {
        const g = tf.grad(ceSum)(xp);
        xp = tf.add(xp, tf.mul(tf.sign(g), 0.003)) as tf.Tensor4D;
        xp = tf.clipByValue(tf.add(x, tf.clipByValue(tf.sub(xp, x), -0.031, 0.031)), 0, 1) as tf.Tensor4D;
      }
      const ok = (v: tf.Tensor4D) => tf.equal(tf.argMax(f(v), 1), y).dataSync();
      return [ok(xp), ok(x)];
    });
    correctEnd.forEach((v, i) => {
      robust += v;
      if (v && !correctClean[i]) fixed++;
    });
    tf.dispose([x, y]);
  }
  model.dispose();
  // Every point whose last iterate is correct counts, clean errors the attack fixed included.
  assert.equal(report.robust_correct, robust, `robust ${report.robust_correct} vs the plain loop ${robust} (of which ${fixed} clean errors fixed)`);
});
