/**
 * AutoAttack versions and custom lists through `ikl-eval` as a user runs them: flags, the report's details, a
 * killed run resumed from --state, shards merged, and states/reports of another version or list refused by name.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { heavy } from '../helpers.js';
import { resolveEvalOptions } from '../../src/eval/options.js';
import { planAttack } from '../../src/eval/plan.js';
import type { EvalOptions, EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from './fixture.js';

const root = new URL('../../..', import.meta.url).pathname;
const bin = join(root, 'bin', 'ikl-eval.js');
const env = { ...process.env, IKL_BACKEND: process.env.IKL_BACKEND ?? 'auto' };

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function timeless(r: EvalReport): unknown {
  return { ...r, created_at: null, time_s: null, stages: r.stages.map((s) => ({ ...s, time_s: null })) };
}

test('--aa-version and --attacks: options, stage lists and the report details of every version', () => {
  const base = { checkpoint: 'c' };
  const plan = (raw: Record<string, string>) => planAttack({ ...resolveEvalOptions({ ...base, ...raw }), dataset: 'synthetic', nExamples: 10 } as EvalOptions);
  // standard leaves no trace in the options (older state files keep matching).
  const std = resolveEvalOptions({ ...base, attack: 'autoattack', aaVersion: 'standard' });
  assert.equal('aaVersion' in std, false);
  assert.deepEqual(
    plan({ attack: 'autoattack' }).stages.map((s) => s.name),
    ['apgd-ce', 'apgd-t', 'fab-t', 'square'],
  );
  const plus = plan({ attack: 'autoattack', aaVersion: 'plus' });
  assert.deepEqual(
    plus.stages.map((s) => s.name),
    ['apgd-ce', 'apgd-dlr', 'fab', 'square', 'apgd-t', 'fab-t'],
  );
  assert.equal(plus.details.version, 'plus');
  assert.equal(plus.details['apgd-ce.restarts'], 5);
  assert.equal(plus.details['fab-t.restarts'], 5);
  assert.equal(plus.details['apgd-t.restarts'], 1);
  assert.equal(plus.details['square.queries'], 5000);
  const rand = plan({ attack: 'autoattack', aaVersion: 'rand' });
  assert.deepEqual(rand.details, {
    version: 'rand',
    'apgd-ce.steps': 100,
    'apgd-ce.restarts': 1,
    'apgd-ce.eot_iter': 20,
    'apgd-dlr.steps': 100,
    'apgd-dlr.restarts': 1,
    'apgd-dlr.eot_iter': 20,
  });
  // --attacks alone means --attack autoattack with a custom list.
  const custom = resolveEvalOptions({ ...base, attacks: 'fab, apgd-dlr' });
  assert.equal(custom.attack, 'autoattack');
  assert.deepEqual([custom.aaVersion, custom.attacks], ['custom', ['fab', 'apgd-dlr']]);
  for (const [raw, msg] of [
    [{ attack: 'autoattack', aaVersion: 'strong' }, /^--aa-version: expected one of standard\|plus\|rand, got 'strong'/],
    [{ attack: 'pgd', aaVersion: 'plus' }, /^--aa-version: only with --attack autoattack/],
    [{ attack: 'pgd', attacks: 'fab' }, /^--attacks: .* got --attack pgd/],
    [{ attacks: 'fab', aaVersion: 'plus' }, /^--attacks: a custom list replaces --aa-version plus/],
    [{ attacks: 'apgd-ce,pgd' }, /^--attacks: expected a comma-separated list of .*, got 'pgd'/],
    [{ attacks: 'fab,fab' }, /^--attacks: 'fab' is listed twice/],
    [{ attacks: 'fab', steps: '3' }, /^--steps: not accepted with --attack autoattack/],
  ] as const) {
    assert.throws(
      () => resolveEvalOptions({ ...base, ...raw }),
      (e: unknown) => e instanceof Error && msg.test(e.message),
      JSON.stringify(raw),
    );
  }
});

test('a custom list end to end: killed and resumed from --state, shards merged, other versions and lists refused by name', heavy, async () => {
  const dir = tempDir();
  const ckpt = await makeCheckpoint(dir);
  const args = [
    '--checkpoint',
    ckpt,
    '--attacks',
    'apgd-dlr,fab',
    '--eps',
    '8/255',
    '--n-examples',
    '16',
    '--batch-size',
    '4',
    '--seed',
    '3',
    '--log-format',
    'json',
    '--no-progress',
  ];

  const whole = run(args);
  assert.equal(whole.status, 0, whole.stderr);
  const w = JSON.parse(whole.stdout) as EvalReport;
  assert.equal(w.attack, 'autoattack');
  assert.deepEqual(w.attack_params.stages, ['apgd-dlr', 'fab']);
  assert.deepEqual(w.attack_params.details, { version: 'custom', 'apgd-dlr.steps': 100, 'apgd-dlr.restarts': 5, 'fab.steps': 100, 'fab.restarts': 5 });
  assert.deepEqual(
    w.stages.map((s) => s.name),
    ['apgd-dlr', 'fab'],
  );
  assert.ok(w.robust_correct < w.clean_correct, `nothing fooled (clean ${w.clean_correct}, robust ${w.robust_correct}): the test proves little`);

  // Killed after the first stage of some batch, then resumed: the report of the uninterrupted run.
  const state = join(dir, 'custom.state.json');
  const child = spawn(process.execPath, [bin, ...args, '--state', state], { env, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 30_000; i++) {
    await new Promise((r) => setTimeout(r, 10));
    if (!existsSync(state)) continue;
    const s = JSON.parse(readFileSync(state, 'utf8')) as { batches: Record<string, { stagesDone: number }> };
    if (Object.values(s.batches).some((b) => b.stagesDone >= 1)) {
      child.kill('SIGKILL');
      break;
    }
  }
  await exited;
  const atKill = JSON.parse(readFileSync(state, 'utf8')) as { batches: Record<string, { stagesDone: number }> };
  const done = Object.values(atKill.batches).filter((b) => b.stagesDone === 2).length;
  assert.ok(done < 4, 'the kill landed mid-run');
  const resumed = run([...args, '--state', state]);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming from state/);
  assert.deepEqual(timeless(JSON.parse(resumed.stdout) as EvalReport), timeless(w));

  // The same state file with another version or another list: exit 2, naming the option.
  const withVersion = args.flatMap((v, i) => (v === '--attacks' ? ['--attack', 'autoattack', '--aa-version', 'plus'] : args[i - 1] === '--attacks' ? [] : [v]));
  const otherVersion = run([...withVersion, '--state', state]);
  assert.equal(otherVersion.status, 2, otherVersion.stderr);
  assert.match(otherVersion.stderr, /--state .*: made with aaVersion="custom", this run has aaVersion="plus"/);
  const otherList = run([...args.map((v) => (v === 'apgd-dlr,fab' ? 'fab,apgd-dlr' : v)), '--state', state]);
  assert.equal(otherList.status, 2, otherList.stderr);
  assert.match(otherList.stderr, /--state .*: made with attacks=\["apgd-dlr","fab"\], this run has attacks=\["fab","apgd-dlr"\]/);

  // Shards merged equal the whole run; a shard of another version or list is refused by name.
  const files = ['0/2', '1/2'].map((shard, k) => {
    const r = run([...args, '--shard', shard]);
    assert.equal(r.status, 0, r.stderr);
    const f = join(dir, `shard${k}.json`);
    writeFileSync(f, r.stdout);
    return f;
  });
  const merged = run(['merge', ...files]);
  assert.equal(merged.status, 0, merged.stderr);
  assert.deepEqual(timeless(JSON.parse(merged.stdout) as EvalReport), timeless(w));
  const shard1 = JSON.parse(readFileSync(files[1]!, 'utf8')) as EvalReport;
  const plusShard = join(dir, 'plus.json');
  writeFileSync(
    plusShard,
    JSON.stringify({ ...shard1, attack_params: { ...shard1.attack_params, details: { ...shard1.attack_params.details, version: 'plus' } } }),
  );
  const badVersion = run(['merge', files[0]!, plusShard]);
  assert.equal(badVersion.status, 2);
  assert.match(badVersion.stderr, /merge: .*plus\.json has AutoAttack version plus but .*shard0\.json has custom/);
  const listShard = join(dir, 'list.json');
  writeFileSync(listShard, JSON.stringify({ ...shard1, attack_params: { ...shard1.attack_params, stages: ['fab', 'apgd-dlr'] } }));
  const badList = run(['merge', files[0]!, listShard]);
  assert.equal(badList.status, 2);
  assert.match(badList.stderr, /merge: .*list\.json has stages fab,apgd-dlr but .*shard0\.json has apgd-dlr,fab/);
});
