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
  /** Rows (views·n). */
  rows: number;
}

export function makeBatch(source: ImageSource, sampler: BatchSampler, augmentation: Augmentation, seed: number, epoch: number, batch: number): HostBatch {
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
  return { x, y, rows: views * n };
}
