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
import { AUGMENTATIONS, Augmenter, CROP_PADDING, type AugmentationName } from './augment.js';

export { CROP_PADDING };

/** Purpose tags so the shuffle, augmentation and extra draws never share a random stream. */
const TAG_SHUFFLE = 0x5348;
const TAG_AUGMENT = 0x4155;
const TAG_EXTRA = 0x4558;
const TAG_PAIR = 0x5041;

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

/** The policy of a `BatchOptions.augment` value: true is crop-flip, false none. */
export function augmentationName(augment: boolean | AugmentationName): AugmentationName {
  return augment === true ? 'crop-flip' : augment === false ? 'none' : augment;
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
  const policy = augmentationName(opts.augment);
  if (!(AUGMENTATIONS as readonly string[]).includes(policy))
    throw new InputError(`augment: expected true, false or one of ${AUGMENTATIONS.join('|')}, got ${policy}`);
  if (opts.pair !== undefined && !(AUGMENTATIONS as readonly string[]).includes(opts.pair)) {
    throw new InputError(`pair: expected one of ${AUGMENTATIONS.join('|')}, got ${String(opts.pair)}`);
  }
  if ((policy !== 'none' || (opts.pair ?? 'none') !== 'none') && set.channels !== 3)
    throw new InputError(`augment: '${policy}' needs 3-channel images, ${set.name} has ${set.channels}`);
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
  const policy = augmentationName(opts.augment);
  // crop-flip keeps its fused crop + flip + scale pass; the other policies augment a uint8 copy, then scale it.
  const augmenter = policy !== 'none' && policy !== 'crop-flip' ? new Augmenter(policy, set) : undefined;
  const img = new Uint8Array(size);
  const pairPolicy = opts.pair;
  const pairAugmenter = pairPolicy !== undefined && pairPolicy !== 'none' ? new Augmenter(pairPolicy, set) : undefined;

  for (let i = opts.startBatch ?? 0; i < total; i++) {
    const start = i * nOrig;
    const count = extra ? B : Math.min(B, n - start);
    const rows = pairPolicy !== undefined ? 2 * count : count;
    const x = new Float32Array(rows * size);
    const y = new Int32Array(rows);
    const pairRng = pairAugmenter ? new SeededRng(deriveSeed(seed, epoch, i, TAG_PAIR)) : undefined;
    const aug = policy !== 'none' ? new SeededRng(deriveSeed(seed, epoch, i, TAG_AUGMENT)) : undefined;
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
      y[k] = src.labels[j]!;
      if (pairPolicy !== undefined) {
        // View B: the same image through the pair policy (its own stream, so view A is what it would be alone).
        y[count + k] = y[k]!;
        img.set(src.images.subarray(j * size, (j + 1) * size));
        pairAugmenter?.apply(img, pairRng!);
        copyScaled(img, 0, x, (count + k) * size, size);
      }
      if (augmenter) {
        img.set(src.images.subarray(j * size, (j + 1) * size));
        augmenter.apply(img, aug!);
        copyScaled(img, 0, x, k * size, size);
      } else if (aug) {
        const dy = aug.int(2 * CROP_PADDING + 1);
        const dx = aug.int(2 * CROP_PADDING + 1);
        const flip = aug.next() < 0.5;
        cropFlip(src.images, j * size, x, k * size, set, dy, dx, flip);
      } else {
        copyScaled(src.images, j * size, x, k * size, size);
      }
    }
    yield {
      x: tf.tensor4d(x, [rows, set.height, set.width, set.channels], 'float32'),
      y: tf.tensor1d(y, 'int32'),
      index: i,
    };
  }
}
