/**
 * FAB-T alone on the points AutoAttack standard hands it (those still robust after APGD-CE and APGD-T), to iterate
 * on FAB's cost without running the whole comparison:
 *
 *   node dist/bench/fab.js --checkpoint DIR --data CIFAR10_DIR [--images 500] [--eps 8] [--max-rows 1024] [--cache FILE]
 *
 * The robust indices of the first two stages are cached in --cache (default: a file in the OS temp dir keyed by
 * the arguments), so a second invocation starts FAB-T at once. Prints time, kernels and host syncs (per 100 steps
 * of one unit, as bench:compare's "per iteration" over 900 unit-steps), fooled points and a checksum of the
 * distances, to compare before/after a change.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { autoAttack } from '../src/attacks/autoattack.js';
import { fabT } from '../src/attacks/fab.js';
import { gatherRows } from '../src/attacks/subset.js';
import { initBackend } from '../src/backend.js';
import { readCifar10Test } from '../src/data/cifar.js';
import { imageBatch } from '../src/eval/run.js';
import { loadEvalSubject } from '../src/eval/model.js';
import { inferenceModel } from '../src/models/inference.js';
import { counts, installCounters } from './counters.js';
import { deriveSeed } from '../src/rng.js';

function flag(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : dflt;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

async function main(): Promise<void> {
  await initBackend();
  const ckpt = flag('checkpoint');
  const dataDir = flag('data');
  const n = Number(flag('images', '500'));
  const eps = Number(flag('eps', '8')) / 255;
  const maxRows = Number(flag('max-rows', '1024'));
  const cache = flag('cache', join(tmpdir(), `ikl-fab-bench-${n}-${flag('eps', '8')}-${ckpt.replace(/\W/g, '_')}.json`));
  const subject = await loadEvalSubject(ckpt);
  const exec = inferenceModel(subject.model);
  const test = await readCifar10Test(dataDir);
  const { x, y } = imageBatch(test, 0, n);
  let robust: number[];
  if (existsSync(cache)) robust = JSON.parse(readFileSync(cache, 'utf8')) as number[];
  else {
    const r = await autoAttack(exec.fn, x, y, { eps, norm: 'linf', seed: 0, attacks: ['apgd-ce', 'apgd-t'] });
    r.xAdv.dispose();
    robust = Array.from(r.robust.keys()).filter((i) => r.robust[i] === 1);
    writeFileSync(cache, JSON.stringify(robust));
  }
  const idx = Int32Array.from(robust);
  const [xs, ys] = [gatherRows(x, idx), gatherRows(y, idx)];
  installCounters();
  const c0 = counts();
  const t0 = performance.now();
  // The seed AutoAttack standard gives its third stage on its first chunk.
  const opts = { eps, norm: 'linf' as const, steps: 100, restarts: 1, nTargetClasses: 9, seed: deriveSeed(0, 2, 0), maxRows };
  const res = await fabT(exec.fn, xs, ys, opts);
  const sec = (performance.now() - t0) / 1000;
  const c1 = counts();
  const fooled = res.success.reduce((a, v) => a + v, 0);
  const finite = Array.from(res.distance).filter(Number.isFinite);
  const checksum = finite.reduce((a, v) => a + v, 0);
  console.log(
    `fab-t on ${idx.length} points, max rows ${maxRows}: ${sec.toFixed(1)} s, kernels/iter ${((c1.kernels - c0.kernels) / 900).toFixed(0)}, ` +
      `syncs/iter ${((c1.syncs - c0.syncs) / 900).toFixed(2)}, fooled ${fooled}, distance checksum ${checksum.toPrecision(12)}`,
  );
  tf.dispose([x, y, xs, ys, res.xAdv]);
  exec.dispose();
  subject.dispose();
}

void main();
