/**
 * Resumable progress inside an attack (src/attacks/progress.ts): APGD-CE and PGD (per restart), APGD-T and FAB-T
 * (per target class and restart), Square (per 250 iterations and restart end) resumed from the state they saved after unit u give the uninterrupted result, bit
 * for bit; the sequencer resumes a stage from its checkpoint. The state goes through its JSON form, as in a
 * --state file.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { apgdCe, apgdT } from '../../src/attacks/apgd.js';
import { runStages, stageFromSpec, type StageCheckpoint } from '../../src/attacks/autoattack.js';
import { fabT } from '../../src/attacks/fab.js';
import { pgd } from '../../src/attacks/pgd.js';
import { square, SQUARE_UNIT_ITERATIONS, type SquareOptions } from '../../src/attacks/square.js';
import { attackStateFromJson, attackStateToJson, type AttackProgress, type AttackState } from '../../src/attacks/progress.js';
import type { AttackResult, ModelFn } from '../../src/attacks/types.js';
import { predictCorrect } from '../../src/attacks/subset.js';
import { noLeak } from '../helpers.js';
import { trainedTask } from './fixtures.js';

type Attack = (m: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, progress?: AttackProgress) => Promise<AttackResult>;

const eps = 0.1;
const l1Eps = 6;
const ATTACKS: Array<[string, number, Attack]> = [
  ['apgd-ce', 3, (m, x, y, progress) => apgdCe(m, x, y, { eps, norm: 'linf', steps: 8, restarts: 3, seed: 5, progress })],
  // maxRows 1: one unit per block (test/attacks/apgd-blocks.test.ts and fab.test.ts resume after blocks of several units).
  ['apgd-t', 6, (m, x, y, progress) => apgdT(m, x, y, { eps, norm: 'linf', steps: 8, restarts: 2, nTargetClasses: 3, seed: 5, maxRows: 1, progress })],
  ['fab-t', 6, (m, x, y, progress) => fabT(m, x, y, { eps, norm: 'linf', steps: 8, restarts: 2, nTargetClasses: 3, seed: 5, maxRows: 1, progress })],
  ['pgd', 3, (m, x, y, progress) => pgd(m, x, y, { eps: 0.05, norm: 'linf', steps: 5, restarts: 3, seed: 5, progress })],
  // L1 (AutoAttack's L1 "standard" settings: APGD with largeReps).
  ['apgd-ce l1', 3, (m, x, y, progress) => apgdCe(m, x, y, { eps: l1Eps, norm: 'l1', steps: 10, restarts: 3, largeReps: true, seed: 5, progress })],
  [
    'apgd-t l1',
    6,
    (m, x, y, progress) =>
      apgdT(m, x, y, { eps: l1Eps, norm: 'l1', steps: 10, restarts: 2, nTargetClasses: 3, largeReps: true, seed: 5, maxRows: 1, progress }),
  ],
  ['fab-t l1', 6, (m, x, y, progress) => fabT(m, x, y, { eps: l1Eps, norm: 'l1', steps: 8, restarts: 2, nTargetClasses: 3, seed: 5, maxRows: 1, progress })],
];

for (const [name, units, attack] of ATTACKS) {
  test(`${name}: resumed after every unit from its saved state (through JSON), the result of the uninterrupted call`, async () => {
    const task = trainedTask({ seed: 3, test: 24 });
    try {
      const whole = await attack(task.model, task.x, task.y);
      const wholeX = await whole.xAdv.data();
      const robustBefore = (await predictCorrect(task.model, task.x, task.y)).reduce((a, v) => a + v, 0);
      const fooled = whole.success.reduce((a, v) => a + v, 0);
      assert.ok(fooled > task.x.shape[0] - robustBefore, `${name} breaks some points (${fooled} of ${task.x.shape[0]} fooled), so the check is not vacuous`);
      // One run that records the state after every unit.
      const saved: AttackState[] = [];
      const recorded = await attack(task.model, task.x, task.y, {
        unitDone: async (_u, read) => void saved.push(attackStateFromJson(attackStateToJson(await read()))),
      });
      assert.deepEqual(
        saved.map((s) => s.units),
        Array.from({ length: units }, (_, i) => i + 1),
        'one state per unit',
      );
      assert.deepEqual(await recorded.xAdv.data(), wholeX, 'recording changes nothing');
      tf.dispose([recorded.xAdv]);
      for (const s of saved.slice(0, -1)) {
        const resumed = await noLeak(async () => {
          const r = await attack(task.model, task.x, task.y, { restored: s, unitDone: async () => undefined });
          const out = { x: await r.xAdv.data(), success: r.success };
          r.xAdv.dispose();
          return out;
        });
        assert.deepEqual(resumed.x, wholeX, `resumed after unit ${s.units}`);
        assert.deepEqual(resumed.success, whole.success, `success after unit ${s.units}`);
      }
      whole.xAdv.dispose();
    } finally {
      task.dispose();
    }
  });
}

// Square: 2 restarts of 600 iterations = 3 units each (iterations 250 and 500, then the restart's end).
const SQUARE: Array<[string, SquareOptions]> = [
  ['linf', { eps: 0.15, norm: 'linf', steps: 600, restarts: 2, seed: 5 }],
  ['l2', { eps: 2, norm: 'l2', steps: 600, restarts: 2, seed: 5 }],
  ['l1', { eps: 4, norm: 'l1', steps: 600, restarts: 2, seed: 5 }],
];

for (const [name, options] of SQUARE) {
  test(`square ${name}: resumed after every unit (every ${SQUARE_UNIT_ITERATIONS} iterations, each restart end) from its saved state, the uninterrupted result and queries`, async () => {
    const task = trainedTask({ seed: 3, test: 24 });
    try {
      const whole = await square(task.model, task.x, task.y, options);
      const wholeX = await whole.xAdv.data();
      const clean = await predictCorrect(task.model, task.x, task.y);
      const fooled = whole.success.reduce((a, v) => a + v, 0);
      const robustBefore = clean.reduce((a, v) => a + v, 0);
      assert.ok(fooled > task.x.shape[0] - robustBefore, `square fools some points (${fooled} of ${task.x.shape[0]})`);
      assert.ok(fooled < task.x.shape[0], `and not all, so both restarts run to their end (${fooled} of ${task.x.shape[0]})`);
      const saved: AttackState[] = [];
      const recorded = await square(task.model, task.x, task.y, {
        ...options,
        progress: { unitDone: async (_u, read) => void saved.push(attackStateFromJson(attackStateToJson(await read()))) },
      });
      assert.deepEqual(
        saved.map((s) => s.units),
        [1, 2, 3, 4, 5, 6],
        'units at iterations 250 and 500 and at the end of each restart',
      );
      assert.ok('xBest' in saved[0]!.arrays && !('xBest' in saved[2]!.arrays), 'a state inside a run carries the run, one at its end does not');
      assert.deepEqual(await recorded.xAdv.data(), wholeX, 'recording changes nothing');
      assert.deepEqual(recorded.queries, whole.queries);
      recorded.xAdv.dispose();
      for (const s of saved.slice(0, -1)) {
        const resumed = await noLeak(async () => {
          const r = await square(task.model, task.x, task.y, { ...options, progress: { restored: s, unitDone: async () => undefined } });
          const out = { x: await r.xAdv.data(), success: r.success, queries: r.queries };
          r.xAdv.dispose();
          return out;
        });
        assert.deepEqual(resumed.x, wholeX, `resumed after unit ${s.units}`);
        assert.deepEqual(resumed.success, whole.success, `success after unit ${s.units}`);
        assert.deepEqual(resumed.queries, whole.queries, `queries after unit ${s.units}`);
      }
      // A resume that skipped the saved run state (or the stream's state) would differ: the check can fail.
      const s1 = saved[0]!;
      const wrongStream = await square(task.model, task.x, task.y, {
        ...options,
        progress: { restored: { units: s1.units, arrays: { ...s1.arrays, rng: Float64Array.of(12345) } }, unitDone: async () => undefined },
      });
      assert.notDeepEqual(await wrongStream.xAdv.data(), wholeX, 'another stream state gives another result');
      wrongStream.xAdv.dispose();
      whole.xAdv.dispose();
    } finally {
      task.dispose();
    }
  });
}

test('square refuses progress with an injected random source (it has no state to save)', async () => {
  const task = trainedTask({ seed: 3, test: 4, steps: 5 });
  try {
    await assert.rejects(
      square(task.model, task.x, task.y, { eps, norm: 'linf', steps: 10, seed: 1, random: { next: () => 0.5 }, progress: { unitDone: async () => undefined } }),
      /square: progress needs the seeded stream/,
    );
  } finally {
    task.dispose();
  }
});

test('a restored state of other inputs is refused by name', async () => {
  const task = trainedTask({ seed: 3, test: 8 });
  try {
    const bad: AttackState = { units: 1, arrays: { xAdv: new Float32Array(3), lossBest: new Float32Array(8), robust: new Uint8Array(8) } };
    await assert.rejects(
      apgdCe(task.model, task.x, task.y, { eps, norm: 'linf', steps: 4, restarts: 2, seed: 1, progress: { restored: bad, unitDone: async () => undefined } }),
      /'xAdv' expected a Float32Array of 1536 elements, got Float32Array of 3/,
    );
  } finally {
    task.dispose();
  }
});

test('the sequencer resumes a stage from its checkpoint: same fooled rows as the uninterrupted sequence', async () => {
  const task = trainedTask({ seed: 4, test: 24 });
  try {
    const stages = [
      stageFromSpec({ name: 'apgd-ce', attack: 'apgd-ce', options: { steps: 6, restarts: 2 } }),
      // maxRows 1: one unit per block, so stage 1 checkpoints inside each chunk.
      stageFromSpec({ name: 'apgd-t', attack: 'apgd-t', options: { steps: 6, restarts: 1, nTargetClasses: 3, maxRows: 1 } }),
    ];
    const clean = await predictCorrect(task.model, task.x, task.y);
    const opts = { eps, norm: 'linf' as const, stageSeed: (s: number) => 100 + s, batchSize: 10 };
    const wholeRobust = Uint8Array.from(clean);
    const whole = await runStages(task.model, task.x, task.y, wholeRobust, stages, opts);
    const checkpoints: StageCheckpoint[] = [];
    await runStages(task.model, task.x, task.y, Uint8Array.from(clean), stages, {
      ...opts,
      progress: { save: async (read) => void checkpoints.push(await read()) },
    });
    // Stage 0 (2 restarts × 3 chunks of 10, 10, 4 points) and stage 1 (3 targets × chunks): a checkpoint per unit and chunk end.
    assert.ok(checkpoints.filter((c) => c.stage === 1).length >= 3, `${checkpoints.length} checkpoints`);
    for (const cp of checkpoints.filter((c) => c.stage === 1)) {
      // The run as it stood after stage 0 (its events), then stage 1 from the checkpoint.
      const robust = Uint8Array.from(clean);
      for (const i of whole.stages[0]!.fooledRows) robust[i] = 0;
      const resumed = await runStages(task.model, task.x, task.y, robust, stages, {
        ...opts,
        fromStage: 1,
        progress: { restored: cp, save: async () => undefined },
      });
      assert.deepEqual(
        Array.from(resumed.stages[0]!.fooledRows).sort(),
        Array.from(whole.stages[1]!.fooledRows).sort(),
        `from chunk ${cp.chunk}, unit ${cp.attack?.units ?? 0}`,
      );
      assert.deepEqual(robust, wholeRobust);
    }
  } finally {
    task.dispose();
  }
});
