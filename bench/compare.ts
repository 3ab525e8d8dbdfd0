/**
 * ikl-at against PyTorch on this machine, back to back in one invocation (absolute times are noisy on a shared
 * machine; the ratio of two adjacent runs much less so). The PyTorch side is bench/reference/*.py, run with
 * $IKL_PYTHON (default /work/pyenv/bin/python, else python3); when torch is not importable the comparison prints
 * ours and says the reference was skipped.
 *
 *   node dist/bench/compare.js models [--models wrn-34-10] [--batches 32] [--iters 2] [--threads 0]
 *   node dist/bench/compare.js autoattack [--images 100] [--eps 1] [--checkpoint DIR] [--data CIFAR10_DIR] [--threads 0]
 *   node dist/bench/compare.js train-epoch [--steps 8] [--threads 0]
 *
 * models: training-mode forward + backward (mean CE over all weights), one fresh process per side and size
 *   (time per step, peak RSS; ours also kernels and host syncs per step).
 * autoattack: AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square 5,000) on the small CNN: our implementation
 *   through the inference executor, and the official fra31/auto-attack code, with the same weights and images
 *   (written to a temporary safetensors file). Without --checkpoint the network is the seed-0 initialisation, the
 *   images are seeded uniform noise and the labels are the network's own predictions, and eps (in /255) is small
 *   enough that part of the points survive to the later stages (use a trained checkpoint and --eps 8 for the
 *   published setting). --data DIR (a cifar-10-batches-bin/ folder): the first --images test images with their true
 *   labels instead of noise. Per stage: time, points attacked, kernels and syncs per iteration (ours).
 * train-epoch: the cifar10-quick IKL-AT recipe (configs/cifar10-quick.yaml: small CNN, batch 128, 5-step KL
 *   attack, AWP on, class-wise weights) on random images of CIFAR's shape: `--steps` timed steps extrapolated to
 *   the recipe's 79 steps per epoch, plus the per-epoch validation (clean + PGD-10 on 500 images).
 * --threads sets torch's intra-op threads (0: its default); ours uses TensorFlow's default pool.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { autoAttack, standardStages, STANDARD_STAGE_NAMES, type AutoAttackStage } from '../src/attacks/autoattack.js';
import type { ModelFn } from '../src/attacks/types.js';
import { initBackend } from '../src/backend.js';
import { InputError } from '../src/errors.js';
import { loadEvalSubject } from '../src/eval/model.js';
import { resolveConfig } from '../src/config/index.js';
import type { ImageSet } from '../src/data/types.js';
import { readCifar10Test } from '../src/data/cifar.js';
import { imageBatch } from '../src/eval/run.js';
import { createModel, parseArch, type ModelArch } from '../src/models/index.js';
import { createTrainer, disposeTrainer, trainStep } from '../src/train/step.js';
import { evaluateAccuracy } from '../src/train/trainer.js';
import { inferenceModel } from '../src/models/inference.js';
import { counts, installCounters, peakRssGb } from './counters.js';
import { flags, int } from './flags.js';
import { measureModelInChild } from './models.js';

const here = dirname(fileURLToPath(import.meta.url));
const REPO = join(here, '..', '..');
/** bench/reference/ in the source tree (this file runs from dist/bench/). */
const REFERENCE = join(here, '..', '..', 'bench', 'reference');

function python(): string {
  if (process.env.IKL_PYTHON) return process.env.IKL_PYTHON;
  return existsSync('/work/pyenv/bin/python') ? '/work/pyenv/bin/python' : 'python3';
}

/** Runs a reference script, returns its JSON line, or a reason why there is none. */
function reference(script: string, args: string[]): Record<string, unknown> | string {
  const r = spawnSync(python(), [join(REFERENCE, script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], cwd: REFERENCE });
  if (r.error) return `cannot run ${python()}: ${r.error.message}`;
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{')) return `${script} exited with ${r.status ?? r.signal}`;
  const out = JSON.parse(line) as Record<string, unknown>;
  return typeof out.skipped === 'string' ? `skipped: ${out.skipped}` : out;
}

const ratio = (ours: number, theirs: number): string => `${(ours / theirs).toFixed(2)}x`;

async function compareModels(f: Map<string, string>): Promise<void> {
  const models = (f.get('models') ?? 'wrn-34-10').split(',').map((s) => parseArch(s.trim(), '--models'));
  const batches = (f.get('batches') ?? '32').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new InputError(`--batches: expected positive integers, got '${s}'`);
    return n;
  });
  const iters = int(f, 'iters', 2);
  const threads = int(f, 'threads', 0, 0);
  console.log(
    '| model | batch | ikl-at s/step | PyTorch s/step | time ratio | ikl-at peak RSS GB | PyTorch peak RSS GB | memory ratio | ikl-at kernels/step | syncs/step |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const arch of models as ModelArch[]) {
    for (const batch of batches) {
      const ours = measureModelInChild(arch, batch, iters, 'ours');
      const ref = reference('fwdbwd.py', ['--arch', arch, '--batch', String(batch), '--iters', String(iters), '--threads', String(threads)]);
      const t = typeof ref === 'string' ? undefined : (ref as { sec: number; peakRssGb: number });
      console.log(
        `| ${arch} | ${batch} | ${ours.trainSec.toFixed(2)} | ${t ? t.sec.toFixed(2) : ref} | ${t ? ratio(ours.trainSec, t.sec) : '-'} | ` +
          `${ours.peakRssGb.toFixed(2)} | ${t ? t.peakRssGb.toFixed(2) : '-'} | ${t ? ratio(ours.peakRssGb, t.peakRssGb) : '-'} | ` +
          `${ours.trainKernels} | ${ours.trainSyncs} |`,
      );
    }
  }
}

/** Writes float32/int32 tensors as a safetensors file (8-byte header length, JSON header, raw little-endian data). */
function writeSafetensors(path: string, tensors: Record<string, tf.Tensor>): void {
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const data = t.dataSync();
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype: t.dtype === 'int32' ? 'I32' : 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, Buffer.from(json), ...parts]));
}

/** Iterations per stage of AutoAttack standard (for ops per iteration): APGD 100, 9 targets × 100, Square 5,000. */
const STAGE_ITERS: Record<string, number> = { 'apgd-ce': 100, 'apgd-t': 900, 'fab-t': 900, square: 5000 };

async function compareAutoAttack(f: Map<string, string>): Promise<void> {
  const n = int(f, 'images', 100);
  const epsIn255 = Number(f.get('eps') ?? '1');
  if (!(epsIn255 > 0 && epsIn255 <= 255)) throw new InputError(`--eps: expected a number in (0, 255] (units of 1/255), got '${f.get('eps')}'`);
  const eps = epsIn255 / 255;
  const threads = int(f, 'threads', 0, 0);
  const ckpt = f.get('checkpoint');
  let layers: tf.LayersModel;
  let disposeModel: () => void;
  if (ckpt) {
    const subject = await loadEvalSubject(ckpt);
    if (subject.arch !== 'small-cnn') throw new InputError(`--checkpoint ${ckpt}: expected a small-cnn checkpoint, got ${subject.arch}`);
    layers = subject.model;
    disposeModel = () => subject.dispose();
  } else {
    layers = createModel({ arch: 'small-cnn', numClasses: 10, seed: 0 });
    disposeModel = () => layers.dispose();
  }
  const exec = inferenceModel(layers);
  const model: ModelFn = exec.fn;
  const dataDir = f.get('data');
  let x: tf.Tensor4D;
  let y: tf.Tensor1D;
  if (dataDir) {
    const test = await readCifar10Test(dataDir);
    if (n > test.n) throw new InputError(`--images ${n}: ${dataDir} holds ${test.n} test images`);
    ({ x, y } = imageBatch(test, 0, n));
  } else {
    x = tf.randomUniform([n, 32, 32, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    y = tf.tidy(() => tf.argMax(model(x), 1).toInt() as tf.Tensor1D);
  }
  const dir = mkdtempSync(join(tmpdir(), 'ikl-compare-'));
  const file = join(dir, 'inputs.safetensors');
  writeSafetensors(file, { ...Object.fromEntries(layers.weights.map((w) => [w.originalName, w.read()])), x, y });

  installCounters();
  const perStage = new Map<string, { kernels: number; syncs: number }>();
  const standard = standardStages();
  const stages: AutoAttackStage[] = STANDARD_STAGE_NAMES.map((name) => ({
    ...standard[name],
    run: async (m, xs, ys, o) => {
      const c0 = counts();
      const r = await standard[name].run(m, xs, ys, o);
      const c1 = counts();
      perStage.set(name, { kernels: c1.kernels - c0.kernels, syncs: c1.syncs - c0.syncs });
      return r;
    },
  }));
  const t0 = performance.now();
  const ours = await autoAttack(model, x, y, { eps, norm: 'linf', seed: 0, attacks: stages });
  const oursSec = (performance.now() - t0) / 1000;
  const oursRss = peakRssGb();
  exec.dispose();
  tf.dispose([x, y]);
  disposeModel();

  const ref = reference('autoattack_ref.py', ['--inputs', file, '--eps', String(eps), '--threads', String(threads)]);
  rmSync(dir, { recursive: true, force: true });
  const theirs =
    typeof ref === 'string'
      ? undefined
      : (ref as { robust: number; sec: number; peakRssGb: number; stages: { name: string; attacked: number; sec: number }[] });
  console.log(
    `AutoAttack standard, small CNN (${ckpt ?? 'seed-0 initialisation'}), ${n} ${dataDir ? 'CIFAR-10 test' : 'noise'} images, eps ${epsIn255}/255${theirs ? '' : `; PyTorch: ${ref}`}`,
  );
  console.log('| stage | attacked (ours / official) | ikl-at s | PyTorch s | time ratio | ikl-at kernels/iter | syncs/iter |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const s of ours.stages) {
    const t = theirs?.stages.find((r) => r.name === s.name);
    const c = perStage.get(s.name);
    const iters = STAGE_ITERS[s.name] ?? 1;
    console.log(
      `| ${s.name} | ${s.attacked} / ${t?.attacked ?? '-'} | ${(s.timeMs / 1000).toFixed(1)} | ${t ? t.sec.toFixed(1) : '-'} | ` +
        `${t ? ratio(s.timeMs / 1000, t.sec) : '-'} | ${c ? (c.kernels / iters).toFixed(0) : '-'} | ${c ? (c.syncs / iters).toFixed(2) : '-'} |`,
    );
  }
  const robustOurs = Math.round(ours.robustAccuracy * n);
  console.log(
    `| total | robust ${robustOurs} / ${theirs?.robust ?? '-'} of ${n} | ${oursSec.toFixed(1)} | ${theirs ? theirs.sec.toFixed(1) : '-'} | ` +
      `${theirs ? ratio(oursSec, theirs.sec) : '-'} | peak RSS ${oursRss.toFixed(2)} GB | PyTorch ${theirs ? theirs.peakRssGb.toFixed(2) : '-'} GB |`,
  );
}

/** Steps per epoch of cifar10-quick: a 10,000-image subset in batches of 128. */
const QUICK_EPOCH_STEPS = 79;

async function compareTrainEpoch(f: Map<string, string>): Promise<void> {
  const steps = int(f, 'steps', 8);
  const threads = int(f, 'threads', 0, 0);
  const config = resolveConfig({ file: join(REPO, 'configs', 'cifar10-quick.yaml'), sets: ['data.dataset=synthetic'] });
  const batch = config.data.batchSize;
  const eps = 8 / 255;
  installCounters();
  const t = createTrainer(config);
  const x = tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 10),
    'int32',
  );
  const params = { lr: 0.1, epsilon: eps, stepSize: eps / 2, awp: true, seed: 0 };
  trainStep(t, x, y, params);
  const c0 = counts();
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) trainStep(t, x, y, { ...params, seed: s + 1 });
  const stepSec = (performance.now() - t0) / 1000 / steps;
  const c1 = counts();
  const n = config.eval.nExamples;
  const r = (i: number) => (Math.imul(i + 1, 2654435761) >>> 24) & 255;
  const set: ImageSet = {
    name: 'random',
    images: Uint8Array.from({ length: n * 32 * 32 * 3 }, (_, i) => r(i)),
    labels: Uint8Array.from({ length: n }, (_, i) => i % 10),
    n,
    numClasses: 10,
    height: 32,
    width: 32,
    channels: 3,
  };
  const t1 = performance.now();
  evaluateAccuracy(t.model, set, config);
  const valSec = (performance.now() - t1) / 1000;
  const rss = peakRssGb();
  tf.dispose([x, y]);
  disposeTrainer(t);
  const ref = reference('train_epoch.py', [
    '--batch',
    String(batch),
    '--steps',
    String(steps),
    '--epoch-steps',
    String(QUICK_EPOCH_STEPS),
    '--val',
    String(n),
    '--threads',
    String(threads),
  ]);
  const theirs = typeof ref === 'string' ? undefined : (ref as { stepSec: number; valSec: number; epochSec: number; peakRssGb: number });
  const epochSec = stepSec * QUICK_EPOCH_STEPS + valSec;
  console.log(
    `cifar10-quick IKL-AT epoch (small CNN, batch ${batch}, AWP on), random data, ${steps} timed steps × ${QUICK_EPOCH_STEPS}${theirs ? '' : `; PyTorch: ${ref}`}`,
  );
  console.log('| part | ikl-at s | PyTorch s | time ratio |');
  console.log('|---|---:|---:|---:|');
  const row = (name: string, a: number, b: number | undefined) =>
    console.log(`| ${name} | ${a.toFixed(2)} | ${b === undefined ? '-' : b.toFixed(2)} | ${b === undefined ? '-' : ratio(a, b)} |`);
  row('training step', stepSec, theirs?.stepSec);
  row(`validation (clean + PGD-10, ${n} images)`, valSec, theirs?.valSec);
  row(`epoch (${QUICK_EPOCH_STEPS} steps + validation)`, epochSec, theirs?.epochSec);
  console.log(
    `ikl-at: ${((c1.kernels - c0.kernels) / steps).toFixed(0)} kernels and ${((c1.syncs - c0.syncs) / steps).toFixed(1)} syncs per step, ` +
      `peak RSS ${rss.toFixed(2)} GB; PyTorch peak RSS ${theirs ? theirs.peakRssGb.toFixed(2) : '-'} GB`,
  );
}

async function main(): Promise<void> {
  const [what, ...rest] = process.argv.slice(2);
  const f = flags(rest);
  const info = await initBackend();
  for (const w of info.warnings) console.error(`warning: ${w}`);
  console.log(`ikl-at on ${info.name} (${info.package}, TF ${info.tfVersion}); PyTorch via ${python()} (bench/reference/)`);
  if (what === 'models') await compareModels(f);
  else if (what === 'autoattack') await compareAutoAttack(f);
  else if (what === 'train-epoch') await compareTrainEpoch(f);
  else throw new InputError(`compare: expected 'models', 'autoattack' or 'train-epoch' as the first argument, got '${what ?? ''}'`);
}

main().catch((e: unknown) => {
  console.error(e instanceof InputError ? e.message : e);
  process.exit(e instanceof InputError ? 2 : 1);
});
