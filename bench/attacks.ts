/**
 * Attack throughput on PreActResNet-18 (randomly initialised: no trained CIFAR weights can be downloaded here):
 * PGD-20 images/s at a large batch, each AutoAttack stage's images/s, and the extrapolated time of the whole
 * standard AutoAttack per 1,000 images.
 *
 *   node dist/bench/attacks.js [--arch preact-resnet-18] [--images 16] [--pgd-batch 100] [--pgd-steps 2]
 *                              [--iters 4] [--queries 40]
 *
 * To keep the cost bearable on 2 CPU cores every attack runs a few iterations and is extrapolated linearly to
 * its full budget (PGD 20 steps; APGD-CE 100; APGD-T and FAB-T 9 targets × 100; Square 5000 queries): their
 * per-iteration cost is constant. APGD-T runs all 9 targets (they are one block of images × 9 rows), FAB-T one. Labels are the model's own predictions and eps is tiny (0.1/255), so every
 * image is clean-correct and stays robust: each stage does its full work on every image (worst case).
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { apgdCe, apgdT } from '../src/attacks/apgd.js';
import { fabT } from '../src/attacks/fab.js';
import { pgd } from '../src/attacks/pgd.js';
import { square } from '../src/attacks/square.js';
import type { ModelFn } from '../src/attacks/types.js';
import { initBackend } from '../src/backend.js';
import { InputError } from '../src/errors.js';
import { AUTOATTACK_STANDARD } from '../src/attacks/autoattack.js';
import { createModel, forward, parseArch, type ModelArch } from '../src/models/index.js';

interface Options {
  arch: ModelArch;
  images: number;
  pgdBatch: number;
  pgdSteps: number;
  iters: number;
  queries: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { arch: 'preact-resnet-18', images: 16, pgdBatch: 100, pgdSteps: 2, iters: 4, queries: 40 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i];
    if (value === undefined) throw new InputError(`${flag}: missing value`);
    if (flag === '--arch') {
      o.arch = parseArch(value, '--arch');
      continue;
    }
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InputError(`${flag}: expected a positive integer, got '${value}'`);
    if (flag === '--images') o.images = n;
    else if (flag === '--pgd-batch') o.pgdBatch = n;
    else if (flag === '--pgd-steps') o.pgdSteps = n;
    else if (flag === '--iters') o.iters = n;
    else if (flag === '--queries') o.queries = n;
    else throw new InputError(`${flag}: unknown flag (expected --arch, --images, --pgd-batch, --pgd-steps, --iters, --queries)`);
  }
  return o;
}

async function seconds(fn: () => Promise<{ xAdv: tf.Tensor4D }> | { xAdv: tf.Tensor4D }): Promise<number> {
  const t0 = performance.now();
  const { xAdv } = await fn();
  await xAdv.data();
  const t = (performance.now() - t0) / 1000;
  xAdv.dispose();
  return t;
}

/** Images and labels = the model's own predictions (every image clean-correct). */
function inputs(model: ModelFn, n: number, seed: number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const x = tf.randomUniform([n, 32, 32, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
  const y = tf.tidy(() => tf.argMax(model(x), 1).toInt() as tf.Tensor1D);
  return { x, y };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const info = await initBackend();
  for (const w of info.warnings) console.error(`warning: ${w}`);
  const net = createModel({ arch: o.arch, numClasses: 10, seed: 0 });
  const model: ModelFn = (x) => forward(net, x, { training: false });
  const eps = 0.1 / 255;
  const base = { eps, norm: 'linf' as const, restarts: 1, seed: 0 };
  const S = AUTOATTACK_STANDARD;
  console.log(`backend ${info.name} (${info.package}, TF ${info.tfVersion}, ${info.devices.join(', ')}), ${o.arch} randomly initialised`);

  // PGD-20 at a large batch: a few timed steps after a 1-step warm-up.
  const big = inputs(model, o.pgdBatch, 1);
  await seconds(() => pgd(model, big.x, big.y, { ...base, steps: 1, stepSize: eps / 4 }));
  const tPgd = await seconds(() => pgd(model, big.x, big.y, { ...base, steps: o.pgdSteps, stepSize: eps / 4 }));
  const pgdPerImage = (tPgd * (20 / o.pgdSteps)) / o.pgdBatch;
  tf.dispose([big.x, big.y]);

  const { x, y } = inputs(model, o.images, 2);
  await seconds(() => apgdCe(model, x, y, { ...base, steps: 1 })); // warm-up at this batch size
  const rows: Array<{ stage: string; measured: string; full: string; perImage: number }> = [];
  const add = (stage: string, t: number, measured: string, scale: number, full: string): void => {
    rows.push({ stage, measured: `${measured} in ${t.toFixed(2)} s`, full, perImage: (t * scale) / o.images });
  };
  const it = o.iters;
  add('apgd-ce', await seconds(() => apgdCe(model, x, y, { ...base, steps: it })), `${it} it`, S.steps / it, `${S.steps} it`);
  // APGD-T runs its targets in blocks of up to images × 9 rows (src/attacks/apgd.ts), so all of them are timed.
  add(
    'apgd-t',
    await seconds(() => apgdT(model, x, y, { ...base, steps: it, nTargetClasses: S.nTargetClasses })),
    `${S.nTargetClasses} targets × ${it} it`,
    S.steps / it,
    `${S.nTargetClasses} × ${S.steps} it`,
  );
  add(
    'fab-t',
    await seconds(() => fabT(model, x, y, { ...base, steps: it, nTargetClasses: 1 })),
    `1 target × ${it} it`,
    (S.nTargetClasses * S.steps) / it,
    `${S.nTargetClasses} × ${S.steps} it`,
  );
  add(
    'square',
    await seconds(() => square(model, x, y, { ...base, steps: o.queries })),
    `${o.queries} queries`,
    S.squareQueries / o.queries,
    `${S.squareQueries} queries`,
  );
  tf.dispose([x, y]);
  net.dispose();

  console.log('');
  console.log(`| attack | batch | measured | full budget | images/s (full) | s per 1,000 images |`);
  console.log('|---|---:|---|---|---:|---:|');
  console.log(
    `| PGD-20 | ${o.pgdBatch} | ${o.pgdSteps} steps in ${tPgd.toFixed(2)} s | 20 steps | ${(1 / pgdPerImage).toFixed(2)} | ${(pgdPerImage * 1000).toFixed(0)} |`,
  );
  for (const r of rows)
    console.log(`| ${r.stage} | ${o.images} | ${r.measured} | ${r.full} | ${(1 / r.perImage).toFixed(3)} | ${(r.perImage * 1000).toFixed(0)} |`);
  const t = Object.fromEntries(rows.map((r) => [r.stage, r.perImage])) as Record<string, number>;
  const worst = 1000 * (t['apgd-ce']! + t['apgd-t']! + t['fab-t']! + t['square']!);
  // What reaches each stage on the paper's IKL-AT WRN-34-10 (clean 85.31, after APGD-CE 59.98, final 57.09):
  // later stages only see what the earlier ones could not break.
  const typical = 1000 * (0.8531 * t['apgd-ce']! + 0.5998 * t['apgd-t']! + 0.5709 * (t['fab-t']! + t['square']!));
  console.log('');
  console.log(`AutoAttack (standard) per 1,000 images, worst case (every image robust through every stage): ${(worst / 3600).toFixed(2)} h`);
  console.log(`AutoAttack per 1,000 images with the paper's survival fractions (85.3% / 60.0% / 57.1%): ${(typical / 3600).toFixed(2)} h`);
}

await main();
