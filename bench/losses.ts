/**
 * Benchmark: iklLoss + gradient w.r.t. both logit inputs, the O(B·C) variance-identity form (src/losses)
 * against the O(B·C²) construction of the reference code (kept here only as a baseline), B = 128.
 * Prints median wall time per call and peak tensor memory (tf.profile peakBytes) for C = 10, 100, 1000.
 *
 *   IKL_BACKEND=tensorflow node dist/bench/losses.js [--classes 10,100,1000] [--batch 128] [--reps 15]
 */
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { iklLoss } from '../src/losses/index.js';
import { InputError } from '../src/errors.js';

const ALPHA = 3;
const BETA = 20;

/** The reference's formulation: B×C×C pairwise differences and weights, ¼ Σ_{j,k}, mean over B. */
function iklQuadratic(logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D, classPrior: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const batch = logitsNat.shape[0];
    const pairDiff = (z: tf.Tensor2D) => tf.sub(tf.expandDims(z, 2), tf.expandDims(z, 1)); // B×C×C
    const weights = tf.mul(tf.expandDims(classPrior, 2), tf.expandDims(classPrior, 1)); // B×C×C
    const wmse = tf.div(tf.sum(tf.mul(weights, tf.square(tf.sub(pairDiff(logitsNat), pairDiff(logitsAdv))))), 4 * batch);
    // classPrior and the soft-CE target are inputs computed outside the gradient (constants here).
    const target = tf.softmax(logitsNat);
    const softCe = tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(logitsAdv)), 1)));
    return tf.add(tf.mul(BETA, wmse), tf.mul(ALPHA, softCe)) as tf.Scalar;
  });
}

function parseArgs(argv: string[]): { classes: number[]; batch: number; reps: number } {
  const out = { classes: [10, 100, 1000], batch: 128, reps: 15 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1] ?? ''];
    if (flag === '--classes') out.classes = value.split(',').map(Number);
    else if (flag === '--batch') out.batch = Number(value);
    else if (flag === '--reps') out.reps = Number(value);
    else throw new InputError(`bench/losses: unknown flag ${flag} (expected --classes, --batch, --reps)`);
  }
  if (![...out.classes, out.batch, out.reps].every((n) => Number.isInteger(n) && n > 0)) {
    throw new InputError('bench/losses: --classes, --batch and --reps take positive integers');
  }
  return out;
}

interface Row {
  classes: number;
  variant: string;
  msMedian: number;
  reps: number;
  peakMB: number;
  value: number;
}

async function measure(variant: string, classes: number, reps: number, run: () => tf.Tensor[]): Promise<Row> {
  // Three untimed calls warm up kernels; then the timed calls; then one profiled call for memory.
  const sync = (ts: tf.Tensor[]) => {
    const first = ts.map((t) => t.dataSync()[0]!);
    tf.dispose(ts);
    return first[0]!;
  };
  for (let i = 0; i < 3; i++) sync(run());
  const times: number[] = [];
  let value = Number.NaN;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    value = sync(run());
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const before = tf.memory().numBytes;
  const profile = await tf.profile(() => {
    const out = run();
    tf.dispose(out);
  });
  return { classes, variant, msMedian: times[Math.floor(times.length / 2)]!, reps, peakMB: (profile.peakBytes - before) / 2 ** 20, value };
}

async function main(): Promise<void> {
  const { classes, batch, reps } = parseArgs(process.argv.slice(2));
  const backend = await initBackend();
  console.log(`backend ${backend.name} (${backend.devices.join(', ')}), B = ${batch}, alpha = ${ALPHA}, beta = ${BETA}`);
  const rows: Row[] = [];
  for (const c of classes) {
    const nat = tf.randomNormal([batch, c], 0, 2, 'float32', 1) as tf.Tensor2D;
    const adv = tf.randomNormal([batch, c], 0, 2, 'float32', 2) as tf.Tensor2D;
    const prior = tf.softmax(tf.randomNormal([batch, c], 0, 1, 'float32', 3)) as tf.Tensor2D;
    const linear = () => {
      return tf.tidy(() => {
        const f = (a: tf.Tensor, b: tf.Tensor) => iklLoss(a as tf.Tensor2D, b as tf.Tensor2D, { alpha: ALPHA, beta: BETA, classPrior: prior });
        const loss = f(nat, adv);
        return [loss, ...tf.grads(f)([nat, adv])];
      });
    };
    const quadratic = () =>
      tf.tidy(() => {
        const f = (a: tf.Tensor, b: tf.Tensor) => iklQuadratic(a as tf.Tensor2D, b as tf.Tensor2D, prior);
        const loss = f(nat, adv);
        return [loss, ...tf.grads(f)([nat, adv])];
      });
    rows.push(await measure('O(C)  variance identity', c, reps, linear));
    // The B×C×C version at C = 1000 holds several 0.5 GB tensors: fewer repetitions.
    rows.push(await measure('O(C²) B×C×C (reference)', c, c >= 1000 ? Math.min(reps, 3) : reps, quadratic));
    tf.dispose([nat, adv, prior]);
  }
  // Timings are wall clock: on shared cores, read them next to the load average.
  console.log(`load average (1 min) at the end: ${loadavg()[0]!.toFixed(1)}`);
  console.log('');
  console.log('|    C | variant                   | ms/call (median) | reps | peak MB | loss value |');
  console.log('|-----:|:--------------------------|-----------------:|-----:|--------:|-----------:|');
  for (const r of rows) {
    console.log(
      `| ${String(r.classes).padStart(4)} | ${r.variant.padEnd(25)} | ${r.msMedian.toFixed(2).padStart(16)} | ${String(r.reps).padStart(4)} | ${r.peakMB.toFixed(1).padStart(7)} | ${r.value.toPrecision(7).padStart(10)} |`,
    );
  }
}

await main();
