/**
 * A model is identified by the sha256 of its weights, not by its path (issue 11, defect 2): `--state` resume
 * and `ikl-eval merge` refuse other weights behind the same path (wa/ moving on while training continues) and
 * accept the same weights reached by a relative and an absolute path.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { readCheckpoint } from '../../src/checkpoint/index.js';
import type { AttackPlan } from '../../src/eval/plan.js';
import { InputError } from '../../src/errors.js';
import { resolveEvalOptions, type RawEvalOptions } from '../../src/eval/options.js';
import { runEval } from '../../src/eval/run.js';
import type { EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from './fixture.js';

const dir = tempDir('ikl-identity-');
let made: Promise<{ a: string; b: string }> | undefined;
/** Two checkpoints of the same architecture with different weights (a few training steps each). */
function models(): Promise<{ a: string; b: string }> {
  made ??= (async () => {
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    const a = realpathSync(await makeCheckpoint(join(dir, 'a'), { steps: 2, seed: 1 }));
    const b = realpathSync(await makeCheckpoint(join(dir, 'b'), { steps: 2, seed: 2 }));
    return { a, b };
  })();
  return made;
}

/** `link` → `target`, replaced atomically like the trainer's wa/ link. */
function pointLink(link: string, target: string): void {
  rmSync(link, { force: true });
  symlinkSync(target, link);
}

const flags = (c: string, extra: RawEvalOptions = {}): RawEvalOptions => ({
  checkpoint: c,
  attack: 'pgd',
  nExamples: '16',
  batchSize: '8',
  steps: '1',
  dataset: 'synthetic',
  seed: '4',
  ...extra,
});

function timeless(r: EvalReport): unknown {
  return { ...r, checkpoint: null, created_at: null, time_s: null, stages: r.stages.map((s) => ({ ...s, time_s: null })) };
}

test('the weights hash is the same through a link, a copy and a relative path, and differs for other weights', async () => {
  const { a, b } = await models();
  const copy = join(dir, 'copy');
  cpSync(a, copy, { recursive: true, dereference: true });
  const ids = [];
  for (const p of [a, copy, relative(process.cwd(), a), b]) {
    const c = await readCheckpoint(p);
    ids.push(c.weightsSha256);
    c.model.dispose();
  }
  assert.match(ids[0]!, /^[0-9a-f]{64}$/);
  assert.deepEqual(ids.slice(0, 3), [ids[0], ids[0], ids[0]]);
  assert.notEqual(ids[3], ids[0]);
});

test('--state: other weights behind the same link are refused naming both hashes; the same weights by another path resume', async () => {
  const { a, b } = await models();
  const wa = join(dir, 'wa');
  pointLink(wa, a);
  const whole = (await runEval(resolveEvalOptions(flags(a))))!;
  assert.match(whole.weights_sha256!, /^[0-9a-f]{64}$/);

  const state = join(dir, 'wa.state.json');
  const stop = new AbortController();
  assert.equal(await runEval(resolveEvalOptions(flags(wa)), { stateFile: state, signal: stop.signal, onProgress: (done) => done >= 1 && stop.abort() }), null);
  pointLink(wa, b); // training continued: wa/ now holds other weights
  await assert.rejects(runEval(resolveEvalOptions(flags(wa)), { stateFile: state }), (e: unknown) => {
    const short = whole.weights_sha256!.slice(0, 12);
    return (
      e instanceof InputError && e.message.includes(`made from the weights of ${wa} (sha256 ${short}…), but --checkpoint ${wa} holds other weights (sha256 `)
    );
  });
  // The weights the state was made from, by a relative path: resumed, and equal to the uninterrupted run.
  const rel = relative(process.cwd(), a);
  const resumed = (await runEval(resolveEvalOptions(flags(rel)), { stateFile: state }))!;
  assert.deepEqual(timeless(resumed), timeless(whole));
  assert.equal(resumed.checkpoint, rel, 'the report names the path of the run that finished it');
});

const root = new URL('../../..', import.meta.url).pathname;
const bin = join(root, 'bin', 'ikl-eval.js');
function cli(args: string[], cwd = process.cwd()): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    cwd,
    env: { ...process.env, IKL_BACKEND: process.env.IKL_BACKEND ?? 'auto' },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('ikl-eval merge (CLI): shards of different weights at one path exit 2 naming both; relative + absolute paths merge', async () => {
  const { a, b } = await models();
  const wa = join(dir, 'wa-cli');
  const common = [
    '--attack',
    'pgd',
    '--steps',
    '1',
    '--n-examples',
    '16',
    '--batch-size',
    '8',
    '--dataset',
    'synthetic',
    '--log-format',
    'json',
    '--no-progress',
  ];
  const shard = (ckpt: string, i: number, cwd?: string): string => {
    const r = cli(['--checkpoint', ckpt, ...common, '--shard', `${i}/2`], cwd);
    assert.equal(r.status, 0, r.stderr);
    const f = join(dir, `cli-${i}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, r.stdout);
    return f;
  };
  pointLink(wa, a);
  const s0 = shard(wa, 0);
  pointLink(wa, b);
  const s1 = shard(wa, 1);
  const bad = cli(['merge', s0, s1]);
  assert.equal(bad.status, 2, bad.stderr);
  assert.equal(bad.stdout, '');
  assert.match(
    bad.stderr,
    /^ikl-eval: merge: .*cli-1-.*\.json evaluated weights sha256 [0-9a-f]{12}… \(checkpoint .*wa-cli\) but .*cli-0-.*\.json evaluated [0-9a-f]{12}… \(checkpoint .*wa-cli\); these are different models/,
  );
  assert.equal(bad.stderr.trimEnd().split('\n').length, 1);

  // Shard 1 of the same weights as shard 0, reached by a relative path from another working directory.
  const s1ok = shard(relative(dir, a), 1, dir);
  const good = cli(['merge', s0, s1ok]);
  assert.equal(good.status, 0, good.stderr);
  const merged = JSON.parse(good.stdout) as EvalReport;
  assert.equal(merged.n_examples, 16);
  assert.equal(merged.weights_sha256, (JSON.parse(cli(['--checkpoint', a, ...common]).stdout) as EvalReport).weights_sha256);
});

test('the resume log counts the stages restored, not only whole batches', async () => {
  const { a } = await models();
  const eps = 2 / 255;
  const plan: AttackPlan = {
    loss: null,
    details: {},
    stages: (['ce', 'cw'] as const).map((loss) => ({ name: `pgd-${loss}-1`, attack: 'pgd', options: { steps: 1, stepSize: eps, restarts: 1, loss } })),
  };
  const state = join(dir, 'log.state.json');
  const stop = new AbortController();
  assert.equal(
    await runEval(resolveEvalOptions(flags(a, { eps: '2/255' })), { plan, stateFile: state, signal: stop.signal, onStage: () => stop.abort() }),
    null,
  );
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  await runEval(resolveEvalOptions(flags(a, { eps: '2/255' })), { plan, stateFile: state, logger });
  const resume = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'resuming from state');
  assert.deepEqual([resume?.batchesDone, resume?.stagesDone], [0, 1], 'one stage of batch 0 was restored, no whole batch');
});
