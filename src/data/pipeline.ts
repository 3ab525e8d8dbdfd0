/**
 * One batch from its three ingredients, as typed arrays: the sampler's indices, the source's images and labels,
 * the augmentation. Pure in (seed, epoch, batch): the main thread (inline loading) and a prefetch worker compute
 * the same bytes.
 */
import { deriveSeed, SeededRng } from '../rng.js';
import type { Augmentation } from './augmentation.js';
import type { BatchSampler } from './sampler.js';
import type { ImageSource } from './source.js';

export interface HostBatch {
  /** views·n float32 HWC images in [0, 1]. */
  x: Float32Array;
  /** views·n labels (repeated per view). */
  y: Int32Array;
  /** Rows (views·n, or this task's share of them). */
  rows: number;
  /** Rows of the whole batch (views·n) this one is a shard of. */
  globalRows: number;
}

/** One task's part of every batch in a data-parallel run: images [⌊rank·n/size⌋, ⌊(rank+1)·n/size⌋) of n. */
export interface Shard {
  rank: number;
  size: number;
}

/**
 * Batch `batch` of epoch `epoch`. With a shard, only that task's images (in every view, view-major as the whole
 * batch) are returned; the whole batch is still read and augmented so that each row is exactly the one a single
 * process makes (the augmentation's draws run image after image). The pipeline runs in worker threads, off the step.
 */
export function makeBatch(
  source: ImageSource,
  sampler: BatchSampler,
  augmentation: Augmentation,
  seed: number,
  epoch: number,
  batch: number,
  shard?: Shard,
): HostBatch {
  const idx = sampler.batch(epoch, batch);
  const n = idx.length;
  const size = source.height * source.width * source.channels;
  const images = new Uint8Array(n * size);
  const labels = new Int32Array(n);
  for (let k = 0; k < n; k++) labels[k] = source.get(idx[k]!, images, k * size);
  const views = augmentation.views;
  const x = new Float32Array(views * n * size);
  augmentation.apply(images, n, (tag) => new SeededRng(deriveSeed(seed, epoch, batch, tag)), x);
  const y = new Int32Array(views * n);
  for (let v = 0; v < views; v++) y.set(labels, v * n);
  if (!shard || shard.size === 1) return { x, y, rows: views * n, globalRows: views * n };
  const lo = Math.floor((shard.rank * n) / shard.size);
  const hi = Math.floor(((shard.rank + 1) * n) / shard.size);
  const m = hi - lo;
  const xs = new Float32Array(views * m * size);
  const ys = new Int32Array(views * m);
  for (let v = 0; v < views; v++) {
    xs.set(x.subarray((v * n + lo) * size, (v * n + hi) * size), v * m * size);
    ys.set(y.subarray(v * n + lo, v * n + hi), v * m);
  }
  return { x: xs, y: ys, rows: views * m, globalRows: views * n };
}
