/**
 * Signals stop training within seconds of the step in progress (issue 11, defect 1), whatever
 * checkpoint.everySteps is: the first SIGINT/SIGTERM lets the step finish, writes a mid-epoch last/ and exits
 * 130/143; a second one ends the process at once and the previous checkpoint stays valid. Each case runs
 * `ikl-train` as a child process; the seconds from the signal to the exit are printed, not asserted tightly.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CHECKPOINT_FILES, verifyCheckpoint } from '../../src/checkpoint/index.js';
import { heavy } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'ikl-train.js');
const tmp = mkdtempSync(join(tmpdir(), 'ikl-signals-'));
const env = { ...process.env, IKL_BACKEND: 'tensorflow' };

// 100 steps per epoch of a small CNN (a few seconds), weight averaging and class-wise weights on: a signal one
// second into the run lands in the middle of epoch 1. checkpoint.everySteps stays at its default 0.
const CONFIG = `run: { name: sig, progress: false }
data:
  dataset: synthetic
  synthetic: { nTrain: 1616, nTest: 32, seed: 0 }
  valSize: 16
  batchSize: 16
  augment: false
model: { arch: small-cnn }
attack: { steps: 1 }
awp: { warmupEpoch: 2 }
optimizer: { lr: 0.05 }
schedule: { epochs: 2 }
weightAverage: { enabled: true, tau: 0.5 }
eval: { nExamples: 16, pgdSteps: 2 }
`;
const N_BATCHES = 100;
const cfg = join(tmp, 'sig.yaml');
writeFileSync(cfg, CONFIG);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** Seconds from the first signal to the exit. */
  seconds: number;
  /** Whether the second signal (if any) was sent while a checkpoint generation was being written. */
  duringWrite: boolean;
}

/**
 * Runs ikl-train and sends `sig` `delayMs` after training starts; with `again`, once a first checkpoint exists,
 * and a second time as soon as the trainer starts writing a checkpoint after the first (or after 2 s).
 */
function interrupted(runDir: string, sig: NodeJS.Signals, delayMs: number, again = false, extra: string[] = []): Promise<Run> {
  const child = spawn(process.execPath, [BIN, '--config', cfg, '--run-dir', runDir, '--log-format', 'json', ...extra], { cwd: tmp, env });
  let stderr = '';
  let sentAt = 0;
  let duringWrite = false;
  let poll: NodeJS.Timeout | undefined;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (sentAt === 0 && stderr.includes('"msg":"training starts"')) {
      sentAt = -1;
      // With `again`, the first signal waits for a first checkpoint: the one the second signal must leave intact.
      const first = (): void => {
        if (again && !existsSync(join(runDir, 'last'))) {
          setTimeout(first, 5);
          return;
        }
        sentAt = performance.now();
        child.kill(sig);
        if (!again) return;
        // A generation being written is a hidden temporary directory (src/checkpoint/checkpoint.ts).
        poll = setInterval(() => {
          let writing = false;
          try {
            writing = readdirSync(runDir).some((f) => f.includes('.tmp-'));
          } catch {
            /* not there yet */
          }
          if (writing || performance.now() - sentAt > 2000) {
            duringWrite = writing;
            clearInterval(poll);
            child.kill(sig);
          }
        }, 1);
      };
      setTimeout(first, delayMs);
    }
  });
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearInterval(poll);
      resolve({ code, signal, stderr, seconds: (performance.now() - sentAt) / 1000, duringWrite });
    }),
  );
}

function train(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args, '--log-format', 'json'], { cwd: tmp, encoding: 'utf8', env, timeout: 300_000 });
  return { status: r.status, stderr: r.stderr };
}

/** The digests of the model and optimiser state of a checkpoint, and where it stands. */
async function fingerprint(dir: string): Promise<{ weights: string; tensors: string; position: unknown; metrics: unknown }> {
  const c = await verifyCheckpoint(dir);
  const timeless = (c.meta.metrics ?? []).map((m) => ({
    ...m,
    time: null,
    epochSeconds: null,
    imagesPerSecond: null,
    evalSeconds: null,
    dataWaitSeconds: null,
  }));
  return {
    weights: c.files[CHECKPOINT_FILES.weights]!.sha256,
    tensors: c.files[CHECKPOINT_FILES.tensors]!.sha256,
    position: c.state.position,
    metrics: timeless,
  };
}

let reference: Promise<Awaited<ReturnType<typeof fingerprint>>> | undefined;
/** The uninterrupted run's final last/. */
function uninterrupted(): Promise<Awaited<ReturnType<typeof fingerprint>>> {
  reference ??= (async () => {
    const dir = join(tmp, 'whole');
    const r = train(['--config', cfg, '--run-dir', dir]);
    assert.equal(r.status, 0, r.stderr);
    return fingerprint(join(dir, 'last'));
  })();
  return reference;
}

test(
  'SIGINT mid-epoch (everySteps 0): the step finishes, a mid-epoch last/ is written, exit 130; the resume ends where an uninterrupted run ends',
  heavy,
  async () => {
    const runDir = join(tmp, 'int');
    const r = await interrupted(runDir, 'SIGINT', 1000);
    console.log(`# SIGINT -> exit: ${r.seconds.toFixed(2)} s (small CNN, batch 16)`);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /SIGINT: finishing the current step and writing last\//);
    const stopped = await fingerprint(join(runDir, 'last'));
    const at = stopped.position as { epoch: number; batch: number };
    assert.equal(at.epoch, 1, `stopped in epoch 1: ${JSON.stringify(at)}`);
    assert.ok(at.batch >= 1 && at.batch < N_BATCHES, `a mid-epoch position: ${JSON.stringify(at)}`);
    assert.ok(r.seconds < 30, `exited ${r.seconds} s after the signal`);

    const resumed = train(['--resume', runDir]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.deepEqual(await fingerprint(join(runDir, 'last')), await uninterrupted(), 'weights, optimiser state and metrics of the uninterrupted run');
  },
);

test('SIGTERM exits 143; a second SIGTERM ends the process at once and the previous checkpoint stays valid and resumable', heavy, async () => {
  const runDir = join(tmp, 'term');
  // Checkpoints every 10 steps, so that there is a previous one for the second signal to find.
  const r = await interrupted(runDir, 'SIGTERM', 1000, true, ['--set', 'checkpoint.everySteps=10']);
  console.log(
    `# SIGTERM, SIGTERM -> exit: ${r.seconds.toFixed(2)} s after the first; second signal ${r.duringWrite ? 'during' : 'outside'} a checkpoint write`,
  );
  // Terminated by the signal's default action (the shell reports 143), or, when the first stop was already done, 143.
  assert.ok(r.signal === 'SIGTERM' || r.code === 143, `code ${r.code}, signal ${r.signal}: ${r.stderr}`);
  const kept = await fingerprint(join(runDir, 'last'));
  const at = kept.position as { epoch: number; batch: number };
  assert.ok(at.epoch === 1 && at.batch >= 1, `a checkpoint of epoch 1: ${JSON.stringify(at)}`);

  const resumed = train(['--resume', runDir, '--set', 'checkpoint.everySteps=10']);
  assert.equal(resumed.status, 0, resumed.stderr);
  const done = await fingerprint(join(runDir, 'last'));
  const whole = await uninterrupted();
  assert.deepEqual({ ...done }, { ...whole }, 'the resume from the kept checkpoint ends where the uninterrupted run ends');
});

test('a single SIGTERM: exit 143 with a mid-epoch last/', heavy, async () => {
  const runDir = join(tmp, 'term1');
  const r = await interrupted(runDir, 'SIGTERM', 1000);
  console.log(`# SIGTERM -> exit: ${r.seconds.toFixed(2)} s`);
  assert.equal(r.code, 143, r.stderr);
  const at = (await fingerprint(join(runDir, 'last'))).position as { epoch: number; batch: number };
  assert.ok(at.epoch === 1 && at.batch >= 1 && at.batch < N_BATCHES, JSON.stringify(at));
  assert.ok(JSON.parse(readFileSync(join(runDir, 'last', 'checkpoint.json'), 'utf8')) !== null);
});
