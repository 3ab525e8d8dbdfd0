/**
 * Batching and augmentation. Images stay uint8 in memory; each batch is gathered, augmented and scaled to [0, 1]
 * in one typed-array pass and becomes exactly one x tensor and one y tensor.
 *
 * Randomness is a pure function of seeds (see ARCHITECTURE.md): the visiting order of epoch e comes from
 * (seed, e), and the augmentation and extra-data draws of batch i of epoch e from (seed, e, i). A run resumed at
 * `startBatch` therefore sees exactly the batches the interrupted run would have seen.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { deriveSeed, permutation, SeededRng } from '../rng.js';
import type { Batch, BatchOptions, ImageSet } from './types.js';

/** Zero padding of the random crop (the references' `RandomCrop(32, padding=4)`). */
export const CROP_PADDING = 4;

/** Purpose tags so the shuffle, augmentation and extra draws never share a random stream. */
const TAG_SHUFFLE = 0x5348;
const TAG_AUGMENT = 0x4155;
const TAG_EXTRA = 0x4558;

/** v/255 for every byte value, rounded once to float32, so scaling is a table lookup. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** Batches per epoch of n samples. */
export function numBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** The order in which epoch `epoch` visits a set of n samples: a seeded permutation. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  return permutation(n, new SeededRng(deriveSeed(seed, epoch, TAG_SHUFFLE)));
}

/** Copies one uint8 image into `dst` scaled to [0, 1], without augmentation. */
export function copyScaled(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, size: number): void {
  for (let k = 0; k < size; k++) dst[dstOff + k] = UNIT[src[srcOff + k]!]!;
}

/**
 * Random-crop-and-flip of one H×W×C uint8 image into `dst` scaled to [0, 1]. The crop window starts at (dy, dx)
 * in the image zero-padded by `pad` pixels on each side (0 ≤ dy, dx ≤ 2·pad); `flip` then mirrors it
 * horizontally, as torchvision's RandomCrop followed by RandomHorizontalFlip:
 *   out[y][x] = padded[y + dy][(flip ? W-1-x : x) + dx].
 */
export function cropFlip(
  src: Uint8Array,
  srcOff: number,
  dst: Float32Array,
  dstOff: number,
  shape: { height: number; width: number; channels: number },
  dy: number,
  dx: number,
  flip: boolean,
  pad = CROP_PADDING,
): void {
  const { height: h, width: w, channels: c } = shape;
  const row = w * c;
  for (let y = 0; y < h; y++) {
    const sy = y + dy - pad;
    const o = dstOff + y * row;
    if (sy < 0 || sy >= h) {
      dst.fill(0, o, o + row);
      continue;
    }
    const srow = srcOff + sy * row;
    for (let x = 0; x < w; x++) {
      const sx = (flip ? w - 1 - x : x) + dx - pad;
      const d = o + x * c;
      if (sx < 0 || sx >= w) {
        for (let k = 0; k < c; k++) dst[d + k] = 0;
      } else {
        const s = srow + sx * c;
        for (let k = 0; k < c; k++) dst[d + k] = UNIT[src[s + k]!]!;
      }
    }
  }
}

function validate(set: ImageSet, opts: BatchOptions): void {
  const { batchSize } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError(`batchSize: expected a positive integer, got ${batchSize}`);
  for (const [k, v] of [
    ['seed', opts.seed],
    ['epoch', opts.epoch],
    ['startBatch', opts.startBatch],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new InputError(`${k}: expected a non-negative integer, got ${v}`);
  }
  if (set.n < 1) throw new InputError(`${set.name}: cannot make batches of an empty set`);
  const shard = opts.shard;
  if (shard && !(Number.isInteger(shard.size) && shard.size >= 1 && Number.isInteger(shard.rank) && shard.rank >= 0 && shard.rank < shard.size)) {
    throw new InputError(`shard: expected 0 <= rank < size, got rank ${shard.rank} of ${shard.size}`);
  }
  const extra = opts.extra;
  if (extra) {
    const { set: e, ratio } = extra;
    if (!(ratio >= 0 && ratio < 1)) throw new InputError(`extra.ratio: expected a number in [0, 1), got ${ratio}`);
    if (batchSize - Math.round(batchSize * ratio) < 1) {
      throw new InputError(`extra.ratio: ${ratio} leaves no original samples in a batch of ${batchSize}`);
    }
    if (e.n < 1) throw new InputError(`${e.name}: the extra data set is empty`);
    if (e.height !== set.height || e.width !== set.width || e.channels !== set.channels) {
      throw new InputError(
        `${e.name}: extra images are ${e.height}×${e.width}×${e.channels}, expected ${set.height}×${set.width}×${set.channels} like ${set.name}`,
      );
    }
    if (e.numClasses > set.numClasses) {
      throw new InputError(`${e.name}: extra data has ${e.numClasses} classes, expected at most ${set.numClasses} like ${set.name}`);
    }
  }
}

/**
 * The batches of one epoch, lazily: each `next()` builds one batch, so breaking out of the loop leaks nothing.
 * The caller disposes each batch's `x` and `y`.
 */
export function batches(set: ImageSet, opts: BatchOptions): Generator<Batch, void, undefined> {
  validate(set, opts);
  return generate(set, opts);
}

function* generate(set: ImageSet, opts: BatchOptions): Generator<Batch, void, undefined> {
  const seed = opts.seed ?? 0;
  const epoch = opts.epoch ?? 0;
  const B = opts.batchSize;
  const n = set.n;
  const size = set.height * set.width * set.channels;
  const extra = opts.extra && opts.extra.ratio > 0 ? opts.extra : undefined;
  const nExtra = extra ? Math.round(B * extra.ratio) : 0;
  // With extra data every batch is full: nOrig originals walked through the epoch order (wrapping around when the
  // last batch needs more), plus nExtra extra samples. The number of batches stays that of the original data.
  const nOrig = B - nExtra;
  const total = numBatches(n, B, opts.dropLast ?? false);
  const order = opts.shuffle ? epochOrder(n, seed, epoch) : undefined;
  const shard = opts.shard && opts.shard.size > 1 ? opts.shard : undefined;

  for (let i = opts.startBatch ?? 0; i < total; i++) {
    const start = i * nOrig;
    const count = extra ? B : Math.min(B, n - start);
    const lo = shard ? Math.floor((shard.rank * count) / shard.size) : 0;
    const hi = shard ? Math.floor(((shard.rank + 1) * count) / shard.size) : count;
    const x = new Float32Array((hi - lo) * size);
    const y = new Int32Array(hi - lo);
    const aug = opts.augment ? new SeededRng(deriveSeed(seed, epoch, i, TAG_AUGMENT)) : undefined;
    const extraRng = extra ? new SeededRng(deriveSeed(seed, epoch, i, TAG_EXTRA)) : undefined;
    for (let k = 0; k < count; k++) {
      let src: ImageSet;
      let j: number;
      if (k < nOrig || !extra) {
        const pos = (start + k) % n;
        src = set;
        j = order ? order[pos]! : pos;
      } else {
        // Drawn with replacement, as the semi-supervised samplers of the generated-data references do.
        src = extra.set;
        j = extraRng!.int(extra.set.n);
      }
      // Rows of other tasks still take their random draws, so every row's augmentation is the unsharded one.
      const mine = k >= lo && k < hi;
      const r = k - lo;
      if (mine) y[r] = src.labels[j]!;
      if (aug) {
        const dy = aug.int(2 * CROP_PADDING + 1);
        const dx = aug.int(2 * CROP_PADDING + 1);
        const flip = aug.next() < 0.5;
        if (mine) cropFlip(src.images, j * size, x, r * size, set, dy, dx, flip);
      } else if (mine) {
        copyScaled(src.images, j * size, x, r * size, size);
      }
    }
    yield {
      x: tf.tensor4d(x, [hi - lo, set.height, set.width, set.channels], 'float32'),
      y: tf.tensor1d(y, 'int32'),
      index: i,
      globalSize: count,
    };
  }
}
