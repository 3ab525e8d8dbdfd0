/** `ikl-eval` as a user runs it: exit codes, one-line errors, a killed run resumed, shards through the script. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { heavy } from '../helpers.js';
import type { EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from './fixture.js';

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

test('a missing checkpoint directory is bad input (exit 2)', () => {
  // The pure-JS backend loads fastest; the error comes before any computation.
  const r = run(['--checkpoint', '/nonexistent/ckpt', '--attack', 'pgd', '--log-format', 'json', '--backend', 'cpu']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^ikl-eval: \/nonexistent\/ckpt: no such checkpoint directory$/m);
  assert.equal(r.stdout, '');
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
