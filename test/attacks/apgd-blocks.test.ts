/**
 * APGD-T runs blocks of consecutive (target, restart) units as one APGD run on (examples × units) rows. The
 * grouping must not change the result: one block for everything, one unit per block (the series) and mixed
 * groupings give the same success flags and adversarial points; an example's result does not depend on the other
 * examples of the batch; a call resumed after any block gives the uninterrupted result.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { apgdT, type ApgdTOptions } from '../../src/attacks/apgd.js';
import type { AttackState } from '../../src/attacks/progress.js';
import { predictCorrect } from '../../src/attacks/subset.js';
import { assertClose, noLeak } from '../helpers.js';
import { trainedTask } from './fixtures.js';

// 4 targets × 2 restarts = 8 units.
const UNITS = 8;
const base = { eps: 0.1, norm: 'linf' as const, steps: 3, restarts: 2, nTargetClasses: 4, seed: 7 };

type Run = { x: Float32Array; success: Uint8Array; blocks: number[] };

async function run(model: (x: tf.Tensor4D) => tf.Tensor2D, x: tf.Tensor4D, y: tf.Tensor1D, opts: Partial<ApgdTOptions>): Promise<Run> {
  const blocks: number[] = [];
  const res = await apgdT(model, x, y, { ...base, ...opts, progress: opts.progress ?? { unitDone: async (u) => void blocks.push(u) } });
  const out = { x: (await res.xAdv.data()) as Float32Array, success: res.success, blocks };
  res.xAdv.dispose();
  return out;
}

const sum = (a: Uint8Array): number => a.reduce((s, v) => s + v, 0);

test('apgd-t: one block for all units, one unit per block and mixed blocks give the same result', async () => {
  const task = trainedTask({ seed: 3, test: 24 });
  try {
    const clean = await predictCorrect(task.model, task.x, task.y);
    const series = await noLeak(() => run(task.model, task.x, task.y, { maxRows: 1 }));
    assert.deepEqual(series.blocks, [1, 2, 3, 4, 5, 6, 7, 8], 'maxRows 1: one unit per block');
    // Not vacuous: the attack fools clean-correct points and leaves some robust (whose output is the loss fold).
    const fooled = sum(series.success) - (clean.length - sum(clean));
    assert.ok(fooled > 0 && sum(series.success) < clean.length, `fooled ${fooled}, success ${sum(series.success)} of ${clean.length}`);
    for (const maxRows of [1e6, 40]) {
      const batched = await noLeak(() => run(task.model, task.x, task.y, { maxRows }));
      if (maxRows === 1e6) assert.deepEqual(batched.blocks, [UNITS], 'one block');
      else assert.ok(batched.blocks.length > 1 && batched.blocks.length < UNITS, `mixed blocks: ${batched.blocks}`);
      assert.deepEqual(batched.success, series.success, `maxRows ${maxRows}: success flags`);
      assertClose(batched.x, series.x, 1e-6, `maxRows ${maxRows}: xAdv`);
    }
  } finally {
    task.dispose();
  }
});

test('apgd-t: an example keeps its result when the other examples of the batch change', async () => {
  const task = trainedTask({ seed: 5, test: 24 });
  try {
    const n = task.x.shape[0];
    const d = task.x.size / n;
    // The odd rows become other images (the even rows, shifted) with other labels: a different set of robust
    // examples in every block, while the even rows keep their position.
    const keep = (i: number): boolean => i % 2 === 0;
    const other = Int32Array.from({ length: n }, (_, i) => (keep(i) ? i : (i + 3) % n));
    const x2 = tf.gather(task.x, tf.tensor1d(other, 'int32')) as tf.Tensor4D;
    const y2 = tf.tidy(
      () =>
        tf.where(
          tf.tensor1d(
            Array.from({ length: n }, (_, i) => keep(i)),
            'bool',
          ),
          task.y,
          tf.sub(9, task.y).toInt(),
        ) as tf.Tensor1D,
    );
    for (const maxRows of [1e6, 30]) {
      const a = await run(task.model, task.x, task.y, { maxRows });
      const b = await run(task.model, x2, y2, { maxRows });
      let differs = 0;
      for (let i = 0; i < n; i++) {
        if (keep(i)) {
          assert.equal(b.success[i], a.success[i], `maxRows ${maxRows}, row ${i}: success`);
          assertClose(b.x.subarray(i * d, (i + 1) * d), a.x.subarray(i * d, (i + 1) * d), 1e-6, `maxRows ${maxRows}, row ${i}`);
        } else if (a.success[i] !== b.success[i]) differs++;
      }
      assert.ok(differs > 0, 'the changed rows have other outcomes, so the kept rows did run beside other examples');
    }
    tf.dispose([x2, y2]);
  } finally {
    task.dispose();
  }
});

test('apgd-t: resumed after any block (state through JSON) equals the uninterrupted call; no leaks', async () => {
  const { attackStateFromJson, attackStateToJson } = await import('../../src/attacks/progress.js');
  const task = trainedTask({ seed: 3, test: 24 });
  try {
    const maxRows = 50;
    const whole = await run(task.model, task.x, task.y, { maxRows });
    const saved: AttackState[] = [];
    await run(task.model, task.x, task.y, {
      maxRows,
      progress: { unitDone: async (_u, read) => void saved.push(attackStateFromJson(attackStateToJson(await read()))) },
    });
    const units = saved.map((s) => s.units);
    assert.equal(units.at(-1), UNITS);
    assert.ok(
      units.some((u, i) => u - (i === 0 ? 0 : units[i - 1]!) > 1),
      `some block spans several units: ${units}`,
    );
    assert.ok(saved.length > 1, `several blocks: ${units}`);
    for (const s of saved.slice(0, -1)) {
      const resumed = await noLeak(() => run(task.model, task.x, task.y, { maxRows, progress: { restored: s, unitDone: async () => undefined } }));
      assert.deepEqual(resumed.x, whole.x, `resumed after unit ${s.units}`);
      assert.deepEqual(resumed.success, whole.success, `success after unit ${s.units}`);
    }
  } finally {
    task.dispose();
  }
});
