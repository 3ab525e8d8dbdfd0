/**
 * `ikl-eval --state` keeps its work inside attack stages (issue 11, defect 3): a `kill -9` in the middle of an
 * AutoAttack stage, then the same run again, gives the report of an uninterrupted run, and the work lost is the
 * time since the last save (printed). What is asserted holds whatever the counts of robust points (a property of
 * the CPU's rounding): the resumed run equals the uninterrupted one. The evaluation runs in a child process (runEval with an AutoAttack-shaped
 * plan of smaller budgets, so the test takes seconds, not minutes).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from '../eval/fixture.js';
import { heavy } from '../helpers.js';
import { batchZero, partialOf, timeless, type Partial } from './eval-state.js';

const dist = new URL('../../src/', import.meta.url).href;
const dir = tempDir('ikl-eval-kill-');

/** The child: AutoAttack's four stages (APGD-CE, APGD-T, FAB-T, Square) with budgets a test can afford. */
const SCRIPT = `
const [ckpt, stateFile, saveEvery, eps] = process.argv.slice(1);
const { initBackend } = await import('${dist}backend.js');
await initBackend('tensorflow');
const { createLogger } = await import('${dist}log.js');
const { resolveEvalOptions } = await import('${dist}eval/options.js');
const { runEval } = await import('${dist}eval/run.js');
const plan = {
  loss: null,
  details: {},
  stages: [
    { name: 'apgd-ce', attack: 'apgd-ce', options: { steps: 3, restarts: 1 } },
    { name: 'apgd-t', attack: 'apgd-t', options: { steps: 30, restarts: 1, nTargetClasses: 5, maxRows: 1 } }, // one target class per block: saves inside the stage
    { name: 'fab-t', attack: 'fab-t', options: { steps: 20, restarts: 1, nTargetClasses: 5 } },
    { name: 'square', attack: 'square', options: { steps: 200, pInit: 0.8, restarts: 1 } },
  ],
};
const options = resolveEvalOptions({ checkpoint: ckpt, attack: 'autoattack', nExamples: '48', batchSize: '48', dataset: 'synthetic', seed: '7', eps });
const report = await runEval(options, { plan, logger: createLogger({ format: 'json', name: 'child' }), ...(stateFile === '-' ? {} : { stateFile, saveEverySeconds: Number(saveEvery) }) });
process.stdout.write(JSON.stringify(report));
`;

function evaluate(ckpt: string, eps: string, stateFile = '-', saveEvery = 0): { report: EvalReport; stderr: string; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT, ckpt, stateFile, String(saveEvery), eps], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, r.stderr);
  return { report: JSON.parse(r.stdout) as EvalReport, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

test('kill -9 in the middle of an AutoAttack stage: the resumed run continues the stage and reports what an uninterrupted run reports', heavy, async () => {
  mkdirSync(join(dir, 'm'));
  const ckpt = await makeCheckpoint(join(dir, 'm'), { steps: 120 });
  // The kill must land inside APGD-T, which needs points still robust after APGD-CE and throughout APGD-T: how
  // many there are at a given ε depends on the CPU's rounding of a trained model. The test chooses ε until it
  // holds, halving it from 4/255: as ε shrinks, every correctly classified example stays robust.
  let eps = '';
  let whole: ReturnType<typeof evaluate> | undefined;
  for (const candidate of ['4/255', '2/255', '1/255', '0.5/255', '0.25/255']) {
    eps = candidate;
    whole = evaluate(ckpt, eps);
    const counts = `eps ${eps}: clean ${whole.report.clean_correct}, after each stage ${whole.report.stages.map((s) => `${s.name} ${s.robust_correct}`).join(', ')}`;
    console.log(`# ${counts}`);
    if (whole.report.stages[1]!.robust_correct > 0) break;
  }
  assert.ok(whole!.report.stages[1]!.robust_correct > 0, `some points stay robust through APGD-T at eps ${eps}`);

  const stateFile = join(dir, 'aa.state.json');
  const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT, ckpt, stateFile, '0', eps]);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
  const closed = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_c, s) => resolve(s)));
  // Killed as soon as the state records a second finished unit (target class) of APGD-T: inside the third.
  let killedAt = 0;
  let seen: Partial | undefined;
  while (killedAt === 0) {
    await new Promise((r) => setTimeout(r, 20));
    if (child.exitCode !== null) break;
    if (!existsSync(stateFile)) continue;
    const p = partialOf(stateFile);
    if (p && p.stage === 1 && (p.attack?.units ?? 0) >= 2) {
      seen = p;
      child.kill('SIGKILL');
      killedAt = Date.now();
    }
  }
  assert.equal(await closed, 'SIGKILL', `the child was killed mid-stage, not finished: ${stderr}`);
  const lostSeconds = (killedAt - statSync(stateFile).mtimeMs) / 1000;
  const saved = batchZero(stateFile)!;
  console.log(
    `# kill -9 in APGD-T after ${saved.partial?.attack?.units} of 5 target classes (seen ${seen?.attack?.units}); work lost: ${lostSeconds.toFixed(2)} s since the last save (--save-every 0); uninterrupted run ${whole!.seconds.toFixed(1)} s`,
  );
  assert.equal(saved.stagesDone, 1, 'APGD-CE finished, APGD-T in progress');
  assert.ok((saved.partial?.attack?.units ?? 0) >= 2);

  const resumed = evaluate(ckpt, eps, stateFile, 0);
  const line = resumed.stderr.split('\n').find((l) => l.includes('"msg":"resuming from state"'));
  assert.ok(line, resumed.stderr);
  const inStage = (JSON.parse(line) as { inStage: Array<{ stage: string; units: number }> }).inStage;
  assert.equal(inStage[0]?.stage, 'apgd-t');
  assert.ok(inStage[0]!.units >= 2, `continued after the saved target classes: ${line}`);
  assert.deepEqual(timeless(resumed.report), timeless(whole!.report));
  console.log(`# resumed run ${resumed.seconds.toFixed(1)} s`);
});

test('--save-every: seconds >= 0, and only with --state (exit 2, one line, before any work)', () => {
  const bin = new URL('../../../bin/ikl-eval.js', import.meta.url).pathname;
  const cases: Array<[string[], string]> = [
    [['--save-every', '-1', '--state', join(dir, 's.json')], "ikl-eval: --save-every: expected a number of seconds >= 0, got '-1'\n"],
    [['--save-every', 'soon', '--state', join(dir, 's.json')], "ikl-eval: --save-every: expected a number of seconds >= 0, got 'soon'\n"],
    [['--save-every', '5'], 'ikl-eval: --save-every: only means something with --state <file>\n'],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [bin, '--checkpoint', 'whatever', '--attack', 'pgd', ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, message);
  }
});
