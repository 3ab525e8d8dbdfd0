/**
 * Two tfjs-node processes on 127.0.0.1 all-reducing through TensorFlow's collective ops: the sums and means are
 * the hand-computed ones on both tasks, and a task that dies makes its peer's next all-reduce fail with a
 * CollectiveError within the timeout instead of hanging. Every task is killed after a bounded time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { heavy } from '../helpers.js';
import { lastJson, runTasks } from './spawn.js';

const TASK = fileURLToPath(new URL('./task.js', import.meta.url));

test('two tasks: allReduce sums and means, allReduceNumbers', heavy, async () => {
  const results = await runTasks(2, TASK, ['reduce'], 120_000);
  for (const [rank, r] of results.entries()) {
    assert.equal(r.code, 0, `task ${rank} exit ${r.code}: ${r.stderr.slice(-2000)}`);
    const out = lastJson(r);
    assert.equal(out.rank, rank);
    assert.equal(out.size, 2);
    // rank 0: [[1, 2], [0, 0]], 1, 0.5…; rank 1: [[2, 2], [3, -1]], 10, 1.5…
    assert.deepEqual(out.sum, [[3, 4, 3, -1], [11], [2, 2, 2, 2]]);
    assert.deepEqual(out.shapes, [[2, 2], [], [1000]]);
    assert.deepEqual(out.mean, [[1.5, 2, 1.5, -0.5], [5.5], [1, 1, 1, 1]]);
    assert.deepEqual(out.numbers, [1, 2, 0.5]);
    assert.equal(out.leaked, 0);
  }
});

test('a task that dies: the other one fails with a CollectiveError within the timeout', heavy, async () => {
  const results = await runTasks(2, TASK, ['die'], 120_000, { IKL_TEST_TIMEOUT: '5' });
  assert.equal(results[1]!.code, 3);
  assert.equal(results[0]!.code, 0, results[0]!.stderr.slice(-2000));
  const out = lastJson(results[0]!);
  assert.deepEqual(out.sum, [[3, 4, 3, -1], [11], [2, 2, 2, 2]]);
  assert.match(String(out.error), /^task 0 of 2: all-reduce #2 failed after \d+ s: /);
  assert.equal(out.mean, undefined);
});
