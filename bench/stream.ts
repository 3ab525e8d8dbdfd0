/**
 * Streaming generated data from npz parts on disk: is the loader fast enough, and is memory flat?
 *
 *  throughput (default): writes `--parts` npz parts of `--images` images each (scripts/make-npz.mjs' writer) in
 *    `--scratch` (default a temp dir, removed at the end unless --keep 1), then times the training loader: the
 *    reference sampler mixing 50,000 in-memory images with the parts at f = 0.7, batch `--batch`, `--workers`
 *    worker threads, `--batches` batches, with crop+flip and without augmentation, with a cold page cache (each
 *    part's pages dropped first with `dd iflag=nocache count=0`, i.e. posix_fadvise DONTNEED, which touches
 *    only these files) and warm (the same batches again).
 *  --train 1: runs one short ikl-train epoch (small CNN, synthetic real data, batch 128) in a child process for
 *    each extra-data setting: none, a small npz (`--small` images), and the parts; prints ms per step and the
 *    child's peak RSS (getrusage maxRSS) and the time the steps waited for data; `--rounds` interleaved rounds.
 *
 * (Not `--dir`: node-pre-gyp, which loads tfjs-node's binding, reads process.argv and takes `--dir` as its
 * `--directory`, so the native backend would not load.)
 *
 * Usage: node dist/bench/stream.js [--parts 2] [--images 300000] [--workers 2] [--batch 512] [--batches 200]
 *          [--scratch D] [--keep 0|1] [--files a.npz,b.npz] [--train 0|1] [--small 20000] [--steps 40] [--rounds 2]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { flags, int } from './flags.js';
import { BatchLoader } from '../src/data/loader.js';
import { writeNpz } from '../src/data/npz-write.js';
import { MixedSampler } from '../src/data/sampler.js';
import { ConcatSource, MemorySource, openParts } from '../src/data/source.js';
import { makeSynthetic } from '../src/data/synthetic.js';

const SIZE = 32 * 32 * 3;
const argv = process.argv.slice(2);

/** A synthetic part: 10,000 synthetic images repeated (content does not matter for reading speed). */
function writePart(file: string, n: number): void {
  const base = makeSynthetic({ nTrain: Math.min(n, 10_000), nTest: 0, seed: 1 }).train;
  writeNpz(file, {
    n,
    fill: (from, count, images, labels) => {
      for (let k = 0; k < count; k++) {
        const j = (from + k) % base.n;
        images.set(base.images.subarray(j * SIZE, (j + 1) * SIZE), k * SIZE);
        labels[k] = BigInt(base.labels[j]!);
      }
    },
  });
}

function dropCache(files: string[]): void {
  for (const f of files) execFileSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
}

async function throughput(files: string[], workers: number, batch: number, batches: number): Promise<void> {
  const real = makeSynthetic({ nTrain: 50_000, nTest: 0, seed: 2 }).train;
  for (const augment of ['crop-flip', 'none'] as const) {
    for (const cache of ['cold', 'warm']) {
      if (cache === 'cold') dropCache(files);
      const extra = openParts(files, 10);
      const sampler = new MixedSampler({ kind: 'mixed', nReal: real.n, nExtra: extra.n, batchSize: batch, fraction: 0.7, numBatches: batches, seed: 5 });
      const loader = new BatchLoader(new ConcatSource([new MemorySource(real, { shared: workers > 0 }), extra]), sampler, {
        workers,
        prefetch: Math.max(2, 2 * workers),
        augment,
        seed: 5,
      });
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      let n = 0;
      for await (const b of loader.epoch(0)) {
        n += b.y.shape[0];
        tf.dispose([b.x, b.y]);
      }
      const s = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      // CPU seconds of all threads (main + workers): the figure that does not depend on what else runs.
      const cpu = (c.user + c.system) / 1e6;
      await loader.close();
      console.log(
        `${augment.padEnd(9)} ${cache}: ${Math.round(n / s).toLocaleString('en')} images/s wall, ${Math.round(n / cpu).toLocaleString('en')} images per CPU-second ` +
          `(${batches} batches of ${batch}, 70% generated from ${files.length} part(s) of ${extra.n.toLocaleString('en')} images, ${workers} worker(s))`,
      );
    }
  }
}

/** The child of --train: one epoch of ikl-train, then its figures as one JSON line. */
async function trainChild(spec: { files: string[]; steps: number; dir: string }): Promise<void> {
  const { resolveConfig } = await import('../src/config/index.js');
  const { train } = await import('../src/train/trainer.js');
  const { initBackend } = await import('../src/backend.js');
  await initBackend();
  const sets = [
    'data.dataset=synthetic',
    `data.synthetic.nTrain=${spec.steps * 128 + 200}`,
    'data.synthetic.nTest=100',
    'data.valSize=200',
    'data.valSplit=first',
    'data.batchSize=128',
    'model.arch=small-cnn',
    'attack.steps=2',
    'schedule.epochs=1',
    'eval.nExamples=100',
    'eval.pgdSteps=2',
    'run.progress=false',
  ];
  if (spec.files.length > 0) sets.push(`data.extra={files: [${spec.files.map((f) => JSON.stringify(f)).join(', ')}], ratio: 0.7}`);
  const config = resolveConfig({ sets });
  const r = await train(config, { runDir: spec.dir });
  const m = r.metrics[0]!;
  console.log(
    JSON.stringify({
      msPerStep: (Number(m.epochSeconds) / r.steps) * 1000,
      steps: r.steps,
      dataWaitMs: (Number(m.dataWaitSeconds) / r.steps) * 1000,
      maxRssMB: process.resourceUsage().maxRSS / 1024,
    }),
  );
}

async function trainComparison(files: string[], dir: string, small: number, steps: number, rounds: number): Promise<void> {
  const smallFile = join(dir, 'small.npz');
  writePart(smallFile, small);
  const self = fileURLToPath(import.meta.url);
  const total = files.reduce((a, f) => a + statSync(f).size, 0);
  const settings = [
    ['no extra data', []],
    [`extra: 1 npz of ${small.toLocaleString('en')} images (${(statSync(smallFile).size / 1e9).toFixed(2)} GB)`, [smallFile]],
    [`extra: ${files.length} npz parts, ${(total / 1e9).toFixed(2)} GB`, files],
  ] as const;
  // Interleaved rounds: on a shared machine the load drifts, so the settings are compared round by round.
  const best = settings.map(() => Infinity);
  for (let round = 1; round <= rounds; round++) {
    for (const [s, [label, fs]] of settings.entries()) {
      const run = join(dir, `run-${Math.random().toString(36).slice(2)}`);
      const child = spawnSync(process.execPath, [self, '--train-child', JSON.stringify({ files: fs, steps, dir: run })], {
        encoding: 'utf8',
        env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
      });
      rmSync(run, { recursive: true, force: true });
      const line = child.stdout.trim().split('\n').pop() ?? '';
      if (child.status !== 0 || !line.startsWith('{')) {
        console.log(`${label}: failed (${child.status}) ${child.stderr.slice(-500)}`);
        continue;
      }
      const r = JSON.parse(line) as { msPerStep: number; steps: number; dataWaitMs: number; maxRssMB: number };
      best[s] = Math.min(best[s]!, r.msPerStep);
      console.log(
        `round ${round}, train ${label}: ${r.msPerStep.toFixed(0)} ms/step over ${r.steps} steps (waiting for data ${r.dataWaitMs.toFixed(1)} ms/step), peak RSS ${r.maxRssMB.toFixed(0)} MB`,
      );
    }
  }
  settings.forEach(([label], s) =>
    console.log(`fastest round, ${label}: ${best[s]!.toFixed(0)} ms/step (${((best[s]! / best[0]! - 1) * 100).toFixed(0)}% vs no extra data)`),
  );
}

async function main(): Promise<void> {
  if (argv[0] === '--train-child') return trainChild(JSON.parse(argv[1]!) as { files: string[]; steps: number; dir: string });
  const { initBackend } = await import('../src/backend.js');
  const info = await initBackend();
  console.log(`backend ${info.name}; machine: 2 cores shared with other jobs, figures move between runs`);
  for (const w of info.warnings ?? []) console.log(`warning: ${w}`);
  const f = flags(argv, ['parts', 'images', 'workers', 'batch', 'batches', 'scratch', 'keep', 'files', 'train', 'small', 'steps', 'rounds']);
  const given = f.get('files')?.split(',');
  const dir = f.get('scratch') ?? mkdtempSync(join(tmpdir(), 'ikl-bench-stream-'));
  mkdirSync(dir, { recursive: true });
  const keep = f.get('keep') === '1' || f.has('scratch');
  try {
    let files = given;
    if (!files) {
      const parts = int(f, 'parts', 2);
      const images = int(f, 'images', 300_000);
      files = Array.from({ length: parts }, (_, p) => join(dir, `gen_part${p + 1}.npz`));
      const t0 = performance.now();
      for (const file of files) writePart(file, images);
      const gb = files.reduce((a, x) => a + statSync(x).size, 0) / 1e9;
      console.log(`wrote ${parts} part(s) of ${images.toLocaleString('en')} images, ${gb.toFixed(2)} GB, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    if (f.get('train') === '1') await trainComparison(files, dir, int(f, 'small', 20_000), int(f, 'steps', 40), int(f, 'rounds', 2));
    else await throughput(files, int(f, 'workers', 2, 0), int(f, 'batch', 512), int(f, 'batches', 200));
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
