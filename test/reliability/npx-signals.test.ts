/**
 * A signal sent to the `npx ikl-train` process stops the run as Ctrl-C does (issue 22, point 1): the step
 * finishes, last/ is written, and the exit code is 130/143. npx (npm exec) forwards SIGINT/SIGTERM to the shell it
 * runs the bin in; the repository's .npmrc makes that shell bash, which execs the bin, so the signal reaches it.
 * With a shell that neither execs nor forwards (dash: `--script-shell=sh`), SIGTERM kills the shell and orphans
 * the trainer, which notices that its parent is gone (bin/_start.js) and stops as on SIGTERM.
 * Runs npx offline on this package's own bin; each case waits for the trainer's "training starts" line (events,
 * not delays) and for the stopped checkpoint.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { verifyCheckpoint } from '../../src/checkpoint/index.js';
import { heavy } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'ikl-npx-signals-'));
const env: NodeJS.ProcessEnv = { ...process.env, IKL_BACKEND: 'tensorflow' };
// Environment of the test runner itself may say it runs under npm (npm test): the bins decide from their own.
delete env.npm_lifecycle_event;

// 100 steps per epoch of a small CNN: the signal lands in the middle of epoch 1.
const cfg = join(tmp, 'npx.yaml');
writeFileSync(
  cfg,
  `run: { name: npx, progress: false }
data:
  dataset: synthetic
  synthetic: { nTrain: 1616, nTest: 32, seed: 0 }
  valSize: 16
  batchSize: 16
  augment: false
model: { arch: small-cnn }
attack: { steps: 1 }
optimizer: { lr: 0.05 }
schedule: { epochs: 2 }
eval: { nExamples: 16, pgdSteps: 2 }
`,
);

interface Outcome {
  /** Exit code of the npx process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Everything written on stderr, by npx and by the trainer, until the last holder of the pipe closed it. */
  stderr: string;
}

/** Runs `npx ikl-train` in the package and sends `sig` to the npx process once training has started. */
function viaNpx(runDir: string, sig: NodeJS.Signals, npxFlags: string[] = []): Promise<Outcome> {
  const child = spawn('npx', ['--offline', ...npxFlags, 'ikl-train', '--config', cfg, '--run-dir', runDir, '--log-format', 'json'], { cwd: ROOT, env });
  let stderr = '';
  let sent = false;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (!sent && stderr.includes('"msg":"training starts"')) {
      sent = true;
      // To the npx process only (its pid), as `kill $!` in a script does; not to the process group.
      process.kill(child.pid!, sig);
    }
  });
  child.on('exit', (code, signal) => (exit = { code, signal }));
  // 'close': the stderr pipe is closed by every process holding it, an orphaned trainer included.
  return new Promise((resolve) => child.on('close', () => resolve({ ...exit!, stderr })));
}

async function assertStoppedMidEpoch(runDir: string, stderr: string): Promise<void> {
  assert.match(stderr, /"msg":"stopped on request; resume with --resume"/, stderr);
  const c = await verifyCheckpoint(join(runDir, 'last'));
  const at = c.state.position as { epoch: number; batch: number };
  assert.ok(at.epoch === 1 && at.batch >= 1 && at.batch < 100, `a mid-epoch checkpoint: ${JSON.stringify(at)}`);
}

test('kill -INT <npx pid>: the trainer finishes its step, writes last/, and npx exits 130', heavy, async () => {
  const runDir = join(tmp, 'int');
  const r = await viaNpx(runDir, 'SIGINT');
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: finishing the current step/);
  await assertStoppedMidEpoch(runDir, r.stderr);
});

test('kill -TERM <npx pid> (what scancel sends): last/ written, npx exits 143', heavy, async () => {
  const runDir = join(tmp, 'term');
  const r = await viaNpx(runDir, 'SIGTERM');
  assert.equal(r.code, 143, r.stderr);
  assert.match(r.stderr, /SIGTERM: finishing the current step/);
  await assertStoppedMidEpoch(runDir, r.stderr);
});

test('under a shell that does not pass SIGTERM on (--script-shell=sh), the orphaned trainer stops by itself', heavy, async () => {
  const runDir = join(tmp, 'sh');
  const r = await viaNpx(runDir, 'SIGTERM', ['--script-shell=sh']);
  // npx itself ends at once (143 or killed by the signal it re-raises); the trainer follows, having written last/.
  assert.ok(r.code === 143 || r.signal === 'SIGTERM', `npx: code ${r.code}, signal ${r.signal}`);
  await assertStoppedMidEpoch(runDir, r.stderr);
});
