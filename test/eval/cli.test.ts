/** `ikl-eval` as a user runs it: exit codes, one-line errors, a killed run resumed, shards through the script. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { heavy } from '../helpers.js';
import type { EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from './fixture.js';
import { writeCifar10Folder } from '../data/fixtures.js';
import { CIFAR10_DIR } from '../../src/data/cifar.js';
import { resolveConfig } from '../../src/config/index.js';
import { createModel } from '../../src/models/index.js';
import { writeCheckpoint } from '../../src/checkpoint/index.js';

const root = new URL('../../..', import.meta.url).pathname;
const bin = join(root, 'bin', 'ikl-eval.js');
const env = { ...process.env, IKL_BACKEND: process.env.IKL_BACKEND ?? 'auto' };

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function timeless(r: EvalReport): unknown {
  return { ...r, created_at: null, time_s: null, stages: r.stages.map((s) => ({ ...s, time_s: null })) };
}

test('--help is instant and lists the attacks and examples', () => {
  const t0 = Date.now();
  const r = run(['--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--attack <name>\s+pgd\|fgsm\|cw\|apgd-ce\|apgd-t\|fab-t\|square\|autoattack/);
  assert.match(r.stdout, /Examples:/);
  assert.ok(Date.now() - t0 < 5000, 'no tfjs loaded for --help');
});

test('bad flags: exit 2, one line on stderr naming the flag, nothing on stdout', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--checkpoint', 'x', '--attack', 'deepfool'], /^ikl-eval: --attack: expected one of pgd\|/],
    [['--checkpoint', 'x', '--attack', 'pgd', '--eps', '8'], /^ikl-eval: --eps: expected at most 1/],
    [['--checkpoint', 'x', '--attack', 'pgd', '--eps', '-0.1'], /^ikl-eval: --eps: expected a positive number/],
    [['--checkpoint', 'x', '--attack', 'pgd', '--steps', '0'], /^ikl-eval: --steps: expected a whole number >= 1/],
    [['--checkpoint', 'x', '--attack', 'pgd', '--shard', '3/2'], /^ikl-eval: --shard: the index must be in \[0, 1\]/],
    [['--checkpoint', 'x', '--attack', 'pgd', '--frobnicate'], /^ikl-eval: unknown option '--frobnicate'/],
    [['--attack', 'pgd'], /^ikl-eval: --checkpoint: a checkpoint directory is required/],
    [['merge', '/nonexistent/report.json'], /^ikl-eval: merge: \/nonexistent\/report.json: cannot read \(no such file or folder\)/],
  ];
  for (const [args, msg] of cases) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`);
  }
});

test('a missing checkpoint is bad input (exit 2), answered before TensorFlow loads', () => {
  const r = run(['--checkpoint', '/nonexistent/ckpt', '--attack', 'pgd', '--log-format', 'json']);
  assert.equal(r.status, 2, r.stderr);
  // The only line: no "backend" log line, so no backend was loaded.
  assert.equal(r.stderr, 'ikl-eval: --checkpoint /nonexistent/ckpt: no such checkpoint directory or weight file\n');
  assert.equal(r.stdout, '');
});

test('--version on every bin prints the package version', () => {
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  for (const name of ['ikl-train', 'ikl-eval', 'ikl-doctor', 'ikl-export']) {
    const r = spawnSync(process.execPath, [join(root, 'bin', `${name}.js`), '--version'], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    assert.equal(r.stdout, `${version}\n`, name);
  }
});

test('--attack apgd-dlr points to --attacks; --norm Linf is accepted; --eps 0.5 is warned about, before any work', () => {
  const r = run(['--checkpoint', 'x', '--attack', 'apgd-dlr']);
  assert.equal(r.status, 2);
  assert.equal(
    r.stderr,
    "ikl-eval: --attack: 'apgd-dlr' is an AutoAttack stage; run it with --attacks apgd-dlr (a custom AutoAttack list, e.g. --attacks apgd-ce,apgd-dlr)\n",
  );
  // Accepted spellings get as far as the checkpoint check (which fails here), with the warning first.
  const w = run(['--checkpoint', '/nonexistent/ckpt', '--attack', 'pgd', '--norm', 'Linf', '--eps', '0.5']);
  assert.equal(w.status, 2);
  const lines = w.stderr.trimEnd().split('\n');
  assert.match(lines[0]!, /^ikl-eval: warning: --eps 0\.5 is 127\.5\/255 in L∞/);
  assert.match(lines[1]!, /^ikl-eval: --checkpoint \/nonexistent\/ckpt: no such/);
});

test('without a terminal: one line per stage with the robust accuracy so far; --quiet prints only the report', heavy, async () => {
  const dir = tempDir();
  const ckpt = await makeCheckpoint(dir, { steps: 10 });
  const args = ['--checkpoint', ckpt, '--attacks', 'apgd-ce,square', '--n-examples', '16', '--batch-size', '8', '--log-format', 'json'];
  const r = run(args);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as EvalReport;
  const lines = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => typeof l.stage === 'string');
  // 2 batches × 2 stages, in order; the last line's count is the report's.
  assert.deepEqual(
    lines.map((l) => [l.batch, l.stage]),
    [
      [1, 'apgd-ce'],
      [1, 'square'],
      [2, 'apgd-ce'],
      [2, 'square'],
    ],
  );
  assert.equal(lines[3]!.robust, report.robust_correct);
  assert.equal(lines[3]!.examples, 16);
  assert.equal(lines[1]!.examples, 8);
  assert.match(String(lines[3]!.msg), new RegExp(`^robust accuracy after square: ${(100 * report.robust_acc).toFixed(2)}% \\(${report.robust_correct}/16;`));
  // Provenance: when, by which version, which epoch of the checkpoint.
  assert.ok(Math.abs(Date.parse(report.created_at!) - Date.now()) < 3_600_000, String(report.created_at));
  assert.equal(report.ikl_at_version, (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version);
  assert.equal(report.checkpoint_epoch, 1);

  const q = run([...args, '--quiet']);
  assert.equal(q.status, 0, q.stderr);
  // Nothing of ours (TensorFlow's load-time lines stay when stderr is a socket, as under the test runner).
  assert.deepEqual(
    q.stderr.split('\n').filter((l) => l.startsWith('{') || l.startsWith('ikl-eval')),
    [],
    'nothing but warnings and errors',
  );
  assert.deepEqual(timeless(JSON.parse(q.stdout) as EvalReport), timeless(report));
});

test("ikl-eval reads the data directory recorded in the checkpoint's config when --data-dir is not given", heavy, async () => {
  const dir = tempDir();
  const dataDir = join(dir, 'datasets');
  // A test set is read only when it is whole (10,000 records); the training files can be short.
  writeCifar10Folder(join(dataDir, CIFAR10_DIR), 1, 10_000);
  const config = resolveConfig({ sets: ['data.dataset=cifar10', `data.dataDir=${JSON.stringify(dataDir)}`, 'model.arch=small-cnn'] });
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 0 });
  const ckpt = join(dir, 'ckpt');
  await writeCheckpoint(ckpt, { model, meta: { arch: 'small-cnn', numClasses: 10, dataset: 'cifar10', epoch: 3, step: 9, config } });
  model.dispose();
  const evalIn = (extra: string[]) =>
    spawnSync(process.execPath, [bin, '--checkpoint', ckpt, '--attack', 'fgsm', '--n-examples', '8', '--log-format', 'json', '--quiet', ...extra], {
      encoding: 'utf8',
      env,
      cwd: dir,
      timeout: 120_000,
    });
  // Run from a folder without ./data: the test set can only come from the recorded directory.
  const r = evalIn([]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as EvalReport;
  assert.equal(report.n_examples, 8);
  assert.equal(report.checkpoint_epoch, 3);
  // --data-dir wins over the recorded one: a folder holding a short test file is refused by name.
  const other = join(dir, 'other');
  writeCifar10Folder(join(other, CIFAR10_DIR), 1, 5);
  const o = evalIn(['--data-dir', other]);
  assert.equal(o.status, 2, o.stderr);
  assert.ok(o.stderr.includes(join(other, CIFAR10_DIR, 'test_batch.bin')), o.stderr);
});

test('killed with SIGKILL mid-run, resumed from --state: same report as an uninterrupted run', heavy, async () => {
  const dir = tempDir();
  const ckpt = await makeCheckpoint(dir, { steps: 10 });
  const args = [
    '--checkpoint',
    ckpt,
    '--attack',
    'pgd',
    '--steps',
    '4',
    '--n-examples',
    '64',
    '--batch-size',
    '8',
    '--seed',
    '7',
    '--log-format',
    'json',
    '--no-progress',
  ];
  const state = join(dir, 'kill.state.json');
  const total = 8;

  const child = spawn(process.execPath, [bin, ...args, '--state', state], { env, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let doneAtKill = -1;
  for (let i = 0; i < 12_000 && doneAtKill < 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    if (!existsSync(state)) continue;
    const s = JSON.parse(readFileSync(state, 'utf8')) as { batches: Record<string, { stagesDone: number }> };
    const done = Object.values(s.batches).filter((b) => b.stagesDone === 1).length;
    if (done >= 1) {
      child.kill('SIGKILL');
      doneAtKill = done;
    }
  }
  await exited;
  const atKill = JSON.parse(readFileSync(state, 'utf8')) as { batches: Record<string, { stagesDone: number }> };
  const doneAfterKill = Object.values(atKill.batches).filter((b) => b.stagesDone === 1).length;
  assert.ok(doneAfterKill >= 1 && doneAfterKill < total, `the kill landed mid-run (${doneAfterKill}/${total} batches done)`);

  const resumed = run([...args, '--state', state]);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming from state/);
  const whole = run(args);
  assert.equal(whole.status, 0, whole.stderr);
  const a = JSON.parse(resumed.stdout) as EvalReport;
  const b = JSON.parse(whole.stdout) as EvalReport;
  assert.deepEqual(timeless(a), timeless(b));
  assert.equal(a.n_examples, 64);

  // Other options with the same state file: exit 2, one line.
  const other = run([...args.map((v) => (v === '7' ? '8' : v)), '--state', state]);
  assert.equal(other.status, 2);
  assert.match(other.stderr, /--state .*: made with seed=7, this run has seed=8/);
});
