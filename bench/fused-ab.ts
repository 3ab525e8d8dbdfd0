/**
 * Paired A/B of the inference executor's two speed-ups, in one process so that machine load hits every variant
 * alike: the fused oneDNN convolution (kernels.ts, `preferFusedConv`) and the tape-free input gradient
 * (attacks/grad.ts, `preferTapeFree`). Variants run interleaved, round after round; the median per variant is
 * and minimum are printed with their ratios to the baseline (three ops + tape, the previous version), and the tfjs kernels and syncs
 * of one call (bench/counters.ts).
 *
 *   node dist/bench/fused-ab.js [--models small-cnn,preact-resnet-18] [--batch 200] [--rounds 7] [--apgd-steps 5]
 *
 * Per model: `forward` (the executor's logits), `grad` (lossAndGrad: CE loss, logits, input gradient) and
 * `apgd` (apgdRun with CE, ms per iteration). Random weights and uniform-noise images (timing needs no data).
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { apgdRun } from '../src/attacks/apgd.js';
import { lossAndGrad, preferTapeFree } from '../src/attacks/grad.js';
import { initBackend } from '../src/backend.js';
import { InputError } from '../src/errors.js';
import { fusedConvInUse, preferFusedConv } from '../src/kernels.js';
import { crossEntropy } from '../src/losses/index.js';
import { createModel, parseArch } from '../src/models/index.js';
import { inferenceModel } from '../src/models/inference.js';
import { countOf, installCounters } from './counters.js';
import { flags, int } from './flags.js';

const VARIANTS = [
  { name: 'three ops + tape (before)', fused: false, tapeFree: false },
  { name: 'fused conv + tape', fused: true, tapeFree: false },
  { name: 'three ops + tape-free', fused: false, tapeFree: true },
  { name: 'fused conv + tape-free (now)', fused: true, tapeFree: true },
] as const;

const median = (a: number[]): number => [...a].sort((p, q) => p - q)[a.length >> 1]!;

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), ['models', 'batch', 'rounds', 'apgd-steps']);
  const models = (f.get('models') ?? 'small-cnn,preact-resnet-18').split(',').map((s) => parseArch(s.trim(), '--models'));
  const batch = int(f, 'batch', 200);
  const rounds = int(f, 'rounds', 7);
  const apgdSteps = int(f, 'apgd-steps', 5);
  const info = await initBackend();
  installCounters();
  console.log(`backend ${info.name}; batch ${batch}; ${rounds} interleaved rounds; medians and minima (ms), ratios to the first variant`);
  for (const arch of models) {
    const model = createModel({ arch, numClasses: 10, seed: 1 });
    const exec = inferenceModel(model);
    const x = tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const y = tf.tidy(() => tf.argMax(exec.fn(x), 1).toInt() as tf.Tensor1D);
    const lossFn = (z: tf.Tensor2D): tf.Tensor1D => crossEntropy(z, y, { reduction: 'none' }) as tf.Tensor1D;
    const tasks = {
      forward: () => {
        tf.tidy(() => exec.fn(x).dataSync());
      },
      grad: () =>
        tf.tidy(() => {
          const r = lossAndGrad(exec.fn, lossFn, x);
          r.grad.dataSync();
        }),
      apgd: () => {
        const r = apgdRun(exec.fn, x, y, lossFn, { eps: 8 / 255, norm: 'linf', steps: apgdSteps, seed: 1 });
        r.xAdv.dataSync();
        tf.dispose([r.xAdv, r.fooled, r.lossBest]);
      },
    };
    const times = new Map<string, number[]>();
    const kernels = new Map<string, string>();
    for (let round = 0; round <= rounds; round++) {
      for (const v of VARIANTS) {
        preferFusedConv(v.fused);
        preferTapeFree(v.tapeFree);
        for (const [task, run] of Object.entries(tasks)) {
          const t0 = performance.now();
          const c = countOf(run);
          const ms = (performance.now() - t0) / (task === 'apgd' ? apgdSteps : 1);
          if (round === 0) {
            // Warm-up round: shapes compiled, kernel counts taken.
            kernels.set(
              `${v.name}/${task}`,
              `${task === 'apgd' ? Math.round(c.kernels / apgdSteps) : c.kernels} / ${task === 'apgd' ? (c.syncs / apgdSteps).toFixed(1) : c.syncs}`,
            );
            continue;
          }
          const key = `${v.name}/${task}`;
          times.set(key, [...(times.get(key) ?? []), ms]);
        }
      }
    }
    preferFusedConv(true);
    preferTapeFree(true);
    tasks.forward();
    console.log(`\n${arch} (fused oneDNN convolution in use: ${fusedConvInUse()})`);
    console.log('| variant | task | ms (median) | ratio | ms (min) | ratio | tfjs kernels / syncs per call (apgd: per iteration) |');
    console.log('|---|---|---:|---:|---:|---:|---:|');
    for (const task of Object.keys(tasks)) {
      const of = (v: (typeof VARIANTS)[number]) => times.get(`${v.name}/${task}`)!;
      const [base, baseMin] = [median(of(VARIANTS[0])), Math.min(...of(VARIANTS[0]))];
      for (const v of VARIANTS) {
        const [m, lo] = [median(of(v)), Math.min(...of(v))];
        const row = [v.name, task, m.toFixed(1), (m / base).toFixed(2), lo.toFixed(1), (lo / baseMin).toFixed(2), kernels.get(`${v.name}/${task}`)];
        console.log(`| ${row.join(' | ')} |`);
      }
    }
    tf.dispose([x, y]);
    exec.dispose();
    model.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(e instanceof InputError ? 2 : 1);
});
