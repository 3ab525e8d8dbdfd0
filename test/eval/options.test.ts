/** Flag validation, shard slicing, report merging and state files: pure logic, no tensors. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { epsWarning, parseShard, resolveEvalOptions, shardSlice } from '../../src/eval/options.js';
import { planAttack } from '../../src/eval/plan.js';
import { mergePerClass, perClassRows, perClassSummary } from '../../src/eval/per-class.js';
import { LEGACY_MERGE_WARNING, mergeReports, resultWarnings } from '../../src/eval/report.js';
import { assertResumable, assertSameOptions, loadState, newState, saveState } from '../../src/eval/state.js';
import { writeFileAtomic } from '../../src/files.js';
import type { EvalOptions, EvalReport } from '../../src/eval/types.js';
import { combineValidity, EMPTY_VALIDITY, formatValidity } from '../../src/attacks/validity.js';
import { validityFromJson, validityToJson } from '../../src/eval/validity.js';
import { tempDir } from './fixture.js';

const base = { checkpoint: 'ckpt', attack: 'pgd' };

test('defaults: PGD-20 of 2/255 at eps 8/255, linf, seed 0, batch 200, dataset from the checkpoint', () => {
  const o = resolveEvalOptions(base);
  assert.equal(o.eps, 8 / 255);
  assert.equal(o.epsInput, '8/255');
  assert.equal(o.norm, 'linf');
  assert.equal(o.steps, 20);
  assert.equal(o.stepSize, 2 / 255);
  assert.equal(o.restarts, 1);
  assert.equal(o.batchSize, 200);
  assert.equal(o.seed, 0);
  assert.equal(o.dataset, null);
  assert.equal(o.nExamples, null);
  assert.equal(o.shard, null);
  assert.equal(o.dataDir, null, "the checkpoint's own data directory unless --data-dir is given");
  assert.equal(resolveEvalOptions({ ...base, dataDir: '/datasets/c10' }).dataDir, '/datasets/c10');
});

test("AutoAttack's spellings: --norm Linf/L2/LINF, --attack PGD; its stage names point to --attacks", () => {
  assert.equal(resolveEvalOptions({ ...base, norm: 'Linf' }).norm, 'linf');
  assert.equal(resolveEvalOptions({ ...base, norm: 'LINF' }).norm, 'linf');
  assert.equal(resolveEvalOptions({ ...base, norm: 'L2', eps: '0.5' }).norm, 'l2');
  assert.equal(resolveEvalOptions({ ...base, attack: 'PGD' }).attack, 'pgd');
  for (const [name, stage] of [
    ['apgd-dlr', 'apgd-dlr'],
    ['fab', 'fab'],
    ['APGD', 'apgd-ce'],
  ] as const) {
    assert.throws(
      () => resolveEvalOptions({ ...base, attack: name }),
      (e: unknown) => e instanceof InputError && e.message.startsWith(`--attack: '${name}' is an AutoAttack stage; run it with --attacks ${stage}`),
    );
  }
});

test('--eps: a radius far beyond published ones in L∞ is warned about (a unit slip), 8/255 and 16/255 are not', () => {
  for (const eps of ['8/255', '16/255', '0.031', '4/255']) assert.equal(epsWarning(resolveEvalOptions({ ...base, eps })), undefined, eps);
  const w = epsWarning(resolveEvalOptions({ ...base, eps: '0.5' }));
  assert.ok(w !== undefined && w.startsWith('--eps 0.5 is 127.5/255') && w.includes('8/255'), w);
  assert.equal(epsWarning(resolveEvalOptions({ ...base, norm: 'l2', eps: '0.5' })), undefined, 'L2 radii of 0.5 are the usual ones');
  // 8 meant as 8/255 is refused outright (above 1): the message says so.
  assert.throws(() => resolveEvalOptions({ ...base, eps: '8' }), /did you mean 8\/255\?/);
});

test("--protocol trades: TRADES' PGD-20 evaluation with its fixed settings; the default protocol adds no field", () => {
  const t = resolveEvalOptions({ checkpoint: 'ckpt', protocol: 'trades' });
  assert.deepEqual([t.attack, t.eps, t.epsInput, t.norm, t.steps, t.stepSize, t.restarts, t.protocol], ['pgd', 0.031, '0.031', 'linf', 20, 0.003, 1, 'trades']);
  assert.equal(resolveEvalOptions({ ...base, protocol: 'trades' }).protocol, 'trades');
  assert.ok(!('protocol' in resolveEvalOptions(base)), 'older --state files must keep matching default runs');
  assert.ok(!('protocol' in resolveEvalOptions({ ...base, protocol: 'default' })));
  for (const [extra, flag] of [
    [{ eps: '8/255' }, /^--eps: not accepted with --protocol trades/],
    [{ stepSize: '0.007' }, /^--step-size:/],
    [{ steps: '10' }, /^--steps:/],
    [{ restarts: '2' }, /^--restarts:/],
    [{ norm: 'l2' }, /^--norm:/],
    [{ attack: 'autoattack' }, /^--attack:/],
  ] as const) {
    assert.throws(
      () => resolveEvalOptions({ checkpoint: 'ckpt', protocol: 'trades', ...extra }),
      (e: Error) => e instanceof InputError && flag.test(e.message),
    );
  }
  assert.throws(() => resolveEvalOptions({ ...base, protocol: 'madry' }), /^InputError: --protocol: expected one of default\|trades/);
});

test('per-attack defaults', () => {
  assert.equal(resolveEvalOptions({ ...base, attack: 'apgd-ce' }).steps, 100);
  assert.equal(resolveEvalOptions({ ...base, attack: 'apgd-ce' }).stepSize, null);
  assert.equal(resolveEvalOptions({ ...base, attack: 'square' }).steps, 5000);
  const fgsm = resolveEvalOptions({ ...base, attack: 'fgsm', eps: '4/255' });
  assert.equal(fgsm.steps, 1);
  assert.equal(fgsm.stepSize, null, 'FGSM steps exactly eps');
  const aa = resolveEvalOptions({ ...base, attack: 'autoattack' });
  assert.deepEqual([aa.steps, aa.stepSize, aa.restarts], [null, null, null]);
  const l2 = resolveEvalOptions({ ...base, norm: 'l2', eps: '0.5', stepSize: '0.1', steps: '7', shard: '1/3' });
  assert.deepEqual([l2.eps, l2.stepSize, l2.steps, l2.shard], [0.5, 0.1, 7, { index: 1, count: 3 }]);
});

test('rejections are InputErrors naming the flag', () => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ attack: 'pgd' }, /^--checkpoint/],
    [{ checkpoint: 'c' }, /^--attack: required/],
    [{ ...base, attack: 'deepfool' }, /^--attack: expected one of/],
    [{ ...base, eps: '-8/255' }, /^--eps: expected a positive number/],
    [{ ...base, eps: '8' }, /^--eps: expected at most 1/],
    [{ ...base, eps: 'abc' }, /^--eps: expected a number/],
    [{ ...base, eps: '0' }, /^--eps: expected a positive/],
    [{ ...base, steps: '0' }, /^--steps: expected a whole number >= 1/],
    [{ ...base, steps: '2.5' }, /^--steps: expected a whole number/],
    [{ ...base, stepSize: '2' }, /^--step-size: expected at most 1/],
    [{ ...base, norm: 'l0' }, /^--norm: expected linf, l2 or l1/],
    [{ ...base, norm: 'l1' }, /^--norm: l1 works with --attack apgd-ce\|apgd-t\|fab-t\|square\|autoattack, got --attack pgd/],
    [{ ...base, shard: '3/2' }, /^--shard: the index must be in \[0, 1\]/],
    [{ ...base, shard: '0/0' }, /^--shard: the shard count must be >= 1/],
    [{ ...base, shard: '1-2' }, /^--shard: expected index\/count/],
    [{ ...base, dataset: 'mnist' }, /^--dataset: expected one of/],
    [{ ...base, nExamples: '0' }, /^--n-examples/],
    [{ ...base, seed: '-1' }, /^--seed/],
    [{ ...base, attack: 'autoattack', steps: '10' }, /^--steps: not accepted with --attack autoattack/],
    [{ ...base, attack: 'square', stepSize: '0.1' }, /^--step-size: not used by --attack square/],
    [{ ...base, attack: 'fgsm', restarts: '2' }, /^--restarts: only pgd and cw/],
    [{ ...base, attack: 'fgsm', stepSize: '1/255' }, /^--step-size: not used by --attack fgsm \(FGSM steps exactly eps\)/],
    [{ ...base, attack: 'fgsm', steps: '3' }, /^--steps: fgsm is a single step/],
  ];
  for (const [raw, msg] of bad) {
    assert.throws(
      () => resolveEvalOptions(raw),
      (e: unknown) => e instanceof InputError && msg.test(e.message) && !e.message.includes('\n'),
      JSON.stringify(raw),
    );
  }
});

test('shards: contiguous whole batches, disjoint, covering [0, n), as balanced as batches allow', () => {
  for (const [n, bs, count] of [
    [1000, 200, 2],
    [1000, 200, 5],
    [1003, 100, 4],
    [10, 3, 4],
    [7, 7, 1],
  ] as const) {
    const whole = shardSlice(n, bs, null);
    assert.deepEqual([whole.start, whole.end], [0, n]);
    let next = 0;
    const sizes: number[] = [];
    for (let i = 0; i < count; i++) {
      const s = shardSlice(n, bs, parseShard(`${i}/${count}`));
      assert.equal(s.start, next, `shard ${i}/${count} of ${n} starts where the previous ended`);
      assert.equal(s.start % bs, 0, 'shards start on a batch boundary (same batches and seeds as unsharded)');
      assert.ok(s.end > s.start, 'no empty shard');
      sizes.push(s.endBatch - s.firstBatch);
      next = s.end;
    }
    assert.equal(next, n);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `batches per shard ${sizes}`);
  }
  assert.throws(() => shardSlice(100, 50, { index: 0, count: 3 }), /--shard: 3 shards but only 2 batch/);
});

function fakeReport(start: number, end: number, clean: number, stageCorrect: number[], v: Partial<EvalReport['validity']> = {}): EvalReport {
  const n = end - start;
  return {
    tool: 'ikl-eval',
    checkpoint: 'c',
    weights_sha256: 'f'.repeat(64),
    arch: 'small-cnn',
    num_classes: 10,
    dataset: 'synthetic',
    attack: 'autoattack',
    attack_params: {
      eps: 8 / 255,
      eps_input: '8/255',
      norm: 'linf',
      steps: null,
      step_size: null,
      step_size_input: null,
      restarts: null,
      loss: null,
      stages: ['apgd-ce', 'square'],
      details: {},
    },
    eps: 8 / 255,
    eps_input: '8/255',
    norm: 'linf',
    seed: 0,
    batch_size: 10,
    n_examples: n,
    n_examples_total: 30,
    shard: { index: start / 10, count: 3 },
    slice: { start, end },
    clean_acc: clean / n,
    clean_correct: clean,
    robust_acc: stageCorrect.at(-1)! / n,
    robust_correct: stageCorrect.at(-1)!,
    stages: stageCorrect.map((k, i) => ({ name: ['apgd-ce', 'square'][i]!, robust_acc: k / n, robust_correct: k, time_s: 1 })),
    time_s: { clean: 0.5, attack: 2 },
    validity: { max_perturbation: 0.01, nan_count: 0, min: 0.1, max: 0.9, line: '', ...v },
    sanity_warnings: ['w-pre'],
    backend: { name: 'tensorflow', package: '@tensorflow/tfjs-node', devices: ['CPU'] },
  };
}

test('merge: counts add up, accuracies are pooled (not averaged), validity is max/sum/min/max', () => {
  const a = fakeReport(0, 10, 9, [5, 5], { max_perturbation: 0.02, nan_count: 1, min: 0.2 });
  const b = fakeReport(10, 20, 6, [2, 2], { min: 0.05, max: 0.7 });
  const c = fakeReport(20, 30, 3, [1, 0], { max: 1 });
  const m = mergeReports([c, a, b], ['c', 'a', 'b']);
  assert.equal(m.n_examples, 30);
  assert.equal(m.clean_correct, 18);
  assert.equal(m.clean_acc, 18 / 30);
  assert.deepEqual(
    m.stages.map((s) => s.robust_correct),
    [8, 7],
  );
  assert.equal(m.robust_acc, 7 / 30);
  assert.deepEqual(m.slice, { start: 0, end: 30 });
  assert.equal(m.shard, null);
  assert.deepEqual([m.validity.max_perturbation, m.validity.nan_count, m.validity.min, m.validity.max], [0.02, 1, 0.05, 1]);
  assert.match(m.validity.line, /^INVALID/, 'a NaN makes the merged line invalid');
  assert.equal(m.time_s.attack, 6);
  assert.equal(m.per_class, undefined, 'shards of an older version (no per-class table): no merged table');
  // Square broke one example the gradient stage missed (in shard c): the merged report says so, once.
  assert.deepEqual(m.sanity_warnings, ['w-pre', ...resultWarnings(m.stages)]);
  assert.equal(resultWarnings(m.stages).length, 1);
});

test('merge rejects mismatched options, overlaps and gaps', () => {
  const a = fakeReport(0, 10, 9, [5, 5]);
  const b = fakeReport(10, 20, 6, [2, 2]);
  const c = fakeReport(20, 30, 3, [1, 1]);
  assert.throws(() => mergeReports([a, { ...b, seed: 1 }, c], ['a', 'b', 'c']), /merge: b has seed=1 but a has seed=0/);
  assert.throws(() => mergeReports([a, a, b, c], ['a', 'a2', 'b', 'c']), /overlap/);
  assert.throws(() => mergeReports([a, c], ['a', 'c']), /no report covers examples \[10, 20\)/);
  assert.throws(() => mergeReports([a, b], ['a', 'b']), /no report covers examples \[20, 30\)/);
  assert.throws(() => mergeReports([{ hello: 1 } as never], ['x.json']), /x.json: not an ikl-eval report/);
  assert.throws(() => mergeReports([]), InputError);
});

test('validity: combine is max/sum/min/max with an empty neutral element; the line flags out-of-ball inputs', () => {
  const v = { maxPerturbation: 0.03, nanCount: 2, min: 0.1, max: 0.8 };
  assert.deepEqual(combineValidity(EMPTY_VALIDITY, v), v);
  assert.deepEqual(combineValidity(v, { maxPerturbation: 0.01, nanCount: 3, min: 0, max: 0.5 }), { maxPerturbation: 0.03, nanCount: 5, min: 0, max: 0.8 });
  assert.match(formatValidity({ maxPerturbation: 8 / 255, nanCount: 0, min: 0, max: 1 }, 8 / 255, 'linf'), /^valid/);
  assert.match(formatValidity({ maxPerturbation: 9 / 255, nanCount: 0, min: 0, max: 1 }, 8 / 255, 'linf'), /^INVALID/);
  assert.match(formatValidity({ maxPerturbation: 0.01, nanCount: 0, min: -0.01, max: 1 }, 8 / 255, 'linf'), /^INVALID/);
  // The JSON form (state and report files): snake_case, and an empty range stored as nulls.
  assert.deepEqual(validityToJson(EMPTY_VALIDITY), { max_perturbation: 0, nan_count: 0, min: null, max: null });
  assert.deepEqual(validityFromJson(JSON.parse(JSON.stringify(validityToJson(EMPTY_VALIDITY)))), EMPTY_VALIDITY);
  assert.deepEqual(validityFromJson(validityToJson(v)), v);
});

test('state: atomic write leaves no temporary file, round-trips, refuses other options', async () => {
  const dir = tempDir();
  const file = join(dir, 'state.json');
  const opts: EvalOptions = {
    ...resolveEvalOptions(base),
    dataDir: 'data',
    dataset: 'synthetic',
    nExamples: 20,
  };
  const s = newState(opts, ['pgd-20'], { start: 0, end: 20 }, 'a'.repeat(64));
  s.clean[3] = 1;
  s.brokenAt[3] = 0;
  s.batches['0'] = { stagesDone: 1, cleanTime: 0.1, stageTimes: [0.2], validity: { ...EMPTY_VALIDITY } };
  await saveState(file, s);
  assert.deepEqual(readdirSync(dir), ['state.json']);
  const back = loadState(file)!;
  assert.deepEqual(back, s, 'an empty validity (±Infinity) survives JSON');
  assert.equal(loadState(join(dir, 'missing.json')), undefined);
  assert.throws(
    () => assertSameOptions(file, back.options, { ...opts, eps: 4 / 255 }),
    /--state .*state\.json: made with eps=0\.0313\d*, this run has eps=0\.0156/,
  );
  assert.throws(
    () => assertSameOptions(file, back.options, { ...opts, shard: { index: 0, count: 2 } }),
    /made with shard=null, this run has shard=\{"index":0,"count":2\}/,
  );
  assert.doesNotThrow(() => assertSameOptions(file, back.options, { ...opts }));
  writeFileSync(file, '{"truncated');
  assert.throws(() => loadState(file), /not a JSON ikl-eval state file/);
  await writeFileAtomic(file, 'x');
  assert.equal(readFileSync(file, 'utf8'), 'x');
});

test('merge: the model is its weights hash; other paths to the same weights merge, other weights are refused', () => {
  const a = fakeReport(0, 10, 9, [5, 5]);
  const b = fakeReport(10, 20, 6, [2, 2]);
  const c = fakeReport(20, 30, 3, [1, 1]);
  // Same weights reached by a relative and an absolute path: one evaluation.
  const m = mergeReports([a, { ...b, checkpoint: '/abs/c' }, c], ['a', 'b', 'c']);
  assert.equal(m.weights_sha256, 'f'.repeat(64));
  assert.equal(m.n_examples, 30);
  // Different weights at the same path (wa/ moved on): refused, naming both hashes.
  assert.throws(
    () => mergeReports([a, { ...b, weights_sha256: 'e'.repeat(64) }, c], ['a', 'b', 'c']),
    (e: unknown) =>
      e instanceof InputError &&
      /merge: b evaluated weights sha256 eeeeeeeeeeee… \(checkpoint c\) but a evaluated ffffffffffff… \(checkpoint c\); these are different models/.test(
        e.message,
      ),
  );
  // Reports of an older ikl-eval (no hash): merged by path as before, with a warning; never mixed with hashed ones.
  const old = (r: EvalReport): EvalReport => {
    const { weights_sha256: _w, ...rest } = r;
    return rest;
  };
  const legacy = mergeReports([old(a), old(b), old(c)], ['a', 'b', 'c']);
  assert.equal(legacy.weights_sha256, undefined);
  assert.ok(legacy.sanity_warnings.includes(LEGACY_MERGE_WARNING));
  assert.ok(!m.sanity_warnings.includes(LEGACY_MERGE_WARNING));
  assert.throws(() => mergeReports([old(a), { ...old(b), checkpoint: 'd' }, old(c)], ['a', 'b', 'c']), /merge: b evaluated checkpoint d but a evaluated c/);
  assert.throws(() => mergeReports([a, old(b), c], ['a', 'b', 'c']), /merge: b records no weights_sha256 \(an older ikl-eval\) but a does/);
});

test('state: resumed only from the same weights (any path to them); a state without the hash is refused', async () => {
  const dir = tempDir();
  const file = join(dir, 'state.json');
  const opts: EvalOptions = { ...resolveEvalOptions({ ...base, dataDir: 'data' }), dataDir: 'data', dataset: 'synthetic', nExamples: 20 };
  const hash = '1'.repeat(64);
  await saveState(file, newState(opts, ['pgd-20'], { start: 0, end: 20 }, hash));
  const abs = { ...opts, checkpoint: join(process.cwd(), 'ckpt'), dataDir: join(process.cwd(), 'data') };
  const s = loadState(file)!;
  assert.doesNotThrow(() => assertResumable(file, s, abs, hash, ['pgd-20']));
  assert.equal(s.options.checkpoint, abs.checkpoint, 'the resumed state names the path of this run');
  assert.throws(
    () => assertResumable(file, loadState(file)!, opts, '2'.repeat(64), ['pgd-20']),
    (e: unknown) =>
      e instanceof InputError &&
      /made from the weights of ckpt \(sha256 111111111111…\), but --checkpoint ckpt holds other weights \(sha256 222222222222…\)/.test(e.message),
  );
  // A version-1 state (before the hash): read, but not resumed.
  const v1 = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  delete v1.weightsSha256;
  v1.version = 1;
  writeFileSync(file, JSON.stringify(v1));
  const old = loadState(file)!;
  assert.equal(old.weightsSha256, null);
  assert.throws(() => assertResumable(file, old, opts, hash, ['pgd-20']), /written by an older ikl-eval that did not record the weights' sha256/);
});

test('--norm L1 (any case): eps 12 by default and AutoAttack standard with the reference L1 settings', () => {
  const o = resolveEvalOptions({ checkpoint: 'c', attack: 'autoattack', norm: 'L1' });
  assert.equal(o.norm, 'l1');
  assert.equal(o.eps, 12);
  assert.equal(o.epsInput, '12');
  const plan = planAttack({ ...o, aaVersion: 'standard' } as unknown as EvalOptions);
  assert.deepEqual(
    plan.stages.map((s) => s.name),
    ['apgd-ce', 'apgd-t', 'fab-t', 'square'],
  );
  assert.equal(plan.details['apgd-ce.restarts'], 5);
  assert.equal(plan.details['apgd-ce.use_largereps'], 1);
  assert.equal(plan.details['apgd-t.n_target_classes'], 5);
  assert.equal(plan.details['apgd-t.use_largereps'], 1);
  assert.equal(plan.details['fab-t.n_target_classes'], 9);
  // L-inf keeps its own settings.
  const linf = planAttack({ ...resolveEvalOptions({ checkpoint: 'c', attack: 'autoattack' }), aaVersion: 'standard' } as unknown as EvalOptions);
  assert.equal(linf.details['apgd-ce.restarts'], 1);
  assert.equal(linf.details['apgd-ce.use_largereps'], undefined);
  // A single stage at L1 runs with the L1 settings too.
  const single = planAttack(resolveEvalOptions({ checkpoint: 'c', attack: 'apgd-t', norm: 'l1' }) as unknown as EvalOptions);
  assert.deepEqual(single.details, { target_classes: 5, restarts: 1 });
  assert.equal(formatValidity({ maxPerturbation: 12, nanCount: 0, min: 0, max: 1 }, 12, 'l1').slice(0, 22), 'valid: max ‖δ‖1 12.000');
});

test('per-class table: counts by label, worst class and spread; a merge adds the counts; reports without a table merge without one', () => {
  const rows = perClassRows([0, 1, 1, 2, 2, 2], [1, 1, 0, 1, 1, 1], [1, 0, 0, 1, 0, 1], 4, 'cifar10');
  assert.deepEqual(
    rows.map((r) => [r.class, r.name, r.n, r.clean_correct, r.robust_correct]),
    [
      [0, 'airplane', 1, 1, 1],
      [1, 'automobile', 2, 1, 0],
      [2, 'bird', 3, 3, 2],
      [3, 'cat', 0, 0, 0],
    ],
  );
  // Class 3 has no example: not the worst. Hand-computed: worst class 1 (0/2), best class 0 (1/1), spread 1.
  const summary = perClassSummary(rows)!;
  assert.deepEqual([summary.worst_class, summary.worst_class_name, summary.worst_robust_acc, summary.best_class, summary.spread], [1, 'automobile', 0, 0, 1]);
  const merged = mergePerClass([rows, perClassRows([3, 1], [1, 1], [1, 1], 4, 'cifar10')], 'cifar10');
  assert.deepEqual(
    merged.map((r) => [r.n, r.clean_correct, r.robust_correct]),
    [
      [1, 1, 1],
      [3, 2, 1],
      [3, 3, 2],
      [1, 1, 1],
    ],
  );
  assert.equal(merged[1]!.robust_acc, 1 / 3);
  assert.throws(() => perClassRows([5], [1], [1], 4, 'synthetic'), /label 5/);
  assert.equal(perClassSummary(perClassRows([], [], [], 3, 'synthetic')), null);
});

test("merge: a RobustBench model's comparison with the leaderboard is recomputed from the merged counts", async () => {
  const { compareWithRobustBench } = await import('../../src/interop/robustbench-info.js');
  const entry = { name: 'X', dataset: 'cifar10' as const, threat: 'Linf' as const, info: { clean_acc: '80.00', autoattack_acc: '50.00', eps: '8/255' } };
  const shards = [fakeReport(0, 10, 9, [5, 5]), fakeReport(10, 20, 6, [2, 2]), fakeReport(20, 30, 3, [1, 0])].map((r) => ({
    ...r,
    robustbench: compareWithRobustBench(entry, r),
  }));
  const m = mergeReports(shards, ['a', 'b', 'c']);
  // 18 of 30 clean (60 %), 7 of 30 robust (23.33 %): against 80 and 50 reported.
  assert.deepEqual(m.robustbench?.ours, { clean_acc: 60, robust_acc: 23.3333 });
  assert.deepEqual(m.robustbench?.difference, { clean_acc: -20, robust_acc: -26.67 });
  assert.deepEqual(m.robustbench?.reported, { clean_acc: 80, autoattack_acc: 50 });
  assert.equal(m.robustbench?.comparable, false); // 30 examples, not the 10,000 of the leaderboard
});
