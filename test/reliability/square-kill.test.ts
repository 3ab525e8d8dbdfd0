/**
 * `ikl-eval --state` keeps its work inside Square (issue 11, defect 3): Square saves a unit every 250 of its 5,000
 * iterations (src/attacks/square.ts), so a `kill -9` in the middle of the stage, then the same command again,
 * continues the stage from the last save and prints the report of an uninterrupted run. Through the CLI in child
 * processes (`--attacks square`, the full 5,000-query budget, 8 synthetic images); the work lost (kill time minus
 * the state file's last write) is printed, not asserted.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from '../eval/fixture.js';
import { heavy } from '../helpers.js';
import { partialOf, timeless } from './eval-state.js';

const bin = new URL('../../../bin/ikl-eval.js', import.meta.url).pathname;
const dir = tempDir('ikl-square-kill-');

function args(ckpt: string, eps: string, stateFile?: string): string[] {
  const common = ['--checkpoint', ckpt, '--attacks', 'square', '--dataset', 'synthetic', '--n-examples', '8', '--batch-size', '8'];
  return [bin, ...common, '--eps', eps, '--backend', 'tensorflow', '--log-format', 'json', ...(stateFile ? ['--state', stateFile, '--save-every', '1'] : [])];
}

function evaluate(argv: string[]): { report: EvalReport; stderr: string; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, r.stderr);
  return { report: JSON.parse(r.stdout) as EvalReport, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

test(
  'kill -9 in the middle of Square (ikl-eval --attacks square --state --save-every 1): the same command resumes inside the stage and reports the uninterrupted result',
  heavy,
  async () => {
    mkdirSync(join(dir, 'm'));
    const ckpt = await makeCheckpoint(join(dir, 'm'), { steps: 120 });
    // Square must run its whole budget on points it cannot break. How many survive at a given ε depends on the
    // CPU's rounding of a trained model: ε is halved from 4/255 until some do (every correct point does as ε → 0).
    let eps = '';
    let whole: ReturnType<typeof evaluate> | undefined;
    for (const candidate of ['4/255', '2/255', '1/255', '0.5/255']) {
      eps = candidate;
      whole = evaluate(args(ckpt, eps));
      console.log(
        `# uninterrupted at eps ${eps}: clean ${whole.report.clean_correct}/8, after Square ${whole.report.robust_correct}/8, ${whole.seconds.toFixed(1)} s`,
      );
      if (whole.report.robust_correct > 0) break;
    }
    assert.ok(whole!.report.robust_correct > 0, `some points survive at eps ${eps}, so Square runs its whole budget on them`);

    const stateFile = join(dir, 'square.state.json');
    const child = spawn(process.execPath, args(ckpt, eps, stateFile));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const closed = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_c, s) => resolve(s)));
    // Killed 700 ms after the state records a 3rd unit of Square (750 of 5,000 iterations): between two saves.
    let killedAt = 0;
    while (killedAt === 0) {
      await new Promise((r) => setTimeout(r, 20));
      if (child.exitCode !== null) break;
      if (!existsSync(stateFile)) continue;
      const p = partialOf(stateFile);
      if (p && p.stage === 0 && (p.attack?.units ?? 0) >= 3) {
        await new Promise((r) => setTimeout(r, 700));
        child.kill('SIGKILL');
        killedAt = Date.now();
      }
    }
    assert.equal(await closed, 'SIGKILL', `the child was killed inside Square, not finished: ${stderr}`);
    const lostSeconds = (killedAt - statSync(stateFile).mtimeMs) / 1000;
    const saved = partialOf(stateFile);
    assert.ok(saved && saved.stage === 0 && (saved.attack?.units ?? 0) >= 3, JSON.stringify(saved));
    console.log(
      `# kill -9 in Square after unit ${saved.attack!.units} of 20 (250 iterations each); work lost: ${lostSeconds.toFixed(2)} s since the last save (--save-every 1)`,
    );

    const resumed = evaluate(args(ckpt, eps, stateFile));
    const line = resumed.stderr.split('\n').find((l) => l.includes('"msg":"resuming from state"'));
    assert.ok(line, resumed.stderr);
    const inStage = (JSON.parse(line) as { inStage: Array<{ stage: string; units: number }> }).inStage;
    assert.equal(inStage[0]?.stage, 'square');
    assert.equal(inStage[0]!.units, saved.attack!.units, `continued after the saved unit: ${line}`);
    assert.deepEqual(timeless(resumed.report), timeless(whole!.report));
    console.log(`# resumed run ${resumed.seconds.toFixed(1)} s (uninterrupted ${whole!.seconds.toFixed(1)} s)`);
  },
);
