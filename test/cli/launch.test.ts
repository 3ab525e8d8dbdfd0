/**
 * ikl-launch with two ikl-train tasks on 127.0.0.1 (CPU, one thread each): a run trains into one run directory;
 * SIGINT makes every task stop after the same step and the launch exit 130 with last/ kept, and a launch with
 * --resume continues from it; kill -9 of one task makes the launch exit non-zero with no task left, and the resume
 * continues from the last checkpoint. Waits for log lines, never for a duration; every process is killed in the end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { heavy } from '../helpers.js';

const LAUNCH = fileURLToPath(new URL('../../../bin/ikl-launch.js', import.meta.url));
const EVAL = fileURLToPath(new URL('../../../bin/ikl-eval.js', import.meta.url));

/** Small CNN on 96 synthetic images, global batch 16 (8 per task); `epochs` long enough never to end by itself. */
function writeConfig(dir: string, epochs: number): string {
  const file = join(dir, 'run.yaml');
  writeFileSync(
    file,
    [
      'run: { seed: 3, progress: false }',
      'data: { dataset: synthetic, synthetic: { nTrain: 112, nTest: 16 }, valSize: 16, batchSize: 16, augment: true }',
      'model: { arch: small-cnn }',
      'objective: { type: ikl-at }',
      'attack: { steps: 1 }',
      `schedule: { epochs: ${epochs}, warmupEpochs: 0 }`,
      'eval: { nExamples: 16, pgdSteps: 1 }',
      '',
    ].join('\n'),
  );
  return file;
}

interface Launch {
  child: ChildProcess;
  output: () => string;
  /** Resolves when the combined output matches. */
  waitFor: (re: RegExp) => Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const launches: ChildProcess[] = [];

function launch(args: string[]): Launch {
  const child = spawn(process.execPath, [LAUNCH, '--nproc', '2', '--threads', '1', '--timeout', '60', '--', 'ikl-train', ...args, '--log-format', 'json'], {
    env: { ...process.env, CUDA_VISIBLE_DEVICES: '', TF_CPP_MIN_LOG_LEVEL: '2' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  launches.push(child);
  let out = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const onData = (d: Buffer): void => {
    out += d.toString();
    for (const w of [...waiters]) {
      if (w.re.test(out)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    output: () => out,
    waitFor: (re) =>
      re.test(out)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ re, resolve })),
            exit.then(() => {
              if (!re.test(out)) throw new Error(`launch ended before ${re}: ${out.slice(-3000)}`);
            }),
          ]),
    exit,
  };
}

/** The task processes (children of the launcher) with their rank from TF_CONFIG. */
function tasksOf(launcherPid: number): { pid: number; rank: number }[] {
  const children = readFileSync(`/proc/${launcherPid}/task/${launcherPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children.map((pid) => {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const tf = env.find((e) => e.startsWith('TF_CONFIG='))!.slice('TF_CONFIG='.length);
    return { pid, rank: (JSON.parse(tf) as { task: { index: number } }).task.index };
  });
}

const metricLines = (runDir: string): number => readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').filter(Boolean).length;

test(
  'ikl-launch: 2 tasks train into one run directory; SIGINT → 130 with last/ kept; --resume continues; ikl-eval shards merged',
  { ...heavy, timeout: 600_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ikl-launch-'));
    const runDir = join(dir, 'run');
    try {
      const config = writeConfig(dir, 100);
      const first = launch(['--config', config, '--run-dir', runDir]);
      await first.waitFor(/"epoch":1,"step":\d+,"lr"/);
      first.child.kill('SIGINT');
      const { code } = await first.exit;
      assert.equal(code, 130, first.output().slice(-3000));
      assert.match(first.output(), /\[0\] .*stopped on request/);
      assert.match(first.output(), /\[1\] ikl-train: SIGINT/);
      assert.ok(existsSync(join(runDir, 'last', 'checkpoint.json')));
      assert.ok(!existsSync(join(runDir, 'run', 'last')));
      const epochs = metricLines(runDir);
      assert.ok(epochs >= 1);
      const stoppedAt = Number(/"step":(\d+),"checkpoint":[^\n]*stopped on request/.exec(first.output())![1]);
      const second = launch(['--resume', runDir]);
      await second.waitFor(new RegExp(`"msg":"resuming"`));
      assert.match(second.output(), new RegExp(`"step":${stoppedAt},"msg":"resuming"`));
      await second.waitFor(new RegExp(`"epoch":${epochs + 1},"step"`));
      second.child.kill('SIGINT');
      assert.equal((await second.exit).code, 130, second.output().slice(-3000));
      assert.ok(metricLines(runDir) > epochs);

      // ikl-eval over the launcher: two shards merged = one process's evaluation.
      const evalArgs = ['--checkpoint', join(runDir, 'last'), '--attack', 'pgd', '--n-examples', '8', '--batch-size', '4'];
      const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' };
      const sharded = spawnSync(process.execPath, [LAUNCH, '--nproc', '2', '--threads', '1', '--out', join(dir, 'eval'), '--', 'ikl-eval', ...evalArgs], {
        env,
        encoding: 'utf8',
        timeout: 300_000,
      });
      assert.equal(sharded.status, 0, sharded.stderr.slice(-3000));
      const single = spawnSync(process.execPath, [EVAL, ...evalArgs], { env, encoding: 'utf8', timeout: 300_000 });
      assert.equal(single.status, 0, single.stderr.slice(-3000));
      const pick = (text: string) => {
        const r = JSON.parse(text) as Record<string, unknown>;
        return [r.n_examples, r.clean_acc, r.robust_acc];
      };
      assert.deepEqual(pick(sharded.stdout), pick(single.stdout));
      assert.deepEqual(pick(readFileSync(join(dir, 'eval', 'report.json'), 'utf8')), pick(single.stdout));
    } finally {
      for (const c of launches) c.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('ikl-launch: kill -9 of one task → non-zero exit, no task left, the resume continues from last/', { ...heavy, timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ikl-launch-'));
  const runDir = join(dir, 'run');
  let pids: number[] = [];
  try {
    const config = writeConfig(dir, 100);
    const first = launch(['--config', config, '--run-dir', runDir]);
    await first.waitFor(/"epoch":1,"step":\d+,"lr"/);
    const tasks = tasksOf(first.child.pid!);
    pids = tasks.map((t) => t.pid);
    assert.deepEqual(tasks.map((t) => t.rank).sort(), [0, 1]);
    process.kill(tasks.find((t) => t.rank === 1)!.pid, 'SIGKILL');
    const { code } = await first.exit;
    assert.notEqual(code, 0);
    assert.match(first.output(), /ikl-launch: task 1 exited with SIGKILL/);
    for (const pid of pids)
      assert.ok(!existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z', `task ${pid} still running`);
    const epochs = metricLines(runDir);
    const second = launch(['--resume', runDir]);
    await second.waitFor(/"msg":"resuming"/);
    await second.waitFor(new RegExp(`"epoch":${epochs + 1},"step"`));
    second.child.kill('SIGINT');
    assert.equal((await second.exit).code, 130, second.output().slice(-3000));
  } finally {
    for (const c of launches) c.kill('SIGKILL');
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
