/** scripts/eval-shards.sh: shard processes in parallel, merged by `ikl-eval merge`, equal to the unsharded run. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { heavy } from '../helpers.js';
import type { EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from './fixture.js';

const root = new URL('../../..', import.meta.url).pathname;
const env = { ...process.env, IKL_BACKEND: process.env.IKL_BACKEND ?? 'auto' };

function timeless(r: EvalReport): unknown {
  return { ...r, created_at: null, time_s: null, stages: r.stages.map((s) => ({ ...s, time_s: null })) };
}

test('eval-shards.sh: usage errors exit 2 with the usage text', () => {
  const r = spawnSync('bash', [join(root, 'scripts', 'eval-shards.sh')], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^Usage: scripts\/eval-shards.sh/);
  const s = spawnSync('bash', [join(root, 'scripts', 'eval-shards.sh'), '2', '--', '--shard', '0/2'], { encoding: 'utf8' });
  assert.equal(s.status, 2);
  assert.match(s.stderr, /do not pass --shard/);
  const slurm = spawnSync('bash', [join(root, 'scripts', 'eval-slurm.sh'), '-h'], { encoding: 'utf8' });
  assert.equal(slurm.status, 0);
  assert.match(slurm.stdout, /sbatch --array=0\.\.N-1/);
});

test('eval-shards.sh: 2 shards (CPU) merged equal the unsharded CLI run', heavy, () => {
  const dir = tempDir();
  return makeCheckpoint(dir, { steps: 10 }).then((ckpt) => {
    const args = [
      '--checkpoint',
      ckpt,
      '--attack',
      'pgd',
      '--steps',
      '4',
      '--n-examples',
      '48',
      '--batch-size',
      '8',
      '--seed',
      '7',
      '--log-format',
      'json',
      '--no-progress',
    ];
    const whole = spawnSync(process.execPath, [join(root, 'bin', 'ikl-eval.js'), ...args], { encoding: 'utf8', env, timeout: 120_000 });
    assert.equal(whole.status, 0, whole.stderr);
    const out = join(dir, 'shards');
    const sh = spawnSync('bash', [join(root, 'scripts', 'eval-shards.sh'), '-o', out, '-g', 'none', '2', '--', ...args], {
      encoding: 'utf8',
      env,
      timeout: 300_000,
    });
    assert.equal(sh.status, 0, sh.stderr);
    const merged = JSON.parse(sh.stdout) as EvalReport;
    assert.deepEqual(timeless(merged), timeless(JSON.parse(whole.stdout) as EvalReport));
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')), merged);
    assert.deepEqual((JSON.parse(readFileSync(join(out, 'shard1.json'), 'utf8')) as EvalReport).slice, { start: 24, end: 48 });
  });
});

test('eval-slurm.sh submits an array of N shard tasks and a merge job that depends on it (afterok)', () => {
  const dir = tempDir();
  // A stand-in sbatch that records its arguments and answers like `sbatch --parsable`.
  const log = join(dir, 'sbatch.log');
  writeFileSync(join(dir, 'sbatch'), `#!/usr/bin/env bash\nprintf '%s\\n' "$*" >> ${JSON.stringify(log)}\necho "4242;cluster"\n`);
  chmodSync(join(dir, 'sbatch'), 0o755);
  const out = join(dir, 'out');
  const r = spawnSync('bash', [join(root, 'scripts', 'eval-slurm.sh'), '-o', out, '-p', 'gpu', '3', '--', '--checkpoint', 'ck', '--attack', 'autoattack'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
  });
  assert.equal(r.status, 0, r.stderr);
  const [array, merge] = readFileSync(log, 'utf8').trim().split('\n');
  assert.match(array!, /--array=0-2 /);
  assert.match(array!, /--partition=gpu/);
  assert.match(array!, /--gres=gpu:1/);
  assert.match(array!, /--checkpoint ck --attack autoattack --shard \$i\/3 --state \S+\/shard\$i\.state\.json/);
  assert.match(merge!, /--dependency=afterok:4242/);
  assert.match(merge!, /merge \S+shard0\.json \S+shard1\.json \S+shard2\.json/);
  assert.equal(r.stdout.trim(), '4242 4242');
});
