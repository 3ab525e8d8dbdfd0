/**
 * Augmentation throughput: images per second of every op (one thread) and every `data.augment` policy, on one
 * thread and on W worker threads (each augmenting its own share of the batch, as a prefetching pipeline would).
 * uint8 32×32×3 images in, uint8 out; the [0, 1] scaling of batches.ts is not included.
 *
 * Usage: node dist/bench/augment.js [--images N (4096)] [--ms per figure (500)] [--workers W (2)] [--policies 0|1 (1)]
 */
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { AUGMENTATIONS, Augmenter, type AugmentationName } from '../src/data/augment.js';
import * as ops from '../src/data/augment-ops.js';
import { SeededRng } from '../src/rng.js';
import { flags, int } from './flags.js';

const SHAPE = { height: 32, width: 32, channels: 3 };
const SIZE = 32 * 32 * 3;

/** Smooth gradients plus noise: like natural images, every op has work to do (no flat histograms). */
function makeImages(n: number, seed: number): Uint8Array {
  const rng = new SeededRng(seed);
  const a = new Uint8Array(n * SIZE);
  for (let k = 0; k < n; k++) {
    const [r, g, b] = [rng.int(200), rng.int(200), rng.int(200)];
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const o = k * SIZE + (y * 32 + x) * 3;
        a[o] = (r + x * 1.5 + rng.int(24)) & 255;
        a[o + 1] = (g + y * 1.5 + rng.int(24)) & 255;
        a[o + 2] = (b + (x + y) * 0.7 + rng.int(24)) & 255;
      }
    }
  }
  return a;
}

/** Images per second of `fn(imageIndex)` repeated over the set for at least `seconds`. */
function rate(n: number, seconds: number, fn: (k: number) => void): number {
  let done = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < seconds * 1000) {
    for (let k = 0; k < n; k++) fn(k);
    done += n;
    t = performance.now();
  }
  return (done / (t - t0)) * 1000;
}

function policyRate(policy: AugmentationName, images: Uint8Array, n: number, seconds: number, seed: number): number {
  const aug = new Augmenter(policy, SHAPE);
  const work = images.slice();
  const rng = new SeededRng(seed);
  return rate(n, seconds, (k) => {
    const img = work.subarray(k * SIZE, (k + 1) * SIZE);
    img.set(images.subarray(k * SIZE, (k + 1) * SIZE));
    aug.apply(img, rng);
  });
}

if (!isMainThread) {
  const { policy, n, seconds, seed } = workerData as { policy: AugmentationName; n: number; seconds: number; seed: number };
  parentPort!.postMessage(policyRate(policy, makeImages(n, seed), n, seconds, seed));
} else {
  const f = flags(process.argv.slice(2), ['images', 'ms', 'workers', 'policies']);
  const n = int(f, 'images', 4096);
  const seconds = int(f, 'ms', 500) / 1000;
  const workers = int(f, 'workers', 2);
  const images = makeImages(n, 1);
  const dst = new Uint8Array(SIZE);
  const scratch = new Uint8Array(SIZE);
  const img = (k: number) => images.subarray(k * SIZE, (k + 1) * SIZE);
  const fmt = (v: number) => Math.round(v).toLocaleString('en-US').padStart(10);

  console.log(`augmentation ops, one thread, ${n} images 32×32×3 (images/s):`);
  const opTable: [string, (k: number) => void][] = [
    ['invert', (k) => ops.invert(img(k), dst)],
    ['solarize', (k) => ops.solarize(img(k), dst, 128)],
    ['posterize', (k) => ops.posterize(img(k), dst, 4)],
    ['autocontrast', (k) => ops.autocontrast(img(k), dst, SHAPE)],
    ['equalize', (k) => ops.equalize(img(k), dst, SHAPE)],
    ['color', (k) => ops.color(img(k), dst, SHAPE, 1.5, scratch)],
    ['contrast', (k) => ops.contrast(img(k), dst, SHAPE, 1.5, scratch)],
    ['brightness', (k) => ops.brightness(img(k), dst, 1.5, scratch)],
    ['sharpness', (k) => ops.sharpness(img(k), dst, SHAPE, 1.5, scratch)],
    ['translate (nearest)', (k) => ops.affineNearest(img(k), dst, SHAPE, [1, 0, 14.5, 0, 1, 0], [128, 128, 128])],
    ['shear (nearest)', (k) => ops.affineNearest(img(k), dst, SHAPE, [1, 0.3, 0, 0, 1, 0], [128, 128, 128])],
    ['shear (bicubic)', (k) => ops.affineBicubic(img(k), dst, SHAPE, [1, 0.3, 0, 0, 1, 0], [128, 128, 128])],
    ['rotate 13°', (k) => ops.rotate(img(k), dst, SHAPE, 13, [0, 0, 0])],
    ['flip', (k) => ops.flipHorizontal(img(k), dst, SHAPE)],
    ['shift (crop)', (k) => ops.shift(img(k), dst, SHAPE, 3, -2)],
    ['cutout 16', (k) => ops.cutout(dst, SHAPE, k & 31, (k >> 5) & 31, 16)],
  ];
  for (const [name, fn] of opTable) console.log(`  ${name.padEnd(22)}${fmt(rate(n, seconds, fn))}`);

  if (int(f, 'policies', 1, 0) === 1) {
    console.log(`\npolicies (images/s): one thread | ${workers} worker threads together`);
    const url = new URL(import.meta.url);
    for (const policy of AUGMENTATIONS) {
      const one = policyRate(policy, images, n, seconds, 2);
      const rates = await Promise.all(
        Array.from(
          { length: workers },
          (_, w) =>
            new Promise<number>((resolve, reject) => {
              const wk = new Worker(url, { workerData: { policy, n: Math.ceil(n / workers), seconds, seed: 10 + w } });
              wk.once('message', (v: number) => resolve(v));
              wk.once('error', reject);
            }),
        ),
      );
      console.log(`  ${policy.padEnd(22)}${fmt(one)} |${fmt(rates.reduce((a, b) => a + b, 0))}`);
    }
  }
}
