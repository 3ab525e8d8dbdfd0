/**
 * One task of the multi-process collective tests (test/collective/multiprocess.test.ts spawns two with TF_CONFIG
 * on 127.0.0.1). Prints one JSON line with what it computed. Modes:
 * - reduce: three tensors of different shapes (rank-dependent values) all-reduced as sum and as mean, and numbers.
 * - die: rank 1 exits after the first all-reduce; rank 0's second all-reduce must fail within the timeout.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend.js';
import { CollectiveError, createCollective } from '../../src/collective/index.js';

await initBackend('tensorflow');
const mode = process.argv[2];
const collective = createCollective({ timeoutSeconds: Number(process.env.IKL_TEST_TIMEOUT ?? '30') });
const r = collective.rank;
const out: Record<string, unknown> = { rank: r, size: collective.size };
const before = tf.memory().numTensors;
const tensors = [tf.tensor2d([1 + r, 2, 3 * r, -r], [2, 2]), tf.scalar(10 ** r), tf.fill([1000], r + 0.5)];
const read = (ts: tf.Tensor[]) => ts.map((t) => Array.from(t.dataSync()).slice(0, 4));
const first = collective.allReduce(tensors, 'sum');
out.sum = read(first);
out.shapes = first.map((t) => t.shape);
tf.dispose(first);
if (mode === 'die' && r === 1) process.exit(3);
try {
  const mean = collective.allReduce(tensors, 'mean');
  out.mean = read(mean);
  tf.dispose(mean);
  out.numbers = collective.allReduceNumbers([r, 1, 0.25], 'sum');
} catch (e) {
  out.error = e instanceof CollectiveError ? e.message : `not a CollectiveError: ${(e as Error).message}`;
}
tf.dispose(tensors);
out.leaked = tf.memory().numTensors - before;
console.log(JSON.stringify(out));
process.exit(0);
